"""Responses validated against the Swagger file's ``definitions`` (see sage_sandbox.schema)."""

import jsonschema
import pytest

from sage_sandbox import schema
from sage_sandbox.store import RESOURCES
from sage_sandbox.tests.helpers import authorized_session
from tools import make_swagger_subset

# The seeded sandbox has no payment: they are checked once created, in their own test below.
CHECKED_ON_CREATION = {"contact_payments"}
# Item definitions of the resources the sandbox serves, from its own registry.
ITEM_DEFINITIONS = {resource: entry["item"] for resource, entry in schema.resource_definitions().items()
                    if resource in RESOURCES and resource not in CHECKED_ON_CREATION}


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


def test_committed_subset_is_the_default(monkeypatch):
    monkeypatch.delenv(schema.ENV_VAR, raising=False)
    assert schema.swagger_path() == schema.SUBSET_PATH


def test_subset_covers_every_resource_the_sandbox_serves(monkeypatch):
    """Each resource of the sandbox's registry has its item, POST and PUT definitions in the committed
    subset, and every ``$ref`` in the subset resolves inside it. A new resource in the sandbox fails
    here until ``tools/make_swagger_subset.py`` is run again with Sage's file."""
    monkeypatch.delenv(schema.ENV_VAR, raising=False)
    doc = schema.load_swagger()
    resources = schema.resource_definitions(doc)
    definitions = doc["definitions"]
    uncovered = sorted(set(RESOURCES) - set(resources))
    assert not uncovered, f"regenerate the subset (tools/make_swagger_subset.py): {uncovered} missing"
    for resource in RESOURCES:
        assert set(resources[resource]) == {"item", "post", "put"}, resource
        for name in resources[resource].values():
            assert name in definitions, (resource, name)
    dangling = {ref for body in definitions.values() for ref in make_swagger_subset.references(body)} - set(definitions)
    assert not dangling
    for name in ITEM_DEFINITIONS.values():
        schema.validator(name)  # compiles, with its references


def test_subset_keeps_facts_and_drops_prose(monkeypatch):
    monkeypatch.delenv(schema.ENV_VAR, raising=False)
    definitions = schema.load_swagger()["definitions"]
    line_item = definitions["SalesInvoiceLineItem"]["properties"]
    assert line_item["description"] == {"type": "string"}  # a field called "description" stays
    assert definitions["Contact"]["properties"]["name"]["type"] == "string"

    def keywords(node):
        if isinstance(node, dict):
            yield set(node)
            for key, value in node.items():
                values = value.values() if key == "properties" else [value]
                for child in values:
                    yield from keywords(child)
        elif isinstance(node, list):
            for child in node:
                yield from keywords(child)

    used = set().union(*(keys for body in definitions.values() for keys in keywords(body)))
    assert {"type", "format", "$ref", "properties", "items", "maxLength", "required", "enum"} <= used
    assert used <= make_swagger_subset.KEPT


def test_subset_tool_strips_prose_and_follows_refs():
    def body(name):
        return {"parameters": [{"in": "body", "schema": {"$ref": f"#/definitions/{name}"}}]}

    doc = {
        "info": {"title": "t", "version": "3.1"},
        "paths": {"/things": {"get": {}, "post": body("postThings")},
                  "/things/{key}": {"get": {"responses": {"200": {"schema": {"$ref": "#/definitions/Thing"}}}},
                                    "put": body("putThings")}},
        "definitions": {
            "Base": {"type": "object", "description": "prose"},
            "Thing": {"type": "object", "description": "prose", "x-sage-menusection": "Sales", "required": ["id"],
                      "properties": {"id": {"type": "string", "description": "prose", "example": "1"},
                                     "description": {"type": "string", "maxLength": 9},
                                     "part": {"$ref": "#/definitions/Part"}}},
            "Part": {"type": "object", "title": "Part", "properties": {"kind": {"type": "string", "enum": ["A", "B"]}}},
            "postThings": {"type": "object", "properties": {"thing": {"$ref": "#/definitions/Thing"}}},
            "putThings": {"type": "object", "properties": {"thing": {"$ref": "#/definitions/Thing"}}},
            "Unused": {"type": "object"},
        },
    }
    out = make_swagger_subset.subset(doc, ["things"])
    assert out["resources"] == {"things": {"item": "Thing", "post": "postThings", "put": "putThings"}}
    assert sorted(out["definitions"]) == ["Base", "Part", "Thing", "postThings", "putThings"]
    assert out["definitions"]["Thing"] == {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "description": {"type": "string", "maxLength": 9},
        "part": {"$ref": "#/definitions/Part"}}}
    assert out["definitions"]["Part"] == {"type": "object",
                                          "properties": {"kind": {"type": "string", "enum": ["A", "B"]}}}
    with pytest.raises(SystemExit, match="nothings"):
        make_swagger_subset.subset(doc, ["nothings"])
