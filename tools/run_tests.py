#!/usr/bin/env python3
"""Runs the test binary (`swift test --skip-build`) under a time limit, so that a test that hangs
fails the run with a diagnosis instead of running into CI's limit.

Output is line-buffered (stdbuf) and shown as it comes. When the limit passes, it prints which
tests started and did not end, the stacks of every thread of the test process (gdb, when
installed and allowed to attach; else each thread's kernel wait), then kills the process group
and every process started under it. Exit status: the test run's, or 124 on the time limit.

  tools/run_tests.py [--limit SECONDS] [--log FILE] [-- swift test arguments...]
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

ENDED = re.compile(r'^[✔✘] Test "(?P<name>.+?)" (?:with \d+ test cases? )?(?:passed|failed)')
TEST_STARTED = re.compile(r'^◇ Test "(?P<name>.+?)" started\.')
ANSI = re.compile(r'\x1b\[[0-9;]*m')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=float(os.environ.get("TEST_TIME_LIMIT", "2400")),
                        help="seconds the test run may take (TEST_TIME_LIMIT, default 2400)")
    parser.add_argument("--log", default=".churngrid/test-output.log", help="a copy of the output")
    parser.add_argument("--width", type=int, default=int(os.environ.get("TEST_PARALLEL_WIDTH", "32")),
                        help="tests run at once at most (TEST_PARALLEL_WIDTH, default 32; 0: no limit). Without a "
                             "limit Swift Testing starts every test at once: on a 2-core machine ~80 clusters of "
                             "processes then share the cores, and each test's time limit runs for the whole suite")
    parser.add_argument("swift_args", nargs="*", help="more arguments for swift test")
    args = parser.parse_args()

    command = ["swift", "test", "--skip-build", *args.swift_args]
    if shutil.which("stdbuf"):
        command = ["stdbuf", "-oL", "-eL", *command]
    os.makedirs(os.path.dirname(args.log) or ".", exist_ok=True)
    log = open(args.log, "w", encoding="utf-8", errors="replace")
    start = time.monotonic()
    env = dict(os.environ)
    if args.width > 0:
        env.setdefault("SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH", str(args.width))
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True, bufsize=0)
    running: dict[str, int] = {}
    started_at: dict[str, float] = {}
    lock = threading.Lock()

    def pump() -> None:
        assert child.stdout is not None
        for raw in iter(child.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace")
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            plain = ANSI.sub("", line)
            with lock:
                if m := TEST_STARTED.match(plain):
                    name = m.group("name")
                    running[name] = running.get(name, 0) + 1
                    started_at.setdefault(name, time.monotonic() - start)
                elif m := ENDED.match(plain):
                    name = m.group("name")
                    if running.get(name, 0) > 1:
                        running[name] -= 1
                    else:
                        running.pop(name, None)
                        started_at.pop(name, None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        status = child.wait(timeout=args.limit)
    except subprocess.TimeoutExpired:
        status = None
    if status is not None:
        reader.join(timeout=30)
        log.close()
        # Killed by a signal: the shell's convention, 128 + the signal.
        return status if status >= 0 else 128 - status

    say = lambda text: (sys.stdout.write(text + "\n"), sys.stdout.flush(), log.write(text + "\n"))
    say(f"\nrun_tests: the test run passed its limit of {args.limit:.0f} s; tests that started and did not end:")
    with lock:
        for name, at in sorted(started_at.items(), key=lambda kv: kv[1]):
            say(f"  - {name!r} (started {at:.0f} s into the run)")
        if not started_at:
            say("  (none: the process did not exit after its tests)")
    tree = descendants(child.pid)
    for pid, name in tree:
        if name.endswith(".xctest") or "swiftpm-testing-helper" in name:
            say(f"run_tests: threads of process {pid} ({os.path.basename(name)}):")
            for line in stacks(pid):
                say("    " + line)
    # The test binary and the nodes it started (they may have sessions of their own), listed
    # again after gdb: anything started meanwhile goes too.
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid, _ in tree + descendants(child.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child.wait()
    reader.join(timeout=10)
    log.close()
    return 124


def descendants(root: int) -> list[tuple[int, str]]:
    """Every descendant of `root` with its program's path."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                names[int(entry)] = f.read().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        found.append((pid, names.get(pid, "")))
    return found


def stacks(pid: int) -> list[str]:
    """Every thread's stack of `pid` from gdb, demangled when swift-demangle is at hand."""
    if not shutil.which("gdb"):
        return ["(gdb is not installed: no stacks)"]
    try:
        run = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "set pagination off",
                              "-ex", "thread apply all bt 40"], capture_output=True, text=True, timeout=120)
        out = run.stdout
    except (subprocess.TimeoutExpired, OSError) as e:
        return [f"(gdb failed: {e})"] + kernel_view(pid)
    if not any(l.startswith("#") for l in out.splitlines()):
        # gdb could not attach (ptrace not allowed here): say why, and what the kernel knows.
        return ["(gdb gave no frames: " + " ".join(run.stderr.split())[:300] + ")"] + kernel_view(pid)
    demangle = shutil.which("swift-demangle")
    if demangle:
        try:
            out = subprocess.run([demangle, "--simplified"], input=out, capture_output=True, text=True, timeout=60).stdout
        except (subprocess.TimeoutExpired, OSError):
            pass
    return [l for l in out.splitlines() if l.startswith(("#", "Thread"))]


def kernel_view(pid: int) -> list[str]:
    """Each thread's name and the kernel function it waits in (no debugger needed)."""
    out = []
    try:
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                    wchan = f.read().strip() or "running"
            except OSError:
                continue
            out.append(f"thread {tid} {name}: {wchan}")
    except OSError as e:
        out.append(f"(cannot list threads: {e})")
    return out


if __name__ == "__main__":
    sys.exit(main())
