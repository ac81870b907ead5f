#!/usr/bin/env python3
"""Scale out, drain, fail over: a local cluster on one machine over the 10M base of bench.py.

Phases, each with live queries at a steady rate (`churngrid bench queries`, straight to the owning
node with a cached shard map, as `churngrid score` does):
  1. rescoring with 2 workers (throughput per worker count, for the model in docs/cluster.md);
  2. join: a third worker joins; time until the cluster is balanced, failed queries meanwhile;
  3. drain: `churngrid nodes drain worker-3`; time until it has left, failed queries meanwhile;
  4. failover: worker-2 (half the base) is killed with SIGKILL; time until every shard is served
     again (detection after --unreachable-after, then reload from PostgreSQL by the survivor);
     queries to its shards fail until then (reported, they are what failover costs);
  5. rescoring with the 1 remaining worker.

Usage: python3 Benchmarks/cluster/rebalance.py [--subscribers 10000000] [--rate 200]
(after `make release`; reuses the base bench.py generated). Results: .churngrid/bench/rebalance.json
"""
import argparse, json, os, signal, subprocess, time

from local import stop_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def status(endpoint):
    return json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))


def wait_settled(endpoint, workers, timeout=900):
    t = time.time()
    while time.time() - t < timeout:
        s = status(endpoint)
        if len(s["workers"]) == workers and s["unassignedShards"] == 0 and s["movingShards"] == 0 and not s["silentWorkers"]:
            return time.time() - t, s
        time.sleep(0.2)
    raise SystemExit(f"the cluster did not settle on {workers} workers within {timeout} s")


class Queries:
    """`churngrid bench queries` in the background until stopped."""

    def __init__(self, endpoint, rate, subscribers):
        self.p = subprocess.Popen([BIN, "bench", "queries", "--coordinator", endpoint, "--rate", str(rate), "--duration", "3600",
                                   "--subscribers", str(subscribers), "--json"], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        time.sleep(1)

    def stop(self):
        return json.loads(self.p.communicate(input="")[0] or "{}")


def rescore(endpoint):
    t = time.time()
    job = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
    return {"seconds": time.time() - t, "state": job["state"], "subscribers": job["subscribers"],
            "subscribers_per_second": job["subscribers"] / max(1e-9, time.time() - t)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=10_000_000)
    ap.add_argument("--rate", type=int, default=200)
    a = ap.parse_args()
    os.chdir(ROOT)
    pgdir = os.path.join(ROOT, ".churngrid/pg-bench")
    url = sh("bash", "Deploy/local/pg.sh", "start", pgdir).strip().splitlines()[-1]
    have = int(sh("psql", url, "-qAtX", "-c", "SELECT count(*) FROM subscriber_profiles").strip() or 0)
    if have != a.subscribers:
        print(f"generating {a.subscribers:,} subscribers …", flush=True)
        sh(BIN, "generate", "--subscribers", str(a.subscribers), "--postgres", url)
    logs = os.path.join(ROOT, ".churngrid/bench/rebalance-logs")
    os.makedirs(logs, exist_ok=True)
    procs = {}
    out = {"subscribers": a.subscribers, "query_rate": a.rate}
    try:
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--postgres", url, "--model", MODEL,
                                  "--unreachable-after", "3"],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs["coordinator"] = coord
        endpoint = coord.stdout.readline().split()[-1]

        def worker(name):
            procs[name] = subprocess.Popen([BIN, "worker", "--coordinator", endpoint, "--name", name, "--threads", "1"],
                                           stdout=open(f"{logs}/{name}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)

        worker("worker-1")
        worker("worker-2")
        out["start_seconds"], _ = wait_settled(endpoint, 2)
        print(f"2 workers ready in {out['start_seconds']:.1f} s", flush=True)

        out["rescore_2_workers"] = rescore(endpoint)
        print(f"rescored with 2 workers: {out['rescore_2_workers']}", flush=True)

        q = Queries(endpoint, a.rate, a.subscribers)
        worker("worker-3")
        seconds, s = wait_settled(endpoint, 3)
        out["join"] = {"seconds_until_balanced": seconds, "shards": [w["shards"] for w in s["workers"]],
                       "subscribers": [w["subscribers"] for w in s["workers"]], "queries": q.stop()}
        print(f"join: {out['join']}", flush=True)

        q = Queries(endpoint, a.rate, a.subscribers)
        t = time.time()
        sh(BIN, "nodes", "drain", "worker-3", "--coordinator", endpoint)
        procs["worker-3"].wait(60)
        out["drain"] = {"seconds": time.time() - t, "exit_status": procs["worker-3"].returncode, "queries": q.stop()}
        print(f"drain: {out['drain']}", flush=True)

        before = {w["name"]: w["subscribers"] for w in status(endpoint)["workers"]}
        q = Queries(endpoint, a.rate, a.subscribers)
        t = time.time()
        procs["worker-2"].send_signal(signal.SIGKILL)
        procs["worker-2"].wait()
        seconds, s = wait_settled(endpoint, 1)
        out["failover"] = {"killed_subscribers": before.get("worker-2", 0), "seconds_until_served": seconds, "unreachable_after_seconds": 3,
                           "queries": q.stop()}
        print(f"failover: {out['failover']}", flush=True)

        out["rescore_1_worker"] = rescore(endpoint)
        print(f"rescored with 1 worker: {out['rescore_1_worker']}", flush=True)

        json.dump(out, open(os.path.join(ROOT, ".churngrid/bench/rebalance.json"), "w"), indent=1)
        print(json.dumps(out, indent=1))
    finally:
        stop_cluster(list(procs.items()))
        sh("bash", "Deploy/local/pg.sh", "stop", pgdir)


if __name__ == "__main__":
    main()
