#!/usr/bin/env python3
"""Real-time retention (issue 14): event → decided action latency with a live campaign.

A coordinator (`--triggers Deploy/triggers.json`) and 2 workers (1 scoring thread each) over the
private bench PostgreSQL (fsync off). The campaign of Deploy/campaign.json (budget and call
capacity raised so that they do not run out during the run) is made live, then:

1. the maximum rate: `events replay --rate 0` of a stream (how fast the cluster takes events with
   the live campaign deciding);
2. open loop at 50% of that rate (the events issue's benchmark rate) for --duration seconds:
   every event's due time is `started_at_us + k / rate` (replay's JSON); every action the live
   campaign recorded names its trigger, whose event is line k; event → decided action = the
   action's `decided_at` (PostgreSQL's clock_timestamp() when the decision was recorded, same
   machine) − the event's due time. Event → trigger is replay's own `trigger_us` (the PUB feed).
   Latencies in an HdrHistogram-like exact sort (every action is kept).

References in the same run: event → trigger (what the decision adds to it), and the raw libzmq
round trip (`churngrid bench rpc --json`, after the cluster has stopped).

    swift build -c release
    python3 Benchmarks/campaigns/live.py --subscribers 2000000 --reuse-base --duration 30

Results: .churngrid/bench/live.json.
"""
import argparse, importlib.util, json, os, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
# The events benchmark's helpers (its module is also named bench.py: loaded by path).
_spec = importlib.util.spec_from_file_location("events_bench", os.path.join(os.path.dirname(HERE), "events", "bench.py"))
events_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(events_bench)
BIN, MODEL, OUTDIR, ROOT, TRIGGERS = events_bench.BIN, events_bench.MODEL, events_bench.OUTDIR, events_bench.ROOT, events_bench.TRIGGERS
Streams, psql, ratio, replay, sh = events_bench.Streams, events_bench.psql, events_bench.ratio, events_bench.replay, events_bench.sh
from local import stop_cluster  # noqa: E402  (Benchmarks/cluster, on the path via the events module)


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def worker_stats(endpoint):
    st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
    return {w["name"]: w["stats"] for w in st.get("events", [])}


def open_loop(url, endpoint, streams, run, rate, share, duration, replay_log, tick):
    """One open-loop replay at `share`% of `rate`, its sender waking at most every `tick` µs;
    event → decided action from the actions' decided_at."""
    r = rate * share / 100
    count = max(1, int(r * duration))
    path = os.path.join(OUTDIR, f"live-{share}.ndjson")
    print(f"open loop at {share}% = {r:,.0f} events/s, send tick {'default' if tick is None else tick} µs: {count:,} events …", flush=True)
    streams.make(path, count)
    due_line = {}
    k = 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            due_line[(e.get("source", "default"), e["event_id"])] = k
            k += 1
    # The flag only when asked: a binary older than it refuses it.
    res = replay(endpoint, path, round(r, 1), replay_log, [] if tick is None else ["--send-tick-us", str(tick)])
    os.remove(path)
    time.sleep(3)  # the last decisions are recorded
    lat = []
    if run is not None:
        start_us = res["started_at_us"]
        rows = psql(url, f"""
            SELECT t.source, t.event_id, floor(extract(epoch FROM a.decided_at) * 1000000)::bigint
            FROM campaign_actions a JOIN retention_triggers t USING (trigger_id)
            WHERE a.run_id = {run} AND a.decided_at >= to_timestamp({start_us} / 1000000.0)""").splitlines()
        for row in rows:
            source, event_id, decided = row.split("|")
            idx = due_line.get((source, event_id))
            if idx is not None:
                lat.append(max(0.0, int(decided) - (start_us + idx * 1e6 / r)))
    lat.sort()
    return dict(res, target_rate=r, actions_timed=len(lat),
                action_us={"p50": percentile(lat, 50), "p99": percentile(lat, 99), "p999": percentile(lat, 99.9), "max": lat[-1] if lat else float("nan")})


def main():
    ap = argparse.ArgumentParser(description="Event → decided action with a live campaign (issue 14).")
    ap.add_argument("--subscribers", type=int, default=2_000_000)
    ap.add_argument("--events", type=int, default=1_000_000, help="events of the maximum-rate stream")
    ap.add_argument("--duration", type=int, default=30, help="seconds of the open-loop run")
    ap.add_argument("--shares", default="50,25,5", help="open-loop rates as percentages of the maximum (50: the events issue's rate)")
    ap.add_argument("--no-live", action="store_true", help="no live campaign (the event path's own figures, for comparison)")
    ap.add_argument("--reuse-base", action="store_true")
    ap.add_argument("--send-tick-us", type=int, help="`events replay --send-tick-us` of the open-loop runs (default: the binary's own, 1,000 µs)")
    ap.add_argument("--before-send-tick-us", type=int, help="also run each share with this send tick (0: a send per event, the replay before the tick), same cluster")
    a = ap.parse_args()
    if not os.access(BIN, os.X_OK):
        raise SystemExit(f"{BIN} is missing: build it first with `swift build -c release`")
    os.chdir(ROOT)
    url = sh("bash", "Deploy/local/pg.sh", "start", os.path.join(ROOT, ".churngrid/pg-bench")).strip().splitlines()[-1]
    os.environ["CHURNGRID_POSTGRES_URL"] = url
    n = a.subscribers
    logs = os.path.join(OUTDIR, "live-logs")
    os.makedirs(logs, exist_ok=True)
    replay_log = os.path.join(logs, "replay.log")
    open(replay_log, "w").close()
    out = {"subscribers": n, "duration": a.duration, "workers": 2, "threads_per_worker": 1, "cores": os.cpu_count(),
           "postgres": "private, fsync off, synchronous_commit off, full_page_writes off (Deploy/local/pg.sh), same machine"}
    have = None
    if a.reuse_base:
        try:
            have = int(psql(url, "SELECT count(*) FROM subscriber_profiles"))
        except SystemExit:
            pass
    if have != n:
        print(f"generating {n:,} subscribers …", flush=True)
        sh(BIN, "generate", "--subscribers", str(n), "--postgres", url)
    # A clean log and no earlier campaigns (a disposable bench database).
    psql(url, "DO $$ BEGIN IF to_regclass('subscriber_events') IS NOT NULL THEN "
              "TRUNCATE subscriber_events, retention_triggers, churngrid_event_owners, contact_history, campaign_runs CASCADE; END IF; END $$")
    campaign = json.load(open(os.path.join(ROOT, "Deploy/campaign.json")))
    campaign["name"] = "live-bench"
    campaign["budget"] = 1e9
    campaign["capacity"] = {"call": 10_000_000, "robot_call": 10_000_000}
    config = os.path.join(OUTDIR, "live-campaign.json")
    json.dump(campaign, open(config, "w"))

    procs = []
    run = None  # the live campaign's run, once started
    streams = Streams(n)
    try:
        coord = subprocess.Popen([BIN, "coordinator", "--listen", "tcp://127.0.0.1:*", "--model", MODEL, "--triggers", TRIGGERS],
                                 stdout=subprocess.PIPE, stderr=open(f"{logs}/coordinator.log", "w"), stdin=subprocess.PIPE, text=True)
        procs.append(("coordinator", coord))
        endpoint = None
        while endpoint is None:
            line = coord.stdout.readline()
            if not line:
                raise SystemExit(f"the coordinator exited; see {logs}/coordinator.log")
            if line.startswith("coordinator listening "):
                endpoint = line.split()[-1]
        for i in (1, 2):  # publishing their triggers: replay times event → trigger on the feed
            procs.append((f"worker-{i}", subprocess.Popen([BIN, "worker", "--coordinator", endpoint, "--name", f"worker-{i}", "--threads", "1",
                                                           "--triggers-publish", "tcp://127.0.0.1:*"],
                                                          stdout=open(f"{logs}/worker-{i}.log", "w"), stderr=subprocess.STDOUT, stdin=subprocess.PIPE)))
        started = time.time()
        while True:
            try:
                st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
            except SystemExit:  # the coordinator is still taking the lead
                time.sleep(0.5)
                continue
            if len(st["workers"]) == 2 and st["unassignedShards"] == 0 and st["movingShards"] == 0:
                break
            if time.time() - started > 600 + n / 10_000:
                raise SystemExit(f"the cluster is not ready after {time.time() - started:.0f} s; see {logs}")
            time.sleep(0.5)
        print(f"cluster ready in {time.time() - started:.1f} s", flush=True)
        if not a.no_live:
            t0 = time.time()
            live = json.loads(sh(BIN, "campaign", "live", "start", "--config", config, "--json", "--coordinator", endpoint).strip().splitlines()[-1])
            out["live_start"] = dict(live, seconds=time.time() - t0)
            run = live["run_id"]
            print(f"campaign live as run {run} in {out['live_start']['seconds']:.1f} s (value tiers cut over the base)", flush=True)

        stream = os.path.join(OUTDIR, "live-max.ndjson")
        print(f"generating {a.events:,} events …", flush=True)
        streams.make(stream, a.events)
        print("replaying as fast as the cluster takes them" + ("" if a.no_live else " (live campaign deciding)") + " …", flush=True)
        mx = replay(endpoint, stream, 0, replay_log)
        out["max_rate"] = mx
        rate = mx["events_per_second"]
        print(f"  {mx['accepted']:,} accepted at {rate:,.0f} events/s, {mx['triggers']:,} triggers", flush=True)
        os.remove(stream)
        time.sleep(3)  # the decisions of the maximum-rate run are recorded

        out["open_loop"] = {}
        ticks = [(a.send_tick_us, "open_loop")] + ([(a.before_send_tick_us, "open_loop_before")] if a.before_send_tick_us is not None else [])
        for tick, key in ticks:
            out[key] = {}
        for share in [int(x) for x in a.shares.split(",") if x]:
            for tick, key in ticks:
                before = worker_stats(endpoint)
                out[key][str(share)] = open_loop(url, endpoint, streams, run, rate, share, a.duration, replay_log, tick)
                after = worker_stats(endpoint)
                # Where the event thread's time went: groups written (one transaction each) and µs per group.
                groups = sum(after[w]["groups"] - before.get(w, {}).get("groups", 0) for w in after)
                micros = sum(after[w]["writeMicros"] - before.get(w, {}).get("writeMicros", 0) for w in after)
                applied = sum(after[w]["applied"] - before.get(w, {}).get("applied", 0) for w in after)
                out[key][str(share)]["event_thread"] = {"groups": groups, "events_per_group": ratio(applied, groups),
                                                        "us_per_group": ratio(micros, groups)}
                print(f"  event thread: {groups:,} groups, {ratio(applied, groups):,.1f} events and {ratio(micros, groups):,.0f} µs each", flush=True)
        st = json.loads(sh(BIN, "status", "--coordinator", endpoint, "--json"))
        out["workers_live"] = [{"name": w["name"], "liveDecided": w["stats"].get("liveDecided"), "liveSkipped": w["stats"].get("liveSkipped")}
                               for w in st.get("events", [])]
        if run is not None:
            out["live_status"] = json.loads(sh(BIN, "campaign", "live", "status", "--json", "--coordinator", endpoint).strip().splitlines()[-1])
    finally:
        # End the campaign it made live (its run's summary written): left live, it would decide for
        # every later benchmark's triggers on this database and hold the workers' memory.
        if run is not None:
            try:
                sh(BIN, "campaign", "live", "stop", "--coordinator", endpoint)
            except Exception as e:  # the cluster may be what failed; the next start replaces it anyway
                print(f"could not stop the live campaign (run {run}): {e}", flush=True)
        stop_cluster(procs)

    result = os.path.join(OUTDIR, "live-nolive.json" if a.no_live else "live.json")
    with open(result, "w") as f:  # kept even if the reference below fails
        json.dump(out, f, indent=1)
    print("reference: churngrid bench rpc …", flush=True)
    try:
        r = subprocess.run([BIN, "bench", "rpc", "--json"], capture_output=True, text=True, timeout=300)
        rpc = json.loads(r.stdout[r.stdout.index("{"):])
    except (subprocess.TimeoutExpired, ValueError) as e:
        print(f"  bench rpc failed ({e}); no raw libzmq reference in this run", flush=True)
        rpc = {"raw_p50_us": float("nan"), "raw_p99_us": float("nan")}
    out["reference_rpc"] = rpc
    print(f"\n== event → decided action{' (no live campaign: event path only)' if a.no_live else ''}; maximum {rate:,.0f} events/s; "
          f"raw libzmq round trip p50 {rpc['raw_p50_us']:.1f} µs, p99 {rpc['raw_p99_us']:.1f} µs (reference)")
    for share, x in [(s, x) for key in ("open_loop", "open_loop_before") for s, x in out.get(key, {}).items()]:
        trg, act = x["trigger_us"], x["action_us"]
        print(f"  {share:>3}% ({x['events_per_second']:,.0f} events/s of {x['target_rate']:,.0f} targeted, send tick {x.get('send_tick_us', 'none')} µs): "
              f"ack p99 {x['ack_us']['p99']:,} µs; event → trigger p50 {trg['p50']:,} / p99 {trg['p99']:,} / p99.9 {trg['p999']:,} µs ({x['triggers']:,}); "
              f"event → action p50 {act['p50']:,.0f} / p99 {act['p99']:,.0f} / p99.9 {act['p999']:,.0f} µs ({x['actions_timed']:,} actions)")
        x["ratio_action_p99_to_trigger_p99"] = ratio(act["p99"], trg["p99"])
        x["ratio_action_p99_to_raw_p99"] = ratio(act["p99"], rpc["raw_p99_us"])
    with open(result, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nresults: {result}")


if __name__ == "__main__":
    main()
