#!/usr/bin/env python3
"""A challenger of a model active beside the served one (docs/models.md, "A challenger per active
model"), on a local cluster (coordinator + 2 workers × 1 scoring thread, one machine) over the base
in .churngrid/pg-bench (generated when it does not have --subscribers profiles).

The active model `churn-b` and its challenger are variants of the default model with other base
scores (the same trees, so the same cost; every probability differs), active for every subscriber.
Each figure has its reference in the same run:

  * jobs: `rescore --wait` with `churn-b` active (served + active: 2 rows a subscriber) without a
    challenger, then with its challenger scored in shadow, median of --jobs runs each (after one
    warm-up job; each job waited for until its drift is measured, so jobs do not overlap);
    reference for the shadow's extra time: XGBoost's own `inplace_predict` of the challenger's
    file on the same rows with 2 threads (read back from PostgreSQL, not timed), median of 3;
  * deploy and promote of the active model's challenger (the whole operation and its switch
    window) against the raw libzmq round trip of `bench rpc`;
  * compare: `models compare churn-b --job` (both sides read back from PostgreSQL) against
    `models compare churn-b` (both scored over the live base), same run.

Usage: python3 Benchmarks/cluster/active_challenger.py [--subscribers N] [--jobs K]   (after `make release`)
Results: .churngrid/bench/active_challenger.json (PostgreSQL runs with fsync off here: see Deploy/local/pg.sh)
"""
import argparse, json, os, statistics, time

from local import bench_base, psql, reset_models, rescore_settled, sh, start_coordinator, start_workers, stop_cluster, xgboost_inplace_seconds

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")
BASE_SCORE = '"base_score":"[3.2799017E-2]"'


def rescore(endpoint, url):
    return rescore_settled(BIN, endpoint, url)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=3)
    a = ap.parse_args()
    url, have = bench_base(BIN, ROOT, a.subscribers)
    bench = os.path.join(ROOT, ".churngrid/bench")
    logs = os.path.join(bench, "active-challenger-logs")
    os.makedirs(logs, exist_ok=True)
    # A new cluster each run: the served model and the registry start from --model.
    reset_models(url)
    text = open(MODEL).read()
    if BASE_SCORE not in text:
        raise SystemExit("the default model no longer has " + BASE_SCORE)
    files = {}
    for tag, base in (("champion", "9.0E-2"), ("challenger", "2.0E-1")):
        files[tag] = os.path.join(bench, f"active-challenger-{tag}.json")
        open(files[tag], "w").write(text.replace(BASE_SCORE, f'"base_score":"[{base}]"'))
    out = {"subscribers": have, "workers": 2, "threads_per_worker": 1, "jobs": a.jobs, "cores": os.cpu_count(),
           "postgres": "private PostgreSQL 15, fsync off (Deploy/local/pg.sh), on the same 2 cores"}
    procs = []
    try:
        endpoint = start_coordinator(BIN, url, MODEL, logs, procs)
        start_workers(BIN, endpoint, logs, procs)
        print("cluster ready", flush=True)
        v = {tag: json.loads(sh(BIN, "models", "add", "--name", "churn-b", "--file", f, "--coordinator", endpoint, "--json"))["version"]
             for tag, f in files.items()}
        out["versions"] = v
        sh(BIN, "models", "activate", "churn-b", "--version", v["champion"], "--coordinator", endpoint)
        rescore(endpoint, url)  # warm: the first job after a start pays for page faults
        out["jobs_plain_seconds"] = [rescore(endpoint, url)["seconds"] for _ in range(a.jobs)]
        print("jobs without a challenger", out["jobs_plain_seconds"], flush=True)
        out["deploy"] = json.loads(sh(BIN, "models", "deploy", "churn-b", "--version", v["challenger"], "--as", "challenger", "--traffic", "10",
                                      "--coordinator", endpoint, "--json"))
        print("deploy", json.dumps(out["deploy"]), flush=True)
        out["rpc"] = json.loads(sh(BIN, "bench", "rpc", "--calls", "20000", "--json"))
        out["jobs_shadow_seconds"] = [rescore(endpoint, url)["seconds"] for _ in range(a.jobs)]
        print("jobs with the challenger in shadow", out["jobs_shadow_seconds"], flush=True)
        last = int(psql(url, "SELECT job_id FROM churngrid_published"))
        out["shadow_rows"] = int(psql(url, "SELECT count(*) FROM churn_scores_challenger WHERE model_name = 'churn-b'"))
        psql(url, "TRUNCATE subscriber_outcomes")
        psql(url, "INSERT INTO subscriber_outcomes (subscriber_id, observed_at, churned) SELECT subscriber_id, now(), random() < probability "
                  "FROM churn_scores_current WHERE model_name = 'churn-b' AND subscriber_id % 5 = 0")
        t = time.time()
        out["compare_job"] = json.loads(sh(BIN, "models", "compare", "churn-b", "--job", str(last), "--coordinator", endpoint, "--json"))
        out["compare_job_wall_seconds"] = time.time() - t
        t = time.time()
        out["compare_live"] = json.loads(sh(BIN, "models", "compare", "churn-b", "--coordinator", endpoint, "--json"))
        out["compare_live_wall_seconds"] = time.time() - t
        print("compare --job", out["compare_job_wall_seconds"], "live", out["compare_live_wall_seconds"], flush=True)
        out["promote"] = json.loads(sh(BIN, "models", "promote", "churn-b", "--coordinator", endpoint, "--json"))
        print("promote", json.dumps(out["promote"]), flush=True)
    finally:
        stop_cluster(procs)
    # The shadow's reference: XGBoost predicting the challenger's file on the same rows, 2 threads.
    runs = xgboost_inplace_seconds(url, MODEL, files["challenger"])
    out["xgboost_predict_challenger_seconds_runs"] = runs
    plain, shadow = statistics.median(out["jobs_plain_seconds"]), statistics.median(out["jobs_shadow_seconds"])
    raw = out["rpc"].get("raw_p50_us")
    out["summary"] = {
        "job_plain_seconds": plain, "job_shadow_seconds": shadow, "shadow_extra_seconds": shadow - plain,
        "shadow_job_to_plain": shadow / plain,
        "xgboost_predict_challenger_seconds": statistics.median(runs), "shadow_extra_to_xgboost_predict": (shadow - plain) / statistics.median(runs),
        "shadow_rows": out["shadow_rows"],
        "deploy_seconds": out["deploy"]["seconds"], "deploy_switch_seconds": out["deploy"]["switchSeconds"],
        "promote_seconds": out["promote"]["seconds"], "promote_switch_seconds": out["promote"]["switchSeconds"],
        "raw_zmq_rtt_p50_us": raw,
        "compare_job_seconds": out["compare_job"]["seconds"], "compare_live_seconds": out["compare_live"]["seconds"],
        "compare_subscribers": [out["compare_job"]["subscribers"], out["compare_live"]["subscribers"]],
        "compare_job_agreement": out["compare_job"]["topDecileAgreement"],
    }
    json.dump(out, open(os.path.join(bench, "active_challenger.json"), "w"), indent=1)
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
