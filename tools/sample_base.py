#!/usr/bin/env python3
"""A small synthetic subscriber sample and an XGBoost churn model trained on it, for the
interim demo. (The full generator and the committed default model belong to the profiles work.)

Usage: sample_base.py OUTDIR [--subscribers N]
Writes OUTDIR/subscribers.csv (subscriber_id, features, churned_30d) and OUTDIR/churn-model.json.
"""
import argparse
import os

import numpy as np
import xgboost as xgb

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--subscribers", type=int, default=50_000)
ap.add_argument("--seed", type=int, default=1)
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
rng = np.random.default_rng(args.seed)
n = args.subscribers

cols = {
    "tenure_months": rng.gamma(2.0, 18.0, n),
    "arpu": rng.lognormal(3.2, 0.6, n),
    "arpu_trend_3m": rng.normal(0, 0.15, n),
    "calls_30d": rng.lognormal(4.0, 0.9, n),
    "calls_trend_3m": rng.normal(0, 0.3, n),
    "data_gb_30d": rng.lognormal(1.5, 1.1, n),
    "data_trend_3m": rng.normal(0, 0.3, n),
    "offnet_call_share": rng.beta(2, 5, n),
    "support_calls_30d": rng.poisson(0.4, n),
    "complaints_90d": rng.poisson(0.15, n),
    "late_payments_6m": rng.poisson(0.2, n),
    "days_to_contract_end": rng.integers(-30, 720, n),
    "competitor_activity": rng.beta(2, 3, n),
    "other_tariff_views_30d": rng.poisson(0.5, n),
}
X = np.column_stack(list(cols.values())).astype(np.float32)
X[rng.random(X.shape) < 0.01] = np.nan
c = {k: np.nan_to_num(X[:, i], nan=np.nanmedian(X[:, i])) for i, k in enumerate(cols)}
z = (-3.6 - 0.02 * c["tenure_months"] - 4 * c["arpu_trend_3m"] - 1.5 * c["calls_trend_3m"] - c["data_trend_3m"]
     + 2 * c["offnet_call_share"] + 0.35 * c["support_calls_30d"] + 0.6 * c["complaints_90d"]
     + 0.4 * c["late_payments_6m"] + 1.4 * (c["days_to_contract_end"] < 45) + 1.5 * c["competitor_activity"]
     + 0.3 * c["other_tariff_views_30d"])
y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int8)

ids = np.arange(1, n + 1) + 79_000_000
with open(os.path.join(args.out, "subscribers.csv"), "w") as fh:
    fh.write("subscriber_id," + ",".join(cols) + ",churned_30d\n")
    for i in range(n):
        cells = ["" if np.isnan(v) else "%.9g" % v for v in X[i]]
        fh.write(f"{ids[i]}," + ",".join(cells) + f",{y[i]}\n")

booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.1, "nthread": 2, "seed": 1},
                    xgb.DMatrix(X, y, feature_names=list(cols)), 200)
booster.save_model(os.path.join(args.out, "churn-model.json"))
print(f"{n} subscribers, churn rate {y.mean():.1%}; model written to {args.out}/churn-model.json")
