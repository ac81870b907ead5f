#!/usr/bin/env python3
"""Train ChurnGrid's default churn model on a generated base and write its model card.

Usage: train_default_model.py [--subscribers N] [--seed S] [--binary PATH]
Generates the base with `churngrid generate` (so the model sees exactly what the cluster stores),
trains XGBoost on 80% of it, evaluates on the other 20%, and writes
  models/churn-default.json   the model (XGBoost JSON, kept under ~2 MB)
  models/README.md            the model card: data, parameters, holdout AUC, top-decile lift
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile

import numpy as np
import xgboost as xgb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--subscribers", type=int, default=1_000_000)
ap.add_argument("--seed", type=int, default=20261122)
ap.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "churngrid"))
args = ap.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "base.csv")
    subprocess.run([args.binary, "generate", "--subscribers", str(args.subscribers), "--seed", str(args.seed),
                    "--out", path], check=True)
    with open(path) as fh:
        header = next(csv.reader(fh))
    data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64, filling_values=np.nan)

features = header[1:-1]
X = data[:, 1:-1].astype(np.float32)
y = data[:, -1].astype(np.float32)
rng = np.random.default_rng(1)
holdout = rng.random(len(y)) < 0.2
params = {"objective": "binary:logistic", "max_depth": 5, "eta": 0.1, "subsample": 0.8,
          "colsample_bytree": 0.8, "min_child_weight": 5, "tree_method": "hist", "eval_metric": "auc",
          "nthread": 2, "seed": 1}
rounds = 150
dtrain = xgb.DMatrix(X[~holdout], y[~holdout], feature_names=features)
dtest = xgb.DMatrix(X[holdout], y[holdout], feature_names=features)
booster = xgb.train(params, dtrain, rounds)
p = booster.predict(dtest)
yt = y[holdout]


def auc(scores, labels):
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels == 1
    return (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())


holdout_auc = auc(p, yt)
top = np.argsort(-p)[: len(p) // 10]
lift = yt[top].mean() / yt.mean()
os.makedirs(os.path.join(ROOT, "models"), exist_ok=True)
model_path = os.path.join(ROOT, "models", "churn-default.json")
booster.save_model(model_path)
size = os.path.getsize(model_path)
gain = booster.get_score(importance_type="total_gain")
top_features = sorted(gain.items(), key=lambda kv: -kv[1])[:10]

card = f"""# The default churn model

`churn-default.json` is the model `make demo` and a new cluster use when no model is given. It is
an XGBoost model trained on ChurnGrid's own synthetic base, so it shows the machinery working end
to end; an operator replaces it with a model trained on its own data (any XGBoost JSON or
LightGBM text model whose feature names are columns of `subscriber_profiles`).

Retrain with `python3 tools/train_default_model.py` (needs `make release` and `pip install xgboost`).

## Data
- `churngrid generate --subscribers {args.subscribers} --seed {args.seed}`: {len(y):,} subscribers,
  {len(features)} features (docs/features.md), churn rate {y.mean():.2%} (label `churned_30d`).
- Split: {int((~holdout).sum()):,} training / {int(holdout.sum()):,} holdout subscribers (random 80/20).

## Parameters
XGBoost {xgb.__version__}, {rounds} rounds: {", ".join(f"{k}={v}" for k, v in params.items() if k not in ("nthread", "eval_metric"))}.
Model file: {size / 1e6:.2f} MB.

## Holdout quality
- AUC: **{holdout_auc:.3f}**
- Lift in the top decile: **{lift:.2f}×** (the 10% highest-scored subscribers churn {yt[top].mean():.1%} of the
  time against {yt.mean():.1%} overall).

## Strongest features (total gain)
{chr(10).join(f"{i + 1}. `{name}`" for i, (name, _) in enumerate(top_features))}
"""
with open(os.path.join(ROOT, "models", "README.md"), "w") as fh:
    fh.write(card)
print(f"AUC {holdout_auc:.3f}, top-decile lift {lift:.2f}x, {size / 1e6:.2f} MB -> {model_path}", file=sys.stderr)
