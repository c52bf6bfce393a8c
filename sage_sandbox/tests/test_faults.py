"""Fault injection and the request log."""

import time

import pytest
import requests

from sage_sandbox.tests.helpers import authorized_session

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


def test_lose_answer_carries_out_the_post(server, api):
    control(server, "POST", "faults", lose_answer=True, count=1, path="/v3.1/contacts", method="POST")
    body = {"contact": {"name": "Twin Risk Ltd", "contact_type_ids": ["CUSTOMER"]}}
    with pytest.raises(requests.ConnectionError):
        api.post("/contacts", json=body)
    assert len(server.store.find_contacts(name="Twin Risk Ltd")) == 1  # created although never answered
    entry = server.request_log()["log"][-1]
    assert entry["status"] == 201 and entry["answer_lost"] is True
    assert api.post("/contacts", json=body).status_code == 201  # the rule is spent: a naive retry makes a twin
    assert len(server.store.find_contacts(name="Twin Risk Ltd")) == 2


def test_lose_answer_on_put_and_delete(fresh):
    api = authorized_session(fresh)
    contact = api.post("/contacts", json={"contact": {"name": "Lost Ltd", "contact_type_ids": ["VENDOR"]}}).json()
    fresh.add_fault(lose_answer=True, count=2, path="/v3.1" + contact["$path"])
    with pytest.raises(requests.ConnectionError):
        api.put(contact["$path"], json={"contact": {"name": "Renamed Ltd"}})
    assert fresh.store.get("contacts", contact["id"])["name"] == "Renamed Ltd"
    with pytest.raises(requests.ConnectionError):
        api.delete(contact["$path"])
    assert api.get(contact["$path"]).status_code == 404


def test_malformed_answer_is_a_truncated_200(server, api):
    control(server, "POST", "faults", malformed=True, count=1, path="/v3.1/contacts")
    resp = api.get("/contacts")
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        resp.json()
    assert resp.text and api.get("/contacts").json()["$items"]


def test_mutate_one_record_of_page_two(server, api):
    page2 = api.get("/contacts?page=2&attributes=all").json()["$items"]
    rule = {"mutate": {"contact_types.0.id": "WEIRD"}, "remove": ["name"], "items": [3],
            "path": "/v3.1/contacts", "method": "GET", "query": {"page": "2"}}
    assert control(server, "POST", "faults", **rule).status_code == 201
    first = api.get("/contacts?attributes=all").json()["$items"]
    assert all(c["contact_types"][0]["id"] in ("CUSTOMER", "VENDOR") and c["name"] for c in first)
    got = api.get("/contacts?page=2&attributes=all").json()["$items"]
    assert got[3]["contact_types"][0]["id"] == "WEIRD" and "name" not in got[3]
    assert [c for i, c in enumerate(got) if i != 3] == [c for i, c in enumerate(page2) if i != 3]
    assert server.store.get("contacts", got[3]["id"])["name"] == page2[3]["name"]  # stored data untouched


def test_mutate_by_share_ids_and_single_record(server, api):
    control(server, "POST", "faults", mutate={"name": None}, item_ratio=0.5, path="/v3.1/contacts", count=1)
    names = [c["name"] for c in api.get("/contacts?attributes=name").json()["$items"]]
    assert names[0] and names[1] is None and names[2] and names[3] is None
    target = api.get("/contacts").json()["$items"][5]
    control(server, "POST", "faults", mutate={"status": {"id": "ODD", "displayed_as": "Odd"}},
            ids=[target["id"]], path="/v3.1/contacts")
    assert api.get(target["$path"]).json()["status"]["id"] == "ODD"
    listed = api.get("/contacts?attributes=name").json()["$items"]
    assert [c for c in listed if "status" in c] == [{**listed[5], "status": {"id": "ODD", "displayed_as": "Odd"}}]


def test_delay_on_a_listing_from_the_second_call(server, api):
    control(server, "POST", "faults", delay=1.0, after=1, count=1, path="/v3.1/contacts", method="GET")
    assert api.get("/contacts", timeout=0.5).status_code == 200
    with pytest.raises(requests.Timeout):
        api.get("/contacts?page=2", timeout=0.3)
    time.sleep(0.8)
    assert api.get("/contacts?page=2", timeout=0.5).status_code == 200


def test_new_fault_specs_are_validated(server):
    assert control(server, "POST", "faults", lose_answer=True, drop=True).status_code == 422
    assert control(server, "POST", "faults", mutate=["x"]).status_code == 422
    assert control(server, "POST", "faults", mutate={"a": 1}, items=["x"]).status_code == 422
    assert control(server, "POST", "faults", remove=["name"], item_ratio=2).status_code == 422
    listed = control(server, "POST", "faults", malformed=True, query={"page": 2}).json()
    assert listed["malformed"] is True and listed["query"] == {"page": "2"}
