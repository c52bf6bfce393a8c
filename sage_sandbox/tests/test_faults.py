"""Fault injection and the request log."""

import time

import pytest
import requests

FAULTS = "/_sandbox/faults"


def control(server, verb, name, **payload):
    return requests.request(verb, f"{server.base_url}/_sandbox/{name}", json=payload or None)


@pytest.fixture(autouse=True)
def clean(server):
    control(server, "DELETE", "faults")
    control(server, "DELETE", "requests")
    yield
    control(server, "DELETE", "faults")


def test_429_with_and_without_retry_after(server, api):
    assert control(server, "POST", "faults", status=429, retry_after=7, count=1).status_code == 201
    resp = api.get("/contacts")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert resp.json()[0]["$severity"] == "error" and resp.json()[0]["$dataCode"]
    assert api.get("/contacts").status_code == 200
    control(server, "POST", "faults", status=429, count=1)
    resp = api.get("/contacts")
    assert resp.status_code == 429 and "Retry-After" not in resp.headers


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(server, api, status):
    control(server, "POST", "faults", status=status, count=2)
    assert [api.get("/contacts").status_code for _ in range(3)] == [status, status, 200]


def test_invalid_fault_spec(server):
    assert control(server, "POST", "faults", status=418).status_code == 422
    assert control(server, "POST", "faults", colour="red").status_code == 422


def test_delay(server, api):
    control(server, "POST", "faults", delay=0.4, count=1)
    start = time.monotonic()
    assert api.get("/contacts").status_code == 200
    assert time.monotonic() - start >= 0.4


def test_drop_closes_connection(server, api):
    control(server, "POST", "faults", drop=True, count=1)
    with pytest.raises(requests.ConnectionError):
        api.get("/contacts")
    assert api.get("/contacts").status_code == 200


def test_ratio_is_deterministic(server, api):
    control(server, "POST", "faults", status=503, ratio=0.25)
    codes = [api.get("/contacts").status_code for _ in range(8)]
    assert codes == [200, 200, 200, 503, 200, 200, 200, 503]


def test_path_and_method_limited(server, api):
    control(server, "POST", "faults", status=500, path="/v3.1/sales_invoices", method="get")
    assert api.get("/contacts").status_code == 200
    assert api.get("/sales_invoices").status_code == 500
    assert api.post("/sales_invoices", json={}).status_code == 422
    listed = control(server, "GET", "faults").json()["faults"]
    assert listed[0]["path"] == "/v3.1/sales_invoices"
    control(server, "DELETE", "faults")
    assert api.get("/sales_invoices").status_code == 200


def test_faults_can_hit_token_endpoint(server):
    control(server, "POST", "faults", status=503, path="/token", count=1)
    assert requests.post(f"{server.base_url}/token", data={}).status_code == 503


def test_request_log(server, api):
    control(server, "DELETE", "requests")
    api.get("/contacts")
    api.get("/contacts?page=2")
    api.get("/sales_invoices")
    control(server, "POST", "faults", status=429, count=1)
    api.get("/contacts")
    log = control(server, "GET", "requests").json()
    assert log["total"] == 4
    assert log["by_path"] == {"GET /v3.1/contacts": 3, "GET /v3.1/sales_invoices": 1}
    assert log["log"][1] == {"method": "GET", "path": "/v3.1/contacts", "query": "page=2", "status": 200}
    assert log["log"][-1]["status"] == 429
    assert server.request_log()["total"] == 4
    control(server, "DELETE", "requests")
    assert control(server, "GET", "requests").json()["total"] == 0


def test_after_lets_the_first_calls_through(server, api):
    control(server, "POST", "faults", status=503, after=2, count=1, path="/v3.1/contacts")
    assert [api.get("/contacts").status_code for _ in range(4)] == [200, 200, 503, 200]
    assert control(server, "POST", "faults", status=503, after=-1).status_code == 422
