"""bench/peers/app.py: cowdag's customer_score as a WSGI app, for gunicorn.

The same customer store as cowdag's generator (load/state.h), built once
when the module is imported, so that with gunicorn's --preload the master
holds it and the workers inherit it; then gc.freeze(), as the gc module's
documentation advises for pre-fork servers (gunicorn.conf.py re-enables the
collector in each worker).  POST /dags/customer_score/run answers what
cowdag answers: the z-scores (sample std, ddof 1) of the requested
customers' total spend.
"""
import gc
import json
import math
import os
import time

gc.disable()  # no collection while loading: nothing to free, pages stay as built


def generate_records(count, seed):
    """{id: {"id", "name", "segment", "spend", "tags"}}, as load/state.h says."""
    store = {}
    x = seed
    for i in range(count):
        spend = []
        for _ in range(12):
            x = (1103515245 * x + 12345) & 0x7FFFFFFF
            spend.append((x % 100000) / 100.0)
        store[i] = {"id": i, "name": f"customer-{i}", "segment": i % 16,
                    "spend": spend, "tags": [f"t{i % 7}", f"t{i % 11}"]}
    return store


CUSTOMERS = generate_records(int(os.environ.get("RECORDS", "200000")),
                             int(os.environ.get("SEED", "42")))
gc.freeze()


def customer_score(ids):
    totals = [sum(CUSTOMERS[i]["spend"]) for i in ids]
    n = len(totals)
    mean = sum(totals) / n if n else math.nan
    std = math.sqrt(sum((t - mean) ** 2 for t in totals) / (n - 1)) if n > 1 else math.nan
    return [(t - mean) / std if std else math.nan for t in totals]


def reply(start_response, status, doc):
    body = json.dumps(doc, separators=(",", ":")).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def error(start_response, status, code, message):
    return reply(start_response, status, {"error": {"code": code, "message": message}})


def app(environ, start_response):
    if environ["PATH_INFO"] != "/dags/customer_score/run":
        return error(start_response, "404 Not Found", "not_found", "no such route")
    if environ["REQUEST_METHOD"] != "POST":
        return error(start_response, "405 Method Not Allowed", "method", "POST only")
    start = time.perf_counter()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        ids = json.loads(environ["wsgi.input"].read(length))["inputs"]["ids"]
    except (ValueError, KeyError, TypeError):
        return error(start_response, "400 Bad Request", "bad_json", "expected {\"inputs\": {\"ids\": [...]}}")
    try:
        scores = [s if s == s else None for s in customer_score(ids)]  # nan is null, as cowdag writes it
    except (KeyError, TypeError) as e:  # an id not in the store, or not a number
        return error(start_response, "422 Unprocessable Entity", "op_error", f"lookup: no key {e}")
    return reply(start_response, "200 OK", {
        "dag": "customer_score", "outputs": {"scores": scores},
        "stats": {"elapsed_us": round((time.perf_counter() - start) * 1e6), "pid": os.getpid()}})
