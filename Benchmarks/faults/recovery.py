#!/usr/bin/env python3
"""Recovery times of the faults issue 12 names, each with its reference measured in the same run
on the same machine (coordinator(s) + 2 workers over a private PostgreSQL, fsync off):

  * PostgreSQL restarted mid-job: the job's time with the restart, against the same job without
    it and the restart's own duration (goal: added time <= restart time + 5 s);
  * a worker frozen (SIGSTOP) for --freeze seconds mid-job, then resumed: how long after SIGCONT it
    serves shards again (goal: <= 5 s);
  * the leading coordinator killed (SIGKILL) with a standby on the same database: how long until
    every shard is served through the standby (goal: <= lease + 5 s).

Usage: python3 Benchmarks/faults/recovery.py [--subscribers 1000000] [--lease 15] [--freeze 30]
(after `make release`). Results: .churngrid/bench/recovery.json
"""
import argparse, json, os, signal, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks/cluster"))
from local import stop_cluster  # noqa: E402

BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")
PG = os.path.join(ROOT, "Deploy/local/pg.sh")


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def psql(url, sql):
    return sh("psql", url, "-qAtX", "-c", sql).strip()


class Cluster:
    """Coordinators and workers as `churngrid` processes; the environment carries the database URL."""

    def __init__(self, logs, coordinators, lease, extra=()):
        self.procs, self.logs = [], logs
        os.makedirs(logs, exist_ok=True)
        self.endpoints = []
        for i in range(coordinators):
            name = "coordinator" if i == 0 else f"coordinator-{i + 1}"
            p = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--name", name, "--model", MODEL,
                                  "--lease-seconds", str(lease), *extra],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/{name}.log", "w"), stdin=subprocess.PIPE, text=True)
            self.procs.append((name, p))
            self.endpoints.append(p.stdout.readline().split()[-1])
            if i == 0:
                line = p.stdout.readline()  # "coordinator leading term N": the first leads
                assert line.startswith("coordinator leading"), line
        self.endpoint = ",".join(self.endpoints)
        for i in (1, 2):
            self.procs.append((f"worker-{i}", subprocess.Popen(
                [BIN, "worker", "--coordinator", self.endpoint, "--name", f"worker-{i}", "--threads", "1"],
                stdout=open(f"{logs}/worker-{i}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)))

    def pid(self, name):
        return next(p.pid for n, p in self.procs if n == name)

    def status(self):
        return json.loads(sh(BIN, "status", "--coordinator", self.endpoint, "--json", timeout=30))

    def nodes(self):
        return json.loads(sh(BIN, "nodes", "list", "--coordinator", self.endpoint, "--json", timeout=30))

    def ready(self, timeout=900):
        t = time.time()
        while time.time() - t < timeout:
            try:
                st = self.status()
                if len(st["workers"]) == 2 and st["unassignedShards"] == 0 and st["movingShards"] == 0:
                    return st
            except Exception:
                pass
            time.sleep(0.2)
        raise RuntimeError("the cluster was not ready")

    def start_job(self):
        return json.loads(sh(BIN, "rescore", "--json", "--coordinator", self.endpoint))["job_id"]

    def job(self):
        return self.status().get("job")

    def wait_job(self, job_id, timeout=1800):
        t = time.time()
        while time.time() - t < timeout:
            try:
                j = self.job()
                if j and j["id"] == job_id and j["state"] != "running":
                    return j
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"job {job_id} did not end")

    def wait_progress(self, job_id, fraction):
        while True:
            j = self.job()
            if j["id"] == job_id and (j["state"] != "running" or j["shardsDone"] >= fraction * j["shardCount"]):
                return j
            time.sleep(0.02)

    def stop(self):
        stop_cluster([("coordinator" if n.startswith("coordinator") else n, p) for n, p in self.procs])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--lease", type=float, default=15)
    ap.add_argument("--freeze", type=float, default=30)
    a = ap.parse_args()
    os.chdir(ROOT)
    pgdir = os.path.join(ROOT, ".churngrid/pg-recovery")
    url = sh("bash", PG, "start", pgdir).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    logs = os.path.join(ROOT, ".churngrid/bench/recovery-logs")
    out = {"subscribers": a.subscribers, "postgres": "private PostgreSQL 15, fsync off"}
    cluster = None
    try:
        have = None
        try:
            have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
        except subprocess.CalledProcessError:
            pass
        if have != a.subscribers:
            print(f"generating {a.subscribers:,} subscribers …", flush=True)
            psql(url, "DROP TABLE IF EXISTS subscriber_profiles CASCADE")
            sh(BIN, "generate", "--subscribers", str(a.subscribers), "--postgres", url)

        # 1. PostgreSQL restarted mid-job, against the same job without a fault.
        cluster = Cluster(f"{logs}/pg", 1, a.lease)
        cluster.ready()
        j = cluster.wait_job(cluster.start_job())
        reference = j["seconds"]
        job_id = cluster.start_job()
        cluster.wait_progress(job_id, 0.3)
        t = time.time()
        sh("bash", PG, "restart", pgdir)
        restart_s = time.time() - t
        j = cluster.wait_job(job_id)
        out["postgres_restart"] = {
            "job_state": j["state"], "job_seconds": j["seconds"], "reference_job_seconds": reference,
            "added_seconds": j["seconds"] - reference, "restart_seconds": restart_s, "retries": j["retries"],
            "goal": "added <= restart + 5 s", "met": j["state"] == "completed" and j["seconds"] - reference <= restart_s + 5,
        }
        print("postgres restart:", out["postgres_restart"], flush=True)

        # 2. A worker frozen mid-job, then resumed.
        job_id = cluster.start_job()
        cluster.wait_progress(job_id, 0.2)
        pid = cluster.pid("worker-1")
        os.kill(pid, signal.SIGSTOP)
        time.sleep(a.freeze)
        os.kill(pid, signal.SIGCONT)
        resumed = time.time()
        serving = None
        while time.time() - resumed < 120:
            nodes = {n["name"]: n for n in cluster.nodes()}
            w = nodes.get("worker-1")
            if w and w["shards"] > 0 and w["readyShards"] == w["shards"]:
                serving = time.time() - resumed
                break
            time.sleep(0.05)
        j = cluster.wait_job(job_id)
        out["frozen_worker"] = {"frozen_seconds": a.freeze, "serving_again_seconds_after_resume": serving, "job_state": j["state"],
                                "job_retries": j["retries"], "goal": "<= 5 s", "met": serving is not None and serving <= 5}
        print("frozen worker:", out["frozen_worker"], flush=True)
        cluster.stop()

        # 3. The leader killed with a standby on the same database.
        cluster = Cluster(f"{logs}/takeover", 2, a.lease)
        cluster.ready()
        os.kill(cluster.pid("coordinator"), signal.SIGKILL)
        killed = time.time()
        took = None
        while time.time() - killed < a.lease + 120:
            try:
                # Asked at the standby's own endpoint: the takeover's time, not a client's search.
                st = json.loads(sh(BIN, "status", "--coordinator", cluster.endpoints[1], "--json", timeout=30))
                if st["coordinator"].startswith("coordinator-2@") and len(st["workers"]) == 2 and st["unassignedShards"] == 0:
                    took = time.time() - killed
                    break
            except Exception:
                pass
            time.sleep(0.1)
        out["coordinator_takeover"] = {"lease_seconds": a.lease, "all_shards_served_after_seconds": took,
                                       "goal": "<= lease + 5 s", "met": took is not None and took <= a.lease + 5}
        print("coordinator takeover:", out["coordinator_takeover"], flush=True)
    finally:
        if cluster:
            cluster.stop()
        sh("bash", PG, "stop", pgdir)
    os.makedirs(os.path.join(ROOT, ".churngrid/bench"), exist_ok=True)
    json.dump(out, open(os.path.join(ROOT, ".churngrid/bench/recovery.json"), "w"), indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
