"""Contacts, addresses, contact persons, invoices, payments, voiding and tombstones."""

import time
from datetime import datetime, timedelta

import pytest

from sage_sandbox.tests.helpers import authorized_session

CONTACT = {"contact_type_ids": ["CUSTOMER"], "name": "Brontë & Sons Ltd", "reference": "BRON01",
           "main_address": {"address_type_id": "ACCOUNTS", "name": "Main Address", "address_line_1": "1 High St",
                            "city": "Haworth", "postal_code": "BD22 8DR", "country_id": "GB", "is_main_address": True},
           "delivery_address": {"address_line_1": "2 Dock Rd", "city": "Tilbury", "postal_code": "RM18 7AA"},
           "main_contact_person": {"name": "Anne Brontë", "email": "anne@bronte.example",
                                   "telephone": "020 7946 0001", "mobile": "07700 900001",
                                   "contact_person_type_ids": ["ACCOUNTS"], "is_main_contact": True}}
LINE = {"description": "Consultancy", "ledger_account_id": "4000", "quantity": 2, "unit_price": 50.0,
        "tax_rate_id": "GB_STANDARD"}


@pytest.fixture()
def sapi(fresh):
    session = authorized_session(fresh)
    yield session
    session.close()


def create_contact(sapi, **overrides):
    resp = sapi.post("/contacts", json={"contact": {**CONTACT, **overrides}})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_create_contact_with_nested_objects(fresh, sapi):
    contact = create_contact(sapi)
    assert len(contact["id"]) == 32 and contact["displayed_as"] == "Brontë & Sons Ltd (BRON01)"
    assert contact["$path"] == f"/contacts/{contact['id']}"
    assert contact["contact_types"][0]["id"] == "CUSTOMER"
    assert contact["main_address"]["postal_code"] == "BD22 8DR"
    assert contact["delivery_address"]["address_type"]["id"] == "DELIVERY"
    assert contact["main_contact_person"]["mobile"] == "07700 900001"
    assert contact["email"] == "anne@bronte.example" and contact["deletable"] is True
    assert sapi.get(contact["$path"]).json()["name"] == "Brontë & Sons Ltd"
    assert fresh.store.find_contacts(name="brontë & sons ltd")[0]["id"] == contact["id"]


@pytest.mark.parametrize("field", ["name", "contact_type_ids"])
def test_create_contact_requires_fields(sapi, field):
    body = {k: v for k, v in CONTACT.items() if k != field}
    resp = sapi.post("/contacts", json={"contact": body})
    assert resp.status_code == 422
    err = resp.json()[0]
    assert err["$severity"] == "error" and err["$dataCode"] == "RecordInvalid" and err["$source"] == field


def test_contact_validation(sapi):
    create_contact(sapi)
    dup = sapi.post("/contacts", json={"contact": {**CONTACT, "name": "Other"}})
    assert dup.status_code == 422 and dup.json()[0]["$source"] == "reference"
    long_ref = sapi.post("/contacts", json={"contact": {**CONTACT, "reference": "X" * 11}})
    assert long_ref.status_code == 422
    assert sapi.post("/contacts", json={"name": "no wrapper"}).status_code == 422
    assert sapi.post("/contacts", data="{not json").status_code == 422


def test_idempotency_id(fresh, sapi):
    body = {"contact": {**CONTACT, "idempotency_id": "0123456789abcdef0123456789abcdef"}}
    first = sapi.post("/contacts", json=body)
    second = sapi.post("/contacts", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(fresh.store.contacts()) == 1


def test_update_contact_in_place_bumps_updated_at(sapi):
    contact = create_contact(sapi)
    time.sleep(1.05)
    resp = sapi.put(contact["$path"], json={"contact": {
        "name": "Brontë Sisters Ltd", "main_address": {"city": "Keighley"},
        "main_contact_person": {"email": "emily@bronte.example"}}})
    assert resp.status_code == 200
    updated = resp.json()
    assert updated["name"] == "Brontë Sisters Ltd"
    assert updated["main_address"]["id"] == contact["main_address"]["id"]
    assert updated["main_address"]["city"] == "Keighley" and updated["main_address"]["address_line_1"] == "1 High St"
    assert updated["main_contact_person"]["id"] == contact["main_contact_person"]["id"]
    assert updated["email"] == "emily@bronte.example"
    assert updated["updated_at"] > contact["updated_at"]


def test_child_changes_bump_parent_contact(sapi):
    contact = create_contact(sapi)
    time.sleep(1.05)
    person = sapi.post("/contact_persons", json={"contact_person": {
        "address_id": contact["main_address"]["id"], "name": "Charlotte Brontë",
        "contact_person_type_ids": ["SALES"], "email": "charlotte@bronte.example"}})
    assert person.status_code == 201
    persons = sapi.get(f"/contact_persons?contact_id={contact['id']}&attributes=name").json()
    assert sorted(p["name"] for p in persons["$items"]) == ["Anne Brontë", "Charlotte Brontë"]
    after_post = sapi.get(contact["$path"]).json()["updated_at"]
    assert after_post > contact["updated_at"]
    time.sleep(1.05)
    assert sapi.put(person.json()["$path"], json={"contact_person": {"job_title": "Author"}}).status_code == 200
    assert sapi.get(contact["$path"]).json()["updated_at"] > after_post
    address = sapi.post("/addresses", json={"address": {
        "contact_id": contact["id"], "address_type_id": "DELIVERY", "name": "Warehouse", "is_main_address": False,
        "address_line_1": "9 Quay", "postal_code": "HU1 1AA"}})
    assert address.status_code == 201
    assert sapi.put(address.json()["$path"], json={"address": {"city": "Hull"}}).json()["city"] == "Hull"
    addresses = sapi.get(f"/addresses?contact_id={contact['id']}").json()
    assert addresses["$total"] == 3
    assert sapi.post("/addresses", json={"address": {"contact_id": contact["id"]}}).status_code == 422
    assert sapi.delete(address.json()["$path"]).status_code == 204
    assert sapi.delete(person.json()["$path"]).status_code == 204


def invoice(sapi, contact_id, resource="sales_invoices", **extra):
    wrapper = resource[:-1]
    body = {"contact_id": contact_id, "date": "2025-01-10", "due_date": "2025-02-09",
            "invoice_lines": [LINE, {**LINE, "quantity": 1, "unit_price": 100.0, "tax_rate_id": "GB_ZERO"}], **extra}
    resp = sapi.post(f"/{resource}", json={wrapper: body})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_invoice_totals_and_fields(sapi):
    customer = create_contact(sapi)
    inv = invoice(sapi, customer["id"])
    assert inv["invoice_number"] == "SI-1" and inv["displayed_as"] == "SI-1"
    assert (inv["net_amount"], inv["tax_amount"], inv["total_amount"]) == (200.0, 20.0, 220.0)
    assert inv["outstanding_amount"] == 220.0 and inv["total_paid"] == 0.0
    assert inv["status"]["id"] == "UNPAID" and inv["currency"]["id"] == "GBP"
    assert inv["contact"]["id"] == customer["id"] and inv["contact_name"] == customer["name"]
    assert inv["links"][0]["rel"] == "alternate"
    supplier = create_contact(sapi, reference="SUPP1", contact_type_ids=["VENDOR"], name="Paper Co Ltd")
    wrong = sapi.post("/sales_invoices", json={"sales_invoice": {
        "contact_id": supplier["id"], "date": "2025-01-10", "invoice_lines": [LINE]}})
    assert wrong.status_code == 422 and wrong.json()[0]["$source"] == "contact_id"
    missing = sapi.post("/purchase_invoices", json={"purchase_invoice": {
        "contact_id": supplier["id"], "date": "2025-01-10", "invoice_lines": [LINE]}})
    assert missing.status_code == 422 and missing.json()[0]["$source"] == "due_date"
    pinv = invoice(sapi, supplier["id"], "purchase_invoices", vendor_reference="INV-77")
    assert pinv["vendor_reference"] == "INV-77" and "invoice_number" not in pinv


def test_payments_part_paid_then_paid(sapi):
    customer = create_contact(sapi)
    inv = invoice(sapi, customer["id"])
    time.sleep(1.05)
    pay = sapi.post("/contact_payments", json={"contact_payment": {
        "contact_id": customer["id"], "date": "2025-02-01", "total_amount": 100.0,
        "allocated_artefacts": [{"artefact_id": inv["id"], "amount": 100.0}]}})
    assert pay.status_code == 201, pay.text
    part = sapi.get(inv["$path"]).json()
    assert part["status"]["id"] == "PART_PAID" and part["outstanding_amount"] == 120.0
    assert part["total_paid"] == 100.0 and part["updated_at"] > inv["updated_at"]
    too_much = sapi.post("/contact_payments", json={"contact_payment": {
        "contact_id": customer["id"], "date": "2025-02-02", "total_amount": 500.0,
        "allocated_artefacts": [{"artefact_id": inv["id"], "amount": 500.0}]}})
    assert too_much.status_code == 422
    sapi.post("/contact_payments", json={"contact_payment": {
        "contact_id": customer["id"], "date": "2025-02-03", "total_amount": 120.0,
        "allocated_artefacts": [{"artefact_id": inv["id"], "amount": 120.0}]}})
    paid = sapi.get(inv["$path"]).json()
    assert paid["status"]["id"] == "PAID" and paid["outstanding_amount"] == 0.0 and paid["last_paid"] == "2025-02-03"
    assert sapi.delete(inv["$path"] + "?void_reason=x").status_code == 422


def test_void_sales_invoice(sapi):
    customer = create_contact(sapi)
    inv = invoice(sapi, customer["id"])
    assert sapi.delete(inv["$path"]).status_code == 422
    resp = sapi.delete(inv["$path"], params={"void_reason": "Raised in error"})
    assert resp.status_code == 200
    assert resp.json()["status"]["id"] == "VOID" and resp.json()["void_reason"] == "Raised in error"
    assert resp.json()["outstanding_amount"] == 0.0
    draft = invoice(sapi, customer["id"], status_id="DRAFT")
    assert draft["status"]["id"] == "DRAFT"
    released = sapi.post(draft["$path"] + "/release")
    assert released.json()["status"]["id"] == "UNPAID"


def test_contact_with_transactions_cannot_be_deleted(sapi):
    customer = create_contact(sapi)
    invoice(sapi, customer["id"])
    assert sapi.get(customer["$path"]).json()["deletable"] is False
    resp = sapi.delete(customer["$path"])
    assert resp.status_code == 422 and "cannot be deleted" in resp.json()[0]["$message"]


def test_deleted_since_returns_tombstones(sapi):
    keep = create_contact(sapi)
    gone = create_contact(sapi, reference="GONE1", name="Gone Ltd")
    supplier = create_contact(sapi, reference="SUPP1", contact_type_ids=["VENDOR"], name="Paper Co Ltd")
    pinv = invoice(sapi, supplier["id"], "purchase_invoices")
    cursor = sapi.get("/contacts?attributes=updated_at").json()["$items"][0]["updated_at"]
    time.sleep(1.05)
    assert sapi.delete(gone["$path"]).status_code == 204
    assert sapi.delete(pinv["$path"]).status_code == 204
    assert sapi.get(gone["$path"]).status_code == 404
    deleted = sapi.get("/contacts", params={"deleted_since": cursor, "attributes": "deleted_at"}).json()
    assert [i["id"] for i in deleted["$items"]] == [gone["id"]] and deleted["$items"][0]["deleted_at"]
    persons = sapi.get("/contact_persons", params={"deleted_since": cursor}).json()
    assert persons["$total"] == 1
    pdeleted = sapi.get("/purchase_invoices", params={"deleted_since": cursor}).json()
    assert [i["id"] for i in pdeleted["$items"]] == [pinv["id"]]
    # shown with second precision, compared exactly: one second later excludes it
    stamp = datetime.fromisoformat(deleted["$items"][0]["deleted_at"].replace("Z", "+00:00"))
    later = (stamp + timedelta(seconds=1)).isoformat()
    assert sapi.get("/contacts", params={"deleted_since": later}).json()["$total"] == 0
    assert sapi.get("/contacts").json()["$total"] == 2 and keep["id"]
