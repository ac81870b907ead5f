#!/usr/bin/env python3
"""Worker memory on an operator's own feature schema (issue 16's figure: "a 400-feature schema
with models reading 40 features costs <= 200 B per subscriber"), on a local cluster (coordinator
with --standbys + 2 workers, one machine, PostgreSQL on the same cores, fsync off).

  * A fresh database (its own private PostgreSQL under .churngrid/bench/opschema) whose schema is
    400 warehouse attributes and none of the built-in catalogue (`profiles migrate --schema` on an
    empty database), --subscribers rows filled by one INSERT (set-up, reported, not a figure).
  * An XGBoost model trained on a 100,000-row sample reads 40 of them (10 numbers, 10 integers,
    10 booleans, 10 categories); the coordinator serves it (`--model`).
  * memory: each worker's profile bytes per subscriber copy (`status --json`: owner and standby
    copies) and its resident set;
    reference, same run: `churngrid profiles load --features <the 40> --json`, a bare column store
    holding exactly those features (the loader's lower bound), and the table's bytes per row on disk.
  * a job (every subscriber scored from the 40 columns), and the probabilities of 2,000 stored
    scores against XGBoost's own `predict` of the same rows read back from PostgreSQL (must agree).

Usage: python3 Benchmarks/cluster/operator_schema.py [--subscribers 1000000]   (after `make release`)
Results: .churngrid/bench/operator_schema.json
"""
import argparse, json, os, subprocess, sys, time

from local import sh, start_coordinator, start_workers, stop_cluster, wait_for_standbys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
KINDS = ["number", "integer", "boolean", "category"]


def value(f, k):
    kind = f["type"]
    if kind == "number":
        return f"((g * {k + 7}) % 10007)::real / 100"
    if kind == "integer":
        return f"((g * {k + 3}) % 1000)::integer"
    if kind == "boolean":
        return f"((g + {k}) % 3 = 0)"
    return f"((g * {k + 1}) % 5)::smallint"


def as_real(f):
    return f["name"] if f["type"] == "number" else (f"{f['name']}::integer::real" if f["type"] == "boolean" else f"{f['name']}::real")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=400)
    ap.add_argument("--read", type=int, default=40)
    a = ap.parse_args()
    work = os.path.join(ROOT, ".churngrid", "bench", "opschema")
    logs = os.path.join(work, "logs")
    os.makedirs(logs, exist_ok=True)
    url = sh("bash", os.path.join(ROOT, "Deploy/local/pg.sh"), "start", os.path.join(work, "pg")).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url

    def psql(sql):
        return sh("psql", "-qtAX", "-v", "ON_ERROR_STOP=1", url, "-c", sql).strip()

    psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    features = []
    for i in range(a.features):
        kind = KINDS[i % 4]
        f = {"name": f"mart_{kind}_{i:03d}", "type": kind, "description": f"warehouse attribute {i}"}
        if kind == "category":
            f["categories"] = ["none", "low", "mid", "high", "top"]
        features.append(f)
    schema_path = os.path.join(work, "schema.json")
    json.dump({"id": "subscriber_id", "features": features}, open(schema_path, "w"), indent=1)
    out = {"subscribers": a.subscribers, "schema_features": a.features, "catalogue_features_in_schema": 0, "workers": 2, "standbys": True,
           "postgres": "private PostgreSQL 15, fsync off (Deploy/local/pg.sh)", "cores": os.cpu_count()}
    # A fresh database gets the default tables first: the catalogue columns go (--allow-drop).
    out["migrate"] = sh(BIN, "profiles", "migrate", "--schema", schema_path, "--allow-drop", "--postgres", url).strip()
    t = time.time()
    print(f"filling {a.subscribers:,} rows of {a.features} features", file=sys.stderr, flush=True)
    columns = ", ".join(f["name"] for f in features)
    values = ", ".join(value(f, k) for k, f in enumerate(features))
    psql(f"INSERT INTO subscriber_profiles (subscriber_id, {columns}) SELECT g, {values} FROM generate_series(1000000, {1000000 + a.subscribers - 1}) g")
    psql("VACUUM ANALYZE subscriber_profiles")
    out["fill_seconds"] = time.time() - t
    out["table_bytes_per_subscriber"] = int(psql("SELECT pg_total_relation_size('subscriber_profiles')")) / a.subscribers

    # The model reads 10 features of each type.
    per = a.read // 4
    read = [f for kind in KINDS for f in [g for g in features if g["type"] == kind][:per]]
    names = [f["name"] for f in read]
    import numpy as np, xgboost as xgb

    def matrix(where):
        raw = subprocess.run(["psql", url, "-qAtX", "-c", f"COPY (SELECT subscriber_id, {', '.join(as_real(f) for f in read)} FROM subscriber_profiles {where}) TO STDOUT (FORMAT binary)"],
                             check=True, capture_output=True).stdout
        dtype = np.dtype([("n", ">i2"), ("il", ">i4"), ("id", ">i8")] + [(f"{p}{i}", ">i4" if p == "l" else ">f4") for i in range(len(read)) for p in ("l", "v")])
        rows = np.frombuffer(raw[19:len(raw) - 2], dtype=dtype)
        return rows["id"].astype(np.int64), np.column_stack([rows[f"v{i}"].astype(np.float32) for i in range(len(read))])
    _, X = matrix("TABLESAMPLE SYSTEM (15) LIMIT 100000")
    rng = np.random.default_rng(11)
    logit = -2.5 + 0.02 * X[:, 0] - 0.003 * X[:, per] + 1.3 * X[:, 2 * per] + 0.6 * X[:, 3 * per] - 0.01 * X[:, 1]
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": 2, "seed": 11},
                        xgb.DMatrix(X, label=y, feature_names=names), num_boost_round=100)
    model_file = os.path.join(work, "model.json")
    booster.save_model(model_file)

    procs = []
    try:
        t = time.time()
        endpoint = start_coordinator(BIN, url, model_file, logs, procs, ["--standbys"])
        start_workers(BIN, endpoint, logs, procs)
        wait_for_standbys(BIN, endpoint)
        out["cluster_ready_seconds"] = time.time() - t
        print("cluster ready", file=sys.stderr, flush=True)
        st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
        out["workers_status"] = [{k: w.get(k) for k in ("name", "shards", "standbyShards", "subscribers", "profileBytes", "standbyBytes", "residentBytes")}
                                 for w in st["workers"]]
        out["job"] = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
    finally:
        stop_cluster(procs)

    # Parity: 2,000 stored probabilities against XGBoost's predict of the same rows.
    job = out["job"]["id"]
    stored = dict((int(l.split("|")[0]), float(l.split("|")[1])) for l in
                  psql(f"SELECT subscriber_id, probability FROM churn_scores WHERE job_id = {job} ORDER BY subscriber_id LIMIT 2000").splitlines())
    ids, M = matrix(f"WHERE subscriber_id IN ({', '.join(str(i) for i in stored)})")
    predicted = booster.predict(xgb.DMatrix(M, feature_names=names))
    # Both in float32 (PostgreSQL's real prints the shortest text that reads back as the same float32).
    differing = sum(1 for i, p in zip(ids, predicted) if np.float32(stored[int(i)]) != np.float32(p))
    worst = max(abs(float(np.float32(stored[int(i)])) - float(p)) for i, p in zip(ids, predicted))
    out["parity"] = {"compared": len(ids), "differing": differing, "largest_difference": worst}

    # Reference, same run: a bare store of exactly the 40 features.
    loads = [json.loads(sh(BIN, "profiles", "load", "--postgres", url, "--features", ",".join(names), "--json")) for _ in range(3)]
    out["loader_reference"] = loads
    copies = sum(w["subscribers"] for w in out["workers_status"])
    owner = sum(w["profileBytes"] for w in out["workers_status"]) / copies
    standby = sum(w["standbyBytes"] for w in out["workers_status"]) / copies
    out["summary"] = {
        "owner_bytes_per_subscriber": owner, "standby_bytes_per_subscriber": standby,
        "worker_resident_mb": [w["residentBytes"] / 1e6 for w in out["workers_status"]],
        "loader_reference_bytes_per_subscriber": sorted(l["store_bytes_per_subscriber"] for l in loads)[1],
        "goal_bytes_per_subscriber": 200,
        "table_bytes_per_subscriber": out["table_bytes_per_subscriber"],
        "job_seconds": out["job"].get("seconds"), "job_subscribers": out["job"].get("subscribers"),
        "parity_compared": len(ids), "parity_differing": differing, "parity_largest_difference": worst,
        "cluster_ready_seconds": out["cluster_ready_seconds"], "fill_seconds": out["fill_seconds"],
    }
    json.dump(out, open(os.path.join(ROOT, ".churngrid", "bench", "operator_schema.json"), "w"), indent=1)
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
