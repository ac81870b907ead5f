#!/usr/bin/env python3
"""Full-base rescoring on a local cluster (coordinator + 2 workers, one machine), with its
references measured in the same run on the same machine and the same rows:

  * ChurnGrid: `churngrid rescore --wait` from the request to the published job (scores for every
    subscriber, risk bands, top-3 reasons for every subscriber, written to PostgreSQL, indexed,
    summarised and published): the first job under live-query load, then `--jobs N` more without
    it, alternating `--reasons none` and the default (reasons for all) when `--compare-reasons`;
    medians of those warm jobs are the figures compared;
  * XGBoost's own predictor on the same rows (the profiles read back from PostgreSQL), 2 threads,
    prediction only (building the DMatrix is not counted): the faster of predict() on a fresh
    DMatrix and inplace_predict(), the median of three warm runs each (a repeated predict() on
    the same DMatrix would return XGBoost's prediction cache);
  * psql's COPY of the same number of score rows into an unindexed table;
  * live-query latency at a steady rate while the job runs (`churngrid bench queries`).

Usage: python3 Benchmarks/cluster/bench.py [--subscribers 10000000] [--rate 200] [--reuse-base]
       [--jobs 3] [--compare-reasons]
(after `make release`). Results: .churngrid/bench/cluster.json
"""
import argparse, json, os, subprocess, sys, time

from local import psql, sh, stop_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=10_000_000)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--reuse-base", action="store_true", help="keep the base already in .churngrid/pg-bench if it has this many subscribers")
    ap.add_argument("--jobs", type=int, default=0, help="warm jobs after the first (without query load), each kind")
    ap.add_argument("--compare-reasons", action="store_true", help="also run --jobs jobs with --reasons none, alternating")
    a = ap.parse_args()
    os.chdir(ROOT)
    pgdir = os.path.join(ROOT, ".churngrid/pg-bench")
    url = sh("bash", "Deploy/local/pg.sh", "start", pgdir).strip().splitlines()[-1]
    # Every churngrid process (coordinator, workers) reads its own PostgreSQL settings.
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    procs = []
    try:
        have = None
        if a.reuse_base:
            try:
                have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
            except subprocess.CalledProcessError:
                pass
        if have == a.subscribers:
            print(f"reusing the base of {have:,} subscribers", flush=True)
        else:
            print(f"generating {a.subscribers:,} subscribers …", flush=True)
            sh(BIN, "generate", "--subscribers", str(a.subscribers), "--postgres", url)
        logs = os.path.join(ROOT, ".churngrid/bench/cluster-logs")
        os.makedirs(logs, exist_ok=True)
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--postgres", url, "--model", MODEL],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs.append(("coordinator", coord))
        endpoint = coord.stdout.readline().split()[-1]
        coord.stdout.readline()  # "coordinator leading term N": it holds the lease and serves
        for i in (1, 2):
            procs.append((f"worker-{i}", subprocess.Popen([BIN, "worker", "--coordinator", endpoint, "--name", f"worker-{i}", "--threads", "1"],
                                          stdout=open(f"{logs}/worker-{i}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)))
        t = time.time()
        while True:
            st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
            if len(st["workers"]) == 2 and st["unassignedShards"] == 0 and st["movingShards"] == 0:
                break
            time.sleep(0.5)
        load_s = time.time() - t
        workers = st["workers"]
        print(f"cluster ready in {load_s:.1f} s", flush=True)

        # Rescoring, with live queries at a steady rate meanwhile.
        queries = subprocess.Popen([BIN, "bench", "queries", "--stop-on-stdin-eof", "--coordinator", endpoint, "--rate", str(a.rate), "--duration", "600",
                                    "--subscribers", str(a.subscribers), "--json"], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        time.sleep(1)
        t = time.time()
        job = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
        rescore_s = time.time() - t
        q = json.loads(queries.communicate(input="")[0] or "{}")  # closing stdin ends the query load
        print(f"rescored in {rescore_s:.1f} s: {job['state']}", flush=True)

        # Warm jobs without query load: reasons for all (the default) and, alternating, none.
        warm = {"all": [], "none": []}
        kinds = ["none", "all"] if a.compare_reasons else ["all"]
        for i in range(a.jobs):
            for kind in kinds:
                t = time.time()
                j = json.loads(sh(BIN, "rescore", "--wait", "--json", "--reasons", kind, "--coordinator", endpoint))
                warm[kind].append(time.time() - t)
                print(f"job {j['id']} (reasons {kind}): {warm[kind][-1]:.1f} s, {j['state']}", flush=True)
                if j["state"] != "completed":
                    raise SystemExit(f"job {j['id']} {j['state']}: {j.get('error')}")
                job = j if kind == "all" else job
        # Each round ends with a default job, so the one published last (read below) has reasons for all.
        def median(xs):
            xs = sorted(xs)
            return None if not xs else xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
        warm_all, warm_none = median(warm["all"]), median(warm["none"])
        explained = int(psql(url, "SELECT count(*) FROM churn_scores_current WHERE model_name = 'churn' AND reason1 IS NOT NULL"))

        written = int(psql(url, "SELECT count(*) FROM churn_scores_current WHERE model_name = 'churn'"))
        distinct = int(psql(url, "SELECT count(DISTINCT subscriber_id) FROM churn_scores_current WHERE model_name = 'churn'"))

        # Reference 1: psql COPY of the same number of score rows.
        dump = os.path.join(ROOT, ".churngrid/bench/scores.copy")
        sh("psql", url, "-qAtX", "-c", f"\\copy (SELECT * FROM churn_scores WHERE job_id = {job['id']}) TO '{dump}' (FORMAT binary)")
        psql(url, "DROP TABLE IF EXISTS bench_copy_target; CREATE TABLE bench_copy_target (LIKE churn_scores)")
        t = time.time()
        sh("psql", url, "-qAtX", "-c", f"\\copy bench_copy_target FROM '{dump}' (FORMAT binary)")
        copy_s = time.time() - t
        psql(url, "DROP TABLE bench_copy_target")
        os.remove(dump)

        # Reference 2: XGBoost's predictor on the same rows, 2 threads.
        import numpy as np, xgboost as xgb
        features = json.load(open(MODEL))["learner"]["feature_names"]
        cols = ", ".join(f"coalesce({f}, 'NaN'::real)" for f in features)
        raw = subprocess.run(["psql", url, "-qAtX", "-c", f"COPY (SELECT {cols} FROM subscriber_profiles) TO STDOUT (FORMAT binary)"],
                             check=True, capture_output=True).stdout
        dtype = np.dtype([("n", ">i2")] + [(f"l{i}", ">i4") if k == 0 else (f"v{i}", ">f4") for i in range(len(features)) for k in (0, 1)])
        rows = np.frombuffer(raw[19:len(raw) - 2], dtype=dtype)
        X = np.empty((len(rows), len(features)), dtype=np.float32)
        for i in range(len(features)):
            X[:, i] = rows[f"v{i}"]
        booster = xgb.Booster(model_file=MODEL)
        booster.set_param({"nthread": 2})
        # XGBoost caches a DMatrix's predictions: a second predict() on the same DMatrix returns
        # the cache (0.1 s for 10M rows). Each timed run predicts a DMatrix it has not seen
        # (building it is not counted), and inplace_predict (no cache) is timed too; the faster
        # of the two medians is the reference.
        booster.predict(xgb.DMatrix(X[:100_000], missing=np.nan, nthread=2, feature_names=features))  # warm
        runs, inplace = [], []
        for _ in range(3):
            d = xgb.DMatrix(X, missing=np.nan, nthread=2, feature_names=features)
            t = time.time()
            booster.predict(d)
            runs.append(time.time() - t)
            del d
            t = time.time()
            booster.inplace_predict(X, missing=np.nan)
            inplace.append(time.time() - t)
        xgb_s = min(sorted(runs)[1], sorted(inplace)[1])  # the faster median of three warm runs

        out = {
            "subscribers": a.subscribers, "workers": 2, "threads_per_worker": 1,
            "rescore_seconds": rescore_s, "job_seconds": job["seconds"], "job_state": job["state"],
            "scores_written": written, "distinct_subscribers": distinct,
            "xgboost_predict_seconds_2_threads": xgb_s, "ratio_to_xgboost": rescore_s / xgb_s,
            "xgboost_predict_dmatrix_runs": runs, "xgboost_inplace_predict_runs": inplace,
            "psql_copy_seconds": copy_s, "ratio_to_psql_copy": rescore_s / copy_s,
            "warm_jobs_reasons_all_seconds": warm["all"], "warm_jobs_reasons_none_seconds": warm["none"],
            "warm_median_reasons_all_seconds": warm_all, "warm_median_reasons_none_seconds": warm_none,
            "ratio_reasons_all_to_none": warm_all / warm_none if warm_all and warm_none else None,
            "warm_ratio_to_xgboost": warm_all / xgb_s if warm_all else None,
            "subscribers_with_reasons": explained,
            "cluster_load_seconds": load_s,
            "worker_profile_bytes_per_subscriber": sum(w["profileBytes"] for w in workers) / max(1, sum(w["subscribers"] for w in workers)),
            "worker_resident_bytes_per_subscriber": sum(w["residentBytes"] for w in workers) / max(1, sum(w["subscribers"] for w in workers)),
            "query_rate": a.rate, "queries": q,
        }
        os.makedirs(os.path.join(ROOT, ".churngrid/bench"), exist_ok=True)
        json.dump(out, open(os.path.join(ROOT, ".churngrid/bench/cluster.json"), "w"), indent=1)
        print(json.dumps(out, indent=1))
    finally:
        stop_cluster(procs)
        sh("bash", "Deploy/local/pg.sh", "stop", pgdir)


if __name__ == "__main__":
    main()
