#!/usr/bin/env bash
# Distributed calls between two churngrid processes vs raw libzmq, in the same run:
#   latency (p50/p99/p99.9 over 100k sequential calls), pipelined calls/s (512 in flight),
#   bulk GB/s (1M Float32 per call, 4 in flight) — once over plain TCP, once with CURVE (each
#   node its own key, the caller authorized by the callee's ZAP handler), so the cost of
#   security is a same-run ratio.
# Usage: Benchmarks/rpc/run.sh [extra `churngrid bench rpc` options]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/opt/swift/usr/bin:$PATH
swift build -c release --product churngrid >/dev/null 2>&1
mkdir -p .churngrid/bench
.build/release/churngrid bench rpc --json "$@" 2>/dev/null > .churngrid/bench/rpc.json
.build/release/churngrid bench rpc --json --curve "$@" 2>/dev/null > .churngrid/bench/rpc-curve.json
python3 - <<'PY'
import json
r = json.load(open(".churngrid/bench/rpc.json"))
c = json.load(open(".churngrid/bench/rpc-curve.json"))
rows = [
    ("latency p50 (µs)", "raw_p50_us", "call_p50_us"),
    ("latency p99 (µs)", "raw_p99_us", "call_p99_us"),
    ("latency p99.9 (µs)", "raw_p999_us", "call_p999_us"),
    ("pipelined per second", "raw_messages_per_second", "calls_per_second"),
    ("bulk GB/s", "raw_bulk_gb_per_second", "bulk_gb_per_second"),
]
print(f"{'':24}{'raw libzmq':>12}{'call plain':>12}{'ratio':>8}{'call CURVE':>12}{'CURVE/plain':>13}")
for name, raw, call in rows:
    print(f"{name:24}{r[raw]:12.2f}{r[call]:12.2f}{r[call] / r[raw]:7.2f}×{c[call]:12.2f}{c[call] / r[call]:12.2f}×")
print(f"an unlisted key refused after {c.get('refusal_p50_ms', float('nan')):.1f} ms (median), {c.get('refusal_max_ms', float('nan')):.1f} ms (worst of 20)")
PY
