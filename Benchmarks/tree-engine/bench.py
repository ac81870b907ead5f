#!/usr/bin/env python3
"""Tree-engine benchmark: ChurnGrid's compiled forest against the libraries' own predictors,
on the same rows, the same thread counts, in the same run.

Usage: bench.py [--rows N] [--repeat R] [--threads 1,2] [--out DIR] [--json FILE]

Builds (once, cached in DIR) a 40-feature synthetic subscriber table with ~1% missing values,
trains XGBoost 300 trees x depth 6, XGBoost 1000 x depth 8 and LightGBM 300 x 63 leaves on it,
and a second table whose region, tariff plan, device brand, contract type and payment method
columns are category codes (12, 40, 300, 3 and 5 categories, ~1% NaN), on which it trains
XGBoost 300 x depth 6 and LightGBM 300 x 63 leaves with native categorical splits
(xgb_cat_300_d6, lgb_cat_300_63); then for each model and thread count measures:
  reference  XGBoost Booster.predict on a prebuilt DMatrix / inplace_predict, LightGBM predict
  churngrid  `churngrid model bench` (rows read once, scored R times, median), and the same binary
             with `--kernel portable` (the portable walks alone: what the AVX-512 leaf-bitvector
             walk adds, with equal margins required) and, where the processor has AVX2, with
             `--kernel avx2` (the same walk on AVX2, as on a processor without AVX-512)
  lleaves    (LightGBM models, when the `lleaves` package is installed) the LLVM-compiled model's
             predict on the same rows as float64 (its input type, converted untimed); compile time
             is excluded and reported (the compiled library is cached in DIR, keyed by the model
             file's hash), and its probabilities are checked against LightGBM's
and the single-row latency and TreeSHAP throughput of both on one thread. Prints a table of
rows/s with the ratio churngrid / reference, and checks both engines scored the same rows
(sum of margins).
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def make_data(n, seed=7):
    """Subscriber-like features: heavy-tailed usage and bills, counts, flags, ~1% missing."""
    rng = np.random.default_rng(seed)
    f = 40
    X = np.empty((n, f), dtype=np.float32)
    X[:, 0] = rng.gamma(2.0, 18.0, n)                  # tenure months
    X[:, 1] = rng.lognormal(3.2, 0.6, n)               # ARPU
    X[:, 2] = rng.normal(0, 0.15, n)                   # ARPU trend
    for j in range(3, 12):
        X[:, j] = rng.lognormal(2 + 0.2 * j, 1.0, n)   # usage volumes
    for j in range(12, 20):
        X[:, j] = rng.normal(0, 0.3, n)                # usage trends
    for j in range(20, 28):
        X[:, j] = rng.poisson(0.3 + 0.1 * (j - 20), n)  # support calls, complaints, late payments...
    X[:, 28] = rng.integers(-30, 720, n)               # days to contract end
    X[:, 29] = rng.integers(0, 365, n)                 # days to promo end
    X[:, 30] = rng.random(n)                           # off-net share
    X[:, 31] = rng.integers(0, 2, n)                   # prepaid flag
    X[:, 32] = rng.integers(0, 12, n)                  # region
    for j in range(33, 40):
        X[:, j] = rng.normal(0, 1, n)
    X[rng.random(X.shape) < 0.01] = np.nan
    z = (-3.2 - 0.03 * np.nan_to_num(X[:, 0]) - 3 * np.nan_to_num(X[:, 2]) - 2 * np.nan_to_num(X[:, 12])
         + 0.5 * np.nan_to_num(X[:, 21]) + 0.4 * np.nan_to_num(X[:, 22]) + 1.5 * (np.nan_to_num(X[:, 28], nan=400) < 30)
         + 1.2 * np.nan_to_num(X[:, 30]) + 0.3 * np.nan_to_num(X[:, 33]) * np.nan_to_num(X[:, 34]))
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float32)
    return X, y


# Categorical columns of the categorical table and their category counts.
CAT_COLUMNS = {32: 12, 35: 40, 36: 300, 37: 3, 38: 5}


def make_cat_data(n, seed=11):
    """The subscriber table with region, tariff plan, device brand, contract type and payment
    method as category codes (skewed: a few big categories, a long tail), ~1% of them NaN."""
    X, _ = make_data(n)
    rng = np.random.default_rng(seed)
    z = (-3.0 - 0.03 * np.nan_to_num(X[:, 0]) - 3 * np.nan_to_num(X[:, 2]) + 0.5 * np.nan_to_num(X[:, 21])
         + 1.5 * (np.nan_to_num(X[:, 28], nan=400) < 30) + 1.2 * np.nan_to_num(X[:, 30]))
    for j, k in CAT_COLUMNS.items():
        p = 1.0 / np.arange(1, k + 1) ** 0.9
        codes = rng.choice(k, size=n, p=p / p.sum())
        z += rng.normal(0, 0.8, k)[codes]
        X[:, j] = codes
        X[rng.random(n) < 0.01, j] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float32)
    return X, y


def write_csv(path, X):
    names = [f"f{j}" for j in range(X.shape[1])]
    with open(path, "w") as fh:
        fh.write("subscriber_id," + ",".join(names) + "\n")
        for start in range(0, X.shape[0], 100_000):
            block = X[start:start + 100_000]
            lines = []
            for i, row in enumerate(block):
                cells = ["" if np.isnan(v) else "%.9g" % v for v in row]
                lines.append(f"{start + i}," + ",".join(cells))
            fh.write("\n".join(lines) + "\n")


def timed(fn, repeat, setup=None):
    """Median seconds of fn(setup()) over `repeat` calls after one warm-up; setup is not timed."""
    fn(setup() if setup else None)
    times = []
    for _ in range(repeat):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def lleaves_model(path, out):
    """The model compiled by lleaves (None when lleaves is not installed), the seconds its compilation
    took (measured when it was compiled; kept beside the cached library, which is keyed by the model
    file's hash) and whether it was loaded from that cache."""
    try:
        import lleaves
    except ImportError:
        return None, None, False
    import hashlib
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    cache = os.path.join(out, f"{os.path.basename(path)}.{digest}.lleaves")
    info = cache + ".json"
    cached = os.path.exists(cache) and os.path.exists(info)
    if not cached and os.path.exists(cache):
        os.remove(cache)
    model = lleaves.Model(model_file=path)
    log(f"lleaves: {'loading' if cached else 'compiling'} {os.path.basename(path)}")
    t0 = time.perf_counter()
    model.compile(cache=cache)
    seconds = time.perf_counter() - t0
    if cached:
        with open(info) as fh:
            seconds = json.load(fh)["compile_seconds"]
    else:
        with open(info, "w") as fh:
            json.dump({"compile_seconds": seconds}, fh)
    return model, seconds, cached


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=os.path.join(ROOT, ".churngrid", "bench", "tree-engine"))
    ap.add_argument("--json", default=None, help="also write all figures to this file")
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "churngrid"))
    ap.add_argument("--baseline-binary", default=None,
                    help="also time this churngrid build on the same rows (before/after a change)")
    ap.add_argument("--models", default=None, help="only these models (comma-separated names), e.g. lgb_300_63")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    os.makedirs(args.out, exist_ok=True)

    import xgboost as xgb
    import lightgbm as lgb

    data_csv = os.path.join(args.out, f"rows_{args.rows}.csv")
    X, y = make_data(args.rows)
    if not os.path.exists(data_csv):
        log(f"writing {args.rows} rows to {data_csv}")
        write_csv(data_csv + ".tmp", X)
        os.rename(data_csv + ".tmp", data_csv)

    cat_csv = os.path.join(args.out, f"rows_cat_{args.rows}.csv")
    Xc, yc = make_cat_data(args.rows)
    if not os.path.exists(cat_csv):
        log(f"writing {args.rows} categorical rows to {cat_csv}")
        write_csv(cat_csv + ".tmp", Xc)
        os.rename(cat_csv + ".tmp", cat_csv)
    cat_types = ["c" if j in CAT_COLUMNS else "q" for j in range(Xc.shape[1])]

    train_n = min(args.rows, 200_000)
    models = []  # (name, model file, library, rows, their CSV, XGBoost feature types)
    for name, depth, trees in [("xgb_300_d6", 6, 300), ("xgb_1000_d8", 8, 1000)]:
        path = os.path.join(args.out, name + ".json")
        if not os.path.exists(path):
            log(f"training {name}")
            b = xgb.train({"objective": "binary:logistic", "max_depth": depth, "eta": 0.05, "tree_method": "hist",
                           "nthread": 2, "min_child_weight": 0.5, "seed": 1},
                          xgb.DMatrix(X[:train_n], y[:train_n]), trees)
            b.save_model(path)
        models.append((name, path, "xgboost", X, data_csv, None))
    path = os.path.join(args.out, "lgb_300_63.txt")
    if not os.path.exists(path):
        log("training lgb_300_63")
        b = lgb.train({"objective": "binary", "num_leaves": 63, "learning_rate": 0.05, "verbose": -1, "num_threads": 2,
                       "min_data_in_leaf": 5}, lgb.Dataset(X[:train_n], y[:train_n], feature_name=[f"f{j}" for j in range(X.shape[1])]), 300)
        b.save_model(path)
    models.append(("lgb_300_63", path, "lightgbm", X, data_csv, None))
    path = os.path.join(args.out, "xgb_cat_300_d6.json")
    if not os.path.exists(path):
        log("training xgb_cat_300_d6")
        b = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.05, "tree_method": "hist",
                       "nthread": 2, "min_child_weight": 0.5, "seed": 1, "max_cat_to_onehot": 1},
                      xgb.DMatrix(Xc[:train_n], yc[:train_n], feature_types=cat_types, enable_categorical=True), 300)
        b.save_model(path)
    models.append(("xgb_cat_300_d6", path, "xgboost", Xc, cat_csv, cat_types))
    path = os.path.join(args.out, "lgb_cat_300_63.txt")
    if not os.path.exists(path):
        log("training lgb_cat_300_63")
        b = lgb.train({"objective": "binary", "num_leaves": 63, "learning_rate": 0.05, "verbose": -1, "num_threads": 2,
                       "min_data_in_leaf": 5, "min_data_per_group": 20, "max_cat_threshold": 64},
                      lgb.Dataset(Xc[:train_n], yc[:train_n], feature_name=[f"f{j}" for j in range(Xc.shape[1])],
                                  categorical_feature=sorted(CAT_COLUMNS)), 300)
        b.save_model(path)
    models.append(("lgb_cat_300_63", path, "lightgbm", Xc, cat_csv, None))

    if args.models:
        models = [m for m in models if m[0] in args.models.split(",")]
    if any(m[2] == "lightgbm" for m in models) and importlib.util.find_spec("lleaves") is None:
        log("lleaves is not installed: LightGBM models are measured without the lleaves reference "
            "(pip install lleaves llvmlite==0.44.0)")

    # The reference predictors read the same CSV cells ChurnGrid reads.
    results = []
    # Enough rows that each side's batch takes seconds (XGBoost's pred_contribs does ~30 rows/s on 1000×d8).
    shap_rows = {"xgb_300_d6": 2000, "xgb_1000_d8": 300, "lgb_300_63": 1000, "xgb_cat_300_d6": 1000, "lgb_cat_300_63": 1000}
    for name, path, library, X, data_csv, types in models:
        single = X[:2000]
        ll, ll_compile, ll_cached = lleaves_model(path, args.out) if library == "lightgbm" else (None, None, False)
        X64 = np.ascontiguousarray(X, dtype=np.float64) if ll is not None else None

        def dmatrix(M, nthread):
            if types is None:
                return xgb.DMatrix(M, nthread=nthread)
            return xgb.DMatrix(M, nthread=nthread, feature_types=types, enable_categorical=True)

        for t in threads:
            log(f"{name}: {t} thread(s)")
            ref = {}
            if library == "xgboost":
                booster = xgb.Booster(model_file=path)
                booster.set_param({"nthread": t})
                # XGBoost caches predictions per DMatrix: each timed call gets a fresh one, built untimed.
                sec = timed(lambda d: booster.predict(d), args.repeat, setup=lambda: dmatrix(X, t))
                ref["reference_dmatrix_rows_per_second"] = args.rows / sec
                sec = timed(lambda _: booster.inplace_predict(X), args.repeat)
                ref["reference_inplace_rows_per_second"] = args.rows / sec
                # The faster of XGBoost's two paths is the reference.
                best = max(ref["reference_dmatrix_rows_per_second"], ref["reference_inplace_rows_per_second"])
                ref["reference"] = ("xgboost predict(DMatrix)" if best == ref["reference_dmatrix_rows_per_second"]
                                    else "xgboost inplace_predict")
                ref["reference_rows_per_second"] = best
                margin_sum = float(np.sum(booster.predict(dmatrix(X, t), output_margin=True).astype(np.float64)))
            else:
                booster = lgb.Booster(model_file=path)
                ref["reference"] = "lightgbm predict"
                sec = timed(lambda _: booster.predict(X, num_threads=t), args.repeat)
                ref["reference_rows_per_second"] = args.rows / sec
                margin_sum = float(np.sum(booster.predict(X, raw_score=True, num_threads=t)))
                if ll is not None:
                    sec = timed(lambda _: ll.predict(X64, n_jobs=t), args.repeat)
                    ref["lleaves_rows_per_second"] = args.rows / sec
                    ref["lleaves_compile_seconds"] = ll_compile
                    ref["lleaves_cached"] = ll_cached
                    diff = np.abs(ll.predict(X64, n_jobs=t) - booster.predict(X, num_threads=t))
                    ref["lleaves_max_abs_diff"] = float(np.max(diff))
            if t == 1:
                lat = []
                for i in range(len(single)):
                    row = single[i:i + 1]
                    t0 = time.perf_counter()
                    if library == "xgboost":
                        booster.inplace_predict(row)
                    else:
                        booster.predict(row, num_threads=1)
                    lat.append(time.perf_counter() - t0)
                lat.sort()
                ref["reference_single_row_us_p50"] = lat[len(lat) // 2] * 1e6
                ref["reference_single_row_us_p99"] = lat[len(lat) * 99 // 100] * 1e6
                n = shap_rows[name]
                sub = X[:n]
                if library == "xgboost":
                    booster.set_param({"nthread": 1})
                    sec = timed(lambda d: booster.predict(d, pred_contribs=True), 1,
                                setup=lambda: dmatrix(sub, 1))
                    ref["reference_shap_rows_per_second"] = n / sec
                    sec = timed(lambda d: booster.predict(d, pred_contribs=True, approx_contribs=True), 1,
                                setup=lambda: dmatrix(sub, 1))
                    ref["reference_approx_rows_per_second"] = n / sec
                    booster.set_param({"nthread": t})
                else:
                    sec = timed(lambda _: booster.predict(sub, pred_contrib=True, num_threads=1), 1)
                    ref["reference_shap_rows_per_second"] = n / sec

            cmd = [args.binary, "model", "bench", "--model", path, "--input", data_csv, "--threads", str(t),
                   "--repeat", str(args.repeat), "--json"]
            if t == 1:
                cmd += ["--single-row", "2000", "--explain-rows", str(shap_rows[name])]
            ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            row = {"model": name, "threads": t, **ref, "churngrid": ours}
            row["ratio"] = ours["rows_per_second"] / ref["reference_rows_per_second"]
            row["same_rows"] = abs(ours["margin_checksum"] - margin_sum) <= 1e-3 * max(1.0, abs(margin_sum))
            # The same binary held to the portable walks: what the AVX-512 leaf-bitvector walk adds.
            portable_cmd = [args.binary, "model", "bench", "--model", path, "--input", data_csv, "--threads", str(t),
                            "--repeat", str(args.repeat), "--kernel", "portable", "--json"]
            portable = json.loads(subprocess.run(portable_cmd, check=True, capture_output=True, text=True).stdout)
            row["portable"] = portable
            row["same_rows"] = row["same_rows"] and portable["margin_checksum"] == ours["margin_checksum"]
            # The same binary on AVX2: refused (exit 64, a validation error) by a processor without
            # it; any other failure stops the run.
            avx2 = subprocess.run(portable_cmd[:-2] + ["avx2", "--json"], capture_output=True, text=True)
            if avx2.returncode not in (0, 64):
                sys.exit(f"{name}: --kernel avx2 failed ({avx2.returncode}): {avx2.stderr.strip()}")
            if avx2.returncode == 0:
                row["avx2"] = json.loads(avx2.stdout)
                row["same_rows"] = row["same_rows"] and row["avx2"]["margin_checksum"] == ours["margin_checksum"]
            if args.baseline_binary:
                cmd[0] = args.baseline_binary
                base = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                row["baseline"] = base
                row["same_rows"] = row["same_rows"] and abs(base["margin_checksum"] - margin_sum) <= 1e-3 * max(1.0, abs(margin_sum))
            results.append(row)

    print(f"\nTree engine, {args.rows} rows x 40 features, median of {args.repeat} (same run, same machine)\n")
    print(f"{'model':<14} {'thr':>3} {'reference':<26} {'reference rows/s':>17} {'churngrid rows/s':>17} {'ratio':>6}  same rows")
    for r in results:
        print(f"{r['model']:<14} {r['threads']:>3} {r['reference']:<26} {r['reference_rows_per_second']:>17,.0f} "
              f"{r['churngrid']['rows_per_second']:>17,.0f} {r['ratio']:>5.2f}x  {r['same_rows']}")
    for r in results:
        if "reference_dmatrix_rows_per_second" in r:
            print(f"  {r['model']} {r['threads']} thr: xgboost predict(DMatrix) {r['reference_dmatrix_rows_per_second']:,.0f}, "
                  f"inplace_predict {r['reference_inplace_rows_per_second']:,.0f} rows/s")
    print(f"\n{'model':<14} {'single row p50 (ref / ours)':>30} {'TreeSHAP rows/s (ref / ours batch, ours row at a time)':>56} {'approx rows/s (ref / ours)':>30}")
    for r in results:
        if r["threads"] != 1:
            continue
        c = r["churngrid"]
        approx = (f"{r['reference_approx_rows_per_second']:,.0f} / {c['approx_contribs_rows_per_second']:,.0f}"
                  if "reference_approx_rows_per_second" in r else f"— / {c['approx_contribs_rows_per_second']:,.0f}")
        print(f"{r['model']:<14} {r['reference_single_row_us_p50']:>14.1f} µs / {c['single_row_ns_p50'] / 1000:>6.2f} µs "
              f"{r['reference_shap_rows_per_second']:>16,.0f} / {c['shap_rows_per_second']:>10,.0f} "
              f"({r['churngrid']['shap_rows_per_second'] / r['reference_shap_rows_per_second']:.2f}x), "
              f"{c.get('shap_single_rows_per_second', float('nan')):>8,.0f} {approx:>30}")
    print(f"\nKernels of the same binary (`--kernel portable` and `--kernel avx2` against the default), same rows, same run\n")
    print(f"{'model':<14} {'thr':>3} {'portable rows/s':>16} {'avx2 rows/s':>12} {'avx2 / portable':>16} {'default rows/s':>15} "
          f"{'default / portable':>19} {'trees by leaf bits':>19}")
    for r in results:
        p = r["portable"]["rows_per_second"]
        a = r["avx2"]["rows_per_second"] if "avx2" in r else float("nan")
        print(f"{r['model']:<14} {r['threads']:>3} {p:>16,.0f} {a:>12,.0f} {a / p:>15.2f}x {r['churngrid']['rows_per_second']:>15,.0f} "
              f"{r['churngrid']['rows_per_second'] / p:>18.2f}x {r['churngrid'].get('exit_leaf_trees', 0):>19}")
    lleaves_rows = [r for r in results if "lleaves_rows_per_second" in r]
    if lleaves_rows:
        print(f"\nLightGBM models against lleaves (LLVM-compiled), same rows, same run\n")
        print(f"{'model':<14} {'thr':>3} {'lightgbm rows/s':>16} {'lleaves rows/s':>15} {'churngrid rows/s':>17} "
              f"{'vs lleaves':>10} {'lleaves compile':>16}  max |p_lleaves - p_lightgbm|")
        for r in lleaves_rows:
            compiled = f"{r['lleaves_compile_seconds']:.1f} s" + (" (cached)" if r["lleaves_cached"] else "")
            print(f"{r['model']:<14} {r['threads']:>3} {r['reference_rows_per_second']:>16,.0f} {r['lleaves_rows_per_second']:>15,.0f} "
                  f"{r['churngrid']['rows_per_second']:>17,.0f} {r['churngrid']['rows_per_second'] / r['lleaves_rows_per_second']:>9.2f}x "
                  f"{compiled:>16}  {r['lleaves_max_abs_diff']:.3g}")
    elif any(r["reference"] == "lightgbm predict" for r in results):
        print("\nlleaves is not installed: no lleaves reference (pip install lleaves llvmlite==0.44.0)")
    if args.baseline_binary:
        print(f"\nBaseline build {args.baseline_binary}, same rows, same run\n")
        print(f"{'model':<14} {'thr':>3} {'baseline rows/s':>16} {'churngrid rows/s':>17} {'after / before':>15}")
        for r in results:
            b = r["baseline"]["rows_per_second"]
            print(f"{r['model']:<14} {r['threads']:>3} {b:>16,.0f} {r['churngrid']['rows_per_second']:>17,.0f} "
                  f"{r['churngrid']['rows_per_second'] / b:>14.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    lleaves_differ = [r for r in lleaves_rows if r["lleaves_max_abs_diff"] > 1e-12]
    if lleaves_differ:
        log(f"error: lleaves and LightGBM predicted different probabilities on {lleaves_differ[0]['model']}")
        sys.exit(1)
    if not all(r["same_rows"] for r in results):
        log("error: ChurnGrid and the reference did not score the same rows (margin sums differ)")
        sys.exit(1)


if __name__ == "__main__":
    main()
