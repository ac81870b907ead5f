#!/usr/bin/env python3
"""Train XGBoost and LightGBM models with native categorical splits and record the libraries' own
outputs, including on the awkward inputs (NaN, negative, fractional, unseen and huge codes).

Usage: make_categorical_fixtures.py OUTDIR

Writes, for every model NAME listed in OUTDIR/manifest.csv:
  NAME.json / NAME.txt        the model as the library saved it
  NAME.pred.csv               margin,output per row of data.csv (library predict)
  NAME.contribs.csv           exact SHAP contributions (c0..cF-1, bias) for the first CONTRIB_ROWS rows
  NAME.approx.csv             XGBoost approx_contribs for the same rows (XGBoost models only)
  NAME.probe.pred.csv         margin,output per row of probe.csv
  NAME.probe.contribs.csv     exact SHAP contributions per row of probe.csv
  NAME.probe.approx.csv       XGBoost approx_contribs per row of probe.csv
  NAME.inf.pred.csv           margin,output per row of probe_inf.csv (XGBoost: inplace_predict; its
                              DMatrix refuses infinite values)
data.csv / probe.csv / probe_inf.csv: subscriber_id, then the features (float32 written exactly with
'%.9g', NaN as an empty cell or 'NaN').

Besides trained models, two *edited* models put category 0 into every categorical split (and, for
LightGBM, the default-left bit on every categorical split), so that the probe rows show how each
library reads -0.5, -0.0 and NaN there. The script checks the behaviours ChurnGrid implements
(CategorySet) against the libraries and fails loudly if a library disagrees.
"""
import csv
import json
import os
import sys

import numpy as np
import xgboost as xgb
import lightgbm as lgb

SEED = 20261203
print(f"make_categorical_fixtures.py: numpy seed {SEED}, xgboost {xgb.__version__}, lightgbm {lgb.__version__}")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(SEED)

# Features: five categorical (3, 5, 12, 40 and 500 categories, as contract type, payment method,
# region, tariff plan and device brand), then five numeric.
CATS = [3, 5, 12, 40, 500]
NUM = 5
F = len(CATS) + NUM
NAMES = ["contract", "payment", "region", "tariff", "device"] + [f"num_{j}" for j in range(NUM)]
N = 3000
X = np.empty((N, F), dtype=np.float32)
for j, k in enumerate(CATS):
    # Skewed use of categories (a few big ones, a long tail), as with real plans and brands.
    p = 1.0 / np.arange(1, k + 1) ** 0.8
    X[:, j] = rng.choice(k, size=N, p=p / p.sum())
    X[rng.random(N) < 0.08, j] = np.nan
for j in range(len(CATS), F):
    X[:, j] = rng.normal(size=N)
    X[rng.random(N) < 0.03, j] = np.nan
effects = [rng.normal(size=k + 1) for k in CATS]  # the last effect is for NaN
logit = -0.3 + 0.8 * np.nan_to_num(X[:, 5]) - 0.5 * np.nan_to_num(X[:, 6]) * np.nan_to_num(X[:, 7])
for j, k in enumerate(CATS):
    codes = np.where(np.isnan(X[:, j]), k, np.nan_to_num(X[:, j])).astype(int)
    logit += effects[j][codes] * (1.5 if j in (0, 3, 4) else 0.7)
y = (rng.random(N) < 1 / (1 + np.exp(-logit))).astype(np.float32)
y_reg = (logit + rng.normal(size=N)).astype(np.float32)
TYPES = ["c"] * len(CATS) + ["q"] * NUM
CAT_IDX = list(range(len(CATS)))

# Probe rows: every awkward code in every categorical column (others at a typical row's values).
PROBE_VALUES = [np.nan, -0.0, -0.5, -0.99, -1.0, -3.0, 0.0, 0.5, 0.99, 1.0, 1.5, 2.7, 2.999,
                3.0, 4.0, 5.0, 11.0, 12.0, 39.0, 40.0, 63.0, 64.0, 499.0, 499.5, 500.0, 511.0, 512.0,
                1000.0, 65535.0, 1e6, 16777215.0, 16777216.0, 3e9, 1e30, -1e30, 1e-45, -1e-45]
INF_VALUES = [np.inf, -np.inf]


def probe_rows(values):
    rows = []
    for base in range(3):
        for j in CAT_IDX:
            for v in values:
                r = X[base * 7].copy()
                r[j] = v
                rows.append(r)
    return np.array(rows, dtype=np.float32)


PROBE = probe_rows(PROBE_VALUES)
PROBE_INF = probe_rows(INF_VALUES)


def write_rows(path, M):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subscriber_id"] + NAMES)
        for i, row in enumerate(M):
            cells = []
            for j, v in enumerate(row):
                if np.isnan(v):
                    cells.append("" if (i + j) % 2 else "NaN")
                else:
                    cells.append("%.9g" % v)
            w.writerow([f"S{i:06d}"] + cells)


write_rows(os.path.join(out, "data.csv"), X)
write_rows(os.path.join(out, "probe.csv"), PROBE)
write_rows(os.path.join(out, "probe_inf.csv"), PROBE_INF)

CONTRIB_ROWS = 300
manifest = []


def save_pred(name, kind, margin, output):
    np.savetxt(os.path.join(out, f"{name}.{kind}.csv"), np.column_stack([margin, output]),
               delimiter=",", fmt="%.17g", header="margin,output", comments="")


def save_matrix(name, kind, m):
    header = ",".join([f"c{j}" for j in range(m.shape[1] - 1)] + ["bias"])
    np.savetxt(os.path.join(out, f"{name}.{kind}.csv"), m, delimiter=",", fmt="%.17g",
               header=header, comments="")


def dmatrix(M):
    return xgb.DMatrix(M, feature_names=NAMES, feature_types=TYPES, enable_categorical=True, missing=np.nan)


def record_xgb(name, booster):
    path = os.path.join(out, f"{name}.json")
    booster.save_model(path)
    booster = xgb.Booster(model_file=path)  # what ChurnGrid reads is what XGBoost reads back
    save_pred(name, "pred", booster.predict(dmatrix(X), output_margin=True), booster.predict(dmatrix(X)))
    sub = X[:CONTRIB_ROWS]
    save_matrix(name, "contribs", booster.predict(dmatrix(sub), pred_contribs=True))
    save_matrix(name, "approx", booster.predict(dmatrix(sub), pred_contribs=True, approx_contribs=True))
    margin = booster.predict(dmatrix(PROBE), output_margin=True)
    # inplace_predict takes what a DMatrix refuses (infinities); on finite codes both must agree.
    inplace = booster.inplace_predict(PROBE, predict_type="margin")
    assert np.array_equal(margin, inplace), f"{name}: DMatrix and inplace_predict disagree on probe rows"
    save_pred(name, "probe.pred", margin, booster.predict(dmatrix(PROBE)))
    save_matrix(name, "probe.contribs", booster.predict(dmatrix(PROBE), pred_contribs=True))
    save_matrix(name, "probe.approx", booster.predict(dmatrix(PROBE), pred_contribs=True, approx_contribs=True))
    save_pred(name, "inf.pred", booster.inplace_predict(PROBE_INF, predict_type="margin"),
              booster.inplace_predict(PROBE_INF))
    manifest.append((name, f"{name}.json", "xgboost"))
    return booster


def xgb_model(name, depth, trees, extra=None, objective="binary:logistic", label=y):
    params = {"objective": objective, "max_depth": depth, "eta": 0.1, "nthread": 1,
              "tree_method": "hist", "seed": 1, "max_cat_to_onehot": 1}
    params.update(extra or {})
    booster = xgb.train(params, xgb.DMatrix(X, label=label, feature_names=NAMES, feature_types=TYPES,
                                            enable_categorical=True, missing=np.nan), trees)
    return record_xgb(name, booster)


def record_lgb(name, booster):
    path = os.path.join(out, f"{name}.txt")
    booster.save_model(path)
    booster = lgb.Booster(model_file=path)
    save_pred(name, "pred", booster.predict(X, raw_score=True), booster.predict(X))
    save_matrix(name, "contribs", booster.predict(X[:CONTRIB_ROWS], pred_contrib=True))
    save_pred(name, "probe.pred", booster.predict(PROBE, raw_score=True), booster.predict(PROBE))
    save_matrix(name, "probe.contribs", booster.predict(PROBE, pred_contrib=True))
    save_pred(name, "inf.pred", booster.predict(PROBE_INF, raw_score=True), booster.predict(PROBE_INF))
    manifest.append((name, f"{name}.txt", "lightgbm"))
    return booster


def lgb_model(name, leaves, trees, extra=None, features=None):
    p = {"objective": "binary", "num_leaves": leaves, "learning_rate": 0.1, "verbose": -1,
         "num_threads": 1, "seed": 1, "min_data_in_leaf": 10, "min_data_per_group": 10,
         "cat_smooth": 5, "max_cat_threshold": 64}
    p.update(extra or {})
    ds = lgb.Dataset(X, label=y, feature_name=NAMES, categorical_feature=CAT_IDX, free_raw_data=False)
    return record_lgb(name, lgb.train(p, ds, trees))


# XGBoost: depth 1 to 8, partition splits and one-hot splits, three objectives.
xgb_model("xgbc_stumps_d1", 1, 30)
xgb_model("xgbc_mixed_d3", 3, 60)
xgb_model("xgbc_onehot_d4", 4, 40, {"max_cat_to_onehot": 64})  # one category per split below 64
xgb_model("xgbc_d6_150", 6, 150, {"min_child_weight": 0.5})
xgb_model("xgbc_d8_80", 8, 80, {"min_child_weight": 0.1, "max_cat_threshold": 128})
xgb_model("xgbc_logitraw_d5", 5, 40, objective="binary:logitraw")
xgb_model("xgbc_sqerr_d4", 4, 40, objective="reg:squarederror", label=y_reg)
# LightGBM: 2 to 255 leaves (depth 1 to 8), NaN and None missing types.
lgb_model("lgbc_stumps", 2, 30)
lgb_model("lgbc_mixed_15", 15, 60)
lgb_model("lgbc_63", 63, 150, {"min_data_in_leaf": 5, "min_data_per_group": 5})
lgb_model("lgbc_depth8", 255, 40, {"max_depth": 8, "min_data_in_leaf": 3, "min_data_per_group": 3})
lgb_model("lgbc_no_missing", 15, 40, {"use_missing": False})
lgb_model("lgbc_one_vs_rest", 15, 40, {"max_cat_to_onehot": 64})

# Edited XGBoost model: category 0 in every categorical split, so that -0.0 (category 0) and
# -0.5 (no category) part ways; and category names stored as XGBoost 3.x does for a DataFrame.
j = json.loads(xgb.Booster(model_file=os.path.join(out, "xgbc_mixed_d3.json")).save_raw("json"))
for tree in j["learner"]["gradient_booster"]["model"]["trees"]:
    cats, segs, sizes = [], [], []
    for k in range(len(tree["categories_nodes"])):
        b, n = tree["categories_segments"][k], tree["categories_sizes"][k]
        members = sorted(set(tree["categories"][b:b + n]) | {0})
        segs.append(len(cats))
        sizes.append(len(members))
        cats += members
    tree["categories"], tree["categories_segments"], tree["categories_sizes"] = cats, segs, sizes
names = [[f"plan {c}" if j < 4 else f"brand-{c}é" for c in range(k)] for j, k in enumerate(CATS)] + [[] for _ in range(NUM)]
enc = []
for column in names:
    data = [list(n.encode()) for n in column]
    offsets = [0]
    for d in data:
        offsets.append(offsets[-1] + len(d))
    enc.append({"offsets": offsets if column else [], "values": [v - 256 if v > 127 else v for d in data for v in d]})
segments = [0]
for column in names:
    segments.append(segments[-1] + len(column))
j["learner"]["gradient_booster"]["model"]["cats"] = {
    "enc": enc, "feature_segments": segments,
    "sorted_idx": [i for column in names for i in np.argsort(column, kind="stable").tolist()]}
edited = os.path.join(out, "xgbc_edited.tmp.json")
with open(edited, "w") as fh:
    json.dump(j, fh)
booster = record_xgb("xgbc_edited", xgb.Booster(model_file=edited))
os.remove(edited)

# Edited LightGBM model: category 0 in every bitset and the default-left bit on every categorical split.
text = open(os.path.join(out, "lgbc_mixed_15.txt")).read()
lines = []
decisions = None
for line in text.split("\n"):
    if line.startswith("tree_sizes="):
        continue  # byte sizes of the trees, which the edit changes; without it LightGBM reads on
    if line.startswith("decision_type="):
        decisions = [int(v) for v in line.split("=")[1].split()]
        line = "decision_type=" + " ".join(str(d | 2 if d & 1 else d) for d in decisions)
    elif line.startswith("cat_threshold="):
        words = [int(v) for v in line.split("=")[1].split()]
        bounds = [int(v) for v in bounds_line.split("=")[1].split()]
        for b in bounds[:-1]:
            words[b] |= 1
        line = "cat_threshold=" + " ".join(str(w) for w in words)
    elif line.startswith("cat_boundaries="):
        bounds_line = line
    lines.append(line)
record_lgb("lgbc_edited", lgb.Booster(model_str="\n".join(lines)))


# The behaviours ChurnGrid implements (TreeModel/CategorySet.swift), checked on the libraries.
def one_split_xgb(categories, default_left):
    """A one-split XGBoost model on feature 0: categories go right (leaf 1.0), others left (-1.0)."""
    j = json.loads(xgb.Booster(model_file=os.path.join(out, "xgbc_stumps_d1.json")).save_raw("json"))
    model = j["learner"]["gradient_booster"]["model"]
    t = model["trees"][0]
    t.update({"left_children": [1, -1, -1], "right_children": [2, -1, -1], "parents": [2147483647, 0, 0],
              "split_indices": [0, 0, 0], "split_conditions": [1e-45, -1.0, 1.0], "split_type": [1, 0, 0],
              "default_left": [int(default_left), 0, 0], "sum_hessian": [2.0, 1.0, 1.0], "loss_changes": [1.0, 0.0, 0.0],
              "base_weights": [0.0, -1.0, 1.0], "categories": categories, "categories_nodes": [0],
              "categories_segments": [0], "categories_sizes": [len(categories)]})
    t["tree_param"]["num_nodes"] = "3"
    model["trees"] = [t]
    model["tree_info"] = [0]
    model["iteration_indptr"] = [0, 1]
    model["gbtree_model_param"]["num_trees"] = "1"
    j["learner"]["objective"]["name"] = "reg:squarederror"
    j["learner"]["learner_model_param"]["base_score"] = "[0E0]"
    return xgb_from_json(j)


def xgb_from_json(j):
    path = os.path.join(out, "one_split.tmp.json")
    with open(path, "w") as fh:
        json.dump(j, fh)
    b = xgb.Booster(model_file=path)
    os.remove(path)
    return b


def side_xgb(b, values):
    M = np.zeros((len(values), F), dtype=np.float32)
    M[:, 0] = values
    return ["R" if m > 0 else "L" for m in b.inplace_predict(M, predict_type="margin")]


b = one_split_xgb([0, 2, 31, 32], default_left=False)
got = side_xgb(b, [np.nan, -0.0, -0.5, 0.5, 2.7, 1, 31.9, 32, 33, 64, -1, 16777216, np.inf, -np.inf])
assert got == ["R", "R", "L", "R", "R", "L", "R", "R", "L", "L", "L", "L", "L", "L"], f"XGBoost reads codes differently: {got}"
assert side_xgb(one_split_xgb([0], default_left=True), [np.nan]) == ["L"]

lgb_text = open(os.path.join(out, "lgbc_stumps.txt")).read()


def side_lgb(decision_type, words, values):
    tree = ("Tree=0\nnum_leaves=2\nnum_cat=1\nsplit_feature=0\nsplit_gain=1\nthreshold=0\n"
            f"decision_type={decision_type}\nleft_child=-1\nright_child=-2\nleaf_value=-1 1\n"
            "leaf_weight=1 1\nleaf_count=1 1\ninternal_value=0\ninternal_weight=1\ninternal_count=2\n"
            f"cat_boundaries=0 {len(words)}\ncat_threshold={' '.join(map(str, words))}\n"
            "is_linear=0\nshrinkage=1\n\n\n")
    head = "\n".join(l for l in lgb_text[:lgb_text.index("Tree=0")].split("\n") if not l.startswith("tree_sizes="))
    tail = lgb_text[lgb_text.index("end of trees"):]
    b = lgb.Booster(model_str=head + tree + tail)
    M = np.zeros((len(values), F))
    M[:, 0] = values
    return ["L" if m < 0 else "R" for m in b.predict(M, raw_score=True)]


for dt in [1, 3, 5, 9, 11]:  # missing type None / Zero / NaN, default left or right: NaN always right
    got = side_lgb(dt, [0b101, 1], [np.nan, -0.0, -0.5, -0.99, -1, 2.7, 1, 32, 33, 64, 3e9, np.inf, -np.inf])
    assert got == ["R", "L", "L", "L", "R", "L", "R", "L", "R", "R", "R", "R", "R"], f"LightGBM decision_type {dt}: {got}"

with open(os.path.join(out, "manifest.csv"), "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["name", "model", "library"])
    w.writerows(manifest)
print(f"wrote {len(manifest)} models to {out}")
