#!/usr/bin/env bash
# Interim demo (until the cluster lands): a private PostgreSQL, a synthetic base generated into it,
# the shards loaded into memory as a worker will, and the base scored with the default model and
# three reasons per subscriber. SUBSCRIBERS (default 1000000) sets the base size; KEEP_RUNNING=1
# leaves PostgreSQL up.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.build/release/churngrid
OUT=.churngrid/demo
N=${SUBSCRIBERS:-1000000}
MODEL=models/churn-default.json
mkdir -p "$OUT"

URL=$(bash Deploy/local/pg.sh start)
[ "${KEEP_RUNNING:-0}" = 1 ] || trap 'bash Deploy/local/pg.sh stop' EXIT
echo "private PostgreSQL: $URL"
echo
"$BIN" generate --subscribers "$N" --postgres "$URL"
"$BIN" profiles load --postgres "$URL"
echo
"$BIN" model inspect "$MODEL" | head -7
echo
SAMPLE=$(( N < 100000 ? N : 100000 ))
"$BIN" generate --subscribers "$SAMPLE" --out "$OUT/base.csv" >/dev/null 2>&1
"$BIN" model score --model "$MODEL" --input "$OUT/base.csv" --output "$OUT/scores.csv" --explain 3 2>/dev/null
echo "Ten highest-risk of the first $SAMPLE subscribers (probability, top reasons):"
# scores.csv: subscriber_id, churned_30d, margin, probability, reason1..3, contribution1..3
tail -n +2 "$OUT/scores.csv" | sort -t, -k4 -g -r | \
  awk -F, 'NR <= 10 {printf "  %s  p=%.3f  %s (+%.2f), %s (+%.2f), %s (+%.2f)\n", $1, $4, $5, $8, $6, $9, $7, $10}'
echo
"$BIN" model bench --model "$MODEL" --input "$OUT/base.csv" --threads 2 --repeat 3 --single-row 1000
