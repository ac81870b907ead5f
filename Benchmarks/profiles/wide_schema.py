#!/usr/bin/env python3
"""A wide feature schema (docs/models.md, "The feature schema"): memory per subscriber of profile
stores that hold only the features models read, against holding every feature, and the load's time
against psql's own binary COPY of the same columns — all in the same run, on the same private
PostgreSQL (fsync off: Deploy/local/pg.sh).

Steps: a fresh database with --subscribers generated profiles (the 36 catalogue features);
`churngrid profiles migrate --schema` to --features features (the catalogue plus numbers, integers,
booleans and categories: timed, it adds the columns without rewriting the table); the new columns
filled by one UPDATE (not timed); then

  * `churngrid profiles load --features <--read names> --json` (20 catalogue + the rest new
    features of every type): bytes per subscriber held by the column stores and resident;
  * reference: `churngrid profiles load --features <all of them>` (a store holding the whole
    schema), same run;
  * time reference: psql `\\copy (SELECT subscriber_id, <the same --read columns as real>) TO
    /dev/null (FORMAT binary)`.

This measures the profile store and loader. The cluster's workers still hold the catalogue's 36
features only (docs/models.md, "What the cluster reads").

Usage: python3 Benchmarks/profiles/wide_schema.py [--subscribers 1000000] [--features 400] [--read 40]   (after `make release`)
Results: .churngrid/bench/wide_schema.json
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, ".build", "release", "churngrid")


def run(*cmd):
    return subprocess.run(list(cmd), check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subscribers", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=400)
    ap.add_argument("--read", type=int, default=40)
    a = ap.parse_args()
    work = os.path.join(ROOT, ".churngrid", "bench", "wide")
    os.makedirs(work, exist_ok=True)
    url = run("bash", os.path.join(ROOT, "Deploy/local/pg.sh"), "start", os.path.join(work, "pg")).strip().splitlines()[-1]

    def psql(sql):
        return run("psql", "-qtA", "-v", "ON_ERROR_STOP=1", url, "-c", sql).strip()

    psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    print(f"generating {a.subscribers:,} subscribers", file=sys.stderr, flush=True)
    run(BIN, "generate", "--subscribers", str(a.subscribers), "--postgres", url)

    default = json.load(open(os.path.join(ROOT, "Deploy/schema/default.json")))
    catalogue = [f["name"] for f in default["features"]]
    extra = []
    kinds = ["number", "integer", "boolean", "category"]
    for i in range(a.features - len(catalogue)):
        kind = kinds[i % 4]
        f = {"name": f"mart_{kind}_{i:03d}", "type": kind, "description": f"warehouse attribute {i}"}
        if kind == "category":
            f["categories"] = ["none", "low", "mid", "high", "top"]
        extra.append(f)
    schema = {"id": "subscriber_id", "features": default["features"] + extra}
    schema_path = os.path.join(work, "schema.json")
    json.dump(schema, open(schema_path, "w"), indent=1)
    t = time.perf_counter()
    migrated = run(BIN, "profiles", "migrate", "--schema", schema_path, "--postgres", url).strip()
    migrate_s = time.perf_counter() - t
    print(migrated, file=sys.stderr, flush=True)

    def value(f, k):
        kind = f["type"]
        if kind == "number":
            return f"((subscriber_id * {k + 7}) % 10007)::real / 100"
        if kind == "integer":
            return f"((subscriber_id * {k + 3}) % 1000)::integer"
        if kind == "boolean":
            return f"((subscriber_id + {k}) % 3 = 0)"
        return f"((subscriber_id * {k + 1}) % 5)::smallint"
    print(f"filling {len(extra)} new columns", file=sys.stderr, flush=True)
    psql("UPDATE subscriber_profiles SET " + ", ".join(f"{f['name']} = {value(f, k)}" for k, f in enumerate(extra)))
    psql("VACUUM ANALYZE subscriber_profiles")

    half = a.read // 2
    read = catalogue[:half] + [f["name"] for f in extra[:a.read - half]]
    everything = catalogue + [f["name"] for f in extra]

    def load(names):
        out = json.loads(run(BIN, "profiles", "load", "--postgres", url, "--shard-count", "1024", "--features", ",".join(names), "--json"))
        assert out["rows"] == a.subscribers and out["features"] == len(names), out
        return out

    runs = [load(read) for _ in range(3)]
    whole = load(everything)
    kinds_of = {f["name"]: f["type"] for f in schema["features"]}

    def as_real(n):
        k = kinds_of[n]
        return n if k == "number" else (f"{n}::integer::real" if k == "boolean" else f"{n}::real")
    copies = []
    for _ in range(3):
        t = time.perf_counter()
        run("psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
            f"\\copy (SELECT subscriber_id, {', '.join(as_real(n) for n in read)} FROM subscriber_profiles) TO '/dev/null' (FORMAT binary)")
        copies.append(time.perf_counter() - t)
    table_bytes = int(psql("SELECT pg_total_relation_size('subscriber_profiles')"))

    def median(xs):
        return sorted(xs)[len(xs) // 2]
    best = min(runs, key=lambda r: r["seconds"])
    out = {
        "subscribers": a.subscribers, "schema_features": len(everything), "features_read": len(read),
        "read": read, "migrate_seconds": migrate_s, "migrate": migrated,
        "load_runs": runs, "load_everything": whole, "psql_copy_seconds_runs": copies,
        "table_bytes_per_subscriber": table_bytes / a.subscribers,
        "postgres": "private PostgreSQL 15, fsync off (Deploy/local/pg.sh)", "cores": os.cpu_count(),
        "summary": {
            "store_bytes_per_subscriber": best["store_bytes_per_subscriber"],
            "resident_bytes_per_subscriber": median([r["resident_bytes_per_subscriber"] for r in runs]),
            "everything_store_bytes_per_subscriber": whole["store_bytes_per_subscriber"],
            "everything_resident_bytes_per_subscriber": whole["resident_bytes_per_subscriber"],
            "load_seconds": median([r["seconds"] for r in runs]),
            "psql_copy_seconds": median(copies),
            "load_to_psql_copy": median([r["seconds"] for r in runs]) / median(copies),
            "everything_load_seconds": whole["seconds"],
        },
    }
    path = os.path.join(ROOT, ".churngrid", "bench", "wide_schema.json")
    json.dump(out, open(path, "w"), indent=1)
    print(json.dumps(out["summary"], indent=1))


if __name__ == "__main__":
    main()
