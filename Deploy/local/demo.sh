#!/usr/bin/env bash
# Interim demo: train a churn model on a synthetic sample, inspect it, score every subscriber
# with three reasons each, and show the ten highest-risk subscribers.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.build/release/churngrid
OUT=.churngrid/demo
N=${SUBSCRIBERS:-50000}
mkdir -p "$OUT"
python3 tools/sample_base.py "$OUT" --subscribers "$N"
echo
"$BIN" model inspect "$OUT/churn-model.json" | head -8
echo
"$BIN" model score --model "$OUT/churn-model.json" --input "$OUT/subscribers.csv" \
  --output "$OUT/scores.csv" --explain 3
echo
echo "Ten highest-risk subscribers (probability, top reasons):"
tail -n +2 "$OUT/scores.csv" | sort -t, -k4 -g -r | \
  awk -F, 'NR <= 10 {printf "  %s  p=%.3f  %s (+%.2f), %s (+%.2f), %s (+%.2f)\n", $1, $4, $5, $8, $6, $9, $7, $10}'
echo
"$BIN" model bench --model "$OUT/churn-model.json" --input "$OUT/subscribers.csv" --threads 2 --repeat 3 --single-row 1000
