"""Responses validated against the Swagger file's ``definitions`` (see sage_sandbox.schema)."""

import jsonschema
import pytest

from sage_sandbox import schema
from sage_sandbox.tests.helpers import authorized_session

ITEM_DEFINITIONS = {"contacts": "Contact", "contact_persons": "ContactPerson", "addresses": "Address",
                    "sales_invoices": "SalesInvoice", "purchase_invoices": "PurchaseInvoice"}


def _check(instance, definition):
    try:
        schema.validate(instance, definition)
    except jsonschema.ValidationError as exc:
        pytest.fail(f"{definition} mismatch at {list(exc.absolute_path)}: {exc.message}")


@pytest.mark.parametrize("resource", sorted(ITEM_DEFINITIONS))
def test_full_records_match_swagger(api, resource):
    items = api.get(f"/{resource}?attributes=all&items_per_page=50").json()["$items"]
    assert items
    for item in items:
        _check(item, ITEM_DEFINITIONS[resource])
    _check(api.get(items[0]["$path"]).json(), ITEM_DEFINITIONS[resource])


@pytest.mark.parametrize("resource", sorted(ITEM_DEFINITIONS))
def test_default_list_items_match_swagger(api, resource):
    for item in api.get(f"/{resource}").json()["$items"]:
        _check(item, ITEM_DEFINITIONS[resource])
        _check(item, "Base")


def test_created_records_and_payments_match_swagger(fresh):
    api = authorized_session(fresh)
    contact = api.post("/contacts", json={"contact": {
        "name": "Schema Ltd", "contact_type_ids": ["CUSTOMER"], "main_contact_person": {"name": "Ann"},
        "main_address": {"address_line_1": "1 Road"}}}).json()
    _check(contact, "Contact")
    inv = api.post("/sales_invoices", json={"sales_invoice": {"contact_id": contact["id"], "date": "2025-03-01",
        "invoice_lines": [{"description": "x", "ledger_account_id": "4000", "quantity": 1, "unit_price": 10}]}})
    _check(inv.json(), "SalesInvoice")
    pay = api.post("/contact_payments", json={"contact_payment": {
        "contact_id": contact["id"], "date": "2025-03-02", "total_amount": 5.0,
        "allocated_artefacts": [{"artefact_id": inv.json()["id"], "amount": 5.0}]}})
    _check(pay.json(), "ContactPayment")
    voided = api.delete(inv.json()["$path"] + "?void_reason=test")
    assert voided.status_code == 422  # has a payment
    deleted_person = api.get("/contact_persons?attributes=all").json()["$items"][0]
    _check(deleted_person, "ContactPerson")


def test_error_body_shape(api):
    # The Swagger file defines no error schema; check Sage's documented array shape instead.
    body = api.get("/contacts/" + "0" * 32).json()
    assert isinstance(body, list) and set(body[0]) == {"$severity", "$dataCode", "$message", "$source"}


def test_validator_rejects_invented_fields_and_wrong_types():
    with pytest.raises(jsonschema.ValidationError):
        schema.validate({"id": "x", "not_in_swagger": 1}, "Contact")
    with pytest.raises(jsonschema.ValidationError):
        schema.validate({"balance": "12.00"}, "Contact")
    schema.validate({"id": "x", "balance": None, "credit_terms": None}, "Contact")


def test_missing_swagger_gives_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv(schema.ENV_VAR, str(tmp_path / "missing.json"))
    with pytest.raises(schema.SwaggerNotFound, match="SAGE_SWAGGER_PATH"):
        schema.swagger_path()
