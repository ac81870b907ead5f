"""What the cluster benchmarks share."""
import subprocess


def sh(*args, **kw):
    """Runs a command; its standard output (raises on a non-zero exit)."""
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def psql(url, sql):
    """One SQL statement's unaligned result."""
    return sh("psql", url, "-qAtX", "-c", sql).strip()


def bench_base(binary, root, subscribers):
    """Starts the benchmarks' PostgreSQL (.churngrid/pg-bench) and makes sure its base has at least
    `subscribers` profiles (generated when it has fewer); (its URL, the profiles it has). The URL is
    exported as CHURNGRID_POSTGRES_URL for the processes started afterwards. CHURNGRID_BENCH_PG_DIR
    names another server directory (e.g. a 1M base kept beside the 10M one in .churngrid/pg-bench)."""
    import os
    pg_dir = os.environ.get("CHURNGRID_BENCH_PG_DIR") or os.path.join(root, ".churngrid/pg-bench")
    url = sh("bash", "Deploy/local/pg.sh", "start", pg_dir).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    exists = psql(url, "SELECT to_regclass('subscriber_profiles') IS NOT NULL") == "t"
    have = int(psql(url, "SELECT count(*) FROM subscriber_profiles")) if exists else 0
    if have < subscribers:
        print(f"generating {subscribers:,} subscribers", flush=True)
        sh(binary, "generate", "--subscribers", str(subscribers), "--postgres", url)
    have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
    if have > subscribers:
        print(f"the base in {pg_dir} has {have:,} subscribers (more than the {subscribers:,} asked): the figures are for {have:,}", flush=True)
    return url, have


def stop_cluster(procs):
    """Stops a local cluster's processes: the coordinator first (so the workers, stopping on
    SIGTERM, do not drain their shards onto each other), then the rest; SIGKILL after 20 s."""
    coordinators = [p for name, p in procs if name == "coordinator"]
    others = [p for name, p in procs if name != "coordinator"]
    for group in (coordinators, others):
        for p in group:
            if p.poll() is None:
                p.terminate()
        for p in group:
            try:
                p.wait(20)
            except Exception:
                p.kill()


def start_workers(binary, endpoint, logs, procs, count=2, threads=1):
    """Starts `count` workers (worker-1 …) of the coordinator at `endpoint`, logging to `logs`,
    adds them to `procs`, and waits until the coordinator has placed every shard on them."""
    import json, time
    for i in range(1, count + 1):
        procs.append((f"worker-{i}", subprocess.Popen([binary, "worker", "--coordinator", endpoint, "--name", f"worker-{i}", "--threads", str(threads)],
                                                      stdout=open(f"{logs}/worker-{i}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)))
    while True:
        st = json.loads(sh(binary, "status", "--coordinator", endpoint, "--json"))
        if len(st["workers"]) == count and st["unassignedShards"] == 0 and st["movingShards"] == 0:
            return st
        time.sleep(0.5)


def wait_for_standbys(binary, endpoint):
    """Waits until every shard has its standby (a copy on another worker) and none is moving."""
    import json, time
    while True:
        st = json.loads(sh(binary, "status", "--coordinator", endpoint, "--json"))
        if sum(w["standbyShards"] for w in st["workers"]) == sum(w["shards"] for w in st["workers"]) and st["movingShards"] == 0:
            return st
        time.sleep(1)


def start_coordinator(binary, url, model, logs, procs, extra=()):
    """Starts a coordinator (logging to `logs`/coordinator.log), adds it to `procs`; its endpoint."""
    coord = subprocess.Popen([binary, "coordinator", "--listen", "tcp://127.0.0.1:*", "--postgres", url, "--model", model, *extra],
                             stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
    procs.append(("coordinator", coord))
    endpoint = coord.stdout.readline().split()[-1]
    coord.stdout.readline()
    return endpoint


def query_load(binary, endpoint, rate, duration, subscribers, at_half=None):
    """`churngrid bench queries` (open loop) for `duration` s; `at_half()` runs at duration/2, its
    result and wall time returned with the load's JSON."""
    import json, time
    p = subprocess.Popen([binary, "bench", "queries", "--coordinator", endpoint, "--rate", str(rate), "--duration", str(duration),
                          "--subscribers", str(subscribers), "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    result = {}
    if at_half:
        time.sleep(duration / 2)
        t = time.time()
        result["op"] = at_half()
        result["op_wall_seconds"] = time.time() - t
    out, _ = p.communicate(timeout=duration + 120)
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    result["queries"] = json.loads(line)
    return result


def profile_matrix(url, model):
    """The model's features of every profile, read back from PostgreSQL (binary COPY), as a
    float32 NumPy matrix in the model's column order: the rows a reference predictor scores."""
    import json
    import numpy as np
    features = json.load(open(model))["learner"]["feature_names"]
    cols = ", ".join(f"coalesce({f}, 'NaN'::real)" for f in features)
    raw = subprocess.run(["psql", url, "-qAtX", "-c", f"COPY (SELECT {cols} FROM subscriber_profiles) TO STDOUT (FORMAT binary)"],
                         check=True, capture_output=True).stdout
    dtype = np.dtype([("n", ">i2")] + [(f"l{i}", ">i4") if k == 0 else (f"v{i}", ">f4") for i in range(len(features)) for k in (0, 1)])
    rows = np.frombuffer(raw[19:len(raw) - 2], dtype=dtype)
    return np.column_stack([rows[f"v{i}"].astype(np.float32) for i in range(len(features))])


def rescore_settled(binary, endpoint, url):
    """One job, waited for: its report (`rescore --json`: its seconds, start to published, and
    rows). Then waits (up to 120 s) for the drift of each of its models, measured after it is
    published, so that it does not run beside the next job and slow it."""
    import json, time
    j = json.loads(sh(binary, "rescore", "--wait", "--json", "--coordinator", endpoint))
    if j.get("state") != "completed":
        raise SystemExit(f"job failed: {j}")
    deadline = time.time() + 120
    while time.time() < deadline:
        models = int(psql(url, f"SELECT count(*) FROM scoring_job_models WHERE job_id = {int(j['id'])}"))
        measured = int(psql(url, f"SELECT count(DISTINCT model_version) FROM model_drift WHERE job_id = {int(j['id'])}"))
        if measured >= models:
            break
        time.sleep(0.2)
    return j


def xgboost_inplace_seconds(url, features_model, model_file, runs=3):
    """XGBoost's own `inplace_predict` of `model_file` over every profile (the features of
    `features_model`, read back from PostgreSQL, not timed), 2 threads: the seconds of each run."""
    import time
    import xgboost as xgb
    X = profile_matrix(url, features_model)
    b = xgb.Booster(model_file=model_file)
    b.set_param({"nthread": 2})
    out = []
    for _ in range(runs):
        t = time.time()
        b.inplace_predict(X)
        out.append(time.time() - t)
    return out


def reset_models(url):
    """Forgets the models of an earlier run (active, served, registered), so that a new cluster's
    served model and registry start from its --model."""
    psql(url, "DO $$ BEGIN IF to_regclass('model_active') IS NOT NULL THEN DELETE FROM model_active; END IF; "
              "IF to_regclass('model_served') IS NOT NULL THEN DELETE FROM model_served; DELETE FROM model_registry; END IF; END $$")
