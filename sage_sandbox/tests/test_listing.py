"""Businesses, X-Business, listing envelope, paging, attributes and filters."""

import requests

from sage_sandbox.tests.helpers import walk


def test_businesses(server, api):
    env = api.get("/businesses").json()
    assert env["$items_per_page"] == 2147483647 and env["$total"] == 2
    ids = [b["id"] for b in env["$items"]]
    assert ids == server.store.business_ids()
    assert all(len(i) == 32 for i in ids)
    lead = api.get("/businesses/lead").json()
    assert lead["id"] == ids[0] and lead["subscriptions"][0]["active"] is True
    assert api.get(f"/businesses/{ids[1]}").json()["id"] == ids[1]
    assert api.get("/businesses/ffffffffffffffffffffffffffffffff").status_code == 404


def test_x_business_selects_business(server, api):
    lead, other = server.store.business_ids()
    resp = api.get("/contacts")
    assert resp.headers["X-Business"] == lead and resp.json()["$total"] == 60
    resp = api.get("/contacts", headers={"X-Business": other})
    assert resp.headers["X-Business"] == other and resp.json()["$total"] == 0
    bad = api.get("/contacts", headers={"X-Business": "0" * 32})
    assert bad.status_code == 403
    assert bad.json()[0]["$dataCode"] == "AuthorizationFailure" and bad.json()[0]["$source"] == "X-Business"


def test_envelope_defaults_and_paging(api):
    env = api.get("/contacts").json()
    assert set(env) == {"$total", "$page", "$next", "$back", "$itemsPerPage", "$items"}
    assert env["$page"] == 1 and env["$itemsPerPage"] == 20 and len(env["$items"]) == 20
    assert env["$back"] is None and env["$next"] == "/contacts?page=2&items_per_page=20"
    assert set(env["$items"][0]) == {"id", "displayed_as", "$path"}
    last = api.get("/contacts?page=3").json()
    assert last["$next"] is None and last["$back"] == "/contacts?page=2&items_per_page=20"
    beyond = api.get("/contacts?page=99").json()
    assert beyond["$page"] == 3


def test_items_per_page_capped_at_200(api):
    env = api.get("/sales_invoices?items_per_page=500").json()
    assert env["$itemsPerPage"] == 200 and len(env["$items"]) == min(200, env["$total"])
    assert api.get("/contacts?items_per_page=0").status_code == 422
    assert api.get("/contacts?items_per_page=abc").status_code == 422


def test_paging_neither_skips_nor_repeats(server, api):
    items, pages = walk(api, "/contacts?items_per_page=7")
    assert len(pages) == 9
    ids = [i["id"] for i in items]
    assert len(set(ids)) == 60 and ids == [c["id"] for c in server.store.contacts()]


def test_next_keeps_filters_and_attributes(api):
    env = api.get("/contacts?contact_type_id=CUSTOMER&attributes=name&items_per_page=5").json()
    assert "contact_type_id=CUSTOMER" in env["$next"] and "attributes=name" in env["$next"]
    items, _ = walk(api, "/contacts?contact_type_id=CUSTOMER&attributes=name&items_per_page=5")
    assert len(items) == env["$total"] and all(set(i) == {"id", "displayed_as", "$path", "name"} for i in items)


def test_attributes_all(api):
    item = api.get("/contacts?attributes=all&items_per_page=1").json()["$items"][0]
    assert {"main_address", "main_contact_person", "links", "contact_types", "deletable"} <= set(item)


def test_filter_contact_type_search_email(server, api):
    contacts = server.store.contacts()
    customers = [c for c in contacts if c["contact_types"][0]["id"] == "CUSTOMER"]
    assert api.get("/contacts?contact_type_id=CUSTOMER").json()["$total"] == len(customers)
    assert 0 < len(customers) < 60
    acme = api.get("/contacts?search=acme&attributes=name").json()
    assert sorted(i["name"] for i in acme["$items"]) == ["ACME Limited", "Acme  Ltd.", "Acme Ltd"]
    assert api.get("/contacts?search=café").json()["$total"] == 1
    ref = contacts[5]["reference"]
    assert api.get(f"/contacts?search={ref.lower()}").json()["$items"][0]["id"] == contacts[5]["id"]
    with_email = next(c for c in contacts if c["main_contact_person"]["email"])
    env = api.get("/contacts", params={"email": with_email["main_contact_person"]["email"].upper()}).json()
    assert with_email["id"] in [i["id"] for i in env["$items"]]


def test_filter_updated_or_created_since_inclusive(server, api):
    contacts = server.store.contacts()
    stamps = sorted(c["updated_at"] for c in contacts)
    pivot = stamps[30]
    expected = sum(1 for s in stamps if s >= pivot)
    env = api.get("/contacts", params={"updated_or_created_since": pivot}).json()
    assert env["$total"] == expected
    day = api.get("/contacts", params={"updated_or_created_since": pivot[:10]}).json()
    assert day["$total"] >= expected
    assert api.get("/contacts?updated_or_created_since=yesterday").status_code == 422


def test_invoice_filters(server, api):
    invoices = server.store.records("sales_invoices")
    assert {i["status"]["id"] for i in invoices} >= {"PAID", "PART_PAID", "UNPAID", "VOID", "DRAFT"}
    paid = api.get("/sales_invoices?status_id=PAID").json()["$total"]
    assert paid == sum(1 for i in invoices if i["status"]["id"] == "PAID")
    contact_id = invoices[0]["contact"]["id"]
    env = api.get(f"/sales_invoices?contact_id={contact_id}&items_per_page=200").json()
    assert env["$total"] == sum(1 for i in invoices if i["contact"]["id"] == contact_id)
    dates = sorted(i["date"] for i in invoices)
    lo, hi = dates[10], dates[100]
    env = api.get(f"/sales_invoices?from_date={lo}&to_date={hi}").json()
    assert env["$total"] == sum(1 for d in dates if lo <= d <= hi)
    number = invoices[3]["invoice_number"]
    found = api.get(f"/sales_invoices?search={number}&attributes=invoice_number").json()["$items"]
    assert number in [i["invoice_number"] for i in found]
    name = invoices[3]["contact_name"]
    by_name = api.get("/sales_invoices", params={"search": name.upper()}).json()
    assert by_name["$total"] >= 1
    newest = api.get("/sales_invoices?sort=date:desc&attributes=date&items_per_page=3").json()["$items"]
    assert [i["date"] for i in newest] == sorted(dates, reverse=True)[:3]


def test_overdue_and_currencies_seeded(server):
    invoices = server.store.records("sales_invoices") + server.store.records("purchase_invoices")
    today = __import__("datetime").date.today().isoformat()
    overdue = [i for i in invoices if i["status"]["id"] in ("UNPAID", "PART_PAID") and i["due_date"] < today]
    assert overdue
    assert {i["currency"]["id"] for i in invoices} >= {"GBP", "EUR"}
    assert server.store.records("purchase_invoices")


def test_unknown_endpoint_and_record(api):
    resp = api.get("/contacts/" + "a" * 32)
    assert resp.status_code == 404 and resp.json()[0]["$dataCode"] == "RecordNotFound"
    assert api.get("/nothing_here").status_code == 404


def test_web_app_links_open_pages(server, api):
    contact = api.get("/contacts?attributes=links,name&items_per_page=1").json()["$items"][0]
    link = next(li for li in contact["links"] if li["rel"] == "alternate" and li["type"] == "text/html")
    assert link["href"].startswith(f"{server.base_url}/app/contacts/")
    page = requests.get(link["href"])
    assert page.status_code == 200 and contact["name"].split()[0] in page.text
    invoice = api.get("/purchase_invoices?attributes=links&items_per_page=1").json()["$items"][0]
    href = invoice["links"][0]["href"]
    assert "/app/invoicing/purchase_invoices/" in href and requests.get(href).status_code == 200
