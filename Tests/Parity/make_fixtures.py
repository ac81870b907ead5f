#!/usr/bin/env python3
"""Train XGBoost and LightGBM models on generated data and record the libraries' own outputs.

Usage: make_fixtures.py OUTDIR

Writes, for every model NAME listed in OUTDIR/manifest.csv:
  NAME.json / NAME.txt     the model as the library saves it
  NAME.pred.csv            margin,output per row of the model's input file (library predict)
  NAME.contribs.csv        exact SHAP contributions (c0..cF-1, bias) for the first rows
  NAME.approx.csv          XGBoost approx_contribs for the same rows (XGBoost models only)
The input files are data_<naming>.csv: a subscriber_id column, then the features, float32 values
written exactly ('%.9g'), missing values written as an empty cell or as NaN.
"""
import csv
import os
import sys

import numpy as np
import xgboost as xgb
import lightgbm as lgb

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20261122)

N, F = 4000, 40
X = rng.normal(size=(N, F)).astype(np.float32)
X[:, 1] = rng.exponential(3.0, N)                      # heavy tail
X[:, 2] = rng.integers(0, 5, N)                        # small integer counts (many exact zeros)
X[:, 3] = np.where(rng.random(N) < 0.4, 0.0, X[:, 3])  # many zeros
X[:, 4] = rng.normal(size=N) * 1e4                     # large scale
X[:, 5] = 7.0                                          # constant
X[:, 6] = np.where(rng.random(N) < 0.02, np.float32(1e-37), X[:, 6])  # subnormal-ish tiny values
for j in range(F):
    rate = 0.15 if j % 3 == 0 else 0.02
    X[rng.random(N) < rate, j] = np.nan
X = X.astype(np.float32)
x0 = np.nan_to_num(X[:, 0], nan=0.5)
logit = 1.2 * x0 - 0.3 * np.nan_to_num(X[:, 1]) + 0.5 * np.nan_to_num(X[:, 2]) \
    + 0.8 * np.isnan(X[:, 9]) + 0.4 * np.nan_to_num(X[:, 7]) * np.nan_to_num(X[:, 8]) - 0.5
y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(np.float32)
y_reg = (logit + rng.normal(size=N)).astype(np.float32)
y_prob = (1 / (1 + np.exp(-logit))).astype(np.float32)

NAMINGS = {
    "named": [f"feat_{j}" for j in range(F)],
    "f": [f"f{j}" for j in range(F)],
    "col": [f"Column_{j}" for j in range(F)],
}
for naming, names in NAMINGS.items():
    with open(os.path.join(out, f"data_{naming}.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subscriber_id"] + names + ["note"])
        for i in range(N):
            cells = []
            for j in range(F):
                v = X[i, j]
                if np.isnan(v):
                    cells.append("" if (i + j) % 2 else "NaN")
                else:
                    cells.append("%.9g" % v)
            w.writerow([f"S{i:06d}"] + cells + ['quoted, "note"' if i % 500 == 0 else "x"])

CONTRIB_ROWS = 200
manifest = []


def save_pred(name, margin, output):
    np.savetxt(os.path.join(out, f"{name}.pred.csv"), np.column_stack([margin, output]),
               delimiter=",", fmt="%.17g", header="margin,output", comments="")


def save_matrix(name, kind, m):
    header = ",".join([f"c{j}" for j in range(m.shape[1] - 1)] + ["bias"])
    np.savetxt(os.path.join(out, f"{name}.{kind}.csv"), m, delimiter=",", fmt="%.17g",
               header=header, comments="")


def xgb_model(name, objective, label, depth, trees, naming, extra=None, rows=N):
    names = NAMINGS[naming] if naming == "named" else None
    params = {"objective": objective, "max_depth": depth, "eta": 0.1, "nthread": 1,
              "tree_method": "hist", "seed": 1}
    params.update(extra or {})
    dtrain = xgb.DMatrix(X[:rows], label=label[:rows], feature_names=names, missing=np.nan)
    booster = xgb.train(params, dtrain, trees)
    booster.save_model(os.path.join(out, f"{name}.json"))
    dall = xgb.DMatrix(X, feature_names=names, missing=np.nan)
    margin = booster.predict(dall, output_margin=True)
    output = booster.predict(dall)
    save_pred(name, margin, output)
    dsub = xgb.DMatrix(X[:CONTRIB_ROWS], feature_names=names, missing=np.nan)
    save_matrix(name, "contribs", booster.predict(dsub, pred_contribs=True))
    save_matrix(name, "approx", booster.predict(dsub, pred_contribs=True, approx_contribs=True))
    manifest.append((name, f"{name}.json", f"data_{naming}.csv", "xgboost"))


def lgb_model(name, params, leaves, trees, naming):
    p = {"objective": "binary", "num_leaves": leaves, "learning_rate": 0.1, "verbose": -1,
         "num_threads": 1, "seed": 1, "min_data_in_leaf": 10}
    p.update(params)
    names = NAMINGS[naming] if naming == "named" else "auto"
    ds = lgb.Dataset(X, label=y, feature_name=names, free_raw_data=False)
    booster = lgb.train(p, ds, trees)
    booster.save_model(os.path.join(out, f"{name}.txt"))
    margin = booster.predict(X, raw_score=True)
    output = booster.predict(X)
    save_pred(name, margin, output)
    save_matrix(name, "contribs", booster.predict(X[:CONTRIB_ROWS], pred_contrib=True))
    manifest.append((name, f"{name}.txt", f"data_{naming}.csv", "lightgbm"))


xgb_model("xgb_logistic_d3_50", "binary:logistic", y, 3, 50, "named")
xgb_model("xgb_logistic_d6_300", "binary:logistic", y, 6, 300, "f")
xgb_model("xgb_logitraw_d5_80", "binary:logitraw", y, 5, 80, "named")
xgb_model("xgb_sqerr_d4_60", "reg:squarederror", y_reg, 4, 60, "named")
xgb_model("xgb_reglogistic_d5_40", "reg:logistic", y_prob, 5, 40, "f")
xgb_model("xgb_stump_1", "binary:logistic", y, 1, 1, "f")
xgb_model("xgb_lossguide_d0", "binary:logistic", y, 0, 30, "named",
          {"grow_policy": "lossguide", "max_leaves": 48})
xgb_model("xgb_logistic_d8_1000", "binary:logistic", y, 8, 1000, "f", {"eta": 0.05, "min_child_weight": 0.1})
lgb_model("lgb_binary_31", {}, 31, 100, "named")
lgb_model("lgb_deep_63", {"min_data_in_leaf": 3}, 63, 150, "col")
lgb_model("lgb_zero_as_missing", {"zero_as_missing": True}, 15, 60, "named")
lgb_model("lgb_no_missing", {"use_missing": False}, 15, 60, "named")
lgb_model("lgb_sigmoid_2", {"sigmoid": 2.0}, 15, 40, "named")

with open(os.path.join(out, "manifest.csv"), "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["name", "model", "input", "library"])
    w.writerows(manifest)
print(f"wrote {len(manifest)} models to {out} (xgboost {xgb.__version__}, lightgbm {lgb.__version__})")
