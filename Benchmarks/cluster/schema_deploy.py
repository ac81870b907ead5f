#!/usr/bin/env python3
"""Deploying a model that reads 40 schema features the workers do not hold yet, under open-loop
query load (docs/models.md, "What the cluster reads"), on a local cluster (coordinator with
standbys + 2 workers, one machine) over the base in .churngrid/pg-bench (generated when it does not
have --subscribers profiles).

  * The schema becomes the built-in catalogue plus 40 number features x01…x40 (`profiles migrate
    --schema`, online), filled by one UPDATE and a VACUUM FULL (set-up, reported, not a figure).
  * A model is trained with XGBoost on a 100,000-subscriber sample: it reads the 40 new features
    and 8 of the catalogue's.
  * reference: `churngrid bench queries --rate R --duration D` with nothing else running;
  * deploy: the same load, with `models add` + `models deploy` of that model at D/2. Every worker
    loads the 40 columns of all the shards it holds (owner and standby copies) before the switch;
    reference, same run: psql's binary COPY of the same 40 columns of the whole base (to
    /dev/null), which the workers' loads together read twice (owner and standby copies).
  * memory: each worker's profile bytes per subscriber copy held (`status --json`), before and after.

At the end the 40 columns are dropped again (`profiles migrate --allow-drop` back to the default
schema, VACUUM FULL), so the other benchmarks find the base as it was.

Usage: python3 Benchmarks/cluster/schema_deploy.py --subscribers N [--rate R] [--duration D]   (after `make release`)
Results: .churngrid/bench/schema_deploy.json (PostgreSQL runs with fsync off here: see Deploy/local/pg.sh)
"""
import argparse, json, os, re, subprocess, time

from local import bench_base, wait_for_standbys, psql, query_load, sh, start_coordinator, start_workers, stop_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")
EXTRA = [f"x{i:02d}" for i in range(1, 41)]
CATALOGUE = ["tenure_months", "arpu_30d", "complaints_90d", "data_mb_30d", "days_to_contract_end", "is_prepaid", "dropped_call_rate", "region"]


def copy_seconds(url, columns):
    """psql's binary COPY of `columns` of every profile, to /dev/null (seconds, median of 3)."""
    runs = []
    for _ in range(3):
        t = time.time()
        subprocess.run(["psql", url, "-qAtX", "-c", f"COPY (SELECT subscriber_id, {', '.join(columns)} FROM subscriber_profiles) TO STDOUT (FORMAT binary)"],
                       check=True, stdout=subprocess.DEVNULL)
        runs.append(time.time() - t)
    return sorted(runs)[1], runs


def worker_bytes(endpoint):
    st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
    return [{k: w.get(k) for k in ("name", "shards", "standbyShards", "subscribers", "profileBytes", "standbyBytes", "residentBytes")} for w in st["workers"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--duration", type=float, default=30)
    a = ap.parse_args()
    url, have = bench_base(BIN, ROOT, a.subscribers)
    bench = os.path.join(ROOT, ".churngrid/bench")
    logs = os.path.join(bench, "schema-deploy-logs")
    os.makedirs(logs, exist_ok=True)
    # A new cluster each run: the served model and the registry start from --model.
    psql(url, "DO $$ BEGIN IF to_regclass('model_served') IS NOT NULL THEN DELETE FROM model_served; DELETE FROM model_registry; END IF; END $$")
    out = {"subscribers": have, "workers": 2, "threads_per_worker": 1, "standbys": True, "rate": a.rate, "duration": a.duration,
           "extra_features": len(EXTRA), "postgres": "private PostgreSQL 15, fsync off (Deploy/local/pg.sh)", "cores": os.cpu_count()}

    # The schema: the catalogue and 40 more number features, filled with values a model can use.
    default = json.loads(sh(BIN, "profiles", "schema", "--default"))
    wide = dict(default)
    wide["features"] = default["features"] + [{"name": x, "type": "number", "group": "benchmark"} for x in EXTRA]
    schema_file = os.path.join(bench, "schema-deploy.json")
    json.dump(wide, open(schema_file, "w"))
    t = time.time()
    sh(BIN, "profiles", "migrate", "--schema", schema_file, "--postgres", url)
    out["migrate_seconds"] = time.time() - t
    t = time.time()
    sets = ", ".join(f"{x} = ((subscriber_id * {7919 + 104729 * i}) % 1000003) / 1000003.0" for i, x in enumerate(EXTRA))
    psql(url, f"UPDATE subscriber_profiles SET {sets}")
    psql(url, "VACUUM (FULL, ANALYZE) subscriber_profiles")
    out["fill_seconds"] = time.time() - t
    print(f"schema of {len(wide['features'])} features, filled in {out['fill_seconds']:.1f} s", flush=True)

    # The model: XGBoost on a sample, reading the 40 new features and 8 of the catalogue's.
    import numpy as np, xgboost as xgb
    features = CATALOGUE + EXTRA
    cols = ", ".join(f"coalesce({f}, 'NaN'::real)" for f in features)
    text = sh("psql", url, "-qAtX", "-F", ",", "-c", f"SELECT {cols} FROM subscriber_profiles TABLESAMPLE SYSTEM (20) LIMIT 100000")
    X = np.array([[float(v) for v in line.split(",")] for line in text.splitlines()], dtype=np.float32)
    rng = np.random.default_rng(7)
    logit = -3 + 2.5 * X[:, len(CATALOGUE)] - 1.5 * X[:, len(CATALOGUE) + 1] + 0.02 * np.nan_to_num(X[:, 2]) + 1.2 * (X[:, len(CATALOGUE) + 7] > 0.8)
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": 2, "seed": 7},
                        xgb.DMatrix(X, label=y, feature_names=features), num_boost_round=100)
    model_file = os.path.join(bench, "schema-deploy-model.json")
    booster.save_model(model_file)

    procs = []
    try:
        endpoint = start_coordinator(BIN, url, MODEL, logs, procs, ["--standbys"])
        start_workers(BIN, endpoint, logs, procs)
        wait_for_standbys(BIN, endpoint)
        print("cluster ready", flush=True)
        out["memory_before"] = worker_bytes(endpoint)
        out["reference"] = query_load(BIN, endpoint, a.rate, a.duration, have)
        print("reference", json.dumps(out["reference"]["queries"]), flush=True)

        def deploy():
            t = time.time()
            added = json.loads(sh(BIN, "models", "add", "--name", "wide", "--file", model_file, "--coordinator", endpoint, "--json"))
            added_seconds = time.time() - t
            d = json.loads(sh(BIN, "models", "deploy", "wide", "--version", added["version"], "--coordinator", endpoint, "--json"))
            d["add_seconds"] = added_seconds
            return d
        out["deploy"] = query_load(BIN, endpoint, a.rate, a.duration, have, deploy)
        print("deploy", json.dumps(out["deploy"]), flush=True)
        out["memory_after"] = worker_bytes(endpoint)
        # A job with the new model: every subscriber scored from the extra columns.
        out["job"] = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
    finally:
        stop_cluster(procs)
    loads = []
    for i in (1, 2):
        for line in open(f"{logs}/worker-{i}.log"):
            if "extra feature columns loaded" in line:
                m = re.search(r"seconds=([0-9.]+)", line)
                s = re.search(r"shards=(\d+)", line)
                loads.append({"worker": i, "seconds": float(m.group(1)), "shards": int(s.group(1))})
    out["column_loads"] = loads
    out["psql_copy_40_seconds"], out["psql_copy_40_runs"] = copy_seconds(url, EXTRA)
    # Back to the default schema: the registry first (its model reads the columns).
    psql(url, "DELETE FROM model_served; DELETE FROM model_registry")
    sh(BIN, "profiles", "migrate", "--schema", os.path.join(ROOT, "Deploy/schema/default.json"), "--allow-drop", "--postgres", url)
    psql(url, "VACUUM (FULL, ANALYZE) subscriber_profiles")

    def per_copy(m):
        copies = sum(w["subscribers"] for w in m)
        return sum(w["profileBytes"] for w in m) / copies if copies else None
    d, r = out["deploy"], out["reference"]
    slowest = max((l["seconds"] for l in loads), default=None)
    out["summary"] = {
        "deploy_failed_queries": d["queries"]["failed"], "reference_failed_queries": r["queries"]["failed"],
        "deploy_seconds": d["op"]["seconds"], "deploy_switch_seconds": d["op"]["switchSeconds"], "add_seconds": d["op"]["add_seconds"],
        "p99_us_during_deploy": d["queries"]["p99_us"], "p99_us_reference": r["queries"]["p99_us"],
        "p999_us_during_deploy": d["queries"]["p999_us"], "p999_us_reference": r["queries"]["p999_us"],
        "slowest_worker_column_load_seconds": slowest, "psql_copy_40_columns_seconds": out["psql_copy_40_seconds"],
        "column_load_to_psql_copy": slowest / out["psql_copy_40_seconds"] if slowest else None,
        "owner_bytes_per_subscriber_before": per_copy(out["memory_before"]), "owner_bytes_per_subscriber_after": per_copy(out["memory_after"]),
        "job_seconds": out["job"].get("seconds"), "job_model": out["job"].get("modelVersion"),
    }
    json.dump(out, open(os.path.join(bench, "schema_deploy.json"), "w"), indent=1)
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
