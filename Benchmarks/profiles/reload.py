#!/usr/bin/env python3
"""Start and reload benchmark (issue 18, part 5): a cluster's cold start and a lost worker's
reload, from per-shard profile snapshots and from the wide table, each beside psql's binary COPY of
the same rows from subscriber_profiles in the same run, on the bench PostgreSQL (.churngrid/pg-bench).

Usage: python3 Benchmarks/profiles/reload.py [--subscribers 10000000] [--reuse-base] [--binary PATH] [--pg DIR] [--json FILE]
       (the binary defaults to $CHURNGRID_BIN, else .build/release/churngrid)

Measures, coordinator + 2 workers (1 scoring thread each), `coordinator --min-workers 2`:
  reference   psql `COPY (SELECT subscriber_id, <the 36 feature columns> FROM subscriber_profiles
              WHERE <half of the key range>) TO STDOUT (FORMAT binary)` > /dev/null: one half alone,
              and both halves at once (two psql, as the two workers load theirs at once); the id
              column alone for the first half;
  start       from spawning the workers until every shard is ready: from the table (no snapshots),
              then from snapshots;
  snapshot    `churngrid profiles snapshot` (time and bytes);
  reload      a worker SIGKILLed: until the survivor serves its 512 shards again, from snapshots, then
              (snapshots deleted, the same move) from the table.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks", "cluster"))
from local import psql, sh, stop_cluster  # noqa: E402

MODEL = os.path.join(ROOT, "models/churn-default.json")


def features():
    import re
    return re.findall(r'\.init\(name: "([^"]+)"', open(os.path.join(ROOT, "Sources/SubscriberProfiles/FeatureCatalogue.swift")).read())


def copy_cmd(url, columns, lo, hi):
    return ["psql", url, "-qAtX", "-c",
            f"COPY (SELECT {columns} FROM subscriber_profiles WHERE shard_key >= {lo} AND shard_key < {hi}) TO STDOUT (FORMAT binary)"]


def timed_copies(url, columns, ranges):
    """Runs one psql COPY per range at once, output to /dev/null; seconds until all ended."""
    t = time.perf_counter()
    ps = [subprocess.Popen(copy_cmd(url, columns, lo, hi), stdout=subprocess.DEVNULL) for lo, hi in ranges]
    for p in ps:
        if p.wait() != 0:
            raise SystemExit("psql COPY failed")
    return time.perf_counter() - t


def load_avg():
    return open("/proc/loadavg").read().split()[:3]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=10_000_000)
    ap.add_argument("--reuse-base", action="store_true")
    ap.add_argument("--binary", default=os.environ.get("CHURNGRID_BIN", os.path.join(ROOT, ".build/release/churngrid")))
    ap.add_argument("--json", default=None)
    ap.add_argument("--client", default=None, help="the churngrid binary for `status` calls (default: --binary)")
    ap.add_argument("--pg", default=os.path.join(ROOT, ".churngrid/pg-bench"),
                    help="the PostgreSQL directory (Deploy/local/pg.sh); a cluster of its own must not share it with another benchmark: coordinators on one database share a lease")
    a = ap.parse_args()
    BIN = a.binary
    CLIENT = a.client or a.binary
    os.chdir(ROOT)
    url = sh("bash", "Deploy/local/pg.sh", "start", a.pg).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    have = None
    if a.reuse_base:
        try:
            have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
        except subprocess.CalledProcessError:
            pass
    if have != a.subscribers:
        print(f"generating {a.subscribers:,} subscribers …", flush=True)
        sh(BIN, "generate", "--subscribers", str(a.subscribers), "--postgres", url)
    sh(BIN, "profiles", "migrate", "--postgres", url)
    out = {"subscribers": a.subscribers, "load_before": load_avg()}
    cols = "subscriber_id, " + ", ".join(features())
    half = [(0, 1 << 30), (1 << 30, 1 << 31)]

    # References: psql's COPY of the same rows, warm (a first pass reads the table into the cache).
    timed_copies(url, cols, half)
    out["psql_copy_half_seconds"] = timed_copies(url, cols, half[:1])
    out["psql_copy_id_only_half_seconds"] = timed_copies(url, "subscriber_id", half[:1])
    out["psql_copy_both_halves_at_once_seconds"] = timed_copies(url, cols, half)
    print(f"psql COPY: half {out['psql_copy_half_seconds']:.2f} s, id only {out['psql_copy_id_only_half_seconds']:.2f} s, "
          f"both halves at once {out['psql_copy_both_halves_at_once_seconds']:.2f} s", flush=True)

    logs = os.path.join(ROOT, ".churngrid/bench/reload-logs")
    os.makedirs(logs, exist_ok=True)

    def status(endpoint):
        return json.loads(sh(CLIENT, "status", "--coordinator", endpoint, "--json"))

    def wait_ready(endpoint, workers, timeout=1800, gone=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = status(endpoint)
            # A killed worker counts as gone once the coordinator dropped it (not merely silent).
            if gone and (gone in [w["name"] for w in st["workers"]] or gone in st.get("silentWorkers", [])):
                time.sleep(0.1)
                continue
            if len(st["workers"]) == workers and not st.get("silentWorkers") and st["unassignedShards"] == 0 and st["movingShards"] == 0:
                return st
            time.sleep(0.2)
        raise SystemExit("the cluster did not become ready")

    def start_cluster(tag):
        procs = []
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--postgres", url, "--model", MODEL, "--min-workers", "2",
                                  "--rejoin-grace", "0"],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/{tag}-coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs.append(("coordinator", coord))
        endpoint = coord.stdout.readline().split()[-1]
        coord.stdout.readline()  # leading term N
        t = time.perf_counter()
        for i in (1, 2):
            procs.append((f"worker-{i}", spawn_worker(endpoint, f"worker-{i}", tag)))
        st = wait_ready(endpoint, 2)
        return procs, endpoint, time.perf_counter() - t, st

    def spawn_worker(endpoint, name, tag):
        return subprocess.Popen([BIN, "worker", "--coordinator", endpoint, "--name", name, "--threads", "1"],
                                stdout=open(f"{logs}/{tag}-{name}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)

    def loads(st):
        return {l["worker"]: {k: l[k] for k in ("fromTable", "fromSnapshot", "streamed", "snapshotsRejected")} for l in st.get("shardLoads") or []}

    # 1. Cold start from the table.
    psql(url, "DELETE FROM churngrid_shard_snapshots")
    procs, endpoint, s, st = start_cluster("table")
    out["start_from_table_seconds"], out["start_from_table_loads"] = s, loads(st)
    print(f"cold start from the table: {s:.2f} s {loads(st)}", flush=True)

    # 2. Snapshot.
    t = time.perf_counter()
    snap = json.loads(sh(CLIENT, "profiles", "snapshot", "--coordinator", endpoint, "--json"))
    out["snapshot_seconds"] = time.perf_counter() - t
    out["snapshot_bytes"], out["snapshot_shards"] = snap["bytes"], snap["written"]
    out["snapshot_table_bytes"] = int(psql(url, "SELECT pg_total_relation_size('churngrid_shard_snapshots')"))
    out["wide_table_bytes"] = int(psql(url, "SELECT pg_total_relation_size('subscriber_profiles')"))
    print(f"snapshot: {snap['written']} shards, {snap['bytes'] / 1e6:.0f} MB ({snap['bytes'] / max(1, snap['subscribers']):.0f} B/subscriber) "
          f"in {out['snapshot_seconds']:.2f} s", flush=True)
    stop_cluster(procs)

    # 3. Cold start from snapshots.
    procs, endpoint, s, st = start_cluster("snapshot")
    out["start_from_snapshots_seconds"], out["start_from_snapshots_loads"] = s, loads(st)
    print(f"cold start from snapshots: {s:.2f} s {loads(st)}", flush=True)

    # 4. Reload of a lost worker's shards from snapshots: worker-2 killed, worker-1 takes them.
    def hosted_seconds(log, skip):
        """The load seconds of the "shards hosted" lines of `log` after the first `skip`."""
        import re
        lines = [l for l in open(log).read().splitlines() if "shards hosted" in l]
        return len(lines), sum(float(m.group(1)) for l in lines[skip:] for m in [re.search(r" seconds=([0-9.e-]+) seconds", l)] if m)

    def kill_and_time(name, survivors):
        p = dict(procs)[name]
        survivor_log = f"{logs}/snapshot-worker-1.log"
        skip, _ = hosted_seconds(survivor_log, 0)
        before = time.perf_counter()
        p.send_signal(signal.SIGKILL)
        p.wait()
        # Detection (--unreachable-after, 3 s) is counted here; the loads alone are in the
        # survivor's "shards hosted" lines.
        st = wait_ready(endpoint, survivors, gone=name)
        return time.perf_counter() - before, hosted_seconds(survivor_log, skip)[1], st

    s, load_s, st = kill_and_time("worker-2", 1)
    out["reload_from_snapshots_seconds"], out["reload_from_snapshots_load_seconds"], out["reload_from_snapshots_loads"] = s, load_s, loads(st)
    print(f"reload after a kill, from snapshots: {s:.2f} s incl. 3 s detection, loading {load_s:.2f} s {loads(st)}", flush=True)

    # 5. The same move from the table: a new worker takes half (streamed), snapshots deleted, killed.
    procs.append(("worker-3", spawn_worker(endpoint, "worker-3", "snapshot")))
    wait_ready(endpoint, 2)
    psql(url, "DELETE FROM churngrid_shard_snapshots")
    s, load_s, st = kill_and_time("worker-3", 1)
    out["reload_from_table_seconds"], out["reload_from_table_load_seconds"], out["reload_from_table_loads"] = s, load_s, loads(st)
    print(f"reload after a kill, from the table: {s:.2f} s incl. 3 s detection, loading {load_s:.2f} s {loads(st)}", flush=True)
    stop_cluster(procs)

    out["load_after"] = load_avg()
    ref = out["psql_copy_both_halves_at_once_seconds"]
    out["ratio_start_snapshots_to_psql"] = out["start_from_snapshots_seconds"] / ref
    out["ratio_start_table_to_psql"] = out["start_from_table_seconds"] / ref
    out["speedup_start_snapshots_vs_table"] = out["start_from_table_seconds"] / out["start_from_snapshots_seconds"]
    out["ratio_reload_snapshots_load_to_psql_half"] = out["reload_from_snapshots_load_seconds"] / out["psql_copy_half_seconds"]
    out["ratio_reload_table_load_to_psql_half"] = out["reload_from_table_load_seconds"] / out["psql_copy_half_seconds"]
    print(json.dumps(out, indent=1))
    if a.json:
        json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
