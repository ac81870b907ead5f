"""What the cluster benchmarks share."""


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
