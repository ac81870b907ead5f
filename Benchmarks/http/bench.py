#!/usr/bin/env python3
"""The HTTP API against its reference, in the same run on the same machine (issue 17):

  * reference: pgbench's primary-key lookup of the same scores in a plain table
    (`subscriber_id bigint primary key, probability real`), 4 and 16 clients, the better taken;
  * `GET /v1/subscribers/{id}/score` with random ids (live score with reasons, computed now):
    wrk's maximum throughput (closed loop: 2 threads, 64 connections), then latency open-loop with
    `churngrid bench http` (from each request's scheduled send, failures included, HdrHistogram)
    at half of twice the reference (the issue's goal) and at half of what wrk reached;
  * `POST /v1/scores:batch` with 1,000 random ids: wrk's throughput in scores/s;
  * the dashboard's first render with data in headless Chromium, if chromium is installed.

A coordinator (--http) and 2 workers (1 scoring thread each) on 127.0.0.1; PostgreSQL private,
fsync off. Everything shares the machine's 2 cores: server, load generator and pgbench alike.

Usage: python3 Benchmarks/http/bench.py [--subscribers 1000000] [--duration 15] [--reuse-base]
(after `make release`). Results: .churngrid/bench/http.json
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster"))
from local import start_workers, stop_cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def psql(url, sql):
    return sh("psql", url, "-qAtX", "-c", sql).strip()


def secret_file(text):
    """A 0600 temporary file (tokens go to tools through files or the environment, never argv)."""
    fd, path = tempfile.mkstemp(prefix="churngrid-bench-", suffix=".lua")
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def wrk(url, script, duration, connections=64):
    out = sh("wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script, url)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(errors.group(1)) if errors else 0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--reuse-base", action="store_true")
    a = ap.parse_args()
    os.chdir(ROOT)
    pgdir = os.path.join(ROOT, ".churngrid/pg-bench")
    url = sh("bash", "Deploy/local/pg.sh", "start", pgdir).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    n = a.subscribers
    procs, scripts = [], []
    out = {"subscribers": n, "workers": 2, "threads_per_worker": 1, "postgres": "private, fsync off, same machine", "cores": os.cpu_count()}
    try:
        have = None
        if a.reuse_base:
            try:
                have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
            except subprocess.CalledProcessError:
                pass
        if have != n:
            print(f"generating {n:,} subscribers …", flush=True)
            sh(BIN, "generate", "--subscribers", str(n), "--postgres", url)
        logs = os.path.join(ROOT, ".churngrid/bench/http-logs")
        os.makedirs(logs, exist_ok=True)
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--model", MODEL, "--http", "127.0.0.1:0"],
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
        st = start_workers(BIN, endpoint, logs, procs)
        job = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
        print(f"cluster ready, job {job['id']} {job['state']} in {job['seconds']:.1f} s", flush=True)
        token = sh(BIN, "tokens", "create", "--role", "reader", "--name", f"bench-{int(time.time())}", "--coordinator", endpoint).strip().splitlines()[-1]
        time.sleep(2.5)  # the coordinator reads the tokens every 2 s

        # Reference: pgbench's primary-key lookup of the same scores in a plain table.
        psql(url, "DROP TABLE IF EXISTS bench_scores; CREATE TABLE bench_scores (subscriber_id bigint PRIMARY KEY, probability real);"
                  "INSERT INTO bench_scores SELECT subscriber_id, probability FROM churn_scores_current WHERE model_name = 'churn'")
        psql(url, "VACUUM ANALYZE bench_scores")
        pg_script = secret_file(f"\\set id random(1000000000, {1_000_000_000 + n - 1})\nSELECT probability FROM bench_scores WHERE subscriber_id = :id;\n")
        scripts.append(pg_script)
        pgbench = {}
        for clients in (4, 16):
            res = sh("pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(a.duration), "-f", pg_script, url)
            pgbench[clients] = float(re.search(r"tps = ([\d.]+)", res).group(1))
            print(f"pgbench primary-key lookup, {clients} clients: {pgbench[clients]:,.0f}/s", flush=True)
        reference = max(pgbench.values())
        out.update({"pgbench_lookups_per_second": pgbench, "reference_per_second": reference})

        # Single live scores: wrk's maximum throughput.
        single = secret_file(f"""
counter = 0
request = function()
  counter = counter + 1
  local id = 1000000000 + (counter * 2654435761 + math.random(0, 1000)) % {n}
  return wrk.format("GET", "/v1/subscribers/" .. id .. "/score", {{["Authorization"] = "Bearer {token}"}})
end
""")
        scripts.append(single)
        rps, errors, text = wrk(base, single, a.duration)
        print(f"GET score (wrk, closed loop): {rps:,.0f}/s, {errors} non-2xx — {rps / reference:.2f}× pgbench", flush=True)
        out.update({"single_wrk_per_second": rps, "single_wrk_non_2xx": errors, "single_ratio_to_pgbench": rps / reference})

        # Open loop at the goal's half load (= the reference's rate) and at half of wrk's maximum.
        env = dict(os.environ, CHURNGRID_TOKEN=token)
        for label, rate in (("at_reference_rate", reference), ("at_half_wrk", rps / 2)):
            r = json.loads(subprocess.run([BIN, "bench", "http", "--url", base, "--rate", str(int(rate)), "--duration", str(a.duration),
                                           "--connections", "32", "--subscribers", str(n), "--json"], check=True, capture_output=True, text=True, env=env).stdout)
            out[f"single_open_loop_{label}"] = r
            print(f"GET score open loop at {rate:,.0f}/s: achieved {r['achieved_per_second']:,.0f}/s, failed {r['failed']}, "
                  f"p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs, p99.9 {r['p999_us']:.0f} µs", flush=True)

        # Batches of 1,000 ids.
        batch = secret_file(f"""
counter = 0
request = function()
  counter = counter + 1
  local ids = {{}}
  for k = 1, 1000 do ids[k] = tostring(1000000000 + ((counter * 1000 + k) * 2654435761) % {n}) end
  local body = '{{"subscriber_ids":[' .. table.concat(ids, ",") .. ']}}'
  return wrk.format("POST", "/v1/scores:batch", {{["Authorization"] = "Bearer {token}", ["Content-Type"] = "application/json"}}, body)
end
""")
        scripts.append(batch)
        brps, berrors, _ = wrk(base + "/v1/scores:batch", batch, a.duration, connections=8)
        print(f"POST batch of 1,000 (wrk): {brps:,.1f}/s = {brps * 1000:,.0f} scores/s with reasons, {berrors} non-2xx", flush=True)
        out.update({"batch_requests_per_second": brps, "batch_scores_per_second": brps * 1000, "batch_non_2xx": berrors})

        # The dashboard's first render with data (headless Chromium), when it is installed.
        check = os.path.join(ROOT, "Tests/ChurnClusterTests/dashboard_check.py")
        if shutil.which("chromedriver") and os.path.exists(check):
            shot = os.path.join(ROOT, ".build/dashboard-bench.png")
            r = subprocess.run(["python3", check, base, shot], capture_output=True, text=True, env=env)
            last = (r.stdout.strip().splitlines() or ["{}"])[-1]
            try:
                out["dashboard_first_render_ms"] = json.loads(last).get("first_render_ms")
            except json.JSONDecodeError:
                out["dashboard_error"] = (r.stderr or r.stdout)[-500:]
            print(f"dashboard first render with data: {out.get('dashboard_first_render_ms')} ms", flush=True)
    finally:
        stop_cluster(procs)
        for s in scripts:
            os.remove(s)
    os.makedirs(os.path.join(ROOT, ".churngrid/bench"), exist_ok=True)
    with open(os.path.join(ROOT, ".churngrid/bench/http.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
