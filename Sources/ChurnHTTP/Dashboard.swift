/// The dashboard: one page, its script and its style, served by the coordinator (nothing is
/// fetched from elsewhere at view time: no CDN, no web fonts, no build step).
///
/// The page loads without a token. It asks `GET /v1/cluster`; a 401 shows the sign-in form, which
/// posts the pasted token to `POST /v1/session` (the answer sets the HttpOnly session cookie, so
/// the token is never stored by the page nor put in a URL). Then it reads the cluster, the last
/// jobs and the published job's summary, follows `GET /v1/stream` (Server-Sent Events) for the
/// running job and the nodes, and sets `data-ready="true"` on `<body>` once the first render of
/// the data is complete (`data-ready-ms`: milliseconds since navigation start, for the benchmark).
///
/// Every panel has a stable id (`#cluster`, `#job`, `#histogram`, `#bands`, `#top-risk`,
/// `#lookup`, `#triggers`, `#campaigns`, `#drift`); rows carry the raw values in `data-`
/// attributes (`data-node`, `data-shards`, `data-subscriber-id`, `data-probability`) for tests.
enum Dashboard {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <link rel="icon" href="data:,">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>ChurnGrid</title>
    <link rel="stylesheet" href="/dashboard.css">
    <script src="/dashboard.js" defer></script>
    </head>
    <body data-ready="false">
    <header class="topbar">
      <div class="brand">
        <span class="logo" aria-hidden="true"></span>
        <span class="name">ChurnGrid</span>
        <span class="tagline">churn-scoring cluster</span>
      </div>
      <div class="session" id="session" hidden>
        <span class="live" id="live" data-state="connecting"><span class="dot"></span><span class="label">connecting…</span></span>
        <span class="whoami" id="whoami"></span>
        <button type="button" id="signout" class="button secondary">Sign out</button>
      </div>
    </header>

    <main>
      <noscript><p class="notice">The dashboard needs JavaScript. The API is described at <a href="/openapi.json">/openapi.json</a>.</p></noscript>
      <p id="booting" class="muted booting">Loading…</p>

      <section id="signin" class="signin" hidden>
        <form id="signin-form" class="card signin-card" autocomplete="off">
          <h1>Sign in</h1>
          <p class="muted">Paste an API token. An administrator makes one with
            <code>churngrid tokens create --name NAME --role reader</code>; it is sent once and kept
            by the coordinator as a session cookie, never stored by this page.</p>
          <label for="signin-token">API token</label>
          <input id="signin-token" name="token" type="password" autocomplete="off" spellcheck="false" placeholder="cgt_…" required>
          <button type="submit" class="button" id="signin-submit">Sign in</button>
          <p id="signin-error" class="error" role="alert" hidden></p>
        </form>
      </section>

      <div id="dashboard" class="grid" hidden>
        <section class="card span-2" id="cluster" aria-labelledby="cluster-title">
          <header><h2 id="cluster-title">Cluster</h2><span class="meta"></span></header>
          <div class="body"><p class="muted">Loading…</p></div>
        </section>

        <section class="card" id="job" aria-labelledby="job-title">
          <header><h2 id="job-title">Rescoring job</h2><span class="meta"></span></header>
          <div class="body"><p class="muted">Loading…</p></div>
        </section>

        <section class="card span-2" id="histogram" aria-labelledby="histogram-title">
          <header><h2 id="histogram-title">Score distribution</h2><span class="meta"></span></header>
          <div class="body"><p class="muted">Loading…</p></div>
        </section>

        <section class="card" id="bands" aria-labelledby="bands-title">
          <header><h2 id="bands-title">Risk bands and regions</h2><span class="meta"></span></header>
          <div class="body"><p class="muted">Loading…</p></div>
        </section>

        <section class="card span-2" id="top-risk" aria-labelledby="top-risk-title">
          <header><h2 id="top-risk-title">Highest-risk subscribers</h2><span class="meta"></span></header>
          <div class="body"><p class="muted">Loading…</p></div>
        </section>

        <section class="card" id="lookup" aria-labelledby="lookup-title">
          <header><h2 id="lookup-title">Subscriber lookup</h2><span class="meta">live score</span></header>
          <div class="body">
            <form id="lookup-form" class="lookup-form" autocomplete="off">
              <label for="lookup-id" class="visually-hidden">Subscriber id</label>
              <input id="lookup-id" name="id" type="text" inputmode="numeric" pattern="[0-9]+" placeholder="Subscriber id" required>
              <button type="submit" class="button">Score</button>
            </form>
            <div id="lookup-result" class="lookup-result" aria-live="polite">
              <p class="muted">Scores one subscriber now, on the worker that holds its shard, with the reasons behind it.</p>
            </div>
          </div>
        </section>

        <section class="card placeholder" id="triggers" aria-labelledby="triggers-title">
          <header><h2 id="triggers-title">Retention triggers</h2><span class="badge muted-badge">not available yet</span></header>
          <div class="body"><p class="muted">Triggers fired by score changes will be listed here: not available yet.</p></div>
        </section>

        <section class="card placeholder" id="campaigns" aria-labelledby="campaigns-title">
          <header><h2 id="campaigns-title">Campaigns</h2><span class="badge muted-badge">not available yet</span></header>
          <div class="body"><p class="muted">Campaign uplift with its confidence interval will be shown here: not available yet.</p></div>
        </section>

        <section class="card placeholder" id="drift" aria-labelledby="drift-title">
          <header><h2 id="drift-title">Drift</h2><span class="badge muted-badge">not available yet</span></header>
          <div class="body"><p class="muted">Feature and score drift between jobs will be tracked here: not available yet.</p></div>
        </section>
      </div>
    </main>
    <footer class="footer">ChurnGrid coordinator · API described at <a href="/openapi.json">/openapi.json</a></footer>
    </body>
    </html>
    """#

    static let script = #"""
    'use strict';
    // The ChurnGrid dashboard: plain DOM, no framework. Every value from the API is put in the
    // page as text (textContent), never as HTML.
    (function () {
      const BINS = 20;
      const BANDS = ['low', 'medium', 'high', 'very_high'];
      const BAND_LABELS = { low: 'Low', medium: 'Medium', high: 'High', very_high: 'Very high' };
      const THRESHOLDS = [0.05, 0.15, 0.35];  // lower bounds of medium, high, very high
      const CLUSTER_REFRESH_MS = 10000;

      const state = {
        cluster: null,       // the last GET /v1/cluster answer, kept up to date by the stream
        job: null,           // the current or last job
        summaryJob: null,    // the job whose summary is shown
        checkedJob: null,    // the completed job for which the published one was looked up again
        stream: null,
        refreshTimer: null,
        retryTimer: null,
        ready: false,
        generation: 0,       // bumped on sign-out: late answers of an earlier session are dropped
      };

      // MARK: Formatting

      const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
      const fmtInt = (n) => (n == null || !isFinite(n) ? '—' : integer.format(n));
      const fmtPct = (x, digits = 1) => (x == null || !isFinite(x) ? '—' : (x * 100).toFixed(digits) + '%');
      const fmtProb = (p) => (p == null || !isFinite(p) ? '—' : p.toFixed(3));
      const fmtSigned = (x) => (x == null || !isFinite(x) ? '—' : (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(3));
      function fmtBytes(b) {
        if (b == null || !isFinite(b)) return '—';
        const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
        let i = 0;
        while (b >= 1024 && i < units.length - 1) { b /= 1024; i += 1; }
        return (i === 0 ? b.toFixed(0) : b.toFixed(b < 10 ? 2 : b < 100 ? 1 : 0)) + ' ' + units[i];
      }
      function fmtDuration(s) {
        if (s == null || !isFinite(s)) return '—';
        if (s < 60) return s.toFixed(1) + ' s';
        const m = Math.floor(s / 60);
        return m + ' min ' + Math.round(s - 60 * m) + ' s';
      }
      function fmtTime(iso) {
        if (!iso) return '—';
        const d = new Date(iso);
        return isNaN(d) ? iso : d.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
      }
      function bandOf(p) {
        if (p >= THRESHOLDS[2]) return 'very_high';
        if (p >= THRESHOLDS[1]) return 'high';
        if (p >= THRESHOLDS[0]) return 'medium';
        return 'low';
      }

      // MARK: DOM helpers

      /** An element with attributes (`text` sets its text) and children (strings become text). */
      function el(tag, attrs, ...children) {
        const e = document.createElement(tag);
        for (const [key, value] of Object.entries(attrs || {})) {
          if (value == null || value === false) continue;
          if (key === 'text') e.textContent = String(value);
          else if (key === 'class') e.className = value;
          else if (key === 'style') e.style.cssText = value;  // through the CSSOM: allowed by a strict CSP
          else e.setAttribute(key, String(value));
        }
        for (const child of children.flat()) {
          if (child == null || child === false) continue;
          e.append(child instanceof Node ? child : String(child));
        }
        return e;
      }
      const panel = (id) => document.getElementById(id);
      /** Replaces panel `id`'s body (and its header's note, when given). */
      function fill(id, children, meta) {
        const p = panel(id);
        p.querySelector('.body').replaceChildren(...[children].flat().filter((c) => c != null));
        if (meta !== undefined) p.querySelector('header .meta').textContent = meta;
      }
      const muted = (text) => el('p', { class: 'muted', text });
      const errorBox = (error) => el('p', { class: 'error', role: 'alert', 'data-error': 'true', text: error.message || String(error) });
      const badge = (text, kind) => el('span', { class: 'badge ' + (kind || ''), text });
      function stat(label, value, attrs) {
        return el('div', Object.assign({ class: 'stat' }, attrs || {}),
          el('div', { class: 'stat-value', text: value }), el('div', { class: 'stat-label', text: label }));
      }
      function table(headers, rows, attrs) {
        return el('table', Object.assign({ class: 'table' }, attrs || {}),
          el('thead', null, el('tr', null, headers.map((h) => el('th', typeof h === 'string' ? { text: h } : h)))),
          el('tbody', null, rows));
      }
      /** A horizontal bar, `fraction` of its track filled. */
      function meter(fraction, kind) {
        const f = Math.max(0, Math.min(1, fraction || 0));
        return el('span', { class: 'meter ' + (kind || '') }, el('span', { class: 'meter-fill', style: 'width: ' + (100 * f).toFixed(2) + '%' }));
      }

      // MARK: The API

      class ApiError extends Error {
        constructor(status, detail, type) {
          super(detail);
          this.status = status;
          this.type = type;
        }
      }

      /** `path`'s JSON answer; a problem document (`application/problem+json`) throws its `detail`. */
      async function api(path, options) {
        const init = { method: 'GET', credentials: 'same-origin', headers: { Accept: 'application/json' } };
        if (options && options.method) init.method = options.method;
        if (options && options.json !== undefined) {
          init.method = options.method || 'POST';
          init.headers['Content-Type'] = 'application/json';
          init.body = JSON.stringify(options.json);
        }
        let response;
        try {
          response = await fetch(path, init);
        } catch (e) {
          throw new ApiError(0, 'The coordinator cannot be reached (' + e.message + ').');
        }
        if (response.status === 204) return null;
        const type = response.headers.get('Content-Type') || '';
        const body = type.includes('json') ? await response.json().catch(() => null) : null;
        if (!response.ok) {
          const detail = body && body.detail ? body.detail : 'HTTP ' + response.status + ' ' + response.statusText;
          throw new ApiError(response.status, detail, body && body.type);
        }
        return body;
      }
      const settle = (promise) => promise.then((value) => ({ value }), (error) => ({ error }));

      // MARK: Signing in and out

      function show(view) {
        document.getElementById('booting').hidden = true;
        document.getElementById('signin').hidden = view !== 'signin';
        document.getElementById('dashboard').hidden = view !== 'dashboard';
        document.getElementById('session').hidden = view !== 'dashboard';
      }

      function showSignIn(message) {
        stopLive();
        show('signin');
        const error = document.getElementById('signin-error');
        error.hidden = !message;
        error.textContent = message || '';
        document.getElementById('signin-token').focus();
      }

      async function signIn(event) {
        event.preventDefault();
        const input = document.getElementById('signin-token');
        const button = document.getElementById('signin-submit');
        const error = document.getElementById('signin-error');
        const token = input.value.trim();
        if (!token) return;
        button.disabled = true;
        error.hidden = true;
        try {
          const who = await api('/v1/session', { json: { token } });
          sessionStorage.setItem('churngrid.identity', who.name + ' · ' + who.role);
          input.value = '';
          await boot();
        } catch (e) {
          error.textContent = e.message;
          error.hidden = false;
        } finally {
          button.disabled = false;
        }
      }

      async function signOut() {
        try { await api('/v1/session', { method: 'DELETE' }); } catch (e) { /* signed out here anyway */ }
        sessionStorage.removeItem('churngrid.identity');
        resetPanels();
        showSignIn('Signed out.');
      }

      /** Stops the stream and the timers; a later answer of this session is ignored. */
      function stopLive() {
        state.generation += 1;
        if (state.stream) state.stream.close();
        state.stream = null;
        clearInterval(state.refreshTimer);
        clearTimeout(state.retryTimer);
        state.refreshTimer = state.retryTimer = null;
        setLive('offline');
      }

      function resetPanels() {
        Object.assign(state, { cluster: null, job: null, summaryJob: null, checkedJob: null, ready: false });
        document.body.dataset.ready = 'false';
        delete document.body.dataset.readyMs;
        for (const id of ['cluster', 'job', 'histogram', 'bands', 'top-risk']) fill(id, muted('Loading…'), '');
        document.getElementById('lookup-result').replaceChildren(muted('Scores one subscriber now, on the worker that holds its shard, with the reasons behind it.'));
      }

      function markReady() {
        if (state.ready) return;
        state.ready = true;
        document.body.dataset.readyMs = String(Math.round(performance.now()));
        document.body.dataset.ready = 'true';
      }

      // MARK: Loading

      /** Reads everything once (the cluster and the jobs at the same time, then the summary). */
      async function boot() {
        stopLive();
        const generation = state.generation;
        const clusterAnswer = settle(api('/v1/cluster'));
        const jobsAnswer = settle(api('/v1/jobs?limit=1'));
        const cluster = await clusterAnswer;
        if (generation !== state.generation) return;
        if (cluster.error && cluster.error.status === 401) {
          showSignIn();
          return;
        }
        show('dashboard');
        document.getElementById('whoami').textContent = sessionStorage.getItem('churngrid.identity') || 'signed in';
        if (cluster.error) fill('cluster', errorBox(cluster.error), '');
        else {
          state.cluster = cluster.value;
          renderCluster();
          if (!state.job && cluster.value.job) renderJob(cluster.value.job);
        }
        startStream(generation);
        await showJobs(await jobsAnswer, generation);
        if (generation !== state.generation) return;
        markReady();
        state.refreshTimer = setInterval(() => refreshCluster(generation), CLUSTER_REFRESH_MS);
      }

      /** The last job (when the stream has not told it yet) and the published job's summary. */
      async function showJobs(answer, generation) {
        if (answer.error) {
          if (!state.job) fill('job', errorBox(answer.error));
          for (const id of ['histogram', 'bands', 'top-risk']) fill(id, errorBox(answer.error), '');
          return;
        }
        const latest = answer.value.jobs[0];
        if (!state.job) renderJob(latest ? fromRecord(latest) : null);
        const published = answer.value.published_job_id;
        if (published == null) {
          for (const id of ['histogram', 'bands', 'top-risk']) fill(id, muted('No job has been published yet: run one with churngrid rescore.'), '');
          return;
        }
        if (published === state.summaryJob) return;
        const summary = await settle(api('/v1/jobs/' + published + '/summary'));
        if (generation !== state.generation) return;
        if (summary.error) {
          for (const id of ['histogram', 'bands', 'top-risk']) fill(id, errorBox(summary.error), '');
          return;
        }
        state.summaryJob = published;
        renderSummary(summary.value);
      }

      async function refreshCluster(generation) {
        const answer = await settle(api('/v1/cluster'));
        if (generation !== state.generation) return;
        if (answer.error && answer.error.status === 401) return showSignIn('The session has ended: sign in again.');
        if (answer.error) return fill('cluster', errorBox(answer.error));
        state.cluster = answer.value;
        renderCluster();
      }

      // MARK: The live stream

      function setLive(kind) {
        const live = document.getElementById('live');
        live.dataset.state = kind;
        live.querySelector('.label').textContent = { live: 'live', connecting: 'connecting…', offline: 'offline' }[kind];
      }

      function startStream(generation) {
        const stream = new EventSource('/v1/stream');
        state.stream = stream;
        setLive('connecting');
        stream.addEventListener('open', () => setLive('live'));
        stream.addEventListener('job', (event) => {
          if (generation === state.generation) onJob(JSON.parse(event.data), generation);
        });
        stream.addEventListener('cluster', (event) => {
          if (generation === state.generation) onOverview(JSON.parse(event.data), generation);
        });
        stream.addEventListener('error', () => {
          if (generation !== state.generation) return;
          if (stream.readyState !== EventSource.CLOSED) return setLive('connecting');  // the browser retries
          // Refused (the session ended, or this coordinator stands by): look again in a while.
          setLive('offline');
          state.stream = null;
          state.retryTimer = setTimeout(async () => {
            const answer = await settle(api('/v1/cluster'));
            if (generation !== state.generation) return;
            if (answer.error && answer.error.status === 401) return showSignIn('The session has ended: sign in again.');
            startStream(generation);
          }, 5000);
        });
      }

      function onJob(job, generation) {
        const changed = JSON.stringify(job) !== JSON.stringify(state.job);
        state.job = job;
        if (changed) renderJob(job);  // the stream repeats an unchanged job every 5 s
        // A job that has just completed is the published one: its summary replaces the shown one.
        if (job && job.state === 'completed' && job.id !== state.summaryJob && job.id !== state.checkedJob && state.ready) {
          state.checkedJob = job.id;
          settle(api('/v1/jobs?limit=1')).then((answer) => {
            if (generation === state.generation) showJobs(answer, generation);
          });
        }
      }

      /** The nodes' shards and states every 2 s (memory and subscribers come with the full reads). */
      function onOverview(view, generation) {
        const c = state.cluster;
        if (!c) return;
        const known = new Map(c.nodes.map((n) => [n.name, n]));
        if (view.nodes.length !== c.nodes.length || view.nodes.some((n) => !known.has(n.name))) {
          refreshCluster(generation);  // a node joined or left: read it all again
          return;
        }
        const before = JSON.stringify(c);
        Object.assign(c, { term: view.term, epoch: view.epoch, shard_count: view.shard_count, ready_shards: view.ready_shards, moving_shards: view.moving_shards });
        for (const n of view.nodes) {
          Object.assign(known.get(n.name), { state: n.state, shards: n.shards, ready_shards: n.ready_shards, standby_shards: n.standby_shards });
        }
        if (JSON.stringify(c) !== before) renderCluster();  // drawn again only when something moved
      }

      // MARK: Panels

      function renderCluster() {
        const c = state.cluster;
        const subscribers = c.nodes.reduce((sum, n) => sum + (n.subscribers || 0), 0);
        const allReady = c.ready_shards === c.shard_count && c.unassigned_shards === 0;
        const stats = el('div', { class: 'stats' },
          stat('Shards ready', fmtInt(c.ready_shards) + ' / ' + fmtInt(c.shard_count), { class: 'stat ' + (allReady ? 'good' : 'warn') }),
          stat('Moving shards', fmtInt(c.moving_shards), { class: 'stat ' + (c.moving_shards > 0 ? 'warn' : '') }),
          stat('Unassigned', fmtInt(c.unassigned_shards), { class: 'stat ' + (c.unassigned_shards > 0 ? 'bad' : '') }),
          stat('Subscribers held', fmtInt(subscribers)),
          stat('Shard-map epoch', fmtInt(c.epoch), { id: 'cluster-epoch' }),
          stat('Coordinator term', fmtInt(c.term), { id: 'cluster-term' }));
        const rows = c.nodes.map((n) => {
          const memory = n.max_memory_bytes > 0 ? n.resident_bytes / n.max_memory_bytes : 0;
          return el('tr', { 'data-node': n.name, 'data-shards': n.shards, 'data-state': n.state },
            el('td', { class: 'node-name' }, el('span', { class: 'node-dot ' + n.state }), n.name, el('div', { class: 'sub', text: n.endpoint })),
            el('td', null, badge(n.state, n.state === 'active' ? 'ok' : 'warn')),
            el('td', { class: 'num shards', text: fmtInt(n.shards) }),
            el('td', { class: 'num ready', text: fmtInt(n.ready_shards) }),
            el('td', { class: 'num standby', text: fmtInt(n.standby_shards) }),
            el('td', { class: 'num subscribers', text: fmtInt(n.subscribers) }),
            el('td', { class: 'memory' },
              el('div', { class: 'memory-text', text: fmtBytes(n.resident_bytes) + (n.max_memory_bytes > 0 ? ' of ' + fmtBytes(n.max_memory_bytes) : '') }),
              n.max_memory_bytes > 0 ? meter(memory, memory > 0.85 ? 'bad' : memory > 0.7 ? 'warn' : '') : null,
              el('div', { class: 'sub', text: 'profiles ' + fmtBytes(n.profile_bytes) + ' · standby ' + fmtBytes(n.standby_bytes) })),
            el('td', { class: 'num', text: fmtInt(n.cores) }));
        });
        const nodes = rows.length
          ? table(['Node', 'State', { class: 'num', text: 'Shards' }, { class: 'num', text: 'Ready' }, { class: 'num', text: 'Standby' },
            { class: 'num', text: 'Subscribers' }, 'Memory (resident)', { class: 'num', text: 'Cores' }], rows, { id: 'cluster-nodes' })
          : muted('No worker has joined yet.');
        const silent = (c.silent_nodes || []).length
          ? el('p', { class: 'error', text: 'Silent (missed heartbeats): ' + c.silent_nodes.join(', ') }) : null;
        // Placing shards fails and is tried again: nothing moves, so the numbers alone look settled.
        const p = c.placement;
        const placement = p
          ? el('p', { class: 'error', id: 'cluster-placement', text: 'Placing shards failed ' + fmtInt(p.failures) + (p.failures === 1 ? ' time' : ' times')
              + ' (last: ' + p.last_error + '); ' + (p.retry_in_seconds == null ? 'trying again now' : 'next try in ' + Math.round(p.retry_in_seconds) + ' s') })
          : null;
        // PostgreSQL away: queries go on, but no job, registry change or shard move until it answers.
        const d = c.database;
        const database = d && !d.reachable
          ? el('p', { class: 'error', id: 'cluster-database', text: 'PostgreSQL unreachable for ' + Math.round(d.unreachable_for_seconds || 0) + ' s, '
              + fmtInt(d.failures) + (d.failures === 1 ? ' failed call' : ' failed calls') + (d.last_error ? ' (last: ' + d.last_error + ')' : '')
              + (d.lease_valid ? '' : '; the coordinator lease has run out: no jobs or shard moves until it answers again') })
          : null;
        fill('cluster', [stats, nodes, silent, placement, database], c.coordinator + ' · model ' + c.model_version);
      }

      /** A job as `GET /v1/jobs` records it, shaped like the stream's. */
      function fromRecord(r) {
        return Object.assign({}, r, { subscribers_per_second: r.seconds > 0 ? r.subscribers / r.seconds : 0 });
      }

      function renderJob(job) {
        const p = panel('job');
        if (!job) {
          delete p.dataset.state;
          fill('job', muted('No job has run yet.'), '');
          return;
        }
        p.dataset.state = job.state;
        p.dataset.jobId = job.id;
        const fraction = job.shard_count > 0 ? job.shards_done / job.shard_count : 0;
        const kind = { running: 'info', completed: 'ok', failed: 'bad' }[job.state] || '';
        const head = el('div', { class: 'job-head' },
          el('span', { class: 'job-id', text: 'Job #' + job.id }),
          el('span', { id: 'job-state' }, badge(job.state, kind)),
          job.published ? badge('published', 'ok') : null);
        const bar = el('div', { class: 'progress ' + job.state, id: 'job-progress', role: 'progressbar',
          'aria-valuemin': 0, 'aria-valuemax': job.shard_count, 'aria-valuenow': job.shards_done },
          el('div', { class: 'progress-fill', style: 'width: ' + (100 * fraction).toFixed(2) + '%' }));
        const progress = el('div', { class: 'progress-text' },
          el('span', { id: 'job-shards', text: fmtInt(job.shards_done) + ' / ' + fmtInt(job.shard_count) + ' shards' }),
          el('span', { text: fmtPct(fraction) }));
        const stats = el('div', { class: 'stats compact' },
          stat('Subscribers scored', fmtInt(job.subscribers)),
          stat('Subscribers / s', fmtInt(job.subscribers_per_second), { id: 'job-rate' }),
          stat(job.state === 'running' ? 'Elapsed' : 'Took', fmtDuration(job.seconds)),
          job.retries != null ? stat('Retries · stragglers', fmtInt(job.retries) + ' · ' + fmtInt(job.stragglers)) : null);
        const error = job.error ? el('p', { class: 'error', text: job.error }) : null;
        fill('job', [head, bar, progress, stats, error], 'model ' + job.model_version);
      }

      function renderSummary(s) {
        renderHistogram(s);
        renderBands(s);
        renderTopRisk(s);
      }

      function renderHistogram(s) {
        const counts = s.histogram || [];
        const total = counts.reduce((a, b) => a + b, 0);
        const peak = Math.max(1, ...counts);
        const deciles = s.deciles || [];
        const stats = el('div', { class: 'stats compact' },
          stat('Subscribers scored', fmtInt(s.subscribers)),
          stat('Mean probability', fmtPct(s.mean_probability, 2)),
          stat('Median', deciles.length === 9 ? fmtPct(deciles[4], 2) : '—'),
          stat('90th percentile', deciles.length === 9 ? fmtPct(deciles[8], 2) : '—'));
        const bins = counts.map((count, i) => {
          const low = i / counts.length, high = (i + 1) / counts.length;
          const share = total > 0 ? count / total : 0;
          // Square-root heights: the riskiest bins (a few percent of the base) stay visible next to the first.
          const height = count > 0 ? Math.max(1.5, 100 * Math.sqrt(count / peak)) : 0;
          return el('div', { class: 'bin band-' + bandOf(low + 1e-9), 'data-count': count,
            title: low.toFixed(2) + '–' + high.toFixed(2) + ': ' + fmtInt(count) + ' subscribers (' + fmtPct(share) + ')' },
            el('span', { class: 'bin-label', text: count === 0 ? '' : share < 0.0001 ? '<0.01%' : fmtPct(share, share < 0.01 ? 2 : 1) }),
            el('div', { class: 'bin-bar', style: 'height: ' + height.toFixed(2) + '%' }));
        });
        const axis = el('div', { class: 'hist-axis' }, ['0', '0.25', '0.5', '0.75', '1'].map((t) => el('span', { text: t })));
        const legend = el('div', { class: 'legend' }, BANDS.map((b) => el('span', { class: 'legend-item' },
          el('span', { class: 'swatch band-' + b }), BAND_LABELS[b])),
          el('span', { class: 'legend-note', text: 'churn probability · bar height ∝ √count' }));
        panel('histogram').dataset.jobId = s.job_id;
        panel('histogram').dataset.bins = counts.length;
        fill('histogram', [stats, el('div', { class: 'hist', id: 'histogram-bins' }, bins), axis, legend],
          'job #' + s.job_id + ' · published ' + fmtTime(s.finished_at));
      }

      function renderBands(s) {
        const total = s.subscribers || 0;
        const perBand = s.per_band || {};
        const bandRows = BANDS.filter((b) => b in perBand).concat(Object.keys(perBand).filter((b) => !BANDS.includes(b))).map((b) =>
          el('tr', { 'data-band': b, 'data-count': perBand[b] },
            el('td', null, el('span', { class: 'swatch band-' + b }), BAND_LABELS[b] || b),
            el('td', { class: 'num', text: fmtInt(perBand[b]) }),
            el('td', { class: 'num', text: fmtPct(total ? perBand[b] / total : 0) }),
            el('td', { class: 'bar-cell' }, meter(total ? perBand[b] / total : 0, 'band-' + b))));
        const perRegion = s.per_region || {};
        const perRegionBand = s.per_region_band || {};
        const regions = Object.keys(perRegion).sort((a, b) => (a === 'unknown') - (b === 'unknown') || Number(a) - Number(b));
        const peak = Math.max(1, ...regions.map((r) => perRegion[r]));
        // Per region: subscribers, then each band's count, and the share at high risk or above.
        const regionRows = regions.map((r) => {
          const byBand = perRegionBand[r] || {};
          const atRisk = (byBand.high || 0) + (byBand.very_high || 0);
          const attributes = { 'data-region': r, 'data-count': perRegion[r] };
          for (const b of BANDS) attributes['data-band-' + b.replace('_', '-')] = byBand[b] || 0;
          return el('tr', attributes,
            el('td', { text: r === 'unknown' ? 'Unknown' : 'Region ' + r }),
            el('td', { class: 'num', text: fmtInt(perRegion[r]) }),
            ...BANDS.map((b) => el('td', { class: 'num band-count', text: fmtInt(byBand[b] || 0) })),
            el('td', { class: 'num', text: fmtPct(perRegion[r] ? atRisk / perRegion[r] : 0) }),
            el('td', { class: 'bar-cell' }, meter(perRegion[r] / peak)));
        });
        fill('bands', [
          table(['Risk band', { class: 'num', text: 'Subscribers' }, { class: 'num', text: 'Share' }, ''], bandRows, { id: 'bands-table' }),
          table(['Region', { class: 'num', text: 'Subscribers' }, ...BANDS.map((b) => ({ class: 'num', text: BAND_LABELS[b] || b })),
                 { class: 'num', text: 'High or above' }, ''], regionRows, { id: 'regions-table', class: 'table regions' }),
        ], 'job #' + s.job_id);
      }

      function reasonChips(reasons) {
        return el('div', { class: 'chips' }, (reasons || []).map((r) =>
          el('span', { class: 'chip ' + (r.contribution >= 0 ? 'up' : 'down'), 'data-feature': r.feature, title: 'contribution ' + fmtSigned(r.contribution) },
            r.feature, el('span', { class: 'chip-value', text: fmtSigned(r.contribution) }))));
      }

      function renderTopRisk(s) {
        const top = s.top_risk || [];
        if (!top.length) return fill('top-risk', muted('The summary lists no subscribers.'), 'job #' + s.job_id);
        const rows = top.map((t, i) => {
          const id = el('a', { href: '#lookup', class: 'subscriber-link', text: String(t.subscriber_id), title: 'Score now' });
          id.addEventListener('click', (event) => {
            event.preventDefault();
            lookup(String(t.subscriber_id));
          });
          return el('tr', { 'data-subscriber-id': t.subscriber_id, 'data-probability': t.probability },
            el('td', { class: 'num rank', text: String(i + 1) }),
            el('td', { class: 'mono' }, id),
            el('td', { class: 'num prob' }, el('strong', { text: fmtPct(t.probability) }), meter(t.probability, 'band-' + t.risk_band)),
            el('td', null, badge(BAND_LABELS[t.risk_band] || t.risk_band, 'band-' + t.risk_band)),
            el('td', { text: t.region == null ? '—' : String(t.region) }),
            el('td', null, reasonChips(t.reasons)));
        });
        fill('top-risk', table([{ class: 'num', text: '#' }, 'Subscriber', { class: 'num', text: 'Churn probability' }, 'Band', 'Region', 'Main reasons'],
          rows, { id: 'top-risk-table' }), 'job #' + s.job_id + ' · top ' + top.length);
      }

      // MARK: Lookup

      async function lookup(text) {
        const input = document.getElementById('lookup-id');
        const result = document.getElementById('lookup-result');
        const id = String(text).trim();
        input.value = id;
        delete result.dataset.subscriberId;
        if (!/^[0-9]{1,18}$/.test(id)) {
          result.replaceChildren(errorBox(new Error('A subscriber id is a non-negative whole number.')));
          return;
        }
        result.dataset.loading = 'true';
        result.replaceChildren(muted('Scoring subscriber ' + id + '…'));
        const answer = await settle(api('/v1/subscribers/' + id + '/score'));
        if (input.value.trim() !== id) return;  // another lookup was asked for meanwhile
        delete result.dataset.loading;
        if (answer.error) {
          if (answer.error.status === 401) return showSignIn('The session has ended: sign in again.');
          result.dataset.subscriberId = id;
          result.replaceChildren(errorBox(answer.error));
          return;
        }
        const s = answer.value;
        const peak = Math.max(1e-9, ...s.reasons.map((r) => Math.abs(r.contribution)));
        const reasons = s.reasons.length
          ? table(['Reason', { class: 'num', text: 'Contribution' }, ''], s.reasons.map((r) =>
            el('tr', { 'data-feature': r.feature, 'data-contribution': r.contribution },
              el('td', { class: 'mono', text: r.feature }),
              el('td', { class: 'num contribution', text: fmtSigned(r.contribution) }),
              el('td', { class: 'bar-cell' }, meter(Math.abs(r.contribution) / peak, r.contribution >= 0 ? 'bad' : 'good')))),
            { id: 'lookup-reasons' })
          : muted('No reasons: nothing pushes this score away from the base rate.');
        result.dataset.subscriberId = s.subscriber_id;
        result.dataset.probability = s.probability;
        result.replaceChildren(
          el('div', { class: 'lookup-head' },
            el('div', null,
              el('div', { class: 'lookup-prob', id: 'lookup-probability', text: fmtProb(s.probability) }),
              el('div', { class: 'stat-label', text: 'churn probability · ' + fmtPct(s.probability) })),
            badge(BAND_LABELS[s.risk_band] || s.risk_band, 'band-' + s.risk_band)),
          el('dl', { class: 'facts' },
            el('dt', { text: 'Subscriber' }), el('dd', { class: 'mono', text: String(s.subscriber_id) }),
            el('dt', { text: 'Node' }), el('dd', { id: 'lookup-node', text: s.node }),
            el('dt', { text: 'Shard' }), el('dd', { id: 'lookup-shard', text: fmtInt(s.shard) }),
            el('dt', { text: 'Model' }), el('dd', { class: 'mono', text: s.model_version }),
            el('dt', { text: 'Epoch · explain' }), el('dd', { text: fmtInt(s.epoch) + ' · ' + s.explain })),
          reasons);
      }

      // MARK: Start

      document.getElementById('signin-form').addEventListener('submit', signIn);
      document.getElementById('signout').addEventListener('click', signOut);
      document.getElementById('lookup-form').addEventListener('submit', (event) => {
        event.preventDefault();
        lookup(document.getElementById('lookup-id').value);
      });
      boot();
    })();
    """#

    static let style = #"""
    :root {
      --bg: #f3f5f9;
      --card: #ffffff;
      --ink: #1b2333;
      --ink-2: #5b6579;
      --line: #e3e7ef;
      --accent: #2f5bea;
      --accent-soft: #e8eefe;
      --good: #1f9d62;
      --good-soft: #e4f6ed;
      --warn: #c98a06;
      --warn-soft: #fdf3dc;
      --bad: #d6453d;
      --bad-soft: #fde9e7;
      --low: #7fb7a0;
      --medium: #f1c453;
      --high: #f08a4b;
      --very-high: #d6453d;
      --radius: 10px;
      --shadow: 0 1px 2px rgba(20, 30, 60, 0.06), 0 2px 8px rgba(20, 30, 60, 0.05);
      font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif;
      font-size: 14px;
      color: var(--ink);
      background: var(--bg);
    }
    * { box-sizing: border-box; }
    [hidden] { display: none !important; }
    body { margin: 0; min-height: 100vh; display: flex; flex-direction: column; }
    main { flex: 1; padding: 20px 24px; max-width: 1600px; width: 100%; margin: 0 auto; }
    a { color: var(--accent); }
    code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
    .muted { color: var(--ink-2); }
    .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }

    /* Top bar */
    .topbar { display: flex; align-items: center; justify-content: space-between; gap: 16px; padding: 12px 24px;
      background: #141b2d; color: #fff; }
    .brand { display: flex; align-items: baseline; gap: 10px; }
    .logo { width: 18px; height: 18px; align-self: center; border-radius: 4px;
      background: linear-gradient(135deg, #5b8cff 0 50%, #f08a4b 50% 100%); }
    .brand .name { font-weight: 700; font-size: 18px; letter-spacing: 0.2px; }
    .brand .tagline { color: #9aa6c2; font-size: 13px; }
    .session { display: flex; align-items: center; gap: 14px; font-size: 13px; }
    .whoami { color: #c8d0e4; }
    .live { display: inline-flex; align-items: center; gap: 6px; color: #c8d0e4; }
    .live .dot { width: 8px; height: 8px; border-radius: 50%; background: #8891a5; }
    .live[data-state="live"] .dot { background: #3ad08a; box-shadow: 0 0 0 3px rgba(58, 208, 138, 0.25); }
    .live[data-state="connecting"] .dot { background: #f1c453; }
    .live[data-state="offline"] .dot { background: #e0615a; }

    /* Buttons and inputs */
    .button { font: inherit; font-weight: 600; border: 1px solid var(--accent); background: var(--accent); color: #fff;
      padding: 7px 14px; border-radius: 7px; cursor: pointer; }
    .button:hover { filter: brightness(1.07); }
    .button:disabled { opacity: 0.6; cursor: default; }
    .button.secondary { background: transparent; border-color: #3b4660; color: #e4e9f5; font-weight: 500; padding: 5px 12px; }
    input[type="text"], input[type="password"] { font: inherit; padding: 8px 10px; border: 1px solid #cdd3df; border-radius: 7px;
      background: #fff; color: var(--ink); min-width: 0; }
    input:focus { outline: 2px solid var(--accent-soft); border-color: var(--accent); }

    /* Sign-in */
    .booting { text-align: center; margin-top: 80px; }
    .signin { display: flex; justify-content: center; padding-top: 60px; }
    .signin-card { width: 440px; max-width: 100%; display: flex; flex-direction: column; gap: 10px; padding: 28px; }
    .signin-card h1 { margin: 0; font-size: 22px; }
    .signin-card p { margin: 0 0 6px; line-height: 1.45; }
    .signin-card label { font-weight: 600; font-size: 13px; }

    /* Cards */
    .grid { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 18px; align-items: stretch; }
    .span-2 { grid-column: span 2; }
    .card { background: var(--card); border: 1px solid var(--line); border-radius: var(--radius); box-shadow: var(--shadow); }
    .card > header { display: flex; align-items: baseline; justify-content: space-between; gap: 12px; padding: 14px 18px 0; }
    .card > header h2 { margin: 0; font-size: 15px; font-weight: 650; }
    .card > header .meta { color: var(--ink-2); font-size: 12px; text-align: right; }
    .card > .body { padding: 12px 18px 16px; }
    .placeholder .body p { margin: 4px 0; }
    .placeholder { background: repeating-linear-gradient(135deg, #fff 0 14px, #fafbfd 14px 28px); }

    /* Figures */
    .stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap: 10px; margin-bottom: 14px; }
    .stats.compact { grid-template-columns: repeat(auto-fit, minmax(110px, 1fr)); margin: 12px 0 4px; }
    #job .stats.compact { grid-template-columns: repeat(2, minmax(0, 1fr)); }
    .stat { background: #f7f9fc; border: 1px solid var(--line); border-radius: 8px; padding: 9px 11px; }
    .stat.good { background: var(--good-soft); border-color: #c4ead6; }
    .stat.warn { background: var(--warn-soft); border-color: #f3dfa9; }
    .stat.bad { background: var(--bad-soft); border-color: #f6c9c5; }
    .stat-value { font-size: 19px; font-weight: 650; font-variant-numeric: tabular-nums; white-space: nowrap; }
    .stat-label { font-size: 11.5px; color: var(--ink-2); margin-top: 2px; text-transform: uppercase; letter-spacing: 0.4px; }

    /* Tables */
    .table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
    .table + .table { margin-top: 14px; }
    .table th { text-align: left; font-size: 11.5px; font-weight: 600; text-transform: uppercase; letter-spacing: 0.4px;
      color: var(--ink-2); border-bottom: 1px solid var(--line); padding: 6px 8px; }
    .table td { border-bottom: 1px solid #eef1f6; padding: 7px 8px; vertical-align: middle; }
    .table tr:last-child td { border-bottom: none; }
    .table .num { text-align: right; white-space: nowrap; }
    .table .sub { font-size: 11.5px; color: var(--ink-2); margin-top: 2px; }
    .table .bar-cell { width: 28%; }
    /* Regions × bands: seven columns in a narrow card; compact, and scrolls sideways if it must. */
    #bands .body, #bands { overflow-x: auto; }
    .table.regions th, .table.regions td { padding: 6px 5px; font-size: 12.5px; }
    .table.regions td:first-child { white-space: nowrap; }
    .table.regions .bar-cell { width: 12%; }
    .regions td { padding-top: 4px; padding-bottom: 4px; }
    .node-name { font-weight: 600; }
    .node-name .sub { font-weight: 400; }
    .node-dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 7px; background: var(--good); }
    .node-dot.draining { background: var(--warn); }
    .memory { min-width: 170px; }
    .memory-text { font-size: 13px; margin-bottom: 3px; }
    .rank { color: var(--ink-2); width: 2em; }
    .prob strong { display: inline-block; min-width: 52px; }
    .prob .meter { width: 70px; margin-left: 8px; vertical-align: middle; }

    /* Badges, chips, meters */
    .badge { display: inline-block; font-size: 11.5px; font-weight: 600; padding: 2px 8px; border-radius: 999px;
      background: #eef1f6; color: var(--ink-2); white-space: nowrap; }
    .badge.ok { background: var(--good-soft); color: var(--good); }
    .badge.warn { background: var(--warn-soft); color: var(--warn); }
    .badge.bad { background: var(--bad-soft); color: var(--bad); }
    .badge.info { background: var(--accent-soft); color: var(--accent); }
    .badge.muted-badge { font-weight: 500; }
    .badge.band-low { background: #e3f2ec; color: #2f7a5c; }
    .badge.band-medium { background: #fdf3d6; color: #94700e; }
    .badge.band-high { background: #fde8da; color: #b35a1f; }
    .badge.band-very_high { background: var(--bad-soft); color: var(--bad); }
    .chips { display: flex; flex-wrap: wrap; gap: 4px; }
    .chip { display: inline-flex; gap: 5px; align-items: baseline; font-size: 12px; padding: 2px 7px; border-radius: 6px;
      background: #f1f3f8; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
    .chip-value { font-weight: 600; }
    .chip.up .chip-value { color: var(--bad); }
    .chip.down .chip-value { color: var(--good); }
    .meter { display: inline-block; width: 100%; height: 6px; border-radius: 3px; background: #edf0f5; overflow: hidden; }
    .meter-fill { display: block; height: 100%; background: var(--accent); border-radius: 3px; }
    .meter.warn .meter-fill { background: var(--warn); }
    .meter.bad .meter-fill, .meter.band-very_high .meter-fill { background: var(--very-high); }
    .meter.good .meter-fill { background: var(--good); }
    .meter.band-low .meter-fill { background: var(--low); }
    .meter.band-medium .meter-fill { background: var(--medium); }
    .meter.band-high .meter-fill { background: var(--high); }
    .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 7px; vertical-align: -1px; }
    .swatch.band-low, .bin.band-low .bin-bar { background: var(--low); }
    .swatch.band-medium, .bin.band-medium .bin-bar { background: var(--medium); }
    .swatch.band-high, .bin.band-high .bin-bar { background: var(--high); }
    .swatch.band-very_high, .bin.band-very_high .bin-bar { background: var(--very-high); }

    /* Job */
    .job-head { display: flex; align-items: center; gap: 8px; margin-bottom: 12px; }
    .job-id { font-size: 17px; font-weight: 650; margin-right: 2px; }
    .progress { height: 12px; background: #edf0f5; border-radius: 6px; overflow: hidden; }
    .progress-fill { height: 100%; background: var(--accent); border-radius: 6px; transition: width 0.4s ease; }
    .progress.completed .progress-fill { background: var(--good); }
    .progress.failed .progress-fill { background: var(--bad); }
    .progress.running .progress-fill {
      background-image: linear-gradient(45deg, rgba(255, 255, 255, 0.22) 25%, transparent 25% 50%, rgba(255, 255, 255, 0.22) 50% 75%, transparent 75%);
      background-size: 18px 18px; animation: stripes 1s linear infinite; }
    @keyframes stripes { to { background-position: 18px 0; } }
    .progress-text { display: flex; justify-content: space-between; font-size: 12.5px; color: var(--ink-2); margin-top: 5px;
      font-variant-numeric: tabular-nums; }

    /* Histogram */
    #histogram { display: flex; flex-direction: column; }
    #histogram > .body { flex: 1; display: flex; flex-direction: column; }
    .hist { flex: 1; display: flex; align-items: stretch; gap: 4px; min-height: 200px; padding-top: 4px; border-bottom: 1px solid #cfd5e1; }
    .bin { flex: 1; display: flex; flex-direction: column; justify-content: flex-end; align-items: center; min-width: 0; }
    .bin-bar { width: 100%; border-radius: 3px 3px 0 0; min-height: 0; }
    .bin:hover .bin-bar { filter: brightness(0.92); }
    .bin-label { font-size: 10px; color: var(--ink-2); margin-bottom: 3px; white-space: nowrap; font-variant-numeric: tabular-nums; }
    .hist-axis { display: flex; justify-content: space-between; font-size: 11px; color: var(--ink-2); margin-top: 4px; }
    .legend { display: flex; flex-wrap: wrap; align-items: center; gap: 14px; font-size: 12px; margin-top: 10px; color: var(--ink); }
    .legend-note { margin-left: auto; color: var(--ink-2); }

    /* Lookup */
    .lookup-form { display: flex; gap: 8px; }
    .lookup-form input { flex: 1; }
    .lookup-result { margin-top: 14px; }
    .lookup-head { display: flex; align-items: center; justify-content: space-between; gap: 12px; margin-bottom: 10px; }
    .lookup-prob { font-size: 30px; font-weight: 700; font-variant-numeric: tabular-nums; line-height: 1.1; }
    .facts { display: grid; grid-template-columns: auto 1fr; gap: 4px 14px; margin: 0 0 12px; font-size: 13px; }
    .facts dt { color: var(--ink-2); }
    .facts dd { margin: 0; }
    .error { color: var(--bad); background: var(--bad-soft); border: 1px solid #f6c9c5; border-radius: 7px; padding: 8px 10px; margin: 8px 0 0; }
    .notice { background: var(--warn-soft); padding: 10px; border-radius: 7px; }
    .footer { color: var(--ink-2); font-size: 12px; text-align: center; padding: 10px 0 18px; }

    @media (max-width: 1150px) {
      .grid { grid-template-columns: minmax(0, 1fr); }
      .span-2 { grid-column: auto; }
    }
    """#
}
