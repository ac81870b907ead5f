"""A subscriber base with the public IBM Telco churn dataset's columns (synthetic values: no
network here), its feature schema, and an XGBoost and a LightGBM model trained on it, with each
library's own probability for every subscriber.

usage: telco_models.py OUT_DIR ROWS SEED
writes OUT_DIR/telco_schema.json, telco.csv, telco_xgboost.json, telco_lightgbm.txt, telco_expected.csv
(customerID, xgboost, lightgbm: the libraries' probabilities, printed exactly)
"""
import csv
import json
import sys

import lightgbm as lgb
import numpy as np
import xgboost as xgb

out, rows, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(seed)

YES_NO = ["No", "Yes"]
SERVICE = ["No", "Yes", "No internet service"]
# (schema name, export header, type, categories or unit)
COLUMNS = [
    ("gender", "gender", "category", ["Female", "Male"]),
    ("senior_citizen", "SeniorCitizen", "boolean", None),
    ("partner", "Partner", "boolean", None),
    ("dependents", "Dependents", "boolean", None),
    ("tenure", "tenure", "integer", "months"),
    ("phone_service", "PhoneService", "boolean", None),
    ("multiple_lines", "MultipleLines", "category", ["No", "Yes", "No phone service"]),
    ("internet_service", "InternetService", "category", ["DSL", "Fiber optic", "No"]),
    ("online_security", "OnlineSecurity", "category", SERVICE),
    ("tech_support", "TechSupport", "category", SERVICE),
    ("streaming_tv", "StreamingTV", "category", SERVICE),
    ("contract", "Contract", "category", ["Month-to-month", "One year", "Two year"]),
    ("paperless_billing", "PaperlessBilling", "boolean", None),
    ("payment_method", "PaymentMethod", "category",
     ["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"]),
    ("monthly_charges", "MonthlyCharges", "number", "USD"),
    ("total_charges", "TotalCharges", "number", "USD"),
]
names = [c[0] for c in COLUMNS]

schema = {"id": "customerID", "features": []}
for name, header, kind, extra in COLUMNS:
    f = {"name": name, "type": kind, "column": header, "group": "telco"}
    if kind == "category":
        f["categories"] = extra
    elif extra:
        f["unit"] = extra
    schema["features"].append(f)
with open(f"{out}/telco_schema.json", "w") as fh:
    json.dump(schema, fh, indent=1)

# Codes as the schema gives them (index in categories; booleans 0/1); NaN = missing.
X = np.zeros((rows, len(COLUMNS)), dtype=np.float32)
col = {n: j for j, n in enumerate(names)}
X[:, col["gender"]] = rng.integers(0, 2, rows)
X[:, col["senior_citizen"]] = rng.random(rows) < 0.16
X[:, col["partner"]] = rng.random(rows) < 0.48
X[:, col["dependents"]] = rng.random(rows) < 0.3
tenure = rng.integers(0, 73, rows)
X[:, col["tenure"]] = tenure
phone = rng.random(rows) < 0.9
X[:, col["phone_service"]] = phone
X[:, col["multiple_lines"]] = np.where(phone, rng.integers(0, 2, rows), 2)
internet = rng.choice(3, rows, p=[0.34, 0.44, 0.22])
X[:, col["internet_service"]] = internet
for s in ["online_security", "tech_support", "streaming_tv"]:
    X[:, col[s]] = np.where(internet == 2, 2, rng.integers(0, 2, rows))
contract = rng.choice(3, rows, p=[0.55, 0.21, 0.24])
X[:, col["contract"]] = contract
X[:, col["paperless_billing"]] = rng.random(rows) < 0.59
X[:, col["payment_method"]] = rng.choice(4, rows, p=[0.34, 0.23, 0.22, 0.21])
monthly = np.round(18 + 30 * (internet == 0) + 60 * (internet == 1) + rng.normal(0, 8, rows), 2).astype(np.float32)
X[:, col["monthly_charges"]] = monthly
total = np.round(monthly * tenure + rng.normal(0, 20, rows), 2).astype(np.float32)
# As in the public file: a new customer's TotalCharges is blank.
X[:, col["total_charges"]] = np.where(tenure == 0, np.nan, total)
# A few more blanks, as an export has.
X[rng.random(rows) < 0.01, col["tech_support"]] = np.nan

logit = (-1.6 + 1.3 * (contract == 0) - 0.04 * tenure + 0.9 * (internet == 1) + 0.5 * (X[:, col["payment_method"]] == 0)
         - 0.5 * (X[:, col["online_security"]] == 1) + 0.3 * X[:, col["senior_citizen"]] + 0.01 * (monthly - 65))
y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)

ids = np.arange(1, rows + 1) * 7 + 100_000
with open(f"{out}/telco.csv", "w", newline="") as fh:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(["customerID"] + [c[1] for c in COLUMNS] + ["Churn"])
    for i in range(rows):
        cells = [str(ids[i])]
        for j, (name, header, kind, extra) in enumerate(COLUMNS):
            v = X[i, j]
            if np.isnan(v):
                cells.append("")
            elif kind == "category":
                cells.append(extra[int(v)])
            elif kind == "boolean":
                cells.append(("1" if v else "0") if header == "SeniorCitizen" else YES_NO[int(v)])
            elif kind == "integer":
                cells.append(str(int(v)))
            else:
                cells.append(repr(float(v)))
        cells.append(YES_NO[int(y[i])])
        w.writerow(cells)

# The XGBoost model reads 12 of the 16 features: deploying the LightGBM model after it makes the
# cluster load the other 4 before it switches.
subset = [n for n in names if n not in ("gender", "streaming_tv", "paperless_billing", "total_charges")]
Xs = X[:, [col[n] for n in subset]]
dtrain = xgb.DMatrix(Xs, label=y, feature_names=subset, missing=np.nan)
booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.1, "seed": seed, "nthread": 1},
                    dtrain, num_boost_round=80)
booster.save_model(f"{out}/telco_xgboost.json")
p_xgb = booster.predict(xgb.DMatrix(Xs, feature_names=subset, missing=np.nan))

categorical = ["gender", "multiple_lines", "internet_service", "online_security", "tech_support", "streaming_tv",
               "contract", "payment_method"]
ds = lgb.Dataset(X, label=y, feature_name=names, categorical_feature=categorical, free_raw_data=False)
model = lgb.train({"objective": "binary", "num_leaves": 15, "learning_rate": 0.1, "seed": seed, "verbose": -1,
                   "num_threads": 1, "min_data_per_group": 20, "cat_smooth": 5}, ds, num_boost_round=60)
model.save_model(f"{out}/telco_lightgbm.txt")
p_lgb = model.predict(X)

with open(f"{out}/telco_expected.csv", "w", newline="") as fh:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(["customerID", "xgboost", "lightgbm"])
    for i in range(rows):
        w.writerow([str(ids[i]), repr(float(p_xgb[i])), repr(float(p_lgb[i]))])
print(json.dumps({"rows": rows, "churned": int(y.sum()), "xgboost_trees": 80, "lightgbm_trees": model.num_trees()}))
