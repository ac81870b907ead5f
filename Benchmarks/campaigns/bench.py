#!/usr/bin/env python3
"""Campaign runs against their reference, in the same run on the same machine (issue 14):

  * `churngrid campaign run` over the published job of the whole base: the value pass and the
    decision pass on every shard (score, explain those in an active cell, rank offers), the
    contact policy, the control group and the global fill on the coordinator, and the run, its
    actions and contacts written in one transaction — timed by the client, end to end;
  * reference: psql's COPY of the same action rows (exported from the run) into a table shaped
    like `campaign_actions` — the floor of writing them, on the same PostgreSQL.

Two campaigns: Deploy/campaign.json as shipped (capacity and budget bind: tens of thousands of
actions) and the same file without capacity or budget (every eligible subscriber gets an action:
the most a run writes). Each is run 3 times (the median is reported), with the contact history
emptied before each run so that every run decides the same way.

A coordinator and 2 workers (1 scoring thread each) on 127.0.0.1; PostgreSQL private, fsync off
(Deploy/local/pg.sh). Everything shares the machine's cores.

Usage: python3 Benchmarks/campaigns/bench.py [--subscribers 10000000] [--reuse-base]
       (after `swift build -c release`)
Results: .churngrid/bench/campaigns.json
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster"))
from local import stop_cluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build/release/churngrid")
MODEL = os.path.join(ROOT, "models/churn-default.json")
CAMPAIGN = os.path.join(ROOT, "Deploy/campaign.json")
OUTDIR = os.path.join(ROOT, ".churngrid/bench")


def sh(*args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(args[:3])} …\n{r.stderr.strip()[-2000:]}")
    return r.stdout


def psql(url, sql):
    return sh("psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql).strip()


def run_campaign(endpoint, path, url):
    psql(url, "TRUNCATE contact_history")
    t = time.monotonic()
    out = sh(BIN, "campaign", "run", "--config", path, "--json", "--coordinator", endpoint)
    seconds = time.monotonic() - t
    summary = json.loads(out.strip().splitlines()[-1])
    return seconds, summary


def reference_copy(url, run_id, workdir):
    """psql COPY of the run's action rows into a fresh table of the same shape: the median of 3."""
    path = os.path.join(workdir, f"actions-{run_id}.copy")
    psql(url, f"\\copy (SELECT * FROM campaign_actions WHERE run_id = {run_id}) TO '{path}'")
    times = []
    for _ in range(3):
        psql(url, "DROP TABLE IF EXISTS campaign_actions_reference; "
                  "CREATE TABLE campaign_actions_reference (LIKE campaign_actions INCLUDING ALL)")
        t = time.monotonic()
        psql(url, f"\\copy campaign_actions_reference FROM '{path}'")
        times.append(time.monotonic() - t)
    rows = int(psql(url, "SELECT count(*) FROM campaign_actions_reference"))
    psql(url, "DROP TABLE campaign_actions_reference")
    os.unlink(path)
    return {"rows": rows, "seconds": statistics.median(times), "runs": times}


def main():
    ap = argparse.ArgumentParser(description="Campaign runs against psql COPY of their actions (issue 14).")
    ap.add_argument("--subscribers", type=int, default=10_000_000)
    ap.add_argument("--reuse-base", action="store_true", help="keep the base in PostgreSQL when it has --subscribers profiles")
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} is missing: build it first with `swift build -c release`")
    os.chdir(ROOT)
    pgdir = os.path.join(ROOT, ".churngrid/pg-bench")
    url = sh("bash", "Deploy/local/pg.sh", "start", pgdir).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url  # the nodes take it from the environment, never argv
    n = a.subscribers
    os.makedirs(OUTDIR, exist_ok=True)
    logs = os.path.join(OUTDIR, "campaign-logs")
    os.makedirs(logs, exist_ok=True)
    procs = []
    out = {"subscribers": n, "workers": 2, "threads_per_worker": 1, "cores": os.cpu_count(),
           "postgres": "private, fsync off, synchronous_commit off, full_page_writes off (Deploy/local/pg.sh), same machine"}
    try:
        have = None
        if a.reuse_base:
            try:
                have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
            except SystemExit:
                pass
        if have != n:
            print(f"generating {n:,} subscribers …", flush=True)
            sh(BIN, "generate", "--subscribers", str(n), "--postgres", url)
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--model", MODEL, "--triggers", "none"],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs.append(("coordinator", coord))
        endpoint = None
        while endpoint is None:
            line = coord.stdout.readline()
            if not line:
                raise SystemExit(f"the coordinator exited; see {logs}/coordinator.log")
            if line.startswith("coordinator listening "):
                endpoint = line.split()[-1]
        for i in (1, 2):
            procs.append((f"worker-{i}", subprocess.Popen([BIN, "worker", "--coordinator", endpoint, "--name", f"worker-{i}", "--threads", "1"],
                                                          stdout=open(f"{logs}/worker-{i}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)))
        started = time.time()
        while True:
            for name, p in procs:
                if p.poll() is not None:
                    raise SystemExit(f"{name} exited ({p.returncode}); see {logs}/{name}.log")
            st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
            if len(st["workers"]) == 2 and st["unassignedShards"] == 0 and st["movingShards"] == 0:
                break
            if time.time() - started > 600 + n / 10_000:
                raise SystemExit(f"the cluster is not ready after {time.time() - started:.0f} s; see {logs}")
            time.sleep(0.5)
        print(f"cluster ready in {time.time() - started:.1f} s; rescoring …", flush=True)
        t = time.monotonic()
        job = json.loads(sh(BIN, "rescore", "--wait", "--json", "--coordinator", endpoint).strip().splitlines()[-1])
        out["rescore_seconds"] = time.monotonic() - t
        out["job_id"] = job.get("id")

        with open(CAMPAIGN) as f:
            shipped = json.load(f)
        unlimited = dict(shipped, name="bench-unlimited")
        unlimited.pop("capacity", None)
        unlimited.pop("budget", None)
        workdir = tempfile.mkdtemp(prefix="cg-campaign-bench-")
        for label, campaign in (("shipped", shipped), ("unlimited", unlimited)):
            path = os.path.join(workdir, f"{label}.json")
            with open(path, "w") as f:
                json.dump(campaign, f)
            runs = []
            for k in range(3):
                seconds, summary = run_campaign(endpoint, path, url)
                runs.append((seconds, summary))
                print(f"  {label} run {k + 1}: {seconds:.2f} s, {summary['treatment']:,} treatment + {summary['control']:,} control "
                      f"of {summary['eligible']:,} eligible ({summary['scanned']:,} scanned)", flush=True)
            seconds = statistics.median(r[0] for r in runs)
            last = runs[-1][1]
            ref = reference_copy(url, last["run_id"], workdir)
            out[label] = {"seconds_median": seconds, "runs": [r[0] for r in runs], "actions": last["treatment"] + last["control"],
                          "summary": last, "reference_psql_copy": ref,
                          "ratio_to_copy": seconds / ref["seconds"] if ref["seconds"] > 0 else None}
            print(f"{label}: campaign run {seconds:.2f} s (median of 3) for {ref['rows']:,} actions; "
                  f"psql COPY of the same rows {ref['seconds']:.2f} s → {out[label]['ratio_to_copy']:.1f}×", flush=True)
        with open(os.path.join(OUTDIR, "campaigns.json"), "w") as f:
            json.dump(out, f, indent=2)
        print(f"results: {os.path.join(OUTDIR, 'campaigns.json')}")
    finally:
        stop_cluster(procs)


if __name__ == "__main__":
    main()
