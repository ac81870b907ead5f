#!/usr/bin/env python3
"""Exercises every endpoint of a running coordinator's HTTP API, with and without the right
token, and validates every response against the OpenAPI document the server serves.

usage: api_check.py BASE_URL WORKER_METRICS_URL SUBSCRIBER_ID WORKER_TO_DRAIN FIRST_SUBSCRIBER_ID SUBSCRIBERS
       (the base's ids are FIRST_SUBSCRIBER_ID … FIRST_SUBSCRIBER_ID + SUBSCRIBERS - 1: outcomes are imported for all)
env:   CG_READER, CG_OPERATOR, CG_ADMIN  bearer tokens of each role (never on the command line)
       CG_ACTIVE_MODEL, CG_ACTIVE_VERSION  a registered model that is not served (activated and deactivated)
Exits non-zero with a message naming the failed check."""
import csv, io, json, os, subprocess, sys, time, urllib.error, urllib.request
from http.cookies import SimpleCookie

import jsonschema
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

base, worker_metrics, subscriber, drain_target = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/"), int(sys.argv[3]), sys.argv[4]
first_id, base_size = int(sys.argv[5]), int(sys.argv[6])
tokens = {r: os.environ[f"CG_{r.upper()}"] for r in ("reader", "operator", "admin")}
checks = 0
last_body = b""


def fail(msg):
    print(f"FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def request(method, path, token=None, body=None, headers=None, raw=None, cookie=None, timeout=30):
    h = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if token:
        h["Authorization"] = f"Bearer {token}"
    if cookie:
        h["Cookie"] = cookie
    req = urllib.request.Request(base + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


doc_status, _, doc_bytes = request("GET", "/openapi.json")
if doc_status != 200:
    fail(f"/openapi.json answered {doc_status}")
doc = json.loads(doc_bytes)
validate_spec(doc)
registry = Registry().with_resource("urn:churngrid", Resource.from_contents(doc, default_specification=DRAFT202012))


def pointer(*parts):
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def template_of(path):
    """The document's path template matching a concrete path."""
    bare = path.split("?")[0]
    for template in doc["paths"]:
        t, p = template.split("/"), bare.split("/")
        if len(t) != len(p):
            continue
        ok = True
        for a, b in zip(t, p):
            if "{" in a:
                prefix, rest = a.split("{", 1)
                suffix = rest.split("}", 1)[1]
                if not (b.startswith(prefix) and b.endswith(suffix) and len(b) > len(prefix) + len(suffix)):
                    ok = False
            elif a != b:
                ok = False
        if ok:
            return template
    return None


def check(method, path, expect, token=None, problem_type=None, field=None, **kw):
    """Sends the request, checks the status (and problem type/field), validates the body against
    the document's schema for that status and content type. Returns (headers, parsed body); the
    raw body is left in `last_body`."""
    global checks, last_body
    status, headers, body = request(method, path, token=token, **kw)
    last_body = body
    what = f"{method} {path}"
    if status != expect:
        fail(f"{what}: expected {expect}, got {status}: {body[:300]!r}")
    template = template_of(path)
    ctype = headers.get("Content-Type", "").split(";")[0]
    parsed = None
    if template is not None:
        op = doc["paths"][template].get(method.lower())
        if op is None:
            if status != 405:
                fail(f"{what}: the document has no {method} on {template} but the server answered {status}")
        else:
            responses = op["responses"]
            spec = responses.get(str(status))
            if spec is None:
                fail(f"{what}: status {status} is not documented for {method} {template}")
            ref = pointer("paths", template, method.lower(), "responses", str(status))
            if "$ref" in spec:
                ref = spec["$ref"]
                spec = doc["components"]["responses"][ref.split("/")[-1]]
            content = spec.get("content", {})
            if content:
                if ctype not in content:
                    fail(f"{what}: content type {ctype!r} is not documented (documented: {list(content)})")
                if ctype.endswith("json"):
                    parsed = json.loads(body)
                    schema_ref = f"urn:churngrid{ref}/content/{ctype.replace('/', '~1')}/schema"
                    try:
                        jsonschema.Draft202012Validator({"$ref": schema_ref}, registry=registry).validate(parsed)
                    except jsonschema.ValidationError as e:
                        fail(f"{what}: the response does not match the document: {e.message} at {list(e.absolute_path)}")
    elif status != 404:
        fail(f"{what}: no documented path but status {status}")
    if parsed is None and ctype.endswith("json"):
        parsed = json.loads(body)
    if problem_type:
        if ctype != "application/problem+json":
            fail(f"{what}: expected a problem document, got {ctype}")
        if parsed["type"] != f"/problems/{problem_type}":
            fail(f"{what}: expected problem {problem_type}, got {parsed['type']}: {parsed.get('detail')}")
        if parsed["status"] != status:
            fail(f"{what}: problem status {parsed['status']} differs from the HTTP status {status}")
        if field is not None and parsed.get("field") != field:
            fail(f"{what}: expected the problem to name field {field!r}, got {parsed.get('field')!r}")
    checks += 1
    return headers, parsed


# Health, readiness, the document, the page.
check("GET", "/healthz", 200)
check("GET", "/readyz", 200)
check("GET", "/", 200)
check("GET", "/dashboard.js", 200)
check("GET", "/dashboard.css", 200)

# Nothing without a token: every protected route answers 401 with a WWW-Authenticate challenge.
for method, path in [("GET", "/v1/cluster"), ("GET", f"/v1/subscribers/{subscriber}/score"), ("POST", "/v1/scores:batch"),
                     ("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/1"), ("GET", "/v1/jobs/1/summary"), ("GET", "/v1/jobs/1/drift"),
                     ("GET", "/v1/stream"), ("POST", f"/v1/nodes/{drain_target}:drain"), ("GET", "/v1/tokens"),
                     ("POST", "/v1/tokens"), ("POST", "/v1/tokens/x:revoke"), ("POST", "/v1/events"),
                     ("POST", "/v1/campaigns/runs"), ("GET", "/v1/campaigns/runs/1/report"), ("GET", "/v1/campaigns/runs/1/actions.csv?channel=sms"),
                     ("POST", "/v1/outcomes"), ("POST", "/v1/subscribers:erase"), ("GET", "/v1/models"), ("POST", "/v1/models/churn:deploy"), ("POST", "/v1/models/churn:promote"),
                     ("POST", "/v1/models/churn-90d:activate"), ("POST", "/v1/models/churn-90d:deactivate"),
                     ("GET", "/v1/campaigns/live"), ("PUT", "/v1/campaigns/live"), ("DELETE", "/v1/campaigns/live")]:
    h, _ = check(method, path, 401, problem_type="unauthorized")
    if "Bearer" not in h.get("WWW-Authenticate", ""):
        fail(f"{method} {path}: 401 without a Bearer challenge")
check("GET", "/v1/cluster", 401, token="cgt_not-a-real-token", problem_type="unauthorized")
check("GET", "/v1/cluster", 401, headers={"Authorization": "Basic YWxhZGRpbjpvcGVu"}, problem_type="unauthorized")

# Roles: reader reads; operator also starts jobs; admin also drains and manages tokens.
reader, operator, admin = tokens["reader"], tokens["operator"], tokens["admin"]
# The role table: each role is refused what needs a stronger one (checked before any body or id).
for method, path, weaker in [("POST", "/v1/jobs", ["reader"]),
                             ("POST", "/v1/events", ["reader"]),
                             ("POST", "/v1/campaigns/runs", ["reader"]),
                             ("GET", "/v1/campaigns/runs/1/report", ["reader"]),
                             ("GET", "/v1/campaigns/runs/1/actions.csv?channel=sms", ["reader"]),
                             ("POST", "/v1/outcomes", ["reader"]),
                             ("PUT", "/v1/campaigns/live", ["reader"]),
                             ("DELETE", "/v1/campaigns/live", ["reader"]),
                             ("POST", f"/v1/nodes/{drain_target}:drain", ["reader", "operator"]),
                             ("GET", "/v1/tokens", ["reader", "operator"]),
                             ("POST", "/v1/tokens", ["reader", "operator"]),
                             ("POST", "/v1/tokens/anything:revoke", ["reader", "operator"])]:
    for role in weaker:
        check(method, path, 403, token=tokens[role], problem_type="forbidden")

# The cluster.
_, cluster = check("GET", "/v1/cluster", 200, token=reader)
if cluster["ready_shards"] != cluster["shard_count"] or not cluster["nodes"]:
    fail(f"/v1/cluster: not every shard ready or no nodes: {cluster}")
if sum(n["shards"] for n in cluster["nodes"]) != cluster["shard_count"]:
    fail("/v1/cluster: the nodes' shards do not add up to the shard count")
# The coordinator's PostgreSQL answers (its lease renewal alone asks every second).
db = cluster.get("database")
if not db or db["reachable"] is not True or db["failures"] != 0 or not db["lease_valid"] or db["last_answer_seconds_ago"] is None:
    fail(f"/v1/cluster: database should be reachable with a recent answer: {db}")

# Live scores.
_, score = check("GET", f"/v1/subscribers/{subscriber}/score", 200, token=reader)
if score["subscriber_id"] != subscriber or score["explain"] != "approx" or not score["reasons"]:
    fail(f"score: unexpected {score}")
if score["node"] not in {n["name"] for n in cluster["nodes"]}:
    fail(f"score: answered by {score['node']}, not a node of the cluster")
_, exact = check("GET", f"/v1/subscribers/{subscriber}/score?explain=exact", 200, token=reader)
if exact["explain"] != "exact" or abs(exact["probability"] - score["probability"]) > 1e-12:
    fail(f"exact score differs in probability or mode: {exact}")
check("GET", f"/v1/subscribers/{subscriber}/score?explain=shap", 400, token=reader, problem_type="invalid-parameter", field="explain")
check("GET", "/v1/subscribers/5/score", 404, token=reader, problem_type="unknown-subscriber")
check("GET", "/v1/subscribers/12ab/score", 400, token=reader, problem_type="invalid-parameter", field="id")
check("GET", "/v1/subscribers/-3/score", 400, token=reader, problem_type="invalid-parameter", field="id")
check("GET", "/v1/subscribers/99999999999999999999999/score", 400, token=reader, problem_type="invalid-parameter", field="id")

# Batch.
ids = [subscriber, subscriber + 1, 5, subscriber + 2]
_, batch = check("POST", "/v1/scores:batch", 200, token=reader, body={"subscriber_ids": ids})
if [s["subscriber_id"] for s in batch["scores"]] != [subscriber, subscriber + 1, subscriber + 2] or batch["not_found"] != [5]:
    fail(f"batch: wrong split or order: {[s['subscriber_id'] for s in batch['scores']]} / {batch['not_found']}")
if abs(batch["scores"][0]["probability"] - score["probability"]) > 1e-12 or batch["scores"][0]["reasons"] != score["reasons"]:
    fail(f"batch and single scores differ: {batch['scores'][0]} vs {score}")
_, batch_exact = check("POST", "/v1/scores:batch", 200, token=reader, body={"subscriber_ids": [subscriber], "explain": "exact"})
if batch_exact["scores"][0]["reasons"] != exact["reasons"]:
    fail("batch exact reasons differ from the single exact reasons")
check("POST", "/v1/scores:batch", 400, token=reader, body={"subscriber_ids": list(range(10001))}, problem_type="too-many-ids", field="subscriber_ids")
check("POST", "/v1/scores:batch", 400, token=reader, body={"subscriber_ids": list(range(1001)), "explain": "exact"}, problem_type="too-many-ids", field="subscriber_ids")
check("POST", "/v1/scores:batch", 400, token=reader, raw=b'{"subscriber_ids": [1, 2', headers={"Content-Type": "application/json"}, problem_type="invalid-body")
check("POST", "/v1/scores:batch", 400, token=reader, body={"subscriber_ids": ["1000000001"]}, problem_type="invalid-body", field="subscriber_ids[0]")
check("POST", "/v1/scores:batch", 400, token=reader, body={"ids": [1]}, problem_type="invalid-body", field="subscriber_ids")
check("POST", "/v1/scores:batch", 400, token=reader, body={"subscriber_ids": [1], "explain": "x"}, problem_type="invalid-body", field="explain")
check("POST", "/v1/scores:batch", 415, token=reader, raw=b"subscriber_ids=1", headers={"Content-Type": "application/x-www-form-urlencoded"}, problem_type="unsupported-media-type")
check("POST", "/v1/scores:batch", 413, token=reader, raw=b"[" + b"1," * (600 * 1024) + b"1]", headers={"Content-Type": "application/json"}, problem_type="body-too-large")

# Jobs.
_, jobs = check("GET", "/v1/jobs", 200, token=reader)
published = jobs["published_job_id"]
if published is None:
    fail("no published job (the test runs one first)")
check("GET", "/v1/jobs?limit=0", 400, token=reader, problem_type="invalid-parameter", field="limit")
check("GET", f"/v1/jobs/{published}", 200, token=reader)
check("GET", "/v1/jobs/987654", 404, token=reader, problem_type="unknown-job")
# The published job's drift (measured just after publication: it may take a moment). It is the
# model version's first job, so it took the reference: every PSI is 0.
for _ in range(120):
    status, _, _ = request("GET", f"/v1/jobs/{published}/drift", token=reader)
    if status != 409:
        break
    time.sleep(0.5)
_, drift = check("GET", f"/v1/jobs/{published}/drift", 200, token=reader)
if drift["job_id"] != published or drift["reference_job_id"] != published or not drift["features"]:
    fail(f"drift: {drift}")
if any(f["psi"] != 0 or f["level"] != "stable" for f in drift["features"]) or "(score)" not in [f["feature"] for f in drift["features"]]:
    fail(f"drift of the reference job: {drift['features'][:3]}")
check("GET", "/v1/jobs/987654/drift", 404, token=reader, problem_type="unknown-job")
_, summary = check("GET", f"/v1/jobs/{published}/summary", 200, token=reader)
if sum(summary["histogram"]) != summary["subscribers"] or sum(summary["per_band"].values()) != summary["subscribers"]:
    fail("summary: histogram or bands do not add up to the subscribers")
served = [m for m in summary["models"] if m["role"] == "served"]
if len(served) != 1 or summary["models"][0] is not served[0] or served[0]["model_version"] != summary["model_version"] \
        or served[0]["subscribers"] != summary["subscribers"] or served[0]["per_band"] != summary["per_band"] or served[0]["histogram"] != summary["histogram"]:
    fail(f"summary: the served model's figures under models differ from the job's: {summary['models']}")
for region, count in summary["per_region"].items():
    if sum(summary["per_region_band"].get(region, {}).values()) != count:
        fail(f"summary: region {region}'s bands do not add up to its subscribers")
for band in ("low", "medium", "high", "very_high"):
    if sum(b[band] for b in summary["per_region_band"].values()) != summary["per_band"][band]:
        fail(f"summary: band {band} over the regions differs from per_band")
p = [t["probability"] for t in summary["top_risk"]]
if len(p) != 10 or p != sorted(p, reverse=True):
    fail(f"summary: top_risk is not the ten riskiest in order: {p}")
check("GET", "/v1/jobs/987654/summary", 404, token=reader, problem_type="unknown-job")
h, started = check("POST", "/v1/jobs", 202, token=operator)
if h.get("Location") != f"/v1/jobs/{started['id']}":
    fail(f"POST /v1/jobs: Location {h.get('Location')}")
deadline = time.time() + 120
while True:
    _, job = check("GET", f"/v1/jobs/{started['id']}", 200, token=reader)
    if job["state"] != "running":
        break
    if time.time() > deadline:
        fail("the job started through the API did not end within 120 s")
    time.sleep(0.3)
if job["state"] != "completed" or not job["published"]:
    fail(f"the job started through the API did not complete and publish: {job}")

# The event stream: the first events arrive at once.
req = urllib.request.Request(base + "/v1/stream", headers={"Authorization": f"Bearer {reader}"})
with urllib.request.urlopen(req, timeout=10) as r:
    if not r.headers.get("Content-Type", "").startswith("text/event-stream"):
        fail(f"/v1/stream: content type {r.headers.get('Content-Type')}")
    seen = set()
    while len(seen) < 2:
        line = r.readline().decode()
        if line.startswith("event: "):
            seen.add(line.strip()[7:])
        elif line.startswith("data: "):
            json.loads(line[6:])
    if seen != {"job", "cluster"}:
        fail(f"/v1/stream: events {seen}")
checks += 1

# Routes and methods.
check("GET", "/v1/nothing-here", 404, token=reader, problem_type="not-found")
h, _ = check("DELETE", "/v1/cluster", 405, token=reader, problem_type="method-not-allowed")
if "GET" not in h.get("Allow", ""):
    fail("405 without an Allow header")

# Sessions (the dashboard): a cookie stands for the token; signing out ends it.
check("POST", "/v1/session", 401, body={"token": "cgt_wrong"}, problem_type="unauthorized", field="token")
check("POST", "/v1/session", 400, body={"tok": reader}, problem_type="invalid-body", field="token")
h, who = check("POST", "/v1/session", 200, body={"token": reader})
set_cookie = h.get("Set-Cookie", "")
if "HttpOnly" not in set_cookie or "SameSite=Strict" not in set_cookie:
    fail(f"session cookie lacks HttpOnly or SameSite=Strict: {set_cookie}")
morsel = SimpleCookie(set_cookie)["churngrid_session"]
cookie = f"churngrid_session={morsel.value}"
if reader in set_cookie:
    fail("the session cookie carries the token itself")
if "Secure" in set_cookie:
    fail(f"plain HTTP without a proxy: the cookie cannot be Secure: {set_cookie}")
# Behind a proxy that terminated TLS, the cookie is Secure (never sent back over plain HTTP).
h_proxied, _ = check("POST", "/v1/session", 200, body={"token": reader}, headers={"X-Forwarded-Proto": "https"})
if "; Secure" not in h_proxied.get("Set-Cookie", ""):
    fail(f"X-Forwarded-Proto https: the session cookie is not Secure: {h_proxied.get('Set-Cookie')}")
check("GET", "/v1/cluster", 200, cookie=cookie)
check("POST", "/v1/jobs", 403, cookie=cookie, problem_type="forbidden")
# A session cookie only reads, even an admin's: a cross-site page cannot drain or revoke through it.
_, _ = check("POST", "/v1/session", 200, body={"token": admin})
h, _ = check("POST", "/v1/session", 200, body={"token": admin})
admin_cookie = "churngrid_session=" + SimpleCookie(h.get("Set-Cookie", ""))["churngrid_session"].value
check("POST", f"/v1/nodes/{drain_target}:drain", 403, cookie=admin_cookie, problem_type="forbidden")
check("POST", "/v1/tokens/test-reader:revoke", 403, cookie=admin_cookie, problem_type="forbidden")
check("GET", "/v1/tokens", 200, cookie=admin_cookie)
check("DELETE", "/v1/session", 204, cookie=cookie)
check("GET", "/v1/cluster", 401, cookie=cookie, problem_type="unauthorized")

# Tokens (admin): listed without secrets; created through the API; revoked everywhere.
status, _, listing = request("GET", "/v1/tokens", token=admin)
for secret in tokens.values():
    if secret.encode() in listing:
        fail("GET /v1/tokens shows a token")
_, listed = check("GET", "/v1/tokens", 200, token=admin)
if not {"reader", "operator", "admin"} <= {t["role"] for t in listed["tokens"]}:
    fail("GET /v1/tokens misses the test's tokens")
_, created = check("POST", "/v1/tokens", 201, token=admin, body={"name": "made-by-api", "role": "reader"})
check("POST", "/v1/tokens", 409, token=admin, body={"name": "made-by-api", "role": "reader"}, problem_type="conflict", field="name")
check("POST", "/v1/tokens", 400, token=admin, body={"name": "bad name!", "role": "reader"}, problem_type="invalid-body", field="name")
check("POST", "/v1/tokens", 400, token=admin, body={"name": "x", "role": "root"}, problem_type="invalid-body", field="role")
check("GET", "/v1/cluster", 200, token=created["token"])
h, _ = check("POST", "/v1/session", 200, body={"token": created["token"]})
doomed_cookie = "churngrid_session=" + SimpleCookie(h.get("Set-Cookie", ""))["churngrid_session"].value
stream = urllib.request.urlopen(urllib.request.Request(base + "/v1/stream", headers={"Authorization": f"Bearer {created['token']}"}), timeout=15)
stream.readline()
check("POST", "/v1/tokens/made-by-api:revoke", 200, token=admin)
check("GET", "/v1/cluster", 401, token=created["token"], problem_type="unauthorized")
check("GET", "/v1/cluster", 401, cookie=doomed_cookie, problem_type="unauthorized")
# Its event stream ends too (within the stream's half-second tick).
ended_at = time.time() + 10
while stream.readline():
    if time.time() > ended_at:
        fail("the event stream of a revoked token did not end")
checks += 1
check("POST", "/v1/tokens/made-by-api:revoke", 404, token=admin, problem_type="unknown-token")

# A worker's own health: up, and ready (joined, nothing loading).
for path, key, value in (("/healthz", "status", "up"), ("/readyz", "ready", True)):
    answer = json.load(urllib.request.urlopen(worker_metrics + path, timeout=10))
    if answer.get(key) != value:
        fail(f"worker {path}: {answer}")
    checks += 1
try:
    urllib.request.urlopen(worker_metrics + "/v1/cluster", timeout=10)
    fail("a worker's metrics port answered an API path")
except urllib.error.HTTPError as e:
    if e.code != 404:
        fail(f"a worker's metrics port answered {e.code} to an API path")

# Metrics: Prometheus text that promtool accepts, on the coordinator and on a worker.
for url in (base + "/metrics", worker_metrics + "/metrics"):
    text = urllib.request.urlopen(url, timeout=10).read()
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    if result.returncode != 0:
        fail(f"promtool check metrics {url}: {result.stdout.decode()} {result.stderr.decode()}")
    checks += 1
coordinator_metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
for name in ("churngrid_call_duration_seconds_bucket", "churngrid_http_requests_total", "churngrid_query_duration_seconds_bucket", "churngrid_jobs_total", "churngrid_copy_rows_total",
             "churngrid_shards", "churngrid_node_shards", "churngrid_coordinator_leading", "process_resident_memory_bytes",
             "churngrid_transport_outbound_in_flight"):
    if name not in coordinator_metrics:
        fail(f"the coordinator's metrics lack {name}")
# The alerts' job series: both outcomes exist from the lead on (a failed job's first increase is
# seen), and the last completion's time (ChurnGridNoCompletedJob) is recent after the job.
if 'churngrid_jobs_total{outcome="failed"}' not in coordinator_metrics:
    fail("the failed-jobs counter does not exist before a job fails")
last = [l for l in coordinator_metrics.splitlines() if l.startswith("churngrid_last_completed_job_timestamp_seconds ")]
if not last or abs(time.time() - float(last[0].split()[1])) > 3600:
    fail(f"churngrid_last_completed_job_timestamp_seconds is missing or not recent: {last}")
checks += 1
if 'churngrid_http_requests_total{route="/v1/subscribers/{id}/score",code="200"}' not in coordinator_metrics:
    fail("request counts are not labelled by route template and code")

# Events (operator): NDJSON lines, each answered in order; a re-send is a duplicate.
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
lines = [json.dumps({"event_id": f"api-{int(time.time() * 1000)}", "source": "api-check", "subscriber_id": subscriber, "type": "complaint", "at": now}),
         "{not json",
         json.dumps({"event_id": "api-unknown", "subscriber_id": 5, "type": "complaint", "at": now}),
         ""]
ndjson = {"Content-Type": "application/x-ndjson"}
_, sent = check("POST", "/v1/events", 200, token=operator, raw="\n".join(lines).encode(), headers=ndjson)
if [(r["line"], r["status"], r.get("reason")) for r in sent["results"]] != [(1, "accepted", None), (2, "rejected", "malformed_json"), (3, "rejected", "unknown_subscriber")]:
    fail(f"events: unexpected results {sent}")
if sent["events"] != 3 or sent["accepted"] != 1 or sent["rejected"] != 2 or sent["rejected_by_reason"] != {"malformed_json": 1, "unknown_subscriber": 1}:
    fail(f"events: unexpected counts {sent}")
_, again = check("POST", "/v1/events", 200, token=operator, raw=lines[0].encode(), headers=ndjson)
if again["results"] != [{"line": 1, "status": "duplicate"}]:
    fail(f"events: a re-sent event is not a duplicate: {again}")
_, after_event = check("GET", f"/v1/subscribers/{subscriber}/score", 200, token=reader)
check("POST", "/v1/events", 415, token=operator, body={"events": []}, problem_type="unsupported-media-type")
too_many = "\n".join(json.dumps({"event_id": f"m{i}", "subscriber_id": subscriber, "type": "sms", "at": now}) for i in range(10001))
check("POST", "/v1/events", 400, token=operator, raw=too_many.encode(), headers=ndjson, problem_type="too-many-events")
# Malformed lines count too: each would be answered like an event.
check("POST", "/v1/events", 400, token=operator, raw=b"x\n" * 10001, headers=ndjson, problem_type="too-many-events")

# Campaigns (operator): a run over the published job (the one started above), its exports,
# outcomes for the whole base, and the run's report.
campaign_bytes = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Deploy", "campaign.json"), "rb").read()
campaign = json.loads(campaign_bytes)
json_type = {"Content-Type": "application/json"}
check("POST", "/v1/campaigns/runs", 403, token=reader, raw=campaign_bytes, headers=json_type, problem_type="forbidden")
check("POST", "/v1/campaigns/runs", 403, cookie=admin_cookie, raw=campaign_bytes, headers=json_type, problem_type="forbidden")
bad_campaign = json.loads(campaign_bytes)
bad_campaign["offers"][1]["cost"] = -1
_, p = check("POST", "/v1/campaigns/runs", 400, token=operator, body=bad_campaign, problem_type="invalid-body", field="offers[1].cost")
if "out_of_range" not in p["detail"]:
    fail(f"a bad campaign's problem does not say what is wrong: {p}")
check("POST", "/v1/campaigns/runs", 400, token=operator, raw=b'{"name": ', headers=json_type, problem_type="invalid-body")
check("POST", "/v1/campaigns/runs?job=latest", 400, token=operator, raw=campaign_bytes, headers=json_type, problem_type="invalid-parameter", field="job")
check("POST", "/v1/campaigns/runs?job=987654", 409, token=operator, raw=campaign_bytes, headers=json_type, problem_type="conflict")
check("POST", "/v1/campaigns/runs", 415, token=operator, raw=campaign_bytes, headers={"Content-Type": "text/plain"}, problem_type="unsupported-media-type")
check("POST", "/v1/campaigns/runs", 413, token=operator, raw=b" " * (1 << 20) + campaign_bytes, headers=json_type, problem_type="body-too-large")
_, run = check("POST", f"/v1/campaigns/runs?job={started['id']}", 200, token=operator, raw=campaign_bytes, headers=json_type, timeout=300)
if run["job_id"] != started["id"] or run["campaign"] != campaign["name"] or run["treatment"] <= 0 or run["control"] <= 0:
    fail(f"campaign run: unexpected summary {run}")
if sum(c["treatment"] for c in run["per_channel"].values()) != run["treatment"] or sum(c["control"] for c in run["per_cell"].values()) != run["control"]:
    fail(f"campaign run: per_channel or per_cell do not add up: {run}")
run_id = run["run_id"]
for channel in ("sms", "push", "email", "call", "robot_call"):
    h, _ = check("GET", f"/v1/campaigns/runs/{run_id}/actions.csv?channel={channel}", 200, token=operator)
    rows = list(csv.reader(io.StringIO(last_body.decode())))
    if not h.get("Content-Type", "").startswith("text/csv") or not rows or rows[0][:3] != ["subscriber_id", "offer_id", "channel"]:
        fail(f"export {channel}: not CSV with a header: {h.get('Content-Type')} {rows[:1]}")
    expected = run["per_channel"].get(channel, {}).get("treatment", 0)
    if len(rows) - 1 != expected or any(r[2] != channel for r in rows[1:]):
        fail(f"export {channel}: {len(rows) - 1} actions, the run has {expected} treated on {channel}")
check("GET", f"/v1/campaigns/runs/{run_id}/actions.csv?channel=fax", 400, token=operator, problem_type="invalid-parameter", field="channel")
check("GET", f"/v1/campaigns/runs/{run_id}/actions.csv", 400, token=operator, problem_type="invalid-parameter", field="channel")
check("GET", "/v1/campaigns/runs/987654/actions.csv?channel=sms", 404, token=operator, problem_type="unknown-run", field="run")
check("GET", "/v1/campaigns/runs/x/actions.csv?channel=sms", 400, token=operator, problem_type="invalid-parameter", field="run")

# Outcomes (operator): all or nothing; a bad line or an unknown subscriber is named by its line.
csv_type = {"Content-Type": "text/csv"}
observed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))  # after the run's start
header = "subscriber_id,churned,accepted,observed_at\n"
_, p = check("POST", "/v1/outcomes", 400, token=operator, raw=(header + f"{first_id},1,,{observed}\n{first_id + 1},2,,{observed}\n").encode(),
             headers=csv_type, problem_type="invalid-body", field="churned")
if p.get("lines") != [3] or ":3:" not in p["detail"]:
    fail(f"outcomes: a bad line is not named: {p}")
_, p = check("POST", "/v1/outcomes", 422, token=operator, raw=(header + f"{first_id},1,,{observed}\n5,0,1,{observed}\n").encode(),
             headers=csv_type, problem_type="unknown-subscribers", field="subscriber_id")
if p.get("lines") != [3]:
    fail(f"outcomes: unknown subscribers are not named by line: {p}")
check("POST", "/v1/outcomes", 415, token=operator, body={"subscriber_id": first_id}, problem_type="unsupported-media-type")
# Every subscriber of the base (over 1 MiB: the outcomes limit is larger), about 15% churned.
lines = [header.strip()] + [f"{first_id + i},{1 if (i * 2654435761) % 100 < 15 else 0},{'' if i % 3 else (i // 3) % 2},{observed}" for i in range(base_size)]
outcomes_csv = ("\n".join(lines) + "\n").encode()
_, imported = check("POST", "/v1/outcomes", 200, token=operator, raw=outcomes_csv, headers=csv_type, timeout=120)
if imported != {"inserted": base_size, "replaced": 0}:
    fail(f"outcomes: {imported}, expected {base_size} inserted (the refused files wrote nothing)")
_, again = check("POST", "/v1/outcomes", 200, token=operator, raw=outcomes_csv, headers=csv_type, timeout=120)
if again != {"inserted": 0, "replaced": base_size}:
    fail(f"outcomes imported again: {again}, expected {base_size} replaced")

# The report: every subscriber of the run has an outcome in the window.
_, report = check("GET", f"/v1/campaigns/runs/{run_id}/report?window_days=30", 200, token=operator)
if (report["run_id"] != str(run_id) or report["treatment"]["subscribers"] != run["treatment"] or report["control"]["subscribers"] != run["control"]
        or report["unobserved"] != {"treatment": 0, "control": 0} or report["uplift_pp"] is None or len(report["uplift_ci95_pp"]) != 2):
    fail(f"campaign report: unexpected {report}")
if set(report["per_channel"]) != {c for c, n in run["per_channel"].items() if n["treatment"] + n["control"] > 0}:
    fail(f"campaign report: channels {sorted(report['per_channel'])} differ from the run's {run['per_channel']}")
check("GET", f"/v1/campaigns/runs/{run_id}/report", 200, token=operator)
check("GET", f"/v1/campaigns/runs/{run_id}/report?window_days=0", 400, token=operator, problem_type="invalid-parameter", field="window_days")
check("GET", "/v1/campaigns/runs/987654/report", 404, token=operator, problem_type="unknown-run", field="run")
check("GET", "/v1/campaigns/runs", 405, token=operator, problem_type="method-not-allowed")

# The live campaign: started (operator), read (reader), stopped; a bad file and a bad age refused.
_, none_live = check("GET", "/v1/campaigns/live", 200, token=reader)
if none_live["run_id"] is not None:
    fail(f"a live campaign before any was started: {none_live}")
check("PUT", "/v1/campaigns/live", 400, token=operator, body=bad_campaign, problem_type="invalid-body", field="offers[1].cost")
check("PUT", "/v1/campaigns/live?max_trigger_age_seconds=0", 400, token=operator, raw=campaign_bytes, headers=json_type,
      problem_type="invalid-parameter", field="max_trigger_age_seconds")
_, live = check("PUT", "/v1/campaigns/live", 200, token=operator, raw=campaign_bytes, headers=json_type, timeout=300)
if live["campaign"] != campaign["name"] or live["replaced_run"] is not None or len(live["tier_cuts"]) != len(campaign["value_tiers"]):
    fail(f"live campaign start: unexpected {live}")
_, live_status = check("GET", "/v1/campaigns/live", 200, token=reader)
if live_status["run_id"] != live["run_id"] or live_status["campaign"] != campaign["name"]:
    fail(f"live campaign status: unexpected {live_status}")
_, ended = check("DELETE", "/v1/campaigns/live", 200, token=operator)
if ended["run_id"] != live["run_id"]:
    fail(f"live campaign stop: unexpected {ended}")
_, after = check("DELETE", "/v1/campaigns/live", 200, token=operator)
if after["run_id"] is not None:
    fail(f"a second stop found a live campaign: {after}")
check("POST", "/v1/campaigns/live", 405, token=operator, problem_type="method-not-allowed")

# The model registry (reader) and deployments (admin): the served version again changes nothing.
_, listed_models = check("GET", "/v1/models", 200, token=reader)
served = [m for m in listed_models["models"] if m["served"]]
if len(served) != 1 or served[0]["name"] != "churn" or not served[0]["version"].startswith("m-") or not served[0]["features"] \
        or listed_models["challengers"] != []:
    fail(f"models: {listed_models}")
for weaker in (reader, operator):
    check("POST", "/v1/models/churn:deploy", 403, token=weaker, body={"version": served[0]["version"]}, problem_type="forbidden")
_, same = check("POST", "/v1/models/churn:deploy", 200, token=admin, body={"version": served[0]["version"][:10]})
if same["version"] != served[0]["version"] or same["previous"] is not None:
    fail(f"deploying the served version: {same}")
check("POST", "/v1/models/churn:deploy", 404, token=admin, body={"version": "m-0000000000"}, problem_type="unknown-model", field="version")
check("POST", "/v1/models/nosuchmodel:deploy", 404, token=admin, body={"version": served[0]["version"]}, problem_type="unknown-model", field="name")
check("POST", "/v1/models/Bad%20Name:deploy", 400, token=admin, body={"version": "m-1"}, problem_type="invalid-parameter", field="name")
check("POST", "/v1/models/churn:deploy", 400, token=admin, body={"v": "m-1"}, problem_type="invalid-body")
# Challengers: a share is needed (and only for a challenger); the champion cannot challenge itself.
v = served[0]["version"]
check("POST", "/v1/models/churn:deploy", 400, token=admin, body={"version": v, "as": "challenger"}, problem_type="invalid-body", field="traffic")
check("POST", "/v1/models/churn:deploy", 400, token=admin, body={"version": v, "as": "challenger", "traffic": 0}, problem_type="invalid-body", field="traffic")
check("POST", "/v1/models/churn:deploy", 400, token=admin, body={"version": v, "traffic": 10}, problem_type="invalid-body", field="traffic")
check("POST", "/v1/models/churn:deploy", 400, token=admin, body={"version": v, "as": "referee"}, problem_type="invalid-body", field="as")
check("POST", "/v1/models/churn:deploy", 409, token=admin, body={"version": v, "as": "challenger", "traffic": 10}, problem_type="conflict")
for weaker in (reader, operator):
    check("POST", "/v1/models/churn:promote", 403, token=weaker, problem_type="forbidden")
check("POST", "/v1/models/churn:promote", 409, token=admin, problem_type="conflict")
check("GET", "/v1/models/churn:promote", 405, token=admin, problem_type="method-not-allowed")
check("GET", "/v1/models/churn:deploy", 405, token=admin, problem_type="method-not-allowed")

# Models active beside the served one (admin): CG_ACTIVE_MODEL is registered, not served.
active_name, active_version = os.environ["CG_ACTIVE_MODEL"], os.environ["CG_ACTIVE_VERSION"]
for weaker in (reader, operator):
    check("POST", f"/v1/models/{active_name}:activate", 403, token=weaker, body={"version": active_version}, problem_type="forbidden")
    check("POST", f"/v1/models/{active_name}:deactivate", 403, token=weaker, problem_type="forbidden")
check("POST", "/v1/models/churn:activate", 409, token=admin, body={"version": v}, problem_type="conflict")
check("POST", f"/v1/models/{active_name}:activate", 400, token=admin, body={"version": active_version, "segment": "is_prepiad = 1"},
      problem_type="invalid-body", field="segment")
if "closest: is_prepaid" not in last_body.decode():
    fail(f"a misspelt segment feature is not named with the closest: {last_body[:300]!r}")
check("POST", f"/v1/models/{active_name}:activate", 400, token=admin, body={"version": active_version, "segment": "is_prepaid = "},
      problem_type="invalid-body", field="segment")
check("POST", f"/v1/models/{active_name}:activate", 404, token=admin, body={"version": "m-0000000000"}, problem_type="unknown-model", field="version")
check("POST", "/v1/models/nosuchmodel:activate", 404, token=admin, body={"version": active_version}, problem_type="unknown-model", field="name")
check("POST", f"/v1/models/{active_name}:activate", 400, token=admin, body={"segment": "is_prepaid = 1"}, problem_type="invalid-body")
check("POST", f"/v1/models/{active_name}:deactivate", 404, token=admin, problem_type="unknown-model", field="name")
_, activated = check("POST", f"/v1/models/{active_name}:activate", 200, token=admin, body={"version": active_version[:10], "segment": "is_prepaid = true"})
if activated != {"name": active_name, "version": active_version, "segment": "is_prepaid = 1"}:
    fail(f"activate: {activated}")
_, listed_active = check("GET", "/v1/models", 200, token=reader)
if listed_active["active"] != [activated]:
    fail(f"models list after activate: {listed_active['active']}")
# A batch with ?models=all carries, per subscriber, the same active models' answers as a single query
# (over the segment: only the prepaid subscribers have one), and the same served answer as without.
ids = [first_id + k for k in range(40)]
_, batch_all = check("POST", "/v1/scores:batch?models=all", 200, token=reader, body={"subscriber_ids": ids + [424242424242]})
_, batch_plain = check("POST", "/v1/scores:batch", 200, token=reader, body={"subscriber_ids": ids})
if batch_all["not_found"] != [424242424242] or len(batch_all["scores"]) != len(ids) or any("active_models" in x for x in batch_plain["scores"]):
    fail(f"batch with models=all: not_found {batch_all['not_found']}, {len(batch_all['scores'])} scores; plain has active_models: {batch_plain['scores'][:1]}")
in_segment = 0
for x, y in zip(batch_all["scores"], batch_plain["scores"]):
    _, single = check("GET", f"/v1/subscribers/{x['subscriber_id']}/score?models=all", 200, token=reader)
    names = [(a["name"], a["model_version"], round(a["probability"], 9), a["risk_band"], [r["feature"] for r in a["reasons"]]) for a in x.get("active_models", [None])]
    want = [(a["name"], a["model_version"], round(a["probability"], 9), a["risk_band"], [r["feature"] for r in a["reasons"]]) for a in single["active_models"]]
    if "active_models" not in x or names != want or x["probability"] != y["probability"]:
        fail(f"batch with models=all for {x['subscriber_id']}: {x} (single: {single}, plain: {y})")
    in_segment += bool(want)
if not 0 < in_segment < len(ids):
    fail(f"batch with models=all: {in_segment} of {len(ids)} subscribers in the segment is_prepaid = 1")
check("POST", "/v1/scores:batch?models=some", 400, token=reader, body={"subscriber_ids": ids}, problem_type="invalid-parameter", field="models")
_, everyone = check("POST", f"/v1/models/{active_name}:activate", 200, token=admin, body={"version": active_version})
if everyone["segment"] is not None:
    fail(f"activate again without a segment: {everyone}")
# Live: ?models=all adds the active model's answer (for everyone now); the served answer is unchanged.
_, plain = check("GET", f"/v1/subscribers/{subscriber}/score", 200, token=reader)
_, both = check("GET", f"/v1/subscribers/{subscriber}/score?models=all", 200, token=reader)
if "active_models" in plain or [a["name"] for a in both.get("active_models", [])] != [active_name] \
        or both["active_models"][0]["model_version"] != active_version or both["probability"] != plain["probability"]:
    fail(f"score with models=all: {both} (plain: {plain})")
check("GET", f"/v1/subscribers/{subscriber}/score?models=some", 400, token=reader, problem_type="invalid-parameter", field="models")
_, deactivated = check("POST", f"/v1/models/{active_name}:deactivate", 200, token=admin)
if deactivated["name"] != active_name:
    fail(f"deactivate: {deactivated}")
_, listed_after = check("GET", "/v1/models", 200, token=reader)
if listed_after["active"]:
    fail(f"models list after deactivate: {listed_after['active']}")
check("GET", f"/v1/models/{active_name}:activate", 405, token=admin, problem_type="method-not-allowed")

# Erasure (admin): the subscriber is gone from the cluster; bad bodies and weaker roles are refused.
erased_id = first_id + 7
for weaker in (reader, operator):
    check("POST", "/v1/subscribers:erase", 403, token=weaker, body={"subscriber_ids": [erased_id]}, problem_type="forbidden")
check("POST", "/v1/subscribers:erase", 400, token=admin, body={"subscriber_ids": []}, problem_type="invalid-body", field="subscriber_ids")
check("POST", "/v1/subscribers:erase", 400, token=admin, body={"subscriber_ids": [-9223372036854775808]}, problem_type="invalid-body", field="subscriber_ids")
check("POST", "/v1/subscribers:erase", 400, token=admin, body={"subscriber_ids": list(range(1, 10_002))}, problem_type="too-many-ids", field="subscriber_ids")
check("POST", "/v1/subscribers:erase", 400, token=admin, body={"ids": [erased_id]}, problem_type="invalid-body")
check("POST", "/v1/subscribers:erase", 415, token=admin, raw=b"1", headers={"Content-Type": "text/plain"}, problem_type="unsupported-media-type")
check("GET", f"/v1/subscribers/{erased_id}/score", 200, token=reader)
_, erasure = check("POST", "/v1/subscribers:erase", 200, token=admin, body={"subscriber_ids": [erased_id, erased_id]}, timeout=120)
if erasure["subscribers"] != 1 or erasure["found_in_memory"] != 1 or erasure["rows"].get("subscriber_profiles") != 1:
    fail(f"erasure: {erasure}")
check("GET", f"/v1/subscribers/{erased_id}/score", 404, token=reader, problem_type="unknown-subscriber")
_, again = check("POST", "/v1/subscribers:erase", 200, token=admin, body={"subscriber_ids": [erased_id]}, timeout=120)
if again["found_in_memory"] != 0 or any(again["rows"].values()):
    fail(f"erasing again found something: {again}")

# Nodes (admin).
check("POST", "/v1/nodes/no-such-worker:drain", 404, token=admin, problem_type="unknown-node", field="name")
_, drained = check("POST", f"/v1/nodes/{drain_target}:drain", 200, token=admin, timeout=300)
if drained["node"] != drain_target or drained["shards_moved"] <= 0:
    fail(f"drain: {drained}")
_, after = check("GET", "/v1/cluster", 200, token=reader)
if drain_target in {n["name"] for n in after["nodes"]}:
    fail("the drained worker is still a member")
urllib.request.urlopen(base + "/metrics", timeout=10).read()
if f'node="{drain_target}"' in urllib.request.urlopen(base + "/metrics", timeout=10).read().decode():
    fail("the drained worker still has shard series in the coordinator's metrics")

print(json.dumps({"checks": checks}))
