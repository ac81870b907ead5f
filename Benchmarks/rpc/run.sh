#!/usr/bin/env bash
# Distributed calls between two churngrid processes vs raw libzmq, in the same run:
#   latency (p50/p99/p99.9 over 100k sequential calls), pipelined calls/s (512 in flight),
#   bulk GB/s (1M Float32 per call, 4 in flight) — once over plain TCP, once with CURVE (each
#   node its own key, the caller authorized by the callee's ZAP handler, the role checked on
#   every call; the raw reference then uses CURVE too), so each ratio is to raw libzmq of the
#   same kind, and the cost of security is a same-run ratio.
# Usage: [CHURNGRID_BIN=path] Benchmarks/rpc/run.sh [extra `churngrid bench rpc` options]
#   (without CHURNGRID_BIN: builds and uses .build/release/churngrid)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/opt/swift/usr/bin:$PATH
if [ -z "${CHURNGRID_BIN:-}" ]; then
  swift build -c release --product churngrid >/dev/null 2>&1
  CHURNGRID_BIN=.build/release/churngrid
fi
mkdir -p .churngrid/bench
out=${RPC_OUT:-.churngrid/bench/rpc}
"$CHURNGRID_BIN" bench rpc --json "$@" 2>/dev/null > "$out.json"
"$CHURNGRID_BIN" bench rpc --json --curve "$@" 2>/dev/null > "$out-curve.json"
RPC_OUT="$out" python3 - <<'PY'
import json, os
out = os.environ["RPC_OUT"]
r = json.load(open(out + ".json"))
c = json.load(open(out + "-curve.json"))
rows = [
    ("latency p50 (µs)", "raw_p50_us", "call_p50_us"),
    ("latency p99 (µs)", "raw_p99_us", "call_p99_us"),
    ("latency p99.9 (µs)", "raw_p999_us", "call_p999_us"),
    ("pipelined per second", "raw_messages_per_second", "calls_per_second"),
    ("bulk GB/s", "raw_bulk_gb_per_second", "bulk_gb_per_second"),
]
print(f"{'':24}{'raw plain':>12}{'call plain':>12}{'ratio':>8}{'raw CURVE':>12}{'call CURVE':>12}{'ratio':>8}{'CURVE/plain':>13}")
for name, raw, call in rows:
    print(f"{name:24}{r[raw]:12.2f}{r[call]:12.2f}{r[call] / r[raw]:7.2f}×{c[raw]:12.2f}{c[call]:12.2f}{c[call] / c[raw]:7.2f}×{c[call] / r[call]:12.2f}×")
print(f"an unlisted key refused after {c.get('refusal_p50_ms', float('nan')):.1f} ms (median), {c.get('refusal_max_ms', float('nan')):.1f} ms (worst of 20)")
PY
