"""PUT /contacts with nested objects: ``merge`` (default) or ``replace`` (switchable at run time)."""

import pytest
import requests

from sage_sandbox import SandboxServer
from sage_sandbox.__main__ import build_parser
from sage_sandbox.tests.helpers import authorized_session

CONTACT = {"name": "Nested Ltd", "contact_type_ids": ["CUSTOMER"],
           "main_address": {"address_line_1": "1 High St", "address_line_2": "Unit 4", "city": "Leeds",
                            "postal_code": "LS1 4AP", "country_id": "GB"},
           "delivery_address": {"address_line_1": "2 Dock Rd", "city": "Hull", "postal_code": "HU1 1AA"},
           "main_contact_person": {"name": "Ann Lee", "email": "ann@nested.example", "telephone": "020 7946 0001",
                                   "mobile": "07700 900001"}}
PARTIAL = {"main_address": {"city": "York"}, "delivery_address": {"postal_code": "HU2 2BB"},
           "main_contact_person": {"telephone": "020 7946 0999"}}


@pytest.fixture()
def sapi(fresh):
    with authorized_session(fresh) as session:
        yield session


def _put_partial(sapi):
    contact = sapi.post("/contacts", json={"contact": CONTACT}).json()
    resp = sapi.put(contact["$path"], json={"contact": PARTIAL})
    assert resp.status_code == 200, resp.text
    return contact, resp.json()


def test_merge_is_the_default(fresh, sapi):
    assert fresh.settings() == {"nested_put": "merge", "balance_changes_contact": "no"}
    before, after = _put_partial(sapi)
    assert after["main_address"]["city"] == "York" and after["main_address"]["address_line_1"] == "1 High St"
    assert after["main_address"]["postal_code"] == "LS1 4AP" and after["main_address"]["country"]["id"] == "GB"
    assert after["delivery_address"]["postal_code"] == "HU2 2BB" and after["delivery_address"]["city"] == "Hull"
    person = after["main_contact_person"]
    assert person["telephone"] == "020 7946 0999" and person["mobile"] == "07700 900001"
    assert person["name"] == "Ann Lee" and after["email"] == "ann@nested.example"
    assert after["main_address"]["id"] == before["main_address"]["id"]


def test_replace_clears_what_the_put_omits(fresh, sapi):
    fresh.set_nested_put("replace")
    before, after = _put_partial(sapi)
    address = after["main_address"]
    assert address["id"] == before["main_address"]["id"] and address["is_main_address"] is True
    assert address["city"] == "York"
    assert address["address_line_1"] is None and address["address_line_2"] is None
    assert address["postal_code"] is None and address["country"] is None and address["country_group"] is None
    assert address["address_type"]["id"] == before["main_address"]["address_type"]["id"]
    assert after["delivery_address"]["postal_code"] == "HU2 2BB" and after["delivery_address"]["city"] is None
    person = after["main_contact_person"]
    assert person["telephone"] == "020 7946 0999" and person["is_main_contact"] is True
    assert person["mobile"] is None and person["name"] is None and after["email"] is None
    assert sapi.get(after["$path"]).json() == after


def test_replace_leaves_objects_not_sent_alone(fresh, sapi):
    fresh.configure(nested_put="replace")
    contact = sapi.post("/contacts", json={"contact": CONTACT}).json()
    after = sapi.put(contact["$path"], json={"contact": {"notes": "x", "email": "new@nested.example"}}).json()
    assert after["main_address"] == {**contact["main_address"], "updated_at": after["main_address"]["updated_at"]}
    assert after["email"] == "new@nested.example" and after["main_contact_person"]["mobile"] == "07700 900001"


def test_switch_through_the_control_and_reset_restores(fresh, sapi):
    url = f"{fresh.base_url}/_sandbox/config"
    assert requests.get(url).json() == {"nested_put": "merge", "balance_changes_contact": "no"}
    assert requests.post(url, json={"nested_put": "replace"}).json() == {
        "nested_put": "replace", "balance_changes_contact": "no"}
    assert _put_partial(sapi)[1]["main_address"]["postal_code"] is None
    assert requests.post(url, json={"nested_put": "sideways"}).status_code == 422
    assert requests.post(url, json={"colour": "red"}).status_code == 422
    requests.post(f"{fresh.base_url}/_sandbox/reset")
    assert fresh.settings() == {"nested_put": "merge", "balance_changes_contact": "no"}
    assert _put_partial(sapi)[1]["main_address"]["postal_code"] == "LS1 4AP"


def test_start_value_from_python_and_cli():
    srv = SandboxServer(nested_put="replace")
    assert srv.settings() == {"nested_put": "replace", "balance_changes_contact": "no"}
    srv.configure(nested_put="merge")
    srv.reset()
    assert srv.settings() == {"nested_put": "replace", "balance_changes_contact": "no"}
    with pytest.raises(ValueError):
        SandboxServer(nested_put="overwrite")
    assert build_parser().parse_args([]).nested_put == "merge"
    assert build_parser().parse_args(["--nested-put", "replace"]).nested_put == "replace"
