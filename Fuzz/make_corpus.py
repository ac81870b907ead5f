#!/usr/bin/env python3
"""Writes the committed seed corpus under Fuzz/Corpus/<target>/ (docs/fuzzing.md).

Run from the repository root: python3 Fuzz/make_corpus.py. Needs xgboost, lightgbm and numpy (as
`make test-deps` installs) for the small trained models; everything else is written by hand here.
Seeds are kept small (a few KiB) so that each execution stays fast.
"""
import json
import os
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- wire format: LEB128 lengths, little-endian numbers, UTF-8 strings ----

def leb(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def s(text):
    b = text.encode()
    return leb(len(b)) + b


def i64(v): return struct.pack("<q", v)
def u64(v): return struct.pack("<Q", v)
def u32(v): return struct.pack("<I", v)
def i32(v): return struct.pack("<i", v)
def f32(v): return struct.pack("<f", v)
def f64(v): return struct.pack("<d", v)
def strings(xs): return leb(len(xs)) + b"".join(s(x) for x in xs)


def batch(shard, ids, scores, model, threshold, reasons, flags, complete):
    out = i32(shard)
    out += leb(len(ids)) + b"".join(i64(v) for v in ids)
    out += leb(len(scores)) + b"".join(f32(v) for v in scores)
    out += s(model)
    out += (b"\x01" + f64(threshold)) if threshold is not None else b"\x00"
    out += leb(len(reasons)) + b"".join(strings(r) for r in reasons)
    out += leb(len(flags)) + bytes(1 if f else 0 for f in flags)
    out += b"\x01" if complete else b"\x00"
    return out


# FuzzWire reads a tag byte (mod 24) before each value: 0 Int64, 1 UInt32, 2 UInt16, 3 Int, 4 Bool,
# 5 Float, 6 Double, 7 String, 8 String?, 9 [String], 10 [[String]], 11-14 BulkArray<Float/Int64/
# Int16/UInt8>, 15 [Int64], 16 [Int32?], 17 [Double], 18 Batch, 19 [Batch], 20 [Bool], 21 a length,
# 22 bytes in units of 3, 23 end of frame.
b1 = batch(517, [1_000_000_001, -5, 2**63 - 1], [0.25, float("nan"), -0.0], "churn-default v3 ✓", 0.5,
           [["complaints_90d", "arpu_trend_3m"], []], [True, False], True)
put("wire", "scalars", b"\x00" + i64(-7) + b"\x01" + u32(7) + b"\x02" + b"\x07\x00" + b"\x03" + i64(42)
    + b"\x04\x01" + b"\x05" + f32(1.5) + b"\x06" + f64(-2.25) + b"\x17")
put("wire", "text", b"\x07" + s("shard/17") + b"\x08\x01" + s("ü") + b"\x08\x00" + b"\x09" + strings(["a", "", "tcp://127.0.0.1:7401"])
    + b"\x0a" + leb(2) + strings(["x"]) + strings([]))
put("wire", "bulk", b"\x0b" + leb(3) + f32(0.1) + f32(0.2) + f32(0.3) + b"\x0c" + leb(2) + i64(1) + i64(-1)
    + b"\x0d" + leb(2) + b"\x01\x00\xff\xff" + b"\x0e" + leb(4) + b"abcd")
put("wire", "arrays", b"\x0f" + leb(2) + i64(5) + i64(6) + b"\x10" + leb(3) + b"\x01" + i32(9) + b"\x00" + b"\x01" + i32(-1)
    + b"\x11" + leb(1) + f64(3.5) + b"\x14" + leb(3) + b"\x01\x00\x01" + b"\x15" + leb(300) + b"\x16" + leb(2) + b"abcdef")
put("wire", "batch", b"\x12" + b1)
put("wire", "batches", b"\x13" + leb(2) + b1 + batch(-1, [], [], "", None, [], [], False))
put("wire", "whole-batch", b1)
put("wire", "whole-strings", strings(["complaints_90d", "arpu_trend_3m", "tenure_months"]))

# ---- frames: the envelope between nodes (ClusterSystem/Protocol/Envelope.swift) ----
KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # 40 Z85 characters, the shape of a CURVE public key


def node(name, endpoint, incarnation, key=""):
    return s(name) + s(endpoint) + u64(incarnation) + s(key)


hello = b"\x01" + u32(1) + s("churngrid") + node("worker-1", "tcp://127.0.0.1:7401", 0x1234ABCD, KEY)
welcome = b"\x02" + u32(1) + node("coordinator", "tcp://127.0.0.1:7400", 0xFEED)
refused = b"\x03" + s("cluster name differs: expected churngrid") + node("coordinator", "tcp://127.0.0.1:7400", 1)
put("frame", "hello", b"\x01" + hello)
put("frame", "welcome", b"\x01" + welcome)
put("frame", "refused", b"\x01" + refused)
put("frame", "handshake-only", hello)
put("frame", "ping", b"\x02" + u64(7))
put("frame", "pong", b"\x03" + u64(7))
put("frame", "call", b"\x04" + u64(99) + s("shard/517") + u64(0xFEED) + s("$s11ChurnCluster10ShardActorC5scoreyS2dFTE") + u64(5_000_000))
put("frame", "reply", b"\x05" + u64(99))
put("frame", "failure", b"\x06" + u64(99) + b"\x01" + s("ProfileError") + s("shard 517 is not loaded"))
put("frame", "cancel", b"\x07" + u64(99))

# ---- CSV ----
put("csv", "scoring", "subscriber_id,tenure,bill,note\n1,12,30.5,x\n2,,NaN,\"q, \"\"r\"\"\"\r\n3,inf, -2e3 ,\n")
put("csv", "quoted-newlines", "id,a,b\n\"multi\nline\",1,2\n\n3,4,5\n")
put("csv", "crlf", "a,b\r\n1,2\r\n3,4\r\n")
put("csv", "unterminated", "id,a\n1,\"open\n2,3\n")
put("csv", "hex-and-spaces", "a,b,c\n0x1p3, 7 ,-0\nnan,-inf,1e39\n")

# ---- models ----
here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(here)

# The first three trees of the default churn model (a real XGBoost 3.2 file, cut down).
with open(os.path.join(repo, "models", "churn-default.json")) as f:
    m = json.load(f)
model = m["learner"]["gradient_booster"]["model"]
model["trees"] = model["trees"][:3]
for i, t in enumerate(model["trees"]):
    t["id"] = i
model["tree_info"] = model["tree_info"][:3]
model["iteration_indptr"] = list(range(4))
model["gbtree_model_param"]["num_trees"] = "3"
put("xgboost", "churn-default-3-trees.json", json.dumps(m, separators=(",", ":")))

import xgboost as xgb  # noqa: E402
import lightgbm as lgb  # noqa: E402

rng = np.random.default_rng(11)
X = rng.normal(size=(400, 4)).astype(np.float32)
X[rng.random(400) < 0.1, 0] = np.nan
X[rng.random(400) < 0.3, 1] = 0.0
y = (X[:, 1] + np.nan_to_num(X[:, 0]) * X[:, 2] > 0).astype(np.float32)
tmp = os.path.join(repo, ".build-fuzz", "runs", "tmp")
os.makedirs(tmp, exist_ok=True)
for objective, depth in [("binary:logistic", 3), ("reg:squarederror", 2), ("binary:logitraw", 4)]:
    d = xgb.DMatrix(X, label=y, feature_names=["tenure", "bill", "calls", "region"])
    b = xgb.train({"objective": objective, "max_depth": depth, "eta": 0.3, "seed": 1}, d, 3)
    path = os.path.join(tmp, "m.json")
    b.save_model(path)
    put("xgboost", f"{objective.replace(':', '-')}-d{depth}.json", open(path, "rb").read())
for name, params in [("binary", {}), ("zero-as-missing", {"zero_as_missing": True}), ("no-missing", {"use_missing": False}),
                     ("sigmoid", {"sigmoid": 0.7})]:
    ds = lgb.Dataset(X, label=y, feature_name=["tenure", "bill", "calls", "region"], free_raw_data=False)
    b = lgb.train({"objective": "binary", "num_leaves": 6, "min_data_in_leaf": 5, "verbose": -1, "seed": 1, **params}, ds, 3)
    put("lightgbm", f"{name}.txt", b.model_to_string())

# Categorical splits: "plan" holds category codes 0-5 (NaN for 10%); XGBoost partition and one-hot
# splits, LightGBM bitsets.
crng = np.random.default_rng(12)
Xc = crng.normal(size=(400, 4)).astype(np.float32)
Xc[:, 3] = crng.integers(0, 6, 400)
Xc[crng.random(400) < 0.1, 3] = np.nan
yc = ((np.nan_to_num(Xc[:, 3], nan=1) % 2 == 0) ^ (Xc[:, 1] > 0)).astype(np.float32)
for name, onehot in [("categorical-d3", 1), ("categorical-onehot-d2", 8)]:
    d = xgb.DMatrix(Xc, label=yc, feature_names=["tenure", "bill", "calls", "plan"],
                    feature_types=["q", "q", "q", "c"], enable_categorical=True)
    b = xgb.train({"objective": "binary:logistic", "max_depth": 3 if onehot == 1 else 2, "eta": 0.3, "seed": 1,
                   "max_cat_to_onehot": onehot}, d, 3)
    path = os.path.join(tmp, "m.json")
    b.save_model(path)
    put("xgboost", f"{name}.json", open(path, "rb").read())
ds = lgb.Dataset(Xc, label=yc, feature_name=["tenure", "bill", "calls", "plan"], categorical_feature=[3], free_raw_data=False)
b = lgb.train({"objective": "binary", "num_leaves": 6, "min_data_in_leaf": 5, "min_data_per_group": 5, "verbose": -1, "seed": 1}, ds, 3)
put("lightgbm", "categorical.txt", b.model_to_string())
