#!/usr/bin/env python3
"""Profiles benchmark: generating a base into PostgreSQL and loading shards from it, each beside
psql's own binary COPY of the same rows, in the same run, on the same private server.

Usage: bench.py [--subscribers N] [--json FILE]

Measures
  generate    `churngrid generate --subscribers N --postgres URL` (data generated, binary COPY,
              shard index built) against psql `\\copy ... FROM file (FORMAT binary)` of the same N rows into the
              same table definition, index built the same way (the reference does no generating);
  load        `churngrid profiles load` (all 1024 shards, 1 and 2 COPY streams) against psql
              `\\copy (SELECT the same columns) TO /dev/null (FORMAT binary)`;
  memory      bytes per subscriber held by the column stores and resident (RSS growth) after loading N.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build", "release", "churngrid")
ap = argparse.ArgumentParser()
ap.add_argument("--subscribers", type=int, default=10_000_000)
ap.add_argument("--json", default=None)
args = ap.parse_args()
n = args.subscribers
work = os.path.join(ROOT, ".churngrid", "bench", "profiles")
os.makedirs(work, exist_ok=True)
url = subprocess.run(["bash", os.path.join(ROOT, "Deploy/local/pg.sh"), "start", os.path.join(work, "pg")],
                     check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
features = re.findall(r'\.init\(name: "([^"]+)"', open(os.path.join(ROOT, "Sources/SubscriberProfiles/FeatureCatalogue.swift")).read())
cols = ", ".join(features)


def psql(sql):
    return subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True, text=True).stdout


def timed(cmd):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, out


print(f"generating {n:,} subscribers into {url}", file=sys.stderr)
gen_s, gen_out = timed([BIN, "generate", "--subscribers", str(n), "--postgres", url])
print(gen_out.strip(), file=sys.stderr)

# Reference: psql loads the same rows, in PostgreSQL's binary COPY format like ours, into an
# identical table; index built after, as ours.
csv_path = os.path.join(work, "profiles.bin")
psql(f"\\copy (SELECT subscriber_id, {cols} FROM subscriber_profiles) TO '{csv_path}' (FORMAT binary)")
psql("DROP TABLE IF EXISTS reference_profiles; CREATE TABLE reference_profiles (LIKE subscriber_profiles INCLUDING ALL); "
     "DROP INDEX IF EXISTS reference_profiles_shard_key_idx")
t0 = time.perf_counter()
psql(f"\\copy reference_profiles (subscriber_id, {cols}) FROM '{csv_path}' (FORMAT binary)")
ref_copy_s = time.perf_counter() - t0
t1 = time.perf_counter()
psql("CREATE INDEX ON reference_profiles (shard_key)")
ref_total_s = ref_copy_s + (time.perf_counter() - t1)
psql("DROP TABLE reference_profiles")
os.remove(csv_path)

print("loading", file=sys.stderr)
t0 = time.perf_counter()
psql(f"\\copy (SELECT subscriber_id, {cols} FROM subscriber_profiles WHERE shard_key >= 0 AND shard_key < 2147483648) TO '/dev/null' (FORMAT binary)")
ref_load_s = time.perf_counter() - t0
loads = {}
for streams in (1, 2):
    _, out = timed([BIN, "profiles", "load", "--postgres", url, "--streams", str(streams), "--json"])
    loads[streams] = json.loads(out)

result = {
    "subscribers": n,
    "generate_seconds": gen_s,
    "reference_psql_copy_seconds": ref_total_s,
    "reference_psql_copy_only_seconds": ref_copy_s,
    "generate_ratio": gen_s / ref_total_s,
    "load_rows_per_second_1_stream": loads[1]["rows_per_second"],
    "load_rows_per_second_2_streams": loads[2]["rows_per_second"],
    "reference_psql_copy_out_rows_per_second": n / ref_load_s,
    "store_bytes_per_subscriber": loads[1]["store_bytes_per_subscriber"],
    "resident_bytes_per_subscriber": loads[1]["resident_bytes_per_subscriber"],
}
print(f"\nProfiles, {n:,} subscribers x {len(features)} features (same run, same private PostgreSQL 15)\n")
print(f"generate into PostgreSQL   churngrid {gen_s:6.1f} s   psql \\copy of the same rows {ref_total_s:6.1f} s "
      f"(copy {ref_copy_s:.1f} s + index)   ratio {gen_s / ref_total_s:.2f}x time")
print(f"load all shards            churngrid {loads[1]['rows_per_second']:,.0f} rows/s (1 stream), "
      f"{loads[2]['rows_per_second']:,.0f} rows/s (2 streams)   psql COPY TO /dev/null {n / ref_load_s:,.0f} rows/s   "
      f"ratio {loads[1]['rows_per_second'] * ref_load_s / n:.2f}x / {loads[2]['rows_per_second'] * ref_load_s / n:.2f}x")
print(f"memory                     {loads[1]['store_bytes_per_subscriber']:.0f} B/subscriber held, "
      f"{loads[1]['resident_bytes_per_subscriber']:.0f} B/subscriber resident")
if args.json:
    with open(args.json, "w") as fh:
        json.dump(result, fh, indent=2)
