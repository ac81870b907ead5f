#!/usr/bin/env python3
"""Real-time events against their references, in the same run on the same machine (issue 13):

  * maximum sustained rate: `churngrid events replay` as fast as the cluster takes them (every
    event logged durably in PostgreSQL, applied, rescored, triggers evaluated, acknowledged);
    reference A: PostgreSQL alone inserting the same events with INSERT … ON CONFLICT DO NOTHING
    into a table shaped like `subscriber_events` (same columns, primary key, daily partitions and
    index), in groups of 8,192 rows (the worker's group) from 2 concurrent sessions;
  * the event state's bytes per subscriber (`churngrid status`) after that run;
  * open loop at 50% and 25% of the maximum: acknowledgement and event → trigger latency from
    each event's scheduled time; reference B, the floor of an acknowledgement: a raw libzmq
    round trip (`churngrid bench rpc`, its DEALER/ROUTER echo) on the same machine;
  * live queries (`churngrid bench http`, GET score at 1,000/s, open loop) while the 50% stream
    runs, against the same queries with no events running.

A coordinator (--http, --triggers Deploy/triggers.json) and 2 workers (1 scoring thread each,
each publishing its triggers) on 127.0.0.1; PostgreSQL private, fsync off (Deploy/local/pg.sh).
Everything shares the machine's cores: PostgreSQL, workers, coordinator and load generators alike.
Each replay sends a fresh stream (`generate events` with its own --start: same subscribers, same
event ids, other times, so nothing is a duplicate of an earlier run's events).

Usage: python3 Benchmarks/events/bench.py [--subscribers 10000000] [--events 3000000]
       [--duration 60] [--reuse-base]      (after `swift build -c release`)
Results: .churngrid/bench/events.json
"""
import argparse, csv, json, os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster"))
from local import stop_cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")
TRIGGERS = os.path.join(ROOT, "Deploy/triggers.json")
OUTDIR = os.path.join(ROOT, ".churngrid/bench")
GROUP = 8192  # events per PostgreSQL write of a worker (EventIngest's group)
# EventType.allCases order (docs/events.md); the reference only needs a smallint per type.
TYPES = ["call", "sms", "data_session", "topup", "balance", "bill", "payment_late", "support_call", "complaint",
         "ticket_opened", "ticket_closed", "dropped_call", "tariff_view", "port_out_inquiry", "roaming_day",
         "contract_renewed", "retention_offer_made", "network_outage"]


def sh(*args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(args[:3])} …\n{r.stderr.strip()[-2000:]}")
    return r.stdout


def psql(url, sql):
    return sh("psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql).strip()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Streams:
    """Event streams for the base (seed 1), each with its own start (strictly later than the last
    one's, an hour before now): the same ids at other times, so no line repeats an earlier stream's."""

    def __init__(self, n):
        self.n, self.last = n, 0

    def make(self, path, events):
        start = max(int(time.time()) - 3600, self.last + 1)
        self.last = start
        r = subprocess.run([BIN, "generate", "events", "--subscribers", str(self.n), "--events", str(events), "--seed", "1",
                            "--start", rfc3339(start), "--out", path], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"generate events failed ({r.returncode}):\n{r.stderr.strip()[-2000:]}")
        print(f"  {r.stderr.strip().splitlines()[-1]} (from {rfc3339(start)})", flush=True)
        return rfc3339(start)


def replay(endpoint, path, rate, log, extra=()):
    """`events replay --json` (with `extra` arguments): its last stdout line. Exit 4 (some events unsettled) is a result, not a failure."""
    with open(log, "a") as err:
        r = subprocess.run([BIN, "events", "replay", "--input", path, "--coordinator", endpoint, "--rate", str(rate), "--json", *extra],
                           stdout=subprocess.PIPE, stderr=err, text=True)
    lines = r.stdout.strip().splitlines()
    if r.returncode not in (0, 4) or not lines:
        raise SystemExit(f"events replay failed ({r.returncode}); see {log}")
    return json.loads(lines[-1])


def http_bench(base, token, n, duration, rate=1000):
    return subprocess.Popen([BIN, "bench", "http", "--url", base, "--rate", str(rate), "--duration", str(duration),
                             "--connections", "16", "--subscribers", str(n), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, CHURNGRID_TOKEN=token))


def http_result(p):
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"bench http failed ({p.returncode}):\n{err.strip()[-2000:]}")
    return json.loads(out)


def ratio(a, b):
    return a / b if b else float("nan")


def reference_postgres(url, stream, workdir):
    """Reference A: the stream's events inserted by PostgreSQL itself into a table shaped like
    subscriber_events, INSERT … SELECT … ON CONFLICT DO NOTHING in groups of 8,192 from 2 sessions."""
    staged = os.path.join(workdir, "events-staging.csv")
    rows = 0
    with open(stream) as f, open(staged, "w", newline="") as g:
        w = csv.writer(g)
        for i, line in enumerate(f, 1):
            try:
                e = json.loads(line)
                kind = TYPES.index(e["type"])
                value = float(e.get("value", 24.0 if e["type"] == "contract_renewed" else 1.0))
                w.writerow([i, e.get("source", "default"), e["event_id"], e["at"], int(e["subscriber_id"]), 0, i, kind, value])
                rows += 1
            except (ValueError, KeyError, TypeError):
                continue  # a line the cluster would reject as malformed: not a row
    psql(url, """
        DROP TABLE IF EXISTS bench_events, bench_events_staging;
        CREATE TABLE bench_events_staging (id bigint PRIMARY KEY, source text NOT NULL, event_id text NOT NULL, at timestamptz NOT NULL,
            subscriber_id bigint NOT NULL, shard integer NOT NULL, seq bigint NOT NULL, type smallint NOT NULL, value double precision NOT NULL);
        -- As subscriber_events (migration 8 in Sources/ProfileDatabase/ProfileSchema.swift).
        CREATE TABLE bench_events (
            source text NOT NULL, event_id text NOT NULL, at timestamptz NOT NULL, subscriber_id bigint NOT NULL,
            shard integer NOT NULL, seq bigint NOT NULL, type smallint NOT NULL, value double precision NOT NULL,
            received_ms bigint NOT NULL,
            PRIMARY KEY (source, event_id, at)
        ) PARTITION BY RANGE (at);
        CREATE INDEX bench_events_shard_seq ON bench_events (shard, seq);""")
    sh("psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", f"\\copy bench_events_staging FROM '{staged}' WITH (FORMAT csv)")
    os.remove(staged)
    psql(url, """
        DO $$ DECLARE d date; last date;
        BEGIN
            SELECT min((at AT TIME ZONE 'UTC')::date), max((at AT TIME ZONE 'UTC')::date) INTO d, last FROM bench_events_staging;
            WHILE d <= last LOOP
                EXECUTE format('CREATE TABLE bench_events_p%s PARTITION OF bench_events FOR VALUES FROM (%L) TO (%L)',
                               to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
                d := d + 1;
            END LOOP;
        END $$;""")
    psql(url, "VACUUM ANALYZE bench_events_staging")
    last_id = int(psql(url, "SELECT coalesce(max(id), 0) FROM bench_events_staging"))
    scripts = []
    for c in range(2):
        fd, path = tempfile.mkstemp(prefix=f"churngrid-bench-events-{c}-", suffix=".sql")
        with os.fdopen(fd, "w") as s:
            s.write("\\set ON_ERROR_STOP 1\n")
            # Each session takes the subscribers of its parity (as the cluster gives each worker its
            # shards): a repeated event always meets its first copy in the same session (two sessions
            # inserting the same key in opposite orders would deadlock), ~8,192 rows a statement.
            for lo in range(1, last_id + 1, 2 * GROUP):
                s.write("INSERT INTO bench_events (source, event_id, at, subscriber_id, shard, seq, type, value, received_ms) "
                        "SELECT source, event_id, at, subscriber_id, shard, seq, type, value, "
                        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint FROM bench_events_staging "
                        f"WHERE id BETWEEN {lo} AND {lo + 2 * GROUP - 1} AND subscriber_id % 2 = {c} ON CONFLICT DO NOTHING;\n")
        scripts.append(path)
    try:
        started = time.perf_counter()
        sessions = [subprocess.Popen(["psql", url, "-qAtX", "-f", p], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for p in scripts]
        errors = [p.communicate()[1] for p in sessions]
        seconds = time.perf_counter() - started
    finally:
        for p in scripts:
            os.remove(p)
    for p, e in zip(sessions, errors):
        if p.returncode != 0:
            raise SystemExit(f"reference INSERT failed ({p.returncode}):\n{e.strip()[-2000:]}")
    inserted = int(psql(url, "SELECT count(*) FROM bench_events"))
    psql(url, "DROP TABLE bench_events, bench_events_staging")
    return {"rows": rows, "inserted": inserted, "conflicts": rows - inserted, "seconds": seconds, "rows_per_second": rows / seconds,
            "group": GROUP, "sessions": 2}


def main():
    ap = argparse.ArgumentParser(description="Real-time events against their references (issue 13).")
    ap.add_argument("--subscribers", type=int, default=10_000_000)
    ap.add_argument("--events", type=int, default=3_000_000, help="events of the maximum-rate stream")
    ap.add_argument("--duration", type=int, default=60, help="seconds of each open-loop run (and of the query runs)")
    ap.add_argument("--reuse-base", action="store_true", help="keep the base in PostgreSQL when it has --subscribers profiles")
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} is missing: build it first with `swift build -c release`")
    for tool in ("psql",):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)):
            raise SystemExit(f"{tool} is not on PATH (PostgreSQL client: apt-get install postgresql-client)")
    os.chdir(ROOT)
    pgdir = os.path.join(ROOT, ".churngrid/pg-bench")
    url = sh("bash", "Deploy/local/pg.sh", "start", pgdir).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url  # the nodes take it from the environment, never argv
    n, d = a.subscribers, a.duration
    os.makedirs(OUTDIR, exist_ok=True)
    logs = os.path.join(OUTDIR, "events-logs")
    os.makedirs(logs, exist_ok=True)
    replay_log = os.path.join(logs, "replay.log")
    open(replay_log, "w").close()
    procs = []
    out = {"subscribers": n, "events": a.events, "duration": d, "workers": 2, "threads_per_worker": 1, "cores": os.cpu_count(),
           "postgres": "private, fsync off, synchronous_commit off, full_page_writes off (Deploy/local/pg.sh), same machine"}
    streams = Streams(n)
    try:
        have = None
        if a.reuse_base:
            try:
                have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
            except SystemExit:
                pass
        if have != n:
            print(f"generating {n:,} subscribers …", flush=True)
            sh(BIN, "generate", "--subscribers", str(n), "--postgres", url)

        # The maximum-rate stream, and reference A on its events (PostgreSQL alone on the machine).
        stream = os.path.join(OUTDIR, "events.ndjson")
        print(f"generating {a.events:,} events …", flush=True)
        out["stream_start"] = streams.make(stream, a.events)
        print("reference A: PostgreSQL INSERT … ON CONFLICT DO NOTHING, 8,192 a statement, 2 sessions …", flush=True)
        ref = reference_postgres(url, stream, OUTDIR)
        out["reference_postgres_insert"] = ref
        print(f"  {ref['rows']:,} rows ({ref['conflicts']:,} conflicts) in {ref['seconds']:.1f} s: {ref['rows_per_second']:,.0f} rows/s", flush=True)

        # A clean event log, then the cluster.
        psql(url, "DO $$ BEGIN IF to_regclass('subscriber_events') IS NOT NULL THEN "
                  "TRUNCATE subscriber_events, retention_triggers, churngrid_event_owners; END IF; END $$")
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--model", MODEL, "--triggers", TRIGGERS,
                                  "--http", "127.0.0.1:0"],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs.append(("coordinator", coord))
        endpoint = base = None
        while endpoint is None or base is None:
            line = coord.stdout.readline()
            if not line:
                raise SystemExit(f"the coordinator exited; see {logs}/coordinator.log")
            if line.startswith("coordinator listening "):
                endpoint = line.split()[-1]
            if line.startswith("http listening "):
                base = line.split()[-1]
        for i in (1, 2):
            procs.append((f"worker-{i}", subprocess.Popen([BIN, "worker", "--coordinator", endpoint, "--name", f"worker-{i}", "--threads", "1",
                                                           "--triggers-publish", "tcp://127.0.0.1:*"],
                                                          stdout=open(f"{logs}/worker-{i}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)))
        started = time.time()
        while True:
            for name, p in procs:
                if p.poll() is not None:
                    raise SystemExit(f"{name} exited ({p.returncode}); see {logs}/{name}.log")
            st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
            if len(st["workers"]) == 2 and st["unassignedShards"] == 0 and st["movingShards"] == 0:
                break
            if time.time() - started > 600 + n / 10_000:
                raise SystemExit(f"the cluster is not ready after {time.time() - started:.0f} s; see {logs}")
            time.sleep(0.5)
        print(f"cluster ready in {time.time() - started:.1f} s", flush=True)
        token = sh(BIN, "tokens", "create", "--role", "reader", "--name", f"bench-events-{int(time.time())}",
                   "--coordinator", endpoint).strip().splitlines()[-1]
        time.sleep(2.5)  # the coordinator reads the tokens every 2 s

        # 1. Maximum sustained rate.
        print("replaying as fast as the cluster takes them …", flush=True)
        mx = replay(endpoint, stream, 0, replay_log)
        out["max_rate"] = mx
        st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
        out["status_after_max"] = {"events": st.get("events")}
        with_state = sum(w["stats"]["subscribersWithState"] for w in st.get("events", []))
        state_bytes = sum(w["stats"]["stateBytes"] for w in st.get("events", []))
        out["event_state"] = {"subscribers_with_state": with_state, "bytes": state_bytes,
                              "bytes_per_subscriber": ratio(state_bytes, with_state)}
        rate = mx["events_per_second"]
        print(f"  {mx['events']:,} events: {mx['accepted']:,} accepted, {mx['duplicates']:,} duplicates, {mx['rejected']:,} rejected "
              f"{mx['rejected_by_reason']}, {mx['unsettled']:,} unsettled, {mx['resent']:,} resent, {mx['triggers']:,} triggers, "
              f"{mx['seconds']:.1f} s", flush=True)
        print(f"  event state: {with_state:,} subscribers, {out['event_state']['bytes_per_subscriber']:,.0f} bytes each", flush=True)
        if not rate:
            raise SystemExit("the maximum-rate replay took no events")

        # 3 (idle reference). Queries with no events running.
        print(f"queries at 1,000/s for {d} s with no events running …", flush=True)
        idle = http_result(http_bench(base, token, n, d))
        out["queries_idle"] = idle

        # 2 and 3. Open loop at 50% (queries alongside) and 25% of the maximum.
        for share in (50, 25):
            r = rate * share / 100
            path = os.path.join(OUTDIR, f"events-{share}.ndjson")
            count = max(1, int(r * d))
            print(f"open loop at {share}% = {r:,.0f} events/s: {count:,} events …", flush=True)
            out[f"stream_start_{share}"] = streams.make(path, count)
            q = http_bench(base, token, n, d) if share == 50 else None
            res = replay(endpoint, path, round(r, 1), replay_log)
            out[f"open_loop_{share}"] = dict(res, target_rate=r)
            if q is not None:
                out["queries_during_50"] = http_result(q)
            os.remove(path)
    finally:
        stop_cluster(procs)

    # Reference B: raw libzmq round trip (cluster stopped).
    print("reference B: churngrid bench rpc …", flush=True)
    text = sh(BIN, "bench", "rpc", "--json")
    rpc = json.loads(text[text.index("{"):])
    out["reference_rpc"] = rpc

    # The figures beside their references.
    print("\n== events/s (maximum sustained) vs PostgreSQL INSERT … ON CONFLICT rows/s (reference A)")
    print(f"  ChurnGrid {rate:12,.0f} /s   PostgreSQL {ref['rows_per_second']:12,.0f} /s   ratio {ratio(rate, ref['rows_per_second']):.2f}×")
    out["ratio_events_per_second_to_postgres"] = ratio(rate, ref["rows_per_second"])
    print("== acknowledgement latency vs raw libzmq round trip (reference B, the floor)")
    print(f"  raw libzmq round trip: p50 {rpc['raw_p50_us']:.1f} µs, p99 {rpc['raw_p99_us']:.1f} µs, p99.9 {rpc['raw_p999_us']:.1f} µs "
          f"(distributed call: p50 {rpc['call_p50_us']:.1f} µs, p99 {rpc['call_p99_us']:.1f} µs)")
    for label, key in (("max rate", "max_rate"), ("open loop 50%", "open_loop_50"), ("open loop 25%", "open_loop_25")):
        x = out[key]
        ack, trg = x["ack_us"], x["trigger_us"]
        achieved = x["events_per_second"]
        target = f" (target {x['target_rate']:,.0f}/s)" if "target_rate" in x else ""
        print(f"  {label:14} {achieved:10,.0f} events/s{target}: ack p50 {ack['p50']:,} µs ({ratio(ack['p50'], rpc['raw_p50_us']):,.0f}× raw), "
              f"p99 {ack['p99']:,} µs ({ratio(ack['p99'], rpc['raw_p99_us']):,.0f}× raw), p99.9 {ack['p999']:,} µs, max {ack['max']:,} µs; "
              f"event → trigger p50 {trg['p50']:,} µs, p99 {trg['p99']:,} µs, p99.9 {trg['p999']:,} µs ({x['triggers']:,} triggers); "
              f"unsettled {x['unsettled']:,}")
        out[f"ratio_ack_p50_to_raw_{key}"] = ratio(ack["p50"], rpc["raw_p50_us"])
        out[f"ratio_ack_p99_to_raw_{key}"] = ratio(ack["p99"], rpc["raw_p99_us"])
    q, i = out["queries_during_50"], out["queries_idle"]
    print("== live queries (GET score, 1,000/s open loop) during the 50% stream vs with no events (idle reference)")
    for p in ("p50_us", "p99_us", "p999_us"):
        print(f"  {p[:-3]:5} during {q[p]:10,.0f} µs   idle {i[p]:10,.0f} µs   ratio {ratio(q[p], i[p]):.2f}×")
    print(f"  achieved {q['achieved_per_second']:,.0f}/s ({q['failed']} failed) vs {i['achieved_per_second']:,.0f}/s ({i['failed']} failed)")
    out["ratio_query_p99_during_to_idle"] = ratio(q["p99_us"], i["p99_us"])
    print(f"== event state: {out['event_state']['bytes_per_subscriber']:,.0f} bytes per subscriber with state "
          f"({with_state:,} subscribers; docs/events.md: 1132 with no rare events, 1260 with 8 entries)")
    with open(os.path.join(OUTDIR, "events.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nresults: {os.path.join(OUTDIR, 'events.json')}")


if __name__ == "__main__":
    main()
