#!/usr/bin/env python3
"""Scale out, drain, fail over: a local cluster on one machine over the 10M base of bench.py.

Three clusters (coordinator + 2 workers, 1 scoring thread each), live queries at a steady rate
during every phase (`churngrid bench queries`, straight to the owning node with a cached shard map,
as `churngrid score` does):
  --handoff stream (the default): rescoring with 2 workers; join: a third worker joins, time until
     balanced and failed queries meanwhile (moved profiles streamed from their old owners over
     ZeroMQ); drain: `churngrid nodes drain worker-3`; failover: worker-2 (half the base) SIGKILLed,
     time until every shard is served again (detection after --unreachable-after 3, then reload
     from PostgreSQL by the survivor); rescoring with the 1 remaining worker.
  --handoff postgres: the same join, the moved profiles reloaded from PostgreSQL.
  --standbys: failover of worker-2 when every shard has a warm standby on the other worker.
Reference in the same run: psql's binary COPY of the third of the profiles a join moves.

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


def wait_settled(endpoint, workers, timeout=900, standbys=False):
    t = time.time()
    while time.time() - t < timeout:
        s = status(endpoint)
        if len(s["workers"]) == workers and s["unassignedShards"] == 0 and s["movingShards"] == 0 and not s["silentWorkers"] \
                and (not standbys or sum(w["standbyShards"] for w in s["workers"]) == s["shardCount"]):
            return time.time() - t, s
        time.sleep(0.2)
    raise SystemExit(f"the cluster did not settle on {workers} workers within {timeout} s")


class Queries:
    """`churngrid bench queries` in the background until stopped."""

    def __init__(self, endpoint, rate, subscribers):
        self.p = subprocess.Popen([BIN, "bench", "queries", "--stop-on-stdin-eof", "--coordinator", endpoint, "--rate", str(rate), "--duration", "3600",
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
    # Every churngrid process (coordinator, workers) reads its own PostgreSQL settings.
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    try:
        have = int(sh("psql", url, "-qAtX", "-c", "SELECT count(*) FROM subscriber_profiles").strip() or 0)
    except subprocess.CalledProcessError:
        print(f"no base in {pgdir} yet (bench.py makes one; this script generates it now)", flush=True)
        have = 0
    if have != a.subscribers:
        print(f"generating {a.subscribers:,} subscribers …", flush=True)
        sh(BIN, "generate", "--subscribers", str(a.subscribers), "--postgres", url)
    out = {"subscribers": a.subscribers, "query_rate": a.rate}
    try:
        # Reference for a reload from PostgreSQL: psql's binary COPY of a third of the profiles
        # (what a join to 3 workers moves), to /dev/null.
        cols = sh("psql", url, "-qAtX", "-c", "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns "
                  "WHERE table_name = 'subscriber_profiles' AND column_name NOT IN ('shard_key', 'updated_at')").strip()
        t = time.time()
        sh("psql", url, "-qAtX", "-c", f"\\copy (SELECT {cols} FROM subscriber_profiles WHERE shard_key < {2**31 // 3}) TO '/dev/null' (FORMAT binary)")
        out["reference_psql_copy_third_seconds"] = time.time() - t
        print(f"reference: psql binary COPY of a third of the profiles: {out['reference_psql_copy_third_seconds']:.1f} s", flush=True)

        out["stream"] = scenario(url, a, "stream", standbys=False, phases=["rescore2", "join", "drain", "failover", "rescore1"])
        out["postgres"] = scenario(url, a, "postgres", standbys=False, phases=["join"])
        out["standbys"] = scenario(url, a, "stream", standbys=True, phases=["failover"])
        json.dump(out, open(os.path.join(ROOT, ".churngrid/bench/rebalance.json"), "w"), indent=1)
        print(json.dumps(out, indent=1))
    finally:
        sh("bash", "Deploy/local/pg.sh", "stop", pgdir)


def scenario(url, a, handoff, standbys, phases):
    """One cluster (coordinator + 2 workers) with `--handoff handoff` [and `--standbys`] through `phases`."""
    name = handoff + ("-standbys" if standbys else "")
    print(f"--- cluster with --handoff {handoff}{' --standbys' if standbys else ''}", flush=True)
    logs = os.path.join(ROOT, f".churngrid/bench/rebalance-logs/{name}")
    os.makedirs(logs, exist_ok=True)
    procs = {}
    out = {}
    try:
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--postgres", url, "--model", MODEL,
                                  "--unreachable-after", "3", "--handoff", handoff, "--rejoin-grace", "0"] + (["--standbys"] if standbys else []),
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs["coordinator"] = coord
        endpoint = coord.stdout.readline().split()[-1]
        coord.stdout.readline()  # "coordinator leading term N": it holds the lease and serves

        def worker(name):
            procs[name] = subprocess.Popen([BIN, "worker", "--coordinator", endpoint, "--name", name, "--threads", "1"],
                                           stdout=open(f"{logs}/{name}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)

        worker("worker-1")
        worker("worker-2")
        out["start_seconds"], s = wait_settled(endpoint, 2, standbys=standbys)
        out["start_workers"] = [{k: w[k] for k in ("name", "shards", "standbyShards", "subscribers", "profileBytes", "standbyBytes", "residentBytes")}
                                for w in s["workers"]]
        print(f"2 workers ready in {out['start_seconds']:.1f} s: {out['start_workers']}", flush=True)

        if "rescore2" in phases:
            out["rescore_2_workers"] = rescore(endpoint)
            print(f"rescored with 2 workers: {out['rescore_2_workers']}", flush=True)

        if "join" in phases:
            q = Queries(endpoint, a.rate, a.subscribers)
            worker("worker-3")
            seconds, s = wait_settled(endpoint, 3)
            out["join"] = {"seconds_until_balanced": seconds, "shards": [w["shards"] for w in s["workers"]],
                           "subscribers": [w["subscribers"] for w in s["workers"]], "queries": q.stop()}
            print(f"join: {out['join']}", flush=True)

        if "drain" in phases:
            q = Queries(endpoint, a.rate, a.subscribers)
            t = time.time()
            sh(BIN, "nodes", "drain", "worker-3", "--coordinator", endpoint)
            procs["worker-3"].wait(60)
            out["drain"] = {"seconds": time.time() - t, "exit_status": procs["worker-3"].returncode, "queries": q.stop()}
            print(f"drain: {out['drain']}", flush=True)

        if "failover" in phases:
            before = {w["name"]: w["subscribers"] for w in status(endpoint)["workers"]}
            q = Queries(endpoint, a.rate, a.subscribers)
            t = time.time()
            procs["worker-2"].send_signal(signal.SIGKILL)
            procs["worker-2"].wait()
            seconds, s = wait_settled(endpoint, 1)
            out["failover"] = {"killed_subscribers": before.get("worker-2", 0), "seconds_until_served": seconds, "unreachable_after_seconds": 3,
                               "queries": q.stop()}
            print(f"failover: {out['failover']}", flush=True)

        if "rescore1" in phases:
            out["rescore_1_worker"] = rescore(endpoint)
            print(f"rescored with 1 worker: {out['rescore_1_worker']}", flush=True)
        return out
    finally:
        stop_cluster(list(procs.items()))


if __name__ == "__main__":
    main()
