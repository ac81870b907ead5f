#!/usr/bin/env python3
"""Chaos run: a real ChurnGrid cluster on this machine (a private PostgreSQL, two coordinators
sharing it — one leads, one stands by — and three workers), random faults for a set time while
back-to-back rescoring jobs and steady live queries run, then a checker over every completed job.

This script is the supervisor (what systemd would be): every node process that exits is started
again after a short delay. Everything it does is logged with timestamps to the run directory
(.churngrid/chaos-<time>/: chaos.log, events.jsonl, one log per node, report.json).

Usage (after building the release binary):
  python3 Benchmarks/chaos/chaos.py [--minutes 30] [--seed N] [--subscribers 300000]
                                    [--churngrid .build/release/churngrid]
See Benchmarks/chaos/README.md for what it checks and what the figures mean.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_SH = os.path.join(ROOT, "Deploy/local/pg.sh")
FAULT_KINDS = ["worker_kill", "worker_stop", "coordinator_kill", "coordinator_stop", "pg_restart",
               "pg_stop", "pg_freeze", "worker_join", "worker_drain"]


def now():
    return time.time()


def iso(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Run:
    """Shared state: the log, the stop flag and every process started (for cleanup)."""

    def __init__(self, a):
        self.a = a
        self.dir = a.run_dir
        os.makedirs(self.dir, exist_ok=True)
        self.t0 = now()
        self.lock = threading.Lock()
        self.log_file = open(os.path.join(self.dir, "chaos.log"), "a", buffering=1)
        self.events_file = open(os.path.join(self.dir, "events.jsonl"), "a", buffering=1)
        self.stop = threading.Event()        # the whole run ends
        self.faults_over = threading.Event()  # no more faults
        self.work_over = threading.Event()   # no more jobs / queries
        self.clients = set()                 # client processes running (status, rescore, bench, drain)

    def log(self, event, msg="", **fields):
        t = now()
        line = f"{iso(t)} +{t - self.t0:8.1f}s  {event:<18} {msg}"
        with self.lock:
            self.log_file.write(line + "\n")
            self.events_file.write(json.dumps({"t": t, "elapsed": round(t - self.t0, 3), "event": event, "msg": msg, **fields}, default=str) + "\n")
            if not self.a.quiet and not (event in ("check", "job") and fields.get("routine")):
                print(line, flush=True)

    def client(self, args, timeout, stdin_close_first=False):
        """Runs a churngrid client command with a bound; returns (rc, stdout, stderr, timed_out).
        Its standard input stays open while it runs (`bench queries --stop-on-stdin-eof` stops when it closes); past
        the timeout it is asked to finish by closing it (stdin_close_first), then killed."""
        import tempfile
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.Popen([self.a.churngrid] + args, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                 text=True, start_new_session=True, cwd=ROOT)
            with self.lock:
                self.clients.add(p)
            timed_out = False
            try:
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    if stdin_close_first:
                        p.stdin.close()
                        try:
                            p.wait(15)
                        except subprocess.TimeoutExpired:
                            pass
                    if p.poll() is None:
                        kill_group(p, signal.SIGKILL)
                        p.wait()
            finally:
                with self.lock:
                    self.clients.discard(p)
                try:
                    p.stdin.close()
                except OSError:
                    pass
            out.seek(0)
            err.seek(0)
            return (None if timed_out and p.returncode < 0 else p.returncode), out.read(), err.read(), timed_out


def kill_group(p, sig):
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# PostgreSQL


class Postgres:
    def __init__(self, run, directory):
        self.run = run
        self.dir = directory
        self.url = None
        self.frozen = []

    def sh(self, *args, same_port=False, timeout=120):
        env = dict(os.environ)
        if same_port:
            env["PG_SAME_PORT"] = "1"
        r = subprocess.run(["bash", PG_SH, *args, self.dir], capture_output=True, text=True, timeout=timeout, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"pg.sh {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout.strip()

    def start(self, same_port=False):
        url = self.sh("start", same_port=same_port).splitlines()[-1]
        if self.url is not None and url != self.url:
            self.run.log("oddity", f"PostgreSQL came back on another URL: {url} (was {self.url})")
        self.url = url
        return url

    def stop(self):
        self.sh("stop")

    def restart(self):
        url = self.sh("restart").splitlines()[-1]
        if url != self.url:
            self.run.log("oddity", f"PostgreSQL restarted on another URL: {url} (was {self.url})")

    def pids(self):
        try:
            first = open(os.path.join(self.dir, "data/postmaster.pid")).read().split("\n")[0]
            postmaster = int(first)
        except (OSError, ValueError):
            return []
        r = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True)
        return [postmaster] + [int(x) for x in r.stdout.split()]

    def freeze(self):
        self.frozen = self.pids()
        for pid in self.frozen:
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        return len(self.frozen)

    def thaw(self):
        for pid in self.frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.frozen = []


# ---------------------------------------------------------------------------------------------
# The supervisor


class Node:
    def __init__(self, name, kind, argv):
        self.name = name
        self.kind = kind          # coordinator | worker
        self.argv = argv
        self.proc = None
        self.wanted = True        # restarted when it exits
        self.restart_at = None
        self.starts = 0
        self.stopped = False      # SIGSTOPped by a fault
        self.drained = False      # its last exit followed a drain
        self.started_at = None


class Supervisor:
    def __init__(self, run, env):
        self.run = run
        self.env = env
        self.nodes = {}
        self.lock = threading.RLock()
        self.restarts = {}        # kind/reason -> count
        self.exits = []           # (time, node, code)
        self.thread = threading.Thread(target=self.loop, name="supervisor", daemon=True)
        self.paused = threading.Event()  # end of run: no more restarts

    def add(self, node):
        with self.lock:
            self.nodes[node.name] = node
            self.spawn(node)

    def spawn(self, node):
        logf = open(os.path.join(self.run.dir, f"{node.name}.log"), "a", buffering=1)
        logf.write(f"==== {iso(now())} supervisor: starting {node.name} (start #{node.starts + 1}): {' '.join(node.argv)}\n")
        logf.flush()
        # stdin is a pipe kept open: a node stops when its standard input closes.
        node.proc = subprocess.Popen([self.run.a.churngrid] + node.argv, stdin=subprocess.PIPE, stdout=logf, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True, cwd=ROOT)
        logf.close()
        node.starts += 1
        node.stopped = False
        node.started_at = now()
        node.restart_at = None

    def loop(self):
        while not self.run.stop.is_set():
            with self.lock:
                for node in list(self.nodes.values()):
                    p = node.proc
                    if p is not None and p.poll() is not None and node.restart_at is None:
                        code = p.returncode
                        self.exits.append((now(), node.name, code))
                        tail = last_lines(os.path.join(self.run.dir, f"{node.name}.log"), 3)
                        self.run.log("exit", f"{node.name} exited with {code}" + (" (after a drain)" if node.drained else ""),
                                     node=node.name, code=code, tail=tail)
                        if node.kind == "coordinator" and code not in (0, -9) and not any("stepping down" in l or "stepped down" in l for l in tail):
                            self.run.log("oddity", f"{node.name} exited {code} without 'stepping down': {tail}")
                        node.proc = None
                        if node.wanted and not self.paused.is_set():
                            node.restart_at = now() + self.run.a.restart_delay
                        else:
                            node.restart_at = float("inf")
                    if node.proc is None and node.restart_at is not None and now() >= node.restart_at and node.wanted and not self.paused.is_set():
                        reason = "join after drain" if node.drained else "restart"
                        node.drained = False
                        self.spawn(node)
                        key = f"{node.kind}:{reason}"
                        self.restarts[key] = self.restarts.get(key, 0) + 1
                        self.run.log("restart", f"{node.name} started again ({reason}), pid {node.proc.pid}", node=node.name, reason=reason)
            time.sleep(0.2)

    def workers(self, live=False):
        with self.lock:
            ws = [n for n in self.nodes.values() if n.kind == "worker" and n.wanted]
            if live:
                ws = [n for n in ws if n.proc is not None and n.proc.poll() is None and not n.stopped]
            return ws

    def coordinators(self):
        with self.lock:
            return [n for n in self.nodes.values() if n.kind == "coordinator"]

    def stop_all(self):
        """SIGCONT everything, SIGTERM the coordinators then the workers, SIGKILL after 20 s."""
        self.paused.set()
        with self.lock:
            nodes = list(self.nodes.values())
        for n in nodes:
            if n.proc is not None and n.proc.poll() is None:
                kill_group(n.proc, signal.SIGCONT)
        for group in ([n for n in nodes if n.kind == "coordinator"], [n for n in nodes if n.kind != "coordinator"]):
            for n in group:
                if n.proc is not None and n.proc.poll() is None:
                    kill_group(n.proc, signal.SIGTERM)
            deadline = now() + 20
            for n in group:
                if n.proc is None:
                    continue
                try:
                    n.proc.wait(max(0.1, deadline - now()))
                except subprocess.TimeoutExpired:
                    self.run.log("oddity", f"{n.name} did not stop within 20 s of SIGTERM: SIGKILL")
                    kill_group(n.proc, signal.SIGKILL)
                    n.proc.wait()
        for n in nodes:  # anything the nodes started in their groups
            if n.proc is not None:
                kill_group(n.proc, signal.SIGKILL)


def last_lines(path, k):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4000))
            return [l.decode(errors="replace") for l in f.read().splitlines()[-k:]]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------
# Work: back-to-back jobs, steady queries, completed jobs checked as they complete


class Work:
    def __init__(self, run, cluster):
        self.run = run
        self.cluster = cluster
        self.jobs = {"completed": 0, "failed": 0, "client_error": 0, "timed_out": 0}
        self.job_log = []
        self.queries = {"queries": 0, "failed": 0, "not_found": 0, "runs": 0, "runs_failed": 0, "runs_timed_out": 0,
                        "seconds_without_client": 0.0}
        self.checked = {}        # job id -> check result
        self.check_errors = []
        self.check_lock = threading.Lock()
        self.query_runs = []
        self.checking = set()

    def rescore_loop(self):
        a = self.run.a
        while not self.run.work_over.is_set():
            t = now()
            rc, out, err, timed_out = self.run.client(["rescore", "--wait", "--json", "--coordinator", self.cluster.endpoints],
                                                     timeout=a.job_timeout)
            status = None
            try:
                status = json.loads(out) if out.strip() else None
            except ValueError:
                pass
            if timed_out:
                outcome = "timed_out"
            elif status and status.get("state") == "completed":
                outcome = "completed"
            elif status and status.get("state") == "failed":
                outcome = "failed"
            else:
                outcome = "client_error"
            self.jobs[outcome] += 1
            entry = {"start": t, "seconds": round(now() - t, 2), "outcome": outcome, "job": status.get("id") if status else None,
                     "retries": status.get("retries") if status else None, "stragglers": status.get("stragglers") if status else None,
                     "error": (status or {}).get("error") or err.strip()[-300:]}
            self.job_log.append(entry)
            self.run.log("job", f"{outcome} job {entry['job']} in {entry['seconds']} s" + (f" retries {entry['retries']}" if entry["retries"] else "")
                         + (f": {entry['error']}" if outcome != "completed" and entry["error"] else ""),
                         routine=outcome == "completed" and not entry["retries"], **entry)
            if outcome == "completed":
                self.check_job(status["id"], when="on completion")
            if outcome != "completed":
                self.run.work_over.wait(1.0)

    def query_loop(self):
        a = self.run.a
        while not self.run.work_over.is_set():
            t = now()
            d = a.query_chunk
            rc, out, err, timed_out = self.run.client(["bench", "queries", "--stop-on-stdin-eof", "--coordinator", self.cluster.endpoints, "--rate", str(a.query_rate),
                                                      "--duration", str(d), "--subscribers", str(self.cluster.base_size), "--json"],
                                                     timeout=d + 30, stdin_close_first=True)
            self.queries["runs"] += 1
            result = None
            self.query_runs.append(None)
            try:
                result = json.loads(out) if out.strip() else None
            except ValueError:
                pass
            self.query_runs[-1] = {"start": t, "end": now(), "queries": int((result or {}).get("queries", 0)),
                                   "failed": int((result or {}).get("failed", 0)), "client_failed": result is None}
            if result:
                self.queries["queries"] += int(result.get("queries", 0))
                self.queries["failed"] += int(result.get("failed", 0))
                self.queries["not_found"] += int(result.get("not_found", 0))
                if result.get("failed") or result.get("not_found"):
                    self.run.log("queries", f"{int(result['queries'])} queries, {int(result['failed'])} failed, {int(result['not_found'])} not found")
            else:
                self.queries["runs_failed"] += 1
                if timed_out:
                    self.queries["runs_timed_out"] += 1
                self.queries["seconds_without_client"] += now() - t
                self.run.log("queries", "query client " + ("timed out" if timed_out else f"failed (rc {rc})") + f": {err.strip()[-200:]}")
                self.run.work_over.wait(1.0)

    def check_job(self, job, when):
        with self.check_lock:
            if job in self.checking or (job in self.checked and self.checked[job].get("present")):
                return
            self.checking.add(job)
        try:
            self._check_job(job, when)
        finally:
            with self.check_lock:
                self.checking.discard(job)

    def _check_job(self, job, when):
        for attempt in range(30):
            try:
                r = checker.check_partition(self.cluster.pg.url, job, self.cluster.reference)
                r["when"] = when
                r["at"] = now()
                if r["present"] or job not in self.checked:
                    self.checked[job] = r
                if r["present"]:
                    msg = (f"job {job}: {r['count']} rows, {r['distinct']} distinct, lost {r['lost']}, duplicated {r['duplicated']}, "
                           f"wrong {r['wrong']}, worst diff {r['worst_diff']:.2e}")
                    self.run.log("check" if r["ok"] else "CHECK-FAILED", msg, routine=r["ok"], **{k: v for k, v in r.items() if k != "wrong_examples"},
                                 examples=r["wrong_examples"])
                else:
                    self.run.log("check", f"job {job}: partition already dropped ({when})")
                return
            except checker.DatabaseUnavailable as e:
                if self.run.stop.is_set():
                    return
                time.sleep(2)
                last = str(e)
        self.check_errors.append((job, last))
        self.run.log("check", f"job {job}: could not be checked {when} (database unavailable: {last[:200]})")

    def completed_watch(self):
        """Completed jobs the rescore client did not see complete (e.g. its connection was lost)."""
        while not self.run.stop.is_set():
            self.run.stop.wait(3)
            try:
                rows = checker.psql(self.cluster.pg.url, "SELECT id FROM scoring_jobs WHERE state = 'completed' ORDER BY id", timeout=10)
            except checker.DatabaseUnavailable:
                continue
            for (job,) in rows:
                if int(job) not in self.checked:
                    self.check_job(int(job), when="found completed")


# ---------------------------------------------------------------------------------------------
# The cluster and the faults


class Cluster:
    def __init__(self, run, pg, supervisor, ports):
        self.run = run
        self.pg = pg
        self.sup = supervisor
        self.ports = ports
        self.endpoints = ",".join(f"tcp://127.0.0.1:{p}" for p in ports)
        self.next_worker = 1
        self.base_size = 0
        self.reference = None
        self.status_seconds = []

    def coordinator_argv(self, name, port):
        a = self.run.a
        return ["coordinator", "--listen", f"tcp://127.0.0.1:{port}", "--name", name, "--lease-seconds", str(a.lease_seconds),
                "--shards", str(a.shards), "--model", a.model] + a.coordinator_arg

    def add_worker(self):
        name = f"worker-{self.next_worker}"
        self.next_worker += 1
        self.sup.add(Node(name, "worker", ["worker", "--coordinator", self.endpoints, "--name", name, "--threads", "1"]))
        return name

    def start(self):
        for name, port in (("coordinator-a", self.ports[0]), ("coordinator-b", self.ports[1])):
            self.sup.add(Node(name, "coordinator", self.coordinator_argv(name, port)))
        for _ in range(self.run.a.workers):
            self.add_worker()

    def status(self, timeout=15):
        t = now()
        rc, out, err, timed_out = self.run.client(["status", "--json", "--coordinator", self.endpoints], timeout=timeout)
        self.status_seconds.append(now() - t)
        if rc != 0 or timed_out:
            return None, (err.strip() or "timed out")[-200:]
        try:
            return json.loads(out), None
        except ValueError:
            return None, "unparsable status"

    def ready(self, st):
        if st is None:
            return False
        owned = sum(w["shards"] for w in st["workers"])
        return st["unassignedShards"] == 0 and st["movingShards"] == 0 and not st["silentWorkers"] and owned == st["shardCount"]

    def lease(self):
        try:
            r = checker.psql(self.pg.url, "SELECT term, holder, extract(epoch from renewed_at) FROM churngrid_lease", timeout=5)
        except checker.DatabaseUnavailable:
            return None
        return (int(r[0][0]), r[0][1], float(r[0][2])) if r else None

    def leader(self):
        lease = self.lease()
        if lease is None:
            return None
        with self.sup.lock:
            node = self.sup.nodes.get(lease[1].split("@")[0])
        if node is None or node.proc is None or node.proc.poll() is not None:
            return None
        return node

    def wait_recovered(self, since, timeout, worker=None):
        """Seconds from `since` until status answers with every shard ready and the lease was renewed
        after `since` (the leader writes to PostgreSQL again); with `worker`, also until that worker
        owns shards again. Returns (ready_s or None, worker_back_s or None, last reason)."""
        deadline = since + timeout
        ready_s = back_s = None
        reason = ""
        while now() < deadline and not self.run.stop.is_set():
            st, err = self.status(timeout=10)
            t = now()
            if ready_s is None:
                if not self.ready(st):
                    reason = err or (f"unassigned {st['unassignedShards']}, moving {st['movingShards']}, silent {st['silentWorkers']}, "
                                     f"owned {sum(w['shards'] for w in st['workers'])}/{st['shardCount']}")
                else:
                    lease = self.lease()
                    if lease is None or lease[2] < since:
                        reason = "lease not renewed since the fault ended"
                    else:
                        ready_s = t - since
            if worker is not None and back_s is None and st is not None:
                if any(w["name"] == worker and w["shards"] > 0 for w in st["workers"]):
                    back_s = t - since
            if ready_s is not None and (worker is None or back_s is not None):
                break
            time.sleep(0.5)
        return ready_s, back_s, reason


class Faults:
    def __init__(self, run, cluster, rng):
        self.run = run
        self.c = cluster
        self.rng = rng
        self.injected = {k: 0 for k in FAULT_KINDS}
        self.skipped = {}
        self.recovery = {k: [] for k in FAULT_KINDS}      # seconds to all shards ready
        self.worker_back = {k: [] for k in FAULT_KINDS}   # seconds until the faulted worker owns shards again
        self.not_recovered = []
        self.history = []

    def pick_worker(self):
        live = self.c.sup.workers(live=True)
        if len(live) < 3:   # keep at least 2 workers alive
            return None
        return self.rng.choice(sorted(live, key=lambda n: n.name))

    def loop(self):
        a = self.run.a
        next_at = now() + a.first_fault_after
        end = self.run.t0 + a.minutes * 60
        while not self.run.stop.is_set():
            wait = min(next_at, end) - now()
            if wait > 0 and self.run.stop.wait(wait):
                break
            if now() >= end:
                break
            start = now()
            kind = self.rng.choice(FAULT_KINDS)
            try:
                result = self.inject(kind)
            except Exception as e:
                self.run.log("fault-error", f"{kind}: {e!r}\n{traceback.format_exc()}")
                result = None
            if result is None:
                self.skipped[kind] = self.skipped.get(kind, 0) + 1
                next_at = now() + 1
                continue
            healed, detail, worker = result
            self.injected[kind] += 1
            ready_s, back_s, reason = self.c.wait_recovered(healed, a.recovery_timeout, worker)
            rec = {"kind": kind, "start": start, "healed": healed, "detail": detail, "recovered_s": ready_s, "worker": worker,
                   "worker_back_s": back_s}
            self.history.append(rec)
            if ready_s is None:
                self.not_recovered.append(rec)
                self.run.log("NOT-RECOVERED", f"{kind} ({detail}): no ready cluster {a.recovery_timeout} s after the fault ended: {reason}", **rec)
            else:
                self.recovery[kind].append(ready_s)
                if worker is not None:
                    if back_s is None:
                        self.run.log("oddity", f"{kind}: {worker} owns no shards {a.recovery_timeout} s after the fault ended")
                    else:
                        self.worker_back[kind].append(back_s)
                self.run.log("recovered", f"{kind}: all shards ready {ready_s:.1f} s after the fault ended"
                             + (f", {worker} owns shards again after {back_s:.1f} s" if back_s is not None else ""), **rec)
            next_at = max(start + self.rng.uniform(a.fault_min, a.fault_max), now() + 1)

    def inject(self, kind):
        """Injects one fault; returns (time the fault ended, description, worker to watch) or None to skip."""
        a, c, rng, log = self.run.a, self.c, self.rng, self.run.log
        if kind == "worker_kill":
            w = self.pick_worker()
            if w is None:
                return None
            log("FAULT", f"worker_kill: SIGKILL {w.name} (pid {w.proc.pid})", kind=kind, node=w.name)
            kill_group(w.proc, signal.SIGKILL)
            return now(), w.name, w.name
        if kind == "worker_stop":
            w = self.pick_worker()
            if w is None:
                return None
            secs = rng.uniform(5, 30)
            log("FAULT", f"worker_stop: SIGSTOP {w.name} (pid {w.proc.pid}) for {secs:.1f} s", kind=kind, node=w.name, seconds=secs)
            w.stopped = True
            kill_group(w.proc, signal.SIGSTOP)
            try:
                self.run.stop.wait(secs)
            finally:
                kill_group(w.proc, signal.SIGCONT)
                w.stopped = False
            log("FAULT-END", f"worker_stop: SIGCONT {w.name}")
            return now(), f"{w.name} {secs:.1f} s", w.name
        if kind in ("coordinator_kill", "coordinator_stop"):
            leader = c.leader()
            if leader is None:
                return None
            if kind == "coordinator_kill":
                log("FAULT", f"coordinator_kill: SIGKILL the leader {leader.name} (pid {leader.proc.pid})", kind=kind, node=leader.name)
                kill_group(leader.proc, signal.SIGKILL)
                return now(), leader.name, None
            secs = a.lease_seconds + rng.uniform(2, 8)
            log("FAULT", f"coordinator_stop: SIGSTOP the leader {leader.name} (pid {leader.proc.pid}) for {secs:.1f} s (lease {a.lease_seconds} s)",
                kind=kind, node=leader.name, seconds=secs)
            leader.stopped = True
            kill_group(leader.proc, signal.SIGSTOP)
            try:
                self.run.stop.wait(secs)
            finally:
                kill_group(leader.proc, signal.SIGCONT)
                leader.stopped = False
            log("FAULT-END", f"coordinator_stop: SIGCONT {leader.name}")
            return now(), f"{leader.name} {secs:.1f} s", None
        if kind == "pg_restart":
            log("FAULT", "pg_restart: pg.sh restart", kind=kind)
            t = now()
            c.pg.restart()
            log("FAULT-END", f"pg_restart: PostgreSQL back after {now() - t:.1f} s")
            return now(), f"{now() - t:.1f} s", None
        if kind == "pg_stop":
            secs = rng.uniform(5, 20)
            log("FAULT", f"pg_stop: pg.sh stop for {secs:.1f} s", kind=kind, seconds=secs)
            c.pg.stop()
            try:
                self.run.stop.wait(secs)
            finally:
                c.pg.start(same_port=True)
            log("FAULT-END", "pg_stop: PostgreSQL started again (same port)")
            return now(), f"{secs:.1f} s", None
        if kind == "pg_freeze":
            secs = rng.uniform(2, 8)
            n = c.pg.freeze()
            try:
                log("FAULT", f"pg_freeze: SIGSTOP the postmaster and {n - 1} backends for {secs:.1f} s", kind=kind, seconds=secs, processes=n)
                self.run.stop.wait(secs)
            finally:
                c.pg.thaw()
            log("FAULT-END", "pg_freeze: SIGCONT")
            return now(), f"{secs:.1f} s", None
        if kind == "worker_join":
            if len(c.sup.workers()) >= a.max_workers:
                return None
            name = c.add_worker()
            log("FAULT", f"worker_join: new worker {name}", kind=kind, node=name)
            return now(), name, name
        if kind == "worker_drain":
            w = self.pick_worker()
            if w is None:
                return None
            retire = len(c.sup.workers()) > a.workers
            log("FAULT", f"worker_drain: churngrid nodes drain {w.name}" + (" (then retired)" if retire else " (then it joins again)"),
                kind=kind, node=w.name)
            w.drained = True
            if retire:
                w.wanted = False
            t = now()
            rc, out, err, timed_out = self.run.client(["nodes", "drain", w.name, "--coordinator", c.endpoints], timeout=a.drain_timeout)
            log("FAULT-END", f"worker_drain: {'timed out' if timed_out else f'rc {rc}'} after {now() - t:.1f} s: {(out.strip() or err.strip())[-200:]}",
                rc=rc, timed_out=timed_out)
            if rc != 0:
                w.drained = False
                if retire:
                    w.wanted = True
            return now(), f"{w.name} rc {rc}", None
        raise ValueError(kind)


# ---------------------------------------------------------------------------------------------


def terms_from_logs(run_dir, names):
    """Each term and the coordinators whose logs say they took the lease in it (one each, or two
    coordinators led in the same term)."""
    import re
    terms = {}
    for name in names:
        for line in open(os.path.join(run_dir, f"{name}.log"), errors="replace"):
            m = re.search(r"term=(\d+) \[ChurnCluster\] took the coordinator lease", line)
            if m:
                terms.setdefault(int(m.group(1)), []).append(name)
    return terms


def query_failures_by_fault(runs, history):
    """Failed queries of each `bench queries` run, attributed to the kinds of the faults active
    during it (from the fault's start to its recovery); 'none' when no fault was."""
    out = {}
    for r in runs:
        if not r or not r["failed"]:
            continue
        kinds = sorted({h["kind"] for h in history
                        if h["start"] <= r["end"] and h["healed"] + (h["recovered_s"] or 0) + 2 >= r["start"]}) or ["none"]
        key = "+".join(kinds)
        out[key] = out.get(key, 0) + r["failed"]
    return out


def summarize(values):
    if not values:
        return None
    return {"count": len(values), "max_s": round(max(values), 2), "median_s": round(sorted(values)[len(values) // 2], 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30, help="how long faults are injected (default 30)")
    ap.add_argument("--seed", type=int, default=None, help="the faults' seed (default: random, printed)")
    ap.add_argument("--subscribers", type=int, default=300_000)
    ap.add_argument("--churngrid", default=".build/release/churngrid", help="the churngrid binary (relative to the project)")
    ap.add_argument("--model", default="models/churn-default.json")
    ap.add_argument("--shards", type=int, default=256)
    ap.add_argument("--workers", type=int, default=3, help="workers at the start (and after drains)")
    ap.add_argument("--max-workers", type=int, default=5, help="joins stop here")
    ap.add_argument("--lease-seconds", type=float, default=5)
    ap.add_argument("--fault-min", type=float, default=10, help="seconds between fault starts: uniform in [min, max]")
    ap.add_argument("--fault-max", type=float, default=18)
    ap.add_argument("--first-fault-after", type=float, default=15)
    ap.add_argument("--restart-delay", type=float, default=2, help="seconds before the supervisor starts an exited node again")
    ap.add_argument("--recovery-timeout", type=float, default=120, help="a fault not recovered within this is reported (N)")
    ap.add_argument("--query-rate", type=int, default=50)
    ap.add_argument("--query-chunk", type=float, default=30, help="seconds per `bench queries` run")
    ap.add_argument("--job-timeout", type=float, default=600, help="a `rescore --wait` running longer is killed and counted as hung")
    ap.add_argument("--drain-timeout", type=float, default=180)
    ap.add_argument("--settle", type=float, default=180, help="seconds allowed, after the faults, for the last job to end and the cluster to settle")
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--keep-db", action="store_true", help="keep the run's PostgreSQL data directory")
    ap.add_argument("--coordinator-arg", action="append", default=[], help="extra coordinator argument (repeatable)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 2**31)
    os.chdir(ROOT)
    a.churngrid = os.path.abspath(a.churngrid)
    a.model = os.path.abspath(a.model)
    if not os.access(a.churngrid, os.X_OK):
        sys.exit(f"no churngrid binary at {a.churngrid}: build it (swift build -c release) or pass --churngrid")
    a.run_dir = os.path.abspath(a.run_dir or os.path.join(ROOT, ".churngrid", time.strftime("chaos-%Y%m%d-%H%M%S")))
    run = Run(a)
    print(f"chaos run: seed {a.seed}, {a.minutes} min, {a.subscribers:,} subscribers, run dir {a.run_dir}", flush=True)
    run.log("start", f"seed {a.seed}, {a.minutes} min of faults, {a.subscribers} subscribers, binary {a.churngrid}", args=vars(a))

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    pg = Postgres(run, os.path.join(a.run_dir, "pg"))
    sup = None
    report = None
    interrupted = False
    try:
        url = pg.start()
        run.log("postgres", f"started: {url}")
        t = now()
        r = subprocess.run([a.churngrid, "generate", "--subscribers", str(a.subscribers), "--postgres", url], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"generate failed: {r.stderr.strip()}")
        run.log("generate", f"{r.stdout.strip()} ({now() - t:.1f} s)")
        env = dict(os.environ, CHURNGRID_POSTGRES_URL=url)   # the only way the nodes get the URL
        env.pop("PGPASSWORD", None)
        sup = Supervisor(run, env)
        cluster = Cluster(run, pg, sup, [free_port(), free_port()])
        t = now()
        cluster.reference = checker.Reference(url, a.model)
        cluster.base_size = cluster.reference.size
        run.log("reference", f"XGBoost probabilities for {cluster.base_size} profiles in {now() - t:.1f} s")
        if cluster.base_size != a.subscribers:
            raise RuntimeError(f"the base has {cluster.base_size} profiles, not {a.subscribers}")
        cluster.start()
        sup.thread.start()
        t = now()
        while True:
            st, err = cluster.status()
            if cluster.ready(st) and len(st["workers"]) == a.workers:
                break
            if now() - t > 180:
                raise RuntimeError(f"the cluster did not become ready in 180 s: {err or st}")
            time.sleep(1)
        run.log("ready", f"cluster ready in {now() - t:.1f} s: leader {st['coordinator']}, {len(st['workers'])} workers, endpoints {cluster.endpoints}")
        run.t0 = now()   # the fault clock starts now

        work = Work(run, cluster)
        faults = Faults(run, cluster, random.Random(a.seed))
        threads = [threading.Thread(target=work.rescore_loop, name="rescore", daemon=True),
                   threading.Thread(target=work.query_loop, name="queries", daemon=True),
                   threading.Thread(target=work.completed_watch, name="watch", daemon=True)]
        for th in threads:
            th.start()
        faults_thread = threading.Thread(target=faults.loop, name="faults", daemon=True)
        faults_thread.start()
        while faults_thread.is_alive():
            faults_thread.join(1)
        fault_seconds = now() - run.t0
        run.faults_over.set()
        run.log("faults-over", f"{sum(faults.injected.values())} faults in {fault_seconds:.0f} s; settling")

        # Settle: the last job ends (completed or failed), queries stop, the cluster is ready.
        run.work_over.set()
        t = now()
        for th in threads[:2]:
            th.join(max(1, a.settle + a.job_timeout))
        settle_deadline = t + a.settle
        running = ["?"]
        st = None
        while now() < settle_deadline:
            st, err = cluster.status()
            try:
                running = [r[0] for r in checker.psql(pg.url, "SELECT id FROM scoring_jobs WHERE state = 'running'")]
            except checker.DatabaseUnavailable:
                running = ["?"]
            if cluster.ready(st) and not running:
                break
            time.sleep(2)
        settled_s = now() - t
        run.log("settled" if cluster.ready(st) and not running else "NOT-SETTLED",
                f"{settled_s:.1f} s after the faults: ready {cluster.ready(st)}, running jobs {running}")
        # One more job on the settled cluster: it must complete (the cluster serves after the chaos).
        rc, out, err, timed_out = run.client(["rescore", "--wait", "--json", "--coordinator", cluster.endpoints], timeout=a.job_timeout)
        try:
            final_job = json.loads(out)
        except ValueError:
            final_job = {"state": "client_error", "error": err.strip()[-300:]}
        run.log("final-job", f"{final_job.get('state')} job {final_job.get('id')} in {final_job.get('seconds', 0):.1f} s", **final_job)
        run.stop.set()  # stops the watcher

        # The checker: every completed job (again, for the partitions still kept), then the invariants.
        for attempt in range(30):
            try:
                fin = checker.final_checks(pg.url, cluster.base_size)
                break
            except checker.DatabaseUnavailable as e:
                run.log("oddity", f"final checks: the database is unavailable ({e}); again in 2 s")
                if attempt == 29:
                    raise
                time.sleep(2)
        completed = [j["id"] for j in fin["jobs"] if j["state"] == "completed"]
        for job in completed:
            if job in fin["partitions"]:
                r = checker.check_partition(pg.url, job, cluster.reference)
                r["when"] = "at the end"
                prev = work.checked.get(job)
                if prev is None or not prev.get("present") or not r["ok"]:
                    work.checked[job] = r
                run.log("check" if r["ok"] else "CHECK-FAILED", f"job {job} at the end: lost {r['lost']}, duplicated {r['duplicated']}, wrong {r['wrong']}, worst {r['worst_diff']:.2e}")
        checks = [work.checked[j] for j in completed if j in work.checked and work.checked[j].get("present")]
        unchecked = [j for j in completed if j not in work.checked or not work.checked[j].get("present")]
        lost = sum(c["lost"] for c in checks)
        dup = sum(c["duplicated"] for c in checks)
        wrong = sum(c["wrong"] for c in checks)
        worst = max([c["worst_diff"] for c in checks], default=None)
        db_states = {}
        for j in fin["jobs"]:
            db_states[j["state"]] = db_states.get(j["state"], 0) + 1
        problems = []
        if lost or dup or wrong:
            problems.append(f"scores lost {lost}, duplicated {dup}, wrong {wrong}")
        if unchecked:
            problems.append(f"completed jobs never checked (partition dropped before the check): {unchecked}")
        if not fin["published_ok"]:
            problems.append(f"published: {fin['published_rows']} rows, job {fin['published_job']} state {fin['published_state']}")
        if not fin["published_is_latest_completed"]:
            problems.append(f"published job {fin['published_job']} is not the latest completed one")
        if fin["running"]:
            problems.append(f"jobs still running after the settle period: {fin['running']}")
        if fin["term_regressions"] or fin["jobs_without_term"] or not fin["lease_term_ge_jobs"]:
            problems.append(f"terms: regressions {fin['term_regressions']}, jobs without term {fin['jobs_without_term']}, lease {fin['lease']}")
        log_terms = terms_from_logs(a.run_dir, [n.name for n in sup.coordinators()])
        shared_terms = {t: ns for t, ns in log_terms.items() if len(ns) > 1}
        if shared_terms:
            problems.append(f"terms taken by more than one coordinator (logs): {shared_terms}")
        if fin["bad_claims"]:
            problems.append(f"completed jobs whose shard claims are not the base: {fin['bad_claims']}")
        if fin["missing_recent_completed"]:
            problems.append(f"the last completed jobs' partitions are missing: {fin['missing_recent_completed']}")
        if faults.not_recovered:
            problems.append(f"{len(faults.not_recovered)} faults not recovered within {a.recovery_timeout} s")
        if final_job.get("state") != "completed":
            problems.append(f"the job after the chaos did not complete: {final_job}")
        if work.queries["not_found"]:
            problems.append(f"{work.queries['not_found']} live queries answered 'not found' for subscribers of the base")
        report = {
            "seed": a.seed, "minutes": a.minutes, "fault_seconds": round(fault_seconds, 1), "subscribers": cluster.base_size,
            "shards": a.shards, "lease_seconds": a.lease_seconds, "binary": a.churngrid, "run_dir": a.run_dir,
            "faults_injected": sum(faults.injected.values()), "faults_by_kind": faults.injected, "faults_skipped": faults.skipped,
            "recovery_by_kind": {k: summarize(v) for k, v in faults.recovery.items()},
            "worker_back_by_kind": {k: summarize(v) for k, v in faults.worker_back.items() if v},
            "faults_not_recovered": len(faults.not_recovered), "not_recovered": faults.not_recovered,
            "every_fault_recovered": not faults.not_recovered,
            "restarts_by_supervisor": sup.restarts, "process_exits": len(sup.exits),
            "jobs_client": work.jobs, "jobs_in_database": db_states, "jobs_started": len(fin["jobs"]),
            "job_seconds_completed_median": (lambda v: v[len(v) // 2] if v else None)(
                sorted(j["seconds"] for j in work.job_log if j["outcome"] == "completed")),
            "queries": work.queries,
            "query_failures_by_fault": query_failures_by_fault(work.query_runs, faults.history),
            "status_call_seconds": {"max": round(max(cluster.status_seconds), 2),
                                    "median": round(sorted(cluster.status_seconds)[len(cluster.status_seconds) // 2], 2)},
            "jobs_checked": len(checks), "jobs_unchecked": unchecked,
            "scores_lost": lost, "scores_duplicated": dup, "scores_wrong": wrong, "worst_difference": worst,
            "published": {"rows": fin["published_rows"], "job": fin["published_job"], "state": fin["published_state"],
                          "latest_completed": fin["published_is_latest_completed"]},
            "lease": fin["lease"], "terms_taken": {str(t): ns for t, ns in sorted(log_terms.items())}, "max_job_term": fin["max_job_term"], "term_regressions": fin["term_regressions"],
            "running_after_settle": fin["running"], "settle_seconds": round(settled_s, 1),
            "failed_partitions_left": fin["failed_partitions_left"], "final_job": final_job,
            "job_errors": sorted({(j["error"] or "")[:160] for j in work.job_log if j["outcome"] != "completed"}),
            "problems": problems, "ok": not problems,
        }
    except KeyboardInterrupt as e:
        interrupted = True
        run.log("interrupted", str(e))
    except Exception as e:
        run.log("error", f"{e!r}\n{traceback.format_exc()}")
        print(traceback.format_exc(), file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # cleanup is not interrupted
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.stop.set()
        run.work_over.set()
        pg.thaw()
        with run.lock:
            clients = list(run.clients)
        for p in clients:
            kill_group(p, signal.SIGKILL)
        if sup is not None:
            sup.stop_all()
        try:
            pg.stop()
        except Exception as e:
            print(f"stopping PostgreSQL: {e}", file=sys.stderr)
        if not a.keep_db:
            subprocess.run(["rm", "-rf", os.path.join(a.run_dir, "pg", "data")])
        run.log("cleanup", "processes stopped, PostgreSQL stopped")
    if report is None:
        print(f"no report ({'interrupted' if interrupted else 'error'}); logs in {a.run_dir}", file=sys.stderr)
        sys.exit(130 if interrupted else 1)
    json.dump(report, open(os.path.join(a.run_dir, "report.json"), "w"), indent=1, default=str)
    print_report(report)
    sys.exit(0 if report["ok"] else 1)


def print_report(r):
    print()
    print(f"== chaos run: seed {r['seed']}, {r['fault_seconds']:.0f} s of faults, {r['subscribers']:,} subscribers, {r['shards']} shards ==")
    print(f"faults injected: {r['faults_injected']}  " + ", ".join(f"{k} {v}" for k, v in r["faults_by_kind"].items()))
    print("recovery (all shards ready, lease renewed) after the fault ended, max / median s:")
    for k, v in r["recovery_by_kind"].items():
        if v:
            back = r["worker_back_by_kind"].get(k)
            print(f"  {k:<18} {v['max_s']:6.1f} / {v['median_s']:5.1f}  ({v['count']})" + (f"   worker owns shards again: max {back['max_s']:.1f} s" if back else ""))
    print(f"every fault recovered: {r['every_fault_recovered']} ({r['faults_not_recovered']} not)")
    print(f"supervisor restarts: {r['restarts_by_supervisor']} ({r['process_exits']} process exits)")
    jc = r["jobs_client"]
    print(f"jobs: {r['jobs_started']} started; client saw {jc['completed']} completed, {jc['failed']} failed, {jc['client_error']} client errors, "
          f"{jc['timed_out']} hung (killed); database: {r['jobs_in_database']}")
    q = r["queries"]
    print(f"queries: {q['queries']} answered or refused, {q['failed']} failed, {q['not_found']} not found; "
          f"{q['runs_failed']} of {q['runs']} query clients failed ({q['seconds_without_client']:.0f} s without one)")
    print(f"failed queries by the faults active meanwhile: {r['query_failures_by_fault']}; status call seconds {r['status_call_seconds']}")
    print(f"checked jobs: {r['jobs_checked']} (unchecked: {r['jobs_unchecked']})  scores lost {r['scores_lost']}, duplicated "
          f"{r['scores_duplicated']}, wrong {r['scores_wrong']}; worst difference {r['worst_difference']}")
    print(f"published: {r['published']}; lease {r['lease']}; running after settle {r['running_after_settle']}")
    print(f"job after the chaos: {r['final_job'].get('state')}")
    print("OK" if r["ok"] else "PROBLEMS:\n  " + "\n  ".join(r["problems"]))
    print(f"report: {r['run_dir']}/report.json")


if __name__ == "__main__":
    main()
