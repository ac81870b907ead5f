#!/usr/bin/env python3
"""Live queries at scale against their reference, in the same run on the same machine (issue 18):

  * reference: pgbench's primary-key lookup of the same scores in a plain table
    (`subscriber_id bigint primary key, probability real`), `-M prepared`, several client counts;
    its maximum sustainable rate is the best closed-loop throughput (pgbench's clients never wait
    for anything but their answer);
  * ChurnGrid: `churngrid bench queries` — open loop (query i due at start + i/rate whatever
    happened before; latency from that scheduled time, failures included; HdrHistogram), straight
    to the owning worker with the client's cached shard map, concurrent queries to one worker
    coalesced into pipelined batch calls. Every answer is computed now from the in-memory profile,
    with its top-3 reasons. A rate sweep finds the highest rate sustained (achieved ≥ 97% of the
    rate, nothing failed, p99 under 1 s — answers not falling behind);
  * then, at half the goal (= the reference's rate): p99 idle, and p99 / p99.9 while a rescoring
    job of the whole base runs.

A coordinator and 2 workers (1 scoring thread each) on 127.0.0.1, PostgreSQL private (fsync off);
everything shares the machine's cores — cluster, load generator and pgbench alike.

Usage: python3 Benchmarks/queries/bench.py [--subscribers 10000000] [--reuse-base] [--duration 10]
       [--bin PATH] (or CHURNGRID_BIN; default .build/release/churngrid). Results: .churngrid/bench/queries.json
"""
import argparse, json, os, re, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster"))
from local import psql, sh, start_workers, stop_cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models/churn-default.json")


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=10_000_000)
    ap.add_argument("--reuse-base", action="store_true", help="keep the base (and the pgbench table) already in .churngrid/pg-bench if it has this many subscribers")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured step")
    ap.add_argument("--connections", type=int, default=2, help="`bench queries --connections`")
    ap.add_argument("--in-flight", type=int, default=4, help="`bench queries --in-flight` (batch calls per worker and connection)")
    ap.add_argument("--pgbench-clients", default="4,8,16")
    ap.add_argument("--start-rate", type=float, default=0, help="first rate of the sweep (default: half the reference)")
    ap.add_argument("--no-job", action="store_true", help="skip the measurement during a rescoring job")
    ap.add_argument("--bin", default=os.environ.get("CHURNGRID_BIN", os.path.join(ROOT, ".build/release/churngrid")))
    ap.add_argument("--send-tick-us", type=int, help="`bench queries --send-tick-us` (default: the binary's own, 100 µs; a binary older than the flag has none)")
    ap.add_argument("--before-send-tick-us", type=int, help="also measure at the reference rate (idle and during a job) with this send tick (0: a wake-up per query, the generator before the tick)")
    ap.add_argument("--before-bin", help="also run this (older) binary's `bench queries` at the reference rate against the same cluster, for a before/after")
    a = ap.parse_args()
    BIN = os.path.abspath(a.bin)
    os.chdir(ROOT)
    pgdir = os.path.join(ROOT, ".churngrid/pg-bench")
    url = sh("bash", "Deploy/local/pg.sh", "start", pgdir).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    n = a.subscribers
    out = {"subscribers": n, "workers": 2, "threads_per_worker": 1, "cores": os.cpu_count(), "binary": BIN,
           "connections": a.connections, "in_flight": a.in_flight, "step_seconds": a.duration, "load_at_start": loadavg()}
    procs = []
    script = None
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
        logs = os.path.join(ROOT, ".churngrid/bench/queries-logs")
        os.makedirs(logs, exist_ok=True)
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--model", MODEL],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs.append(("coordinator", coord))
        endpoint = None
        while endpoint is None:
            line = coord.stdout.readline()
            if not line:
                raise SystemExit(f"the coordinator exited; see {logs}/coordinator.log")
            if line.startswith("coordinator listening "):
                endpoint = line.split()[-1]
        coord.stdout.readline()  # "coordinator leading term N"
        t = time.time()
        start_workers(BIN, endpoint, logs, procs)
        print(f"cluster ready in {time.time() - t:.1f} s", flush=True)

        # The reference's table: the same scores (those of a published job), a primary key.
        have_table = None
        if a.reuse_base:
            try:
                have_table = int(psql(url, "SELECT count(*) FROM bench_scores"))
            except subprocess.CalledProcessError:
                pass
        if have_table != n:
            try:
                published = int(psql(url, "SELECT count(*) FROM churn_scores_current WHERE model_name = 'churn'"))
            except subprocess.CalledProcessError:
                published = 0
            if published != n:
                job = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
                print(f"job {job['id']} {job['state']} in {job['seconds']:.1f} s", flush=True)
            psql(url, "DROP TABLE IF EXISTS bench_scores; CREATE TABLE bench_scores (subscriber_id bigint PRIMARY KEY, probability real);"
                      "INSERT INTO bench_scores SELECT subscriber_id, probability FROM churn_scores_current WHERE model_name = 'churn'")
            psql(url, "VACUUM ANALYZE bench_scores")
        psql(url, "SELECT count(*) FROM bench_scores")  # warm
        fd, script = tempfile.mkstemp(prefix="churngrid-pgbench-", suffix=".sql")
        with os.fdopen(fd, "w") as f:
            f.write(f"\\set id random(1000000000, {1_000_000_000 + n - 1})\nSELECT probability FROM bench_scores WHERE subscriber_id = :id;\n")

        def pgbench(clients):
            res = sh("pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(a.duration), "-f", script, url)
            return float(re.search(r"tps = ([\d.]+)", res).group(1))

        def queries(rate, seconds=None, stdin_stop=False, tick=None):
            args = [BIN, "bench", "queries", "--coordinator", endpoint, "--rate", str(int(rate)), "--duration", str(seconds or a.duration),
                    "--connections", str(a.connections), "--in-flight", str(a.in_flight), "--subscribers", str(n), "--json"]
            tick = a.send_tick_us if tick is None else tick
            if tick is not None:  # only when asked: a binary older than the flag refuses it
                args += ["--send-tick-us", str(tick)]
            if stdin_stop:
                args.insert(3, "--stop-on-stdin-eof")
                return subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
            return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)

        def sustained(r, rate):
            # Kept up: (almost) every query answered in its step, none failed, and no queue that
            # grows for the whole step (a p99 of a second means the answers fall behind).
            return r["failed"] == 0 and r["achieved_per_second"] >= 0.97 * rate and r["p99_us"] < 1_000_000

        # Reference first, then the sweep, then the reference again (the machine drifts).
        pg = {}
        for c in [int(x) for x in a.pgbench_clients.split(",")]:
            pg[c] = pgbench(c)
            print(f"pgbench primary-key lookup, {c} clients: {pg[c]:,.0f}/s   (load {loadavg()})", flush=True)
        reference = max(pg.values())
        out.update({"pgbench_per_second": pg, "reference_per_second": reference})

        sweep = []
        rate = a.start_rate or reference / 2
        best = 0
        while True:
            try:
                r = queries(rate)
            except subprocess.CalledProcessError as e:
                # The load generator itself gave out (e.g. killed for memory): not sustained.
                print(f"bench queries at {rate:,.0f}/s: the load generator exited ({e.returncode}) — NOT sustained", flush=True)
                sweep.append({"rate": rate, "sustained": False, "load_generator_exit": e.returncode})
                break
            ok = sustained(r, rate)
            sweep.append({"rate": rate, "sustained": ok, **r})
            print(f"bench queries at {rate:,.0f}/s: achieved {r['achieved_per_second']:,.0f}/s, failed {r['failed']}, p50 {r['p50_us']:.0f} µs, "
                  f"p99 {r['p99_us']:.0f} µs, p99.9 {r['p999_us']:.0f} µs, {r['batched_queries'] / max(1, r['batch_calls']):.1f} queries per batch call"
                  f" — {'sustained' if ok else 'NOT sustained'}   (load {loadavg()})", flush=True)
            if not ok:
                break
            best = rate
            rate *= 1.25
        out["sweep"] = sweep
        out["max_sustained_per_second"] = best
        out["ratio_to_pgbench"] = best / reference
        again = pgbench(max(pg, key=pg.get))
        out["pgbench_after_sweep_per_second"] = again
        print(f"max sustained: {best:,.0f}/s = {best / reference:.2f}× pgbench ({reference:,.0f}/s; {again:,.0f}/s when asked again after the sweep)", flush=True)

        if a.before_bin:
            # The previous client: one query at a time (closed loop), timed from its actual send.
            t = time.time()
            # (it stops when its standard input closes: keep it open until it is done)
            p = subprocess.Popen([os.path.abspath(a.before_bin), "bench", "queries", "--coordinator", endpoint, "--rate", str(int(reference)),
                                  "--duration", str(a.duration), "--subscribers", str(n), "--json"], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
            old = json.loads(p.stdout.read() or "{}")
            p.wait()
            p.stdin.close()
            old["achieved_per_second"] = old["queries"] / max(1e-9, time.time() - t)
            # Closed loop, timed from each query's actual send: not comparable with the open-loop
            # figures (coordinated omission); kept only to show the client's throughput then.
            old["closed_loop_not_comparable"] = True
            out["before_client_at_reference_rate"] = old
            print(f"previous client asked for {reference:,.0f}/s: achieved {old['achieved_per_second']:,.0f}/s (closed loop: its latencies, p50 {old['p50_us']:.0f} µs, "
                  f"p99 {old['p99_us']:.0f} µs, are from the actual send and not comparable), failed {old.get('failed')}", flush=True)

        # Half the goal (2× the reference), i.e. the reference's rate: idle, then during a job;
        # with the send tick asked for, then (for a before/after in the same run) the other one.
        half = reference
        ticks = [(a.send_tick_us, "")] + ([(a.before_send_tick_us, "_send_tick_before")] if a.before_send_tick_us is not None else [])
        for tick, suffix in ticks:
            idle = queries(half, tick=tick)
            out["at_reference_rate_idle" + suffix] = idle
            print(f"at {half:,.0f}/s idle, send tick {idle.get('send_tick_us', 'none')} µs: p50 {idle['p50_us']:.0f} µs, p99 {idle['p99_us']:.0f} µs, p99.9 {idle['p999_us']:.0f} µs, "
                  f"failed {idle['failed']}   (load {loadavg()})", flush=True)
            if a.no_job:
                continue
            load = queries(half, seconds=900, stdin_stop=True, tick=tick)
            time.sleep(1)
            t = time.time()
            job = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
            job_s = time.time() - t
            during = json.loads(load.communicate(input="")[0] or "{}")
            if load.returncode != 0 or not all(k in during for k in ("p50_us", "p99_us", "p999_us", "max_us", "failed", "queries")):
                raise SystemExit(f"the query load during the job did not report (exit {load.returncode}): {during}")
            out["during_job" + suffix] = {"job_seconds": job_s, "job_state": job["state"], **during}
            print(f"at {half:,.0f}/s during a {n:,} rescoring job ({job['state']}, {job_s:.1f} s), send tick {during.get('send_tick_us', 'none')} µs: p50 {during.get('p50_us', 0):.0f} µs, "
                  f"p99 {during.get('p99_us', 0):.0f} µs, p99.9 {during.get('p999_us', 0):.0f} µs, max {during.get('max_us', 0):.0f} µs, "
                  f"failed {during.get('failed')} of {during.get('queries')}", flush=True)
        out["load_at_end"] = loadavg()
    finally:
        stop_cluster(procs)
        if script:
            os.remove(script)
    os.makedirs(os.path.join(ROOT, ".churngrid/bench"), exist_ok=True)
    with open(os.path.join(ROOT, ".churngrid/bench/queries.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "sweep"}, indent=1))


if __name__ == "__main__":
    main()
