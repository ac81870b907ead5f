#!/usr/bin/env python3
"""A model deployment and an erasure under open-loop query load (docs/models.md, "Deployment",
"Erasure"), on a local cluster (coordinator with standbys + 2 workers, one machine) over the base in
.churngrid/pg-bench (generated when it does not have --subscribers profiles).

Each phase runs `churngrid bench queries --rate R --duration D` (open loop, latency from each
query's scheduled send, failures counted) and does its operation at D/2:

  * reference: the same load with nothing else running;
  * deploy: `models deploy` of a second version of the default model (another base score, so
    every probability differs) — the coordinator's `switchSeconds` is the window from the first
    worker told to switch to the last one's confirmation (every shard's answers change version
    inside it); reference: the raw libzmq round trip between two processes (`bench rpc`);
  * compare (no load): `models compare` of the served version (the second) with the first over the
    whole base, with outcomes drawn for a fifth of the subscribers (churned with the job's
    probability); reference, same run: XGBoost's own `inplace_predict` of both model files on the
    same rows (read back from PostgreSQL, not timed), 2 threads (the cluster's two scoring threads);
  * erase: `subscribers erase` of K subscribers (K = --erase, default 1,000) after a job, so every
    table holds their rows; reference, same run: psql deleting the rows of K *other* subscribers
    from the same tables in one transaction (what the PostgreSQL part costs by itself).

Usage: python3 Benchmarks/cluster/admin_ops.py --subscribers N [--rate R] [--duration D] [--erase K]   (after `make release`)
Results: .churngrid/bench/admin_ops.json (PostgreSQL runs with fsync off here: see Deploy/local/pg.sh)
"""
import argparse, json, os, subprocess, sys, threading, time

from local import bench_base, wait_for_standbys, profile_matrix, psql, query_load, sh, start_workers, stop_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")
TABLES = ["subscriber_profiles", "churn_scores", "subscriber_events", "retention_triggers", "campaign_actions", "contact_history",
          "contact_consent", "do_not_contact", "subscriber_outcomes"]


def load(endpoint, rate, duration, subscribers, at_half=None):
    return query_load(BIN, endpoint, rate, duration, subscribers, at_half)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=2_000_000)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--erase", type=int, default=1000)
    a = ap.parse_args()
    url, have = bench_base(BIN, ROOT, a.subscribers + 2 * a.erase)
    # A new cluster each run: the served model and the registry start from --model.
    psql(url, "DO $$ BEGIN IF to_regclass('model_served') IS NOT NULL THEN DELETE FROM model_served; DELETE FROM model_registry; END IF; END $$")
    variant = os.path.join(ROOT, ".churngrid/bench/churn-variant.json")
    os.makedirs(os.path.dirname(variant), exist_ok=True)
    text = open(MODEL).read()
    assert '"base_score":"[3.2799017E-2]"' in text
    open(variant, "w").write(text.replace('"base_score":"[3.2799017E-2]"', '"base_score":"[9.0E-2]"'))
    logs = os.path.join(ROOT, ".churngrid/bench/admin-ops-logs")
    os.makedirs(logs, exist_ok=True)
    out = {"subscribers": have, "workers": 2, "threads_per_worker": 1, "standbys": True, "rate": a.rate, "duration": a.duration,
           "postgres": "private PostgreSQL 15, fsync off (Deploy/local/pg.sh)", "cores": os.cpu_count()}
    procs = []
    try:
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--postgres", url, "--model", MODEL, "--standbys"],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs.append(("coordinator", coord))
        endpoint = coord.stdout.readline().split()[-1]
        coord.stdout.readline()
        start_workers(BIN, endpoint, logs, procs)
        # Every shard has its standby (a copy on the other worker) before the load starts.
        wait_for_standbys(BIN, endpoint)
        print("cluster ready", flush=True)
        added = json.loads(sh(BIN, "models", "add", "--name", "churn", "--file", variant, "--coordinator", endpoint, "--json"))
        v1 = [m for m in json.loads(sh(BIN, "models", "list", "--coordinator", endpoint, "--json")) if m["served"]][0]["version"]
        out["versions"] = [v1, added["version"]]

        out["reference"] = load(endpoint, a.rate, a.duration, have)
        print("reference", json.dumps(out["reference"]["queries"]), flush=True)
        out["deploy"] = load(endpoint, a.rate, a.duration, have,
                             lambda: json.loads(sh(BIN, "models", "deploy", "churn", "--version", added["version"], "--coordinator", endpoint, "--json")))
        print("deploy", json.dumps(out["deploy"]), flush=True)
        out["rpc"] = json.loads(sh(BIN, "bench", "rpc", "--calls", "20000", "--json"))

        # A job first (every subscriber has scores: the outcomes and the erasure use them).
        job = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
        psql(url, "TRUNCATE subscriber_outcomes")
        psql(url, "INSERT INTO subscriber_outcomes (subscriber_id, observed_at, churned) SELECT subscriber_id, now(), random() < probability FROM churn_scores_current WHERE model_name = 'churn' AND subscriber_id % 5 = 0")
        t = time.time()
        out["compare"] = json.loads(sh(BIN, "models", "compare", "churn", "--version", v1, "--coordinator", endpoint, "--json"))
        out["compare_wall_seconds"] = time.time() - t
        print("compare", json.dumps(out["compare"]), flush=True)
        # Erasure: K victims erased under load.
        ids = [int(x) for x in psql(url, f"SELECT subscriber_id FROM subscriber_profiles ORDER BY subscriber_id DESC LIMIT {2 * a.erase}").split()]
        victims, others = ids[:a.erase], ids[a.erase:]
        idfile = os.path.join(ROOT, ".churngrid/bench/erase-ids.txt")
        open(idfile, "w").write("\n".join(map(str, victims)) + "\n")
        out["erase"] = load(endpoint, a.rate, a.duration, have,
                            lambda: json.loads(sh(BIN, "subscribers", "erase", "--input", idfile, "--coordinator", endpoint, "--json")))
        print("erase", json.dumps(out["erase"]), flush=True)
    finally:
        stop_cluster(procs)
    # The reference: the same deletes for K other subscribers, by psql alone, in one transaction.
    lst = "{" + ",".join(map(str, others)) + "}"
    statements = ";\n".join(f"DELETE FROM {t} WHERE subscriber_id = ANY('{lst}'::bigint[])" for t in TABLES)
    t = time.time()
    sh("psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", f"BEGIN;\n{statements};\nCOMMIT;")
    out["psql_delete_seconds"] = time.time() - t
    # The reference of the comparison: XGBoost predicting both files on the same rows.
    import xgboost as xgb
    X = profile_matrix(url, MODEL)
    boosters = []
    for path in (MODEL, variant):
        b = xgb.Booster(model_file=path)
        b.set_param({"nthread": 2})
        boosters.append(b)
    runs = []
    for _ in range(3):
        t = time.time()
        for b in boosters:
            b.inplace_predict(X)
        runs.append(time.time() - t)
    out["xgboost_predict_both_seconds_runs"] = runs
    out["xgboost_predict_both_seconds"] = sorted(runs)[1]
    d, r = out["deploy"], out["reference"]
    out["summary"] = {
        "deploy_failed_queries": d["queries"]["failed"], "reference_failed_queries": r["queries"]["failed"],
        "deploy_switch_seconds": d["op"]["switchSeconds"], "deploy_seconds": d["op"]["seconds"],
        "raw_zmq_rtt_p50_us": out["rpc"].get("raw_p50_us"),
        "switch_window_in_raw_round_trips": d["op"]["switchSeconds"] * 1e6 / out["rpc"]["raw_p50_us"] if out["rpc"].get("raw_p50_us") else None,
        "p99_us_during_deploy": d["queries"]["p99_us"], "p99_us_reference": r["queries"]["p99_us"],
        "erase_seconds": out["erase"]["op"]["seconds"], "erase_failed_queries": out["erase"]["queries"]["failed"],
        "p99_us_during_erase": out["erase"]["queries"]["p99_us"],
        "psql_delete_seconds": out["psql_delete_seconds"], "erase_to_psql_delete": out["erase"]["op"]["seconds"] / out["psql_delete_seconds"],
        "compare_seconds": out["compare"]["seconds"], "xgboost_predict_both_seconds": out["xgboost_predict_both_seconds"],
        "compare_to_xgboost": out["compare"]["seconds"] / out["xgboost_predict_both_seconds"],
        "compare_top_decile_agreement": out["compare"]["topDecileAgreement"],
        "compare_auc": [out["compare"]["champion"]["auc"], out["compare"]["challenger"]["auc"]],
    }
    json.dump(out, open(os.path.join(ROOT, ".churngrid/bench/admin_ops.json"), "w"), indent=1)
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
