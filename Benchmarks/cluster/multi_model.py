#!/usr/bin/env python3
"""Scoring k models in one job against k separate jobs (docs/models.md, "Several models"), on a
local cluster (coordinator + 2 workers of 1 scoring thread, one machine) over the base in
.churngrid/pg-bench (generated when it does not have --subscribers profiles).

The models are the default model and variants of it with another base score: the same trees, so
each costs the same to score, and every probability differs (another version).

  * separate (the reference, same run): the served model alone, rescored k times — k separate
    jobs, each scoring one model over the whole base and publishing it (`rescore --wait`);
  * one job, everyone: k − 1 variants active beside the served model for every subscriber
    (`models activate`), one `rescore --wait`: k × the base's rows scored and written;
  * one job, segments (k = 10 only): the 9 variants active over 9 tenure bands (`--segment
    'tenure_months >= a and tenure_months < b'`), so the base is scored by the served model and
    once more by the variant of its band.

Each figure is the median of --runs jobs; the ratio is one job's time over the k separate jobs'
sum. After each job the script waits for the drift of its models (measured after publication) so
that it does not overlap the next job. The issue's goal: 10 models in one job ≤ 4× the time of one.

Usage: python3 Benchmarks/cluster/multi_model.py --subscribers N [--runs R]   (after `make release`;
CHURNGRID_BIN another binary, CHURNGRID_BENCH_PG_DIR another server directory: Benchmarks/cluster/local.py)
Results: .churngrid/bench/multi_model.json (PostgreSQL runs with fsync off here: see Deploy/local/pg.sh)
"""
import argparse, json, os, statistics

from local import bench_base, psql, reset_models, rescore_settled, sh, start_coordinator, start_workers, stop_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("CHURNGRID_BIN") or os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")
BASE_SCORE = '"base_score":"[3.2799017E-2]"'


def rescore(endpoint, url):
    return rescore_settled(BIN, endpoint, url)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    url, have = bench_base(BIN, ROOT, a.subscribers)
    bench = os.path.join(ROOT, ".churngrid/bench")
    logs = os.path.join(bench, "multi-model-logs")
    os.makedirs(logs, exist_ok=True)
    reset_models(url)
    text = open(MODEL).read()
    if BASE_SCORE not in text:
        raise SystemExit("the default model no longer has " + BASE_SCORE)
    variants = []
    for i in range(1, 10):
        path = os.path.join(bench, f"multi-model-{i}.json")
        open(path, "w").write(text.replace(BASE_SCORE, f'"base_score":"[{0.03 + 0.01 * i:.2f}]"'))
        variants.append((f"churn-v{i}", path))
    out = {"subscribers": have, "workers": 2, "threads_per_worker": 1, "runs": a.runs, "cores": os.cpu_count(),
           "postgres": "private PostgreSQL 15, fsync off (Deploy/local/pg.sh), on the same 2 cores"}
    procs = []
    try:
        endpoint = start_coordinator(BIN, url, MODEL, logs, procs)
        start_workers(BIN, endpoint, logs, procs)
        print("cluster ready", flush=True)
        versions = {}
        for name, path in variants:
            versions[name] = json.loads(sh(BIN, "models", "add", "--name", name, "--file", path, "--coordinator", endpoint, "--json"))["version"]
        rescore(endpoint, url)  # warm: the first job after a start pays for page faults
        one = [rescore(endpoint, url)["seconds"] for _ in range(max(a.runs, 3))]
        out["one_model_job_seconds"] = one
        t1 = statistics.median(one)
        print(f"one model: {t1:.2f} s (runs {one})", flush=True)
        results = []
        for k in (3, 10):
            # Separate: k jobs of one model each (the served one alone: every variant costs the same).
            separate = []
            for _ in range(a.runs):
                separate.append(sum(rescore(endpoint, url)["seconds"] for _ in range(k)))
            # One job: k − 1 variants beside it, for everyone.
            for name, _ in variants[:k - 1]:
                sh(BIN, "models", "activate", name, "--version", versions[name], "--coordinator", endpoint)
            together = [rescore(endpoint, url) for _ in range(a.runs)]
            for name, _ in variants[:k - 1]:
                sh(BIN, "models", "deactivate", name, "--coordinator", endpoint)
            r = {"k": k, "segments": "everyone", "separate_jobs_seconds": separate, "one_job_seconds": [j["seconds"] for j in together],
                 "rows_written": together[-1]["subscribers"] * k}
            r["ratio_to_separate"] = statistics.median(r["one_job_seconds"]) / statistics.median(separate)
            r["ratio_to_one_model"] = statistics.median(r["one_job_seconds"]) / t1
            results.append(r)
            print(json.dumps(r), flush=True)
        # Segments: the 9 variants over 9 tenure bands (each subscriber: the served model and one more).
        cuts = [float(x) for x in psql(url, "SELECT array_to_string(percentile_disc(ARRAY[0.111,0.222,0.333,0.444,0.556,0.667,0.778,0.889]) WITHIN GROUP (ORDER BY tenure_months), ',') FROM subscriber_profiles").split(",")]
        edges = [-1e9] + cuts + [1e9]
        for i, (name, _) in enumerate(variants):
            sh(BIN, "models", "activate", name, "--version", versions[name], "--segment",
               f"tenure_months >= {edges[i]:g} and tenure_months < {edges[i + 1]:g}", "--coordinator", endpoint)
        segmented = [rescore(endpoint, url) for _ in range(a.runs)]
        rows = {r.split("|")[0]: int(r.split("|")[1]) for r in psql(url, "SELECT model_name, subscribers FROM scoring_job_models WHERE job_id = (SELECT job_id FROM churngrid_published)").splitlines()}
        r = {"k": 10, "segments": "9 tenure bands", "one_job_seconds": [j["seconds"] for j in segmented], "rows_per_model": rows,
             "rows_written": sum(rows.values()), "separate_jobs_seconds": results[-1]["separate_jobs_seconds"]}
        r["ratio_to_separate"] = statistics.median(r["one_job_seconds"]) / statistics.median(r["separate_jobs_seconds"])
        r["ratio_to_one_model"] = statistics.median(r["one_job_seconds"]) / t1
        results.append(r)
        print(json.dumps(r), flush=True)
        out["results"] = results
        for name, _ in variants:
            sh(BIN, "models", "deactivate", name, "--coordinator", endpoint)
        out["timelines"] = [l.split("job timeline")[0].split("churngrid.coordinator: ")[-1].strip()
                            for l in open(os.path.join(logs, "coordinator.log")) if "job timeline" in l]
    finally:
        stop_cluster(procs)
    psql(url, "DELETE FROM model_active; DELETE FROM model_served; DELETE FROM model_registry")
    json.dump(out, open(os.path.join(bench, "multi_model.json"), "w"), indent=1)
    print(json.dumps({"one_model_seconds": t1, "results": [{k: v for k, v in r.items() if k in ("k", "segments", "ratio_to_separate", "ratio_to_one_model", "rows_written")} for r in results]}, indent=1))


if __name__ == "__main__":
    main()
