#!/usr/bin/env python3
"""Checks the coordinator's dashboard in a real headless Chromium against the API's own answers.

    CHURNGRID_TOKEN=cgt_... python3 dashboard_check.py BASE_URL SCREENSHOT.png [--timeout SECONDS]

BASE_URL is the coordinator's HTTP address (http://127.0.0.1:PORT). The token (a reader's is
enough) is read from the environment variable CHURNGRID_TOKEN only, never from the command line.

What it does:
  1. reads the API itself (urllib, bearer token): /v1/cluster, /v1/jobs?limit=1, the published
     job's summary, one subscriber's score, and an unknown subscriber's problem document;
  2. opens the page with no session: the sign-in form must show; pastes the token and signs in
     (POST /v1/session sets an HttpOnly cookie); waits for <body data-ready="true">;
  3. loads the page again, now signed in, and times navigation start -> data-ready (the page
     records performance.now() in data-ready-ms when it sets data-ready): first_render_ms;
  4. checks the panels against step 1: the node names and shard counts in #cluster, the
     histogram's 20 bins and the published job id in #histogram, the bands and regions in #bands,
     the ten top-risk subscriber ids in order in #top-risk, the job in #job, the placeholders;
     looks up one subscriber in #lookup (same probability to 3 decimals, same reasons, node and
     shard as GET /v1/subscribers/{id}/score) and an unknown one (the problem's detail shown);
  5. saves a full-page screenshot to SCREENSHOT, signs out (the sign-in form shows again);
  6. prints {"first_render_ms": N} as the LAST line of stdout (what Benchmarks/http reads).

Exit status: 0 all checks passed; 1 a check failed (every mismatch is listed on stderr);
2 it could not run (no selenium, no chromium/chromedriver, no token, the API unreachable).
Chromium runs with --no-sandbox (the tests run as root) and never leaves 127.0.0.1.
"""

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request

USAGE = "usage: CHURNGRID_TOKEN=... dashboard_check.py BASE_URL SCREENSHOT.png [--timeout SECONDS]"


def give_up(message):
    print("dashboard check could not run: " + message, file=sys.stderr)
    sys.exit(2)


try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    give_up("the Python package selenium is missing (make test-deps: pip install selenium)")


class API:
    """The coordinator's API as the script sees it (bearer token, no proxy)."""

    def __init__(self, base, token):
        self.base = base
        self.token = token
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path, retry_unauthorized=10.0):
        """(status, JSON document) of GET path. A 401 is retried for a while: a token just
        created is known to the coordinator within its token refresh (2 s)."""
        deadline = time.monotonic() + retry_unauthorized
        request = urllib.request.Request(self.base + path, headers={"Authorization": "Bearer " + self.token, "Accept": "application/json"})
        while True:
            try:
                with self.opener.open(request, timeout=30) as response:
                    return response.status, json.load(response)
            except urllib.error.HTTPError as e:
                body = e.read()
                if e.code == 401 and time.monotonic() < deadline:
                    time.sleep(0.25)
                    continue
                try:
                    document = json.loads(body)
                except ValueError:
                    document = {"detail": body.decode("utf-8", "replace")}
                return e.code, document
            except (urllib.error.URLError, OSError) as e:
                give_up(f"GET {self.base}{path}: {e}")

    def ok(self, path):
        status, document = self.get(path)
        if status != 200:
            give_up(f"GET {path} answered {status}: {document.get('detail', document)}")
        return document


def fmt_int(n):
    return f"{n:,}"


class Check:
    """Collects mismatches instead of stopping at the first."""

    def __init__(self):
        self.failures = []
        self.passed = 0
        self.screenshot_saved = False

    def equal(self, what, shown, expected):
        if shown == expected:
            self.passed += 1
        else:
            self.failures.append(f"{what}: the dashboard shows {shown!r}, the API says {expected!r}")

    def true(self, what, condition, detail=""):
        if condition:
            self.passed += 1
        else:
            self.failures.append(what + (f" ({detail})" if detail else ""))


def main(argv):
    arguments = [a for a in argv[1:]]
    timeout = 30.0
    if "--timeout" in arguments:
        i = arguments.index("--timeout")
        try:
            timeout = float(arguments[i + 1])
        except (IndexError, ValueError):
            give_up(USAGE)
        del arguments[i:i + 2]
    if len(arguments) != 2 or not arguments[0].startswith(("http://", "https://")):
        give_up(USAGE)
    base, screenshot = arguments[0].rstrip("/"), arguments[1]
    token = os.environ.get("CHURNGRID_TOKEN", "").strip()
    if not token:
        give_up("set CHURNGRID_TOKEN to an API token (never pass it on the command line)")
    # Nothing here goes through a proxy (the coordinator and chromedriver are on 127.0.0.1).
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost,::1"

    # 1. The API's own answers.
    api = API(base, token)
    cluster = api.ok("/v1/cluster")
    jobs = api.ok("/v1/jobs?limit=1")
    published = jobs.get("published_job_id")
    if published is None:
        give_up("no job has been published yet: run one before checking the dashboard")
    summary = api.ok(f"/v1/jobs/{published}/summary")
    top = summary.get("top_risk") or []
    if len(top) < 1:
        give_up("the published summary lists no top-risk subscribers")
    lookup_id = top[min(3, len(top) - 1)]["subscriber_id"]
    score = api.ok(f"/v1/subscribers/{lookup_id}/score")
    unknown_id = 987654321012
    unknown_status, unknown = api.get(f"/v1/subscribers/{unknown_id}/score")

    # 2. The browser.
    chromium = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not driver_path:
        give_up("chromium and chromedriver are needed (make test-deps: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-proxy-server",
                 "--window-size=1440,1000", "--hide-scrollbars", "--disable-extensions", "--no-first-run", "--lang=en-US"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except WebDriverException as e:
        give_up(f"Chromium did not start: {e.msg if hasattr(e, 'msg') else e}")
    check = Check()
    first_render_ms = None
    try:
        first_render_ms = run_browser(driver, base, token, timeout, screenshot, check, api, cluster, jobs, summary, lookup_id, score, unknown_id, unknown_status, unknown)
    except TimeoutException as e:
        check.failures.append(f"timed out: {e.msg or e}; page state: {page_state(driver)}")
    finally:
        logs = []
        try:
            logs = driver.get_log("browser")
        except WebDriverException:
            pass
        try:
            if check.failures and not check.screenshot_saved:
                save_screenshot(driver, screenshot)
        finally:
            driver.quit()
    # Expected console lines: the first GET /v1/cluster (401 before signing in), the unknown
    # subscriber (404) and the signed-out check (401). Script errors fail the check.
    for entry in logs:
        message = entry.get("message", "")
        if entry.get("level") == "SEVERE" and ("Uncaught" in message or "TypeError" in message or "ReferenceError" in message or "SyntaxError" in message):
            check.failures.append("a script error in the page: " + message)
    if check.failures:
        print(f"dashboard check FAILED ({len(check.failures)} of {len(check.failures) + check.passed} checks):", file=sys.stderr)
        for f in check.failures:
            print("  - " + f, file=sys.stderr)
        print(f"screenshot: {screenshot}", file=sys.stderr)
        return 1
    print(f"dashboard check passed: {check.passed} checks; screenshot {screenshot}")
    print(json.dumps({"first_render_ms": first_render_ms}))
    return 0


def page_state(driver):
    try:
        return driver.execute_script("""
            const visible = (id) => { const e = document.getElementById(id); return e && !e.hidden; };
            return JSON.stringify({ready: document.body.dataset.ready, signin: visible('signin'), dashboard: visible('dashboard'),
              errors: [...document.querySelectorAll('.error:not([hidden])')].map((e) => e.closest('[id]').id + ': ' + e.textContent)});
        """)
    except WebDriverException as e:
        return f"unreadable ({e.msg if hasattr(e, 'msg') else e})"


def wait(driver, timeout, what, condition):
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(condition, message=what)


def wait_ready(driver, timeout):
    wait(driver, timeout, "body[data-ready=true]",
         lambda d: d.execute_script("return document.body && document.body.dataset.ready === 'true' ? Number(document.body.dataset.readyMs) : null"))
    return int(driver.execute_script("return Number(document.body.dataset.readyMs)"))


def save_screenshot(driver, path):
    """The whole page (the window is made as tall as the page first)."""
    try:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        height = driver.execute_script("return Math.ceil(document.documentElement.scrollHeight)")
        driver.set_window_size(1440, max(800, min(int(height) + 20, 6000)))
        time.sleep(0.3)  # the relayout and the progress bar's transition
        driver.save_screenshot(path)
    except WebDriverException as e:
        print(f"the screenshot could not be saved: {e}", file=sys.stderr)


SNAPSHOT = """
const q = (selector) => document.querySelector(selector);
const all = (selector, f) => [...document.querySelectorAll(selector)].map(f);
const text = (e) => (e ? e.innerText.trim() : null);
const job = q('#job');
return {
  nodes: all('#cluster tr[data-node]', (r) => ({ name: r.dataset.node, shards: r.dataset.shards, shards_text: text(r.querySelector('td.shards')),
    ready_text: text(r.querySelector('td.ready')), subscribers_text: text(r.querySelector('td.subscribers')) })),
  cluster_text: text(q('#cluster')),
  epoch: text(q('#cluster-epoch .stat-value')),
  bins: all('#histogram .bin', (b) => b.dataset.count),
  histogram_job: q('#histogram').dataset.jobId || null,
  histogram_header: text(q('#histogram header')),
  bands: all('#bands tr[data-band]', (r) => [r.dataset.band, r.dataset.count]),
  regions: all('#bands tr[data-region]', (r) => [r.dataset.region, r.dataset.count]),
  region_bands: all('#bands tr[data-region]', (r) => [r.dataset.region, [r.dataset.bandLow, r.dataset.bandMedium, r.dataset.bandHigh, r.dataset.bandVeryHigh]]),
  bands_text: text(q('#bands')),
  top: all('#top-risk tr[data-subscriber-id]', (r) => ({ id: r.dataset.subscriberId, text: text(r.querySelector('.subscriber-link')) })),
  job: { id: job.dataset.jobId || null, state: job.dataset.state || null, shards: text(q('#job-shards')),
    bars: document.querySelectorAll('#job-progress .progress-fill').length },
  placeholders: { triggers: text(q('#triggers')), campaigns: text(q('#campaigns')), drift: text(q('#drift')) },
  lookup: { probability: text(q('#lookup-probability')), node: text(q('#lookup-node')), shard: text(q('#lookup-shard')),
    band: text(q('#lookup-result .lookup-head .badge')),
    reasons: all('#lookup-reasons tr[data-feature]', (r) => [text(r.querySelector('td.mono')), text(r.querySelector('td.contribution'))]),
    errors: all('#lookup-result .error', text) },
};
"""


def snapshot(driver):
    """Everything the checks read, in one script call."""
    return driver.execute_script(SNAPSHOT)


def run_browser(driver, base, token, timeout, screenshot, check, api, cluster, jobs, summary, lookup_id, score, unknown_id, unknown_status, unknown):
    # 2. No session yet: the sign-in form, and no data.
    driver.get(base + "/")
    wait(driver, timeout, "the sign-in form", lambda d: d.find_element(By.ID, "signin-token").is_displayed())
    check.equal("data-ready before signing in", driver.execute_script("return document.body.dataset.ready"), "false")
    check.true("the dashboard is hidden before signing in", not driver.find_element(By.ID, "dashboard").is_displayed())
    field = driver.find_element(By.ID, "signin-token")
    field.send_keys(token)
    started = time.monotonic()
    field.send_keys(Keys.ENTER)
    wait_ready(driver, timeout)
    print(f"signed in and rendered in {1000 * (time.monotonic() - started):.0f} ms")
    cookies = {c["name"]: c for c in driver.get_cookies()}
    session = cookies.get("churngrid_session")
    check.true("POST /v1/session set the churngrid_session cookie", session is not None, f"cookies: {sorted(cookies)}")
    if session:
        check.true("the session cookie is HttpOnly", session.get("httpOnly") is True)
    stored = driver.execute_script("return JSON.stringify([document.cookie, JSON.stringify(sessionStorage), JSON.stringify(localStorage)])")
    check.true("the token is not kept by the page (cookie readable by scripts, session or local storage)", token not in stored)

    # 3. Signed in: a fresh load, timed by the page itself from navigation start.
    driver.get(base + "/")
    first_render_ms = wait_ready(driver, timeout)
    print(f"first render (signed in): {first_render_ms} ms from navigation start")
    check.true("the sign-in form is hidden once signed in", not driver.find_element(By.ID, "signin").is_displayed())

    # 4. The panels against the API, read in one script call each time (the stream re-renders
    # panels while the checks run: element references would go stale between calls).
    page = snapshot(driver)
    nodes = cluster["nodes"]
    check.equal("#cluster node names", [n["name"] for n in page["nodes"]], [n["name"] for n in nodes])
    check.equal("#cluster shards per node (data-shards)", [int(n["shards"]) for n in page["nodes"]], [n["shards"] for n in nodes])
    check.equal("#cluster shards per node (text)", [n["shards_text"] for n in page["nodes"]], [fmt_int(n["shards"]) for n in nodes])
    check.equal("#cluster ready shards per node", [n["ready_text"] for n in page["nodes"]], [fmt_int(n["ready_shards"]) for n in nodes])
    check.equal("#cluster subscribers per node", [n["subscribers_text"] for n in page["nodes"]], [fmt_int(n["subscribers"]) for n in nodes])
    check.equal("#cluster epoch", page["epoch"], fmt_int(cluster["epoch"]))
    check.true("#cluster shows the node names", all(n["name"] in page["cluster_text"] for n in nodes))

    # The histogram: 20 bins, their counts, the published job.
    published = jobs["published_job_id"]
    check.equal("#histogram bins", len(page["bins"]), len(summary["histogram"]))
    check.equal("#histogram bins in the summary", len(summary["histogram"]), 20)
    check.equal("#histogram counts", [int(c) for c in page["bins"]], summary["histogram"])
    check.equal("#histogram job id", page["histogram_job"], str(published))
    check.true("#histogram names the published job", f"#{published}" in page["histogram_header"], page["histogram_header"])

    # Bands and regions.
    check.equal("#bands per band", {b: int(c) for b, c in page["bands"]}, summary["per_band"])
    check.equal("#bands per region", {r: int(c) for r, c in page["regions"]}, summary["per_region"])
    check.equal("#bands per region and band", {r: [int(c) for c in cs] for r, cs in page["region_bands"]},
                {r: [b["low"], b["medium"], b["high"], b["very_high"]] for r, b in summary["per_region_band"].items()})
    check.true("#bands shows the counts with thousands separators", all(fmt_int(c) in page["bands_text"] for c in summary["per_band"].values()))

    # The ten riskiest, in order.
    check.equal("#top-risk subscriber ids", [int(t["id"]) for t in page["top"]], [t["subscriber_id"] for t in summary["top_risk"]])
    check.equal("#top-risk rows", len(summary["top_risk"]), 10)
    check.equal("#top-risk ids shown", [t["text"] for t in page["top"]], [str(t["subscriber_id"]) for t in summary["top_risk"]])

    # The job: the last one, as the stream or GET /v1/jobs tells it.
    last = jobs["jobs"][0]
    check.equal("#job id", page["job"]["id"], str(last["id"]))
    check.equal("#job state", page["job"]["state"], last["state"])
    check.equal("#job shards", page["job"]["shards"], f"{fmt_int(last['shards_done'])} / {fmt_int(last['shard_count'])} shards")
    check.equal("#job progress bars", page["job"]["bars"], 1)

    for placeholder in ("triggers", "campaigns", "drift"):
        check.true(f"#{placeholder} says not available yet", "not available yet" in page["placeholders"][placeholder].lower())

    # A lookup: the same probability (3 decimals), reasons, node and shard as the API.
    lookup(driver, timeout, lookup_id)
    result = snapshot(driver)["lookup"]
    shown = result["probability"] or ""
    try:
        close = abs(float(shown) - score["probability"]) <= 0.0005 + 1e-9
    except ValueError:
        close = False
    check.true(f"#lookup-result probability of {lookup_id} is the API's to 3 decimals", close, f"shown {shown!r}, API {score['probability']}")
    check.equal("#lookup-result reasons", [r[0] for r in result["reasons"]], [r["feature"] for r in score["reasons"]])
    contributions = [r[1] for r in result["reasons"]]
    expected = [r["contribution"] for r in score["reasons"]]
    check.true("#lookup-result contributions are the API's to 3 decimals",
               len(contributions) == len(expected) and all(abs(float(c.replace("\u2212", "-")) - e) <= 0.0005 + 1e-9 for c, e in zip(contributions, expected)),
               f"shown {contributions}, API {expected}")
    check.equal("#lookup-result node", result["node"], score["node"])
    check.equal("#lookup-result shard", result["shard"], fmt_int(score["shard"]))
    check.equal("#lookup-result band", (result["band"] or "").lower().replace(" ", "_"), score["risk_band"])

    # A subscriber that does not exist: the problem's detail is shown.
    if unknown_status == 404:
        lookup(driver, timeout, unknown_id)
        errors = snapshot(driver)["lookup"]["errors"]
        check.equal("#lookup-result for an unknown subscriber", errors, [unknown.get("detail")])
    else:
        check.failures.append(f"GET /v1/subscribers/{unknown_id}/score answered {unknown_status}, not 404: {unknown}")

    # The screenshot shows a real lookup.
    lookup(driver, timeout, lookup_id)
    driver.execute_script("window.scrollTo(0, 0)")
    save_screenshot(driver, screenshot)
    check.screenshot_saved = True
    driver.set_window_size(1440, 1000)

    # 5. Signing out: the form again, and the page's session is gone.
    driver.find_element(By.ID, "signout").click()
    wait(driver, timeout, "the sign-in form after signing out", lambda d: d.find_element(By.ID, "signin-token").is_displayed())
    check.equal("data-ready after signing out", driver.execute_script("return document.body.dataset.ready"), "false")
    driver.get(base + "/")
    wait(driver, timeout, "the sign-in form on a fresh load after signing out", lambda d: d.find_element(By.ID, "signin-token").is_displayed())
    return first_render_ms


def lookup(driver, timeout, subscriber):
    field = driver.find_element(By.ID, "lookup-id")
    field.clear()
    field.send_keys(str(subscriber))
    field.send_keys(Keys.ENTER)
    wait(driver, timeout, f"the lookup of {subscriber}", lambda d: d.execute_script(
        "const r = document.getElementById('lookup-result'); return r.dataset.subscriberId === arguments[0] && r.dataset.loading === undefined",
        str(subscriber)))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
