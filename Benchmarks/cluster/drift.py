#!/usr/bin/env python3
"""Drift measurement at scale (docs/models.md, "Drift"), on a local cluster (coordinator + 2
workers, one machine) over the base already in .churngrid/pg-bench (`bench.py` makes it):

  * job 1 of the model version, then its drift measurement: the reference (a sample pass and a
    count pass over every shard, stored) — timed from the coordinator's log, with nothing else
    running; then job 2 and its drift (a count pass), the same way;
  * the reference, same run, same rows: NumPy bins the same profiles (read back from PostgreSQL)
    in the reference's stored edges, one feature after another (np.searchsorted, one core); its
    counts must equal job 2's stored counts exactly (the base is unchanged between the jobs).

Usage: python3 Benchmarks/cluster/drift.py --subscribers N   (after `make release`)
Results: .churngrid/bench/drift.json
"""
import argparse, json, os, re, subprocess, sys, time

from local import psql, sh, start_workers, stop_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")


def drift_seconds(log_path, job):
    """The coordinator's logged duration of job `job`'s drift measurement, once it is there."""
    pattern = re.compile(r"drift (?:reference taken|measured)")
    for _ in range(1200):
        for line in open(log_path):
            if pattern.search(line) and re.search(rf"\bjob={job}\b", line):
                return float(re.search(r"\bseconds=([0-9.]+)", line).group(1)), line.strip()
            if "drift was not measured" in line and re.search(rf"\bjob={job}\b", line):
                raise SystemExit(f"job {job}'s drift failed: {line}")
        time.sleep(0.5)
    raise SystemExit(f"no drift logged for job {job}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, required=True, help="the base's size in .churngrid/pg-bench (it is reused, never generated)")
    a = ap.parse_args()
    pgdir = os.path.join(ROOT, ".churngrid/pg-bench")
    url = sh("bash", "Deploy/local/pg.sh", "start", pgdir).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
    if have != a.subscribers:
        raise SystemExit(f"the base has {have:,} subscribers, not {a.subscribers:,}: run bench.py --subscribers {a.subscribers} first")
    # A fresh reference for this run: the stored ones are dropped.
    psql(url, "DO $$ BEGIN IF to_regclass('model_drift_reference') IS NOT NULL THEN DELETE FROM model_drift_reference; DELETE FROM model_drift; END IF; END $$")
    logs = os.path.join(ROOT, ".churngrid/bench/drift-logs")
    os.makedirs(logs, exist_ok=True)
    procs = []
    try:
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--postgres", url, "--model", MODEL],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs.append(("coordinator", coord))
        endpoint = coord.stdout.readline().split()[-1]
        coord.stdout.readline()
        st = start_workers(BIN, endpoint, logs, procs)
        print("cluster ready", flush=True)
        out = {"subscribers": a.subscribers, "workers": 2, "threads_per_worker": 1}
        for label in ("reference", "later"):
            t = time.time()
            job = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
            job_s = time.time() - t
            if job["state"] != "completed":
                raise SystemExit(f"job {job['id']} {job['state']}: {job.get('error')}")
            seconds, line = drift_seconds(f"{logs}/coordinator.log", job["id"])
            print(f"job {job['id']} in {job_s:.1f} s; its drift ({label}) in {seconds:.2f} s", flush=True)
            out[f"{label}_job_id"] = job["id"]
            out[f"{label}_job_seconds"] = job_s
            out[f"{label}_drift_seconds"] = seconds
        report = json.loads(sh(BIN, "drift", "--coordinator", endpoint, "--job", str(out["later_job_id"]), "--json"))
        out["later_worst_psi"] = report["features"][0]["psi"] if report["features"] else None
    finally:
        stop_cluster(procs)

    # The reference: NumPy bins the same rows in the stored edges (reading them is not timed).
    import numpy as np
    features = json.load(open(MODEL))["learner"]["feature_names"]
    edges = {}
    for row in psql(url, "SELECT feature, array_to_json(edges) FROM model_drift_reference").splitlines():
        name, e = row.split("|", 1)
        edges[name] = np.array(json.loads(e), dtype=np.float32)
    stored = {}
    for row in psql(url, f"SELECT feature, array_to_json(counts) FROM model_drift WHERE job_id = {out['later_job_id']}").splitlines():
        name, c = row.split("|", 1)
        stored[name] = json.loads(c)
    cols = ", ".join(f"coalesce({f}, 'NaN'::real)" for f in features)
    raw = subprocess.run(["psql", url, "-qAtX", "-c", f"COPY (SELECT {cols} FROM subscriber_profiles) TO STDOUT (FORMAT binary)"],
                         check=True, capture_output=True).stdout
    dtype = np.dtype([("n", ">i2")] + [(f"l{i}", ">i4") if k == 0 else (f"v{i}", ">f4") for i in range(len(features)) for k in (0, 1)])
    rows = np.frombuffer(raw[19:len(raw) - 2], dtype=dtype)
    X = [np.ascontiguousarray(rows[f"v{i}"].astype(np.float32)) for i in range(len(features))]
    del raw, rows
    runs, mismatched = [], []
    for r in range(3):
        t = time.time()
        counts = {}
        for i, f in enumerate(features):
            col, e = X[i], edges[f]
            missing = np.isnan(col)
            bins = np.bincount(np.searchsorted(e, col[~missing], side="left"), minlength=len(e) + 1)
            counts[f] = list(map(int, bins)) + [int(missing.sum())]
        runs.append(time.time() - t)
        if r == 0:
            mismatched = [f for f in features if counts[f] != stored.get(f)]
    out["numpy_binning_seconds_runs"] = runs
    out["numpy_binning_seconds"] = sorted(runs)[1]
    out["counts_equal_numpy"] = not mismatched
    out["ratio_later_drift_to_numpy"] = out["later_drift_seconds"] / out["numpy_binning_seconds"]
    out["ratio_later_drift_to_job"] = out["later_drift_seconds"] / out["later_job_seconds"]
    os.makedirs(os.path.join(ROOT, ".churngrid/bench"), exist_ok=True)
    json.dump(out, open(os.path.join(ROOT, ".churngrid/bench/drift.json"), "w"), indent=1)
    print(json.dumps(out, indent=1))
    if mismatched:
        raise SystemExit(f"counts differ from NumPy's for {mismatched[:5]}")


if __name__ == "__main__":
    main()
