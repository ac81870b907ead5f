"""The chaos run's history checker: PostgreSQL reads (psql, binary COPY) and the reference scores.

Every completed job's partition must hold exactly one score per subscriber of the base, each equal
(float32, within 1e-6) to XGBoost's own prediction on the same profile with the same model file.
"""
import json
import os
import subprocess

import numpy as np

TOLERANCE = 1e-6


class DatabaseUnavailable(Exception):
    pass


def psql(url, sql, timeout=30):
    """One statement's rows as lists of strings (unaligned, tab-separated)."""
    env = dict(os.environ, PGCONNECT_TIMEOUT="5")
    try:
        r = subprocess.run(["psql", url, "-qAtX", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise DatabaseUnavailable(f"psql timed out after {timeout} s")
    if r.returncode != 0:
        raise DatabaseUnavailable(r.stderr.strip() or f"psql exited {r.returncode}")
    return [line.split("\t") for line in r.stdout.splitlines() if line != ""]


def copy_binary(url, select, timeout=120):
    env = dict(os.environ, PGCONNECT_TIMEOUT="5")
    try:
        r = subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", f"COPY ({select}) TO STDOUT (FORMAT binary)"],
                           capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise DatabaseUnavailable(f"COPY timed out after {timeout} s")
    if r.returncode != 0:
        raise DatabaseUnavailable(r.stderr.decode(errors="replace").strip() or f"psql exited {r.returncode}")
    raw = r.stdout
    # PGCOPY header: 11-byte signature, 4-byte flags, 4-byte extension length (0); trailer: int16 -1.
    assert raw[:11] == b"PGCOPY\n\xff\r\n\x00", "not a binary COPY stream"
    return raw[19:len(raw) - 2]


class Reference:
    """XGBoost's probabilities for every subscriber of the base (sorted by subscriber_id)."""

    def __init__(self, url, model_path):
        import xgboost as xgb
        self.features = json.load(open(model_path))["learner"]["feature_names"]
        cols = ", ".join(f"coalesce({f}, 'NaN'::real)" for f in self.features)
        body = copy_binary(url, f"SELECT subscriber_id, {cols} FROM subscriber_profiles ORDER BY subscriber_id", timeout=600)
        fields = [("n", ">i2"), ("lid", ">i4"), ("id", ">i8")]
        for i in range(len(self.features)):
            fields += [(f"l{i}", ">i4"), (f"v{i}", ">f4")]
        rows = np.frombuffer(body, dtype=np.dtype(fields))
        self.ids = rows["id"].astype(np.int64)
        X = np.empty((len(rows), len(self.features)), dtype=np.float32)
        for i in range(len(self.features)):
            X[:, i] = rows[f"v{i}"]
        booster = xgb.Booster(model_file=model_path)
        booster.set_param({"nthread": 1})
        d = xgb.DMatrix(X, missing=np.nan, nthread=1, feature_names=self.features)
        self.probability = booster.predict(d).astype(np.float32)
        assert np.all(np.diff(self.ids) > 0)

    @property
    def size(self):
        return len(self.ids)


def check_partition(url, job, ref):
    """Checks job's partition. Returns a dict (present False when the partition is gone)."""
    exists = psql(url, f"SELECT to_regclass('churn_scores_job_{int(job)}') IS NOT NULL")[0][0] == "t"
    if not exists:
        return {"job": job, "present": False}
    body = copy_binary(url, f"SELECT subscriber_id, probability FROM churn_scores_job_{int(job)} WHERE model_name = 'churn'")
    rows = np.frombuffer(body, dtype=np.dtype([("n", ">i2"), ("l1", ">i4"), ("id", ">i8"), ("l2", ">i4"), ("p", ">f4")]))
    ids = rows["id"].astype(np.int64)
    p = rows["p"].astype(np.float32)
    count = len(ids)
    order = np.argsort(ids, kind="stable")
    ids, p = ids[order], p[order]
    unique_ids, first = np.unique(ids, return_index=True)
    distinct = len(unique_ids)
    pos = np.searchsorted(ref.ids, unique_ids)
    pos_clipped = np.minimum(pos, ref.size - 1)
    in_base = ref.ids[pos_clipped] == unique_ids
    extra = int((~in_base).sum())
    lost = ref.size - int(in_base.sum())
    # Every row (duplicates included) compared with the reference of its subscriber.
    row_pos = np.minimum(np.searchsorted(ref.ids, ids), ref.size - 1)
    row_in_base = ref.ids[row_pos] == ids
    diff = np.abs(p[row_in_base].astype(np.float64) - ref.probability[row_pos[row_in_base]].astype(np.float64))
    nan_rows = int(np.isnan(diff).sum())
    wrong = int((diff > TOLERANCE).sum()) + nan_rows + extra
    worst = float(np.nanmax(diff)) if len(diff) else 0.0
    wrong_examples = []
    if wrong:
        bad = np.where((diff > TOLERANCE) | np.isnan(diff))[0][:5]
        sel_ids = ids[row_in_base]
        sel_pos = row_pos[row_in_base]
        sel_p = p[row_in_base]
        wrong_examples = [{"subscriber_id": int(sel_ids[i]), "stored": float(sel_p[i]), "reference": float(ref.probability[sel_pos[i]])} for i in bad]
    return {"job": job, "present": True, "count": count, "distinct": distinct, "base": ref.size,
            "lost": lost, "duplicated": count - distinct, "extra": extra, "wrong": wrong, "worst_diff": worst,
            "ok": count == ref.size and distinct == ref.size and lost == 0 and wrong == 0,
            "wrong_examples": wrong_examples}


def final_checks(url, base_size):
    """Database invariants at the end of the run."""
    out = {}
    jobs = psql(url, "SELECT id, state, term, shard_count, shards_done, subscribers, coalesce(error, '') FROM scoring_jobs ORDER BY id")
    out["jobs"] = [{"id": int(r[0]), "state": r[1], "term": int(r[2]) if r[2] else None, "shard_count": int(r[3]),
                    "shards_done": int(r[4]), "subscribers": int(r[5]), "error": r[6]} for r in jobs]
    out["running"] = [j["id"] for j in out["jobs"] if j["state"] == "running"]
    published = psql(url, "SELECT p.job_id, j.state FROM churngrid_published p LEFT JOIN scoring_jobs j ON j.id = p.job_id")
    out["published_rows"] = len(published)
    out["published_job"] = int(published[0][0]) if published else None
    out["published_state"] = published[0][1] if published else None
    completed = [j["id"] for j in out["jobs"] if j["state"] == "completed"]
    out["published_is_latest_completed"] = bool(completed) and out["published_job"] == max(completed)
    out["published_ok"] = len(published) == 1 and out["published_state"] == "completed"
    lease = psql(url, "SELECT term, holder, endpoint, renewals FROM churngrid_lease")
    out["lease"] = {"term": int(lease[0][0]), "holder": lease[0][1], "endpoint": lease[0][2], "renewals": int(lease[0][3])} if lease else None
    # Terms: jobs are started by the lease holder of their term; a later job never has an older term.
    terms = [j["term"] for j in out["jobs"]]
    out["jobs_without_term"] = [j["id"] for j in out["jobs"] if j["term"] is None]
    out["term_regressions"] = [(a["id"], a["term"], b["id"], b["term"]) for a, b in zip(out["jobs"], out["jobs"][1:])
                               if a["term"] is not None and b["term"] is not None and b["term"] < a["term"]]
    out["max_job_term"] = max([t for t in terms if t is not None], default=None)
    out["lease_term_ge_jobs"] = out["lease"] is None or out["max_job_term"] is None or out["lease"]["term"] >= out["max_job_term"]
    # Claims of completed jobs: every shard once, subscribers = the base.
    claims = psql(url, """SELECT j.id, count(s.shard), coalesce(sum(s.subscribers), 0) FROM scoring_jobs j
                          LEFT JOIN scoring_job_shards s ON s.job_id = j.id WHERE j.state = 'completed' GROUP BY j.id ORDER BY j.id""")
    by_id = {j["id"]: j for j in out["jobs"]}
    out["bad_claims"] = [{"job": int(r[0]), "shards": int(r[1]), "subscribers": int(r[2])} for r in claims
                         if int(r[1]) != by_id[int(r[0])]["shard_count"] or int(r[2]) != base_size]
    parts = psql(url, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'churn_scores'")
    present = sorted(int(r[0].rsplit("_", 1)[1]) for r in parts)
    out["partitions"] = present
    out["kept_completed"] = [j for j in completed if j in present]
    out["missing_recent_completed"] = [j for j in completed[-3:] if j not in present]
    failed = {j["id"] for j in out["jobs"] if j["state"] == "failed"}
    out["failed_partitions_left"] = [j for j in present if j in failed]
    return out
