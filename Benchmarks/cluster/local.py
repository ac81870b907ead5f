"""What the cluster benchmarks share."""
import subprocess


def sh(*args, **kw):
    """Runs a command; its standard output (raises on a non-zero exit)."""
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def psql(url, sql):
    """One SQL statement's unaligned result."""
    return sh("psql", url, "-qAtX", "-c", sql).strip()


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
