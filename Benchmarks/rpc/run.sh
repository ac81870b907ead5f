#!/usr/bin/env bash
# Distributed calls between two churngrid processes vs raw libzmq, in the same run:
#   latency (p50/p99/p99.9 over 100k sequential calls), pipelined calls/s (512 in flight),
#   bulk GB/s (1M Float32 per call, 4 in flight).
# Usage: Benchmarks/rpc/run.sh [extra `churngrid bench rpc` options]
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/opt/swift/usr/bin:$PATH
swift build -c release --product churngrid >/dev/null 2>&1
mkdir -p .churngrid/bench
.build/release/churngrid bench rpc --json "$@" 2>/dev/null | tee .churngrid/bench/rpc.json
python3 - <<'PY'
import json
r = json.load(open(".churngrid/bench/rpc.json"))
rows = [
    ("latency p50 (µs)", r["raw_p50_us"], r["call_p50_us"]),
    ("latency p99 (µs)", r["raw_p99_us"], r["call_p99_us"]),
    ("latency p99.9 (µs)", r["raw_p999_us"], r["call_p999_us"]),
    ("pipelined per second", r["raw_messages_per_second"], r["calls_per_second"]),
    ("bulk GB/s", r["raw_bulk_gb_per_second"], r["bulk_gb_per_second"]),
]
print(f"{'':24}{'raw libzmq':>14}{'distributed call':>20}{'ratio':>9}")
for name, raw, call in rows:
    print(f"{name:24}{raw:14.2f}{call:20.2f}{call / raw:8.2f}×")
PY
