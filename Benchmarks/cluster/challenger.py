#!/usr/bin/env python3
"""A challenger beside the served model (docs/models.md, "Champion and challenger"), on a local
cluster (coordinator + 2 workers × 1 scoring thread, one machine) over the base in
.churngrid/pg-bench (generated when it does not have --subscribers profiles).

Phases, each with its reference in the same run:

  * reference: `churngrid bench queries --rate R --duration D` (open loop, latency from each
    query's scheduled send, failures counted) with nothing else running;
  * deploy: the same load, `models deploy … --as challenger --traffic 10` at D/2 (failed queries,
    p99, the switch window — reference: the raw libzmq round trip of `bench rpc`);
  * served: the same load with the challenger answering 10% (the cost of the split on live
    answers, against the reference phase);
  * jobs: `rescore --wait` without a challenger (before the deployment) and with one (scored in
    shadow), median of --jobs runs each; the shadow's extra time against XGBoost's own
    `inplace_predict` of the challenger's file on the same rows with 2 threads (read back from
    PostgreSQL, not timed), median of 3;
  * compare: `models compare --job` (both sides read back from PostgreSQL) against
    `models compare --version` (both scored over the live base), same run.

Usage: python3 Benchmarks/cluster/challenger.py --subscribers N [--rate R] [--duration D] [--jobs K]   (after `make release`)
Results: .churngrid/bench/challenger.json (PostgreSQL runs with fsync off here: see Deploy/local/pg.sh)
"""
import argparse, json, os, subprocess, sys, time

from local import bench_base, psql, reset_models, query_load, sh, start_coordinator, start_workers, stop_cluster, xgboost_inplace_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")


def load(endpoint, rate, duration, subscribers, at_half=None):
    return query_load(BIN, endpoint, rate, duration, subscribers, at_half)


def jobs(endpoint, k):
    """`rescore --wait` k times: each job's seconds (the coordinator's own figure)."""
    out = []
    for _ in range(k):
        j = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint))
        assert j["state"] == "completed", j
        out.append(j["seconds"])
    return out


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=2_000_000)
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--jobs", type=int, default=3)
    a = ap.parse_args()
    url, have = bench_base(BIN, ROOT, a.subscribers)
    # A new cluster each run: the served model and the registry start from --model.
    reset_models(url)
    variant = os.path.join(ROOT, ".churngrid/bench/churn-variant.json")
    os.makedirs(os.path.dirname(variant), exist_ok=True)
    text = open(MODEL).read()
    assert '"base_score":"[3.2799017E-2]"' in text
    open(variant, "w").write(text.replace('"base_score":"[3.2799017E-2]"', '"base_score":"[9.0E-2]"'))
    logs = os.path.join(ROOT, ".churngrid/bench/challenger-logs")
    os.makedirs(logs, exist_ok=True)
    out = {"subscribers": have, "workers": 2, "threads_per_worker": 1, "rate": a.rate, "duration": a.duration,
           "postgres": "private PostgreSQL 15, fsync off (Deploy/local/pg.sh)", "cores": os.cpu_count()}
    procs = []
    try:
        endpoint = start_coordinator(BIN, url, MODEL, logs, procs)
        start_workers(BIN, endpoint, logs, procs)
        print("cluster ready", flush=True)
        added = json.loads(sh(BIN, "models", "add", "--name", "churn", "--file", variant, "--coordinator", endpoint, "--json"))
        v1 = [m for m in json.loads(sh(BIN, "models", "list", "--coordinator", endpoint, "--json")) if m["served"]][0]["version"]
        v2 = added["version"]
        out["versions"] = {"champion": v1, "challenger": v2}

        out["jobs_plain_seconds"] = jobs(endpoint, a.jobs)
        print("plain jobs", out["jobs_plain_seconds"], flush=True)
        out["reference"] = load(endpoint, a.rate, a.duration, have)
        print("reference", json.dumps(out["reference"]["queries"]), flush=True)
        out["deploy"] = load(endpoint, a.rate, a.duration, have,
                             lambda: json.loads(sh(BIN, "models", "deploy", "churn", "--version", v2, "--as", "challenger", "--traffic", "10",
                                                   "--coordinator", endpoint, "--json")))
        print("deploy", json.dumps(out["deploy"]), flush=True)
        out["served"] = load(endpoint, a.rate, a.duration, have)
        print("served", json.dumps(out["served"]["queries"]), flush=True)
        out["rpc"] = json.loads(sh(BIN, "bench", "rpc", "--calls", "20000", "--json"))
        out["jobs_shadow_seconds"] = jobs(endpoint, a.jobs)
        print("shadow jobs", out["jobs_shadow_seconds"], flush=True)
        last = int(psql(url, "SELECT max(id) FROM scoring_jobs WHERE state = 'completed'"))
        out["shadow_rows"] = int(psql(url, "SELECT count(*) FROM churn_scores_challenger"))
        psql(url, "TRUNCATE subscriber_outcomes")
        psql(url, "INSERT INTO subscriber_outcomes (subscriber_id, observed_at, churned) SELECT subscriber_id, now(), random() < probability FROM churn_scores_current WHERE model_name = 'churn' AND subscriber_id % 5 = 0")
        t = time.time()
        out["compare_job"] = json.loads(sh(BIN, "models", "compare", "churn", "--job", str(last), "--coordinator", endpoint, "--json"))
        out["compare_job_wall_seconds"] = time.time() - t
        t = time.time()
        out["compare_live"] = json.loads(sh(BIN, "models", "compare", "churn", "--version", v2, "--coordinator", endpoint, "--json"))
        out["compare_live_wall_seconds"] = time.time() - t
        print("compare --job", out["compare_job_wall_seconds"], "--version", out["compare_live_wall_seconds"], flush=True)
    finally:
        stop_cluster(procs)
    # The shadow's reference: XGBoost predicting the challenger's file on the same rows, 2 threads.
    runs = xgboost_inplace_seconds(url, MODEL, variant)
    out["xgboost_predict_challenger_seconds_runs"] = runs
    plain, shadow = median(out["jobs_plain_seconds"]), median(out["jobs_shadow_seconds"])
    r, d, s = out["reference"]["queries"], out["deploy"], out["served"]["queries"]
    out["summary"] = {
        "deploy_failed_queries": d["queries"]["failed"], "deploy_switch_seconds": d["op"]["switchSeconds"],
        "raw_zmq_rtt_p50_us": out["rpc"].get("raw_p50_us"),
        "switch_window_in_raw_round_trips": d["op"]["switchSeconds"] * 1e6 / out["rpc"]["raw_p50_us"] if out["rpc"].get("raw_p50_us") else None,
        "p99_us": {"reference": r["p99_us"], "during_deploy": d["queries"]["p99_us"], "challenger_served": s["p99_us"]},
        "p50_us": {"reference": r["p50_us"], "during_deploy": d["queries"]["p50_us"], "challenger_served": s["p50_us"]},
        "served_failed_queries": s["failed"],
        "job_plain_seconds": plain, "job_shadow_seconds": shadow, "shadow_extra_seconds": shadow - plain,
        "shadow_job_to_plain": shadow / plain,
        "xgboost_predict_challenger_seconds": median(runs), "shadow_extra_to_xgboost_predict": (shadow - plain) / median(runs),
        "shadow_rows": out["shadow_rows"],
        "compare_job_seconds": out["compare_job"]["seconds"], "compare_live_seconds": out["compare_live"]["seconds"],
        "compare_job_agreement": out["compare_job"]["topDecileAgreement"],
        "compare_job_auc": [out["compare_job"]["champion"]["auc"], out["compare_job"]["challenger"]["auc"]],
    }
    json.dump(out, open(os.path.join(ROOT, ".churngrid/bench/challenger.json"), "w"), indent=1)
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
