"""Deterministic seeding, control endpoints for data, state persistence and the CLI."""

import subprocess
import sys

import requests

from sage_sandbox import SandboxServer
from sage_sandbox.__main__ import build_parser
from sage_sandbox.tests.helpers import authorized_session, tokens


def test_same_seed_same_data():
    first = SandboxServer(contacts=40, invoices=120, seed=3)
    second = SandboxServer(contacts=40, invoices=120, seed=3)
    other = SandboxServer(contacts=40, invoices=120, seed=4)
    assert first.store.contacts() == second.store.contacts()
    assert first.store.records("sales_invoices") == second.store.records("sales_invoices")
    assert first.store.contacts() != other.store.contacts()


def test_seeded_book_is_realistic():
    srv = SandboxServer(contacts=400, invoices=1000, seed=1)
    contacts = srv.store.contacts()
    names = {c["name"] for c in contacts}
    assert {"Café Rouge Ltd", "Zoë Brontë", "O'Brien & Co.", "Acme Ltd", "ACME Limited", "Acme  Ltd."} <= names
    refs = [c["reference"] for c in contacts]
    assert len(set(refs)) == len(refs) and max(map(len, refs)) <= 10
    customers = sum(c["contact_types"][0]["id"] == "CUSTOMER" for c in contacts)
    assert 0.65 < customers / len(contacts) < 0.85
    assert any(c["delivery_address"] for c in contacts)
    assert all(c["main_address"]["postal_code"] for c in contacts)
    assert len({c["updated_at"][:7] for c in contacts}) > 12  # spread over many months
    total = len(srv.store.records("sales_invoices")) + len(srv.store.records("purchase_invoices"))
    assert total == 1000


def test_seed_and_reset_controls(fresh):
    api = authorized_session(fresh)
    resp = requests.post(f"{fresh.base_url}/_sandbox/seed", json={"contacts": 15, "invoices": 30, "seed": 2})
    assert resp.status_code == 200 and resp.json()["contacts"] == 15
    assert api.get("/contacts").json()["$total"] == 15
    requests.post(f"{fresh.base_url}/_sandbox/reset")
    assert api.get("/contacts").json()["$total"] == 0
    fresh.seed(contacts=5, invoices=0, seed=2)
    assert len(fresh.store.contacts()) == 5


def test_state_file_survives_restart(tmp_path):
    path = str(tmp_path / "state.json")
    srv = SandboxServer(port=0, contacts=10, invoices=20, state_file=path).start()
    token = tokens(srv)
    api = authorized_session(srv)
    created = api.post("/contacts", json={"contact": {"name": "Persisted Ltd", "contact_type_ids": ["VENDOR"]}})
    gone = api.post("/contacts", json={"contact": {"name": "Doomed Ltd", "contact_type_ids": ["VENDOR"]}}).json()
    assert api.delete(gone["$path"]).status_code == 204
    srv.stop()
    again = SandboxServer(port=0, state_file=path).start()
    try:
        assert again.store.find_contacts(name="Persisted Ltd")[0]["id"] == created.json()["id"]
        assert len(again.store.contacts()) == 11  # 10 seeded + "Persisted Ltd"
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        deleted = requests.get(f"{again.base_url}/v3.1/contacts?deleted_since=2000-01-01", headers=headers).json()
        assert [i["id"] for i in deleted["$items"]] == [gone["id"]]
        renewed = requests.post(f"{again.base_url}/token", data={
            "client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret",
            "grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
        assert renewed.status_code == 200
    finally:
        again.stop()


def test_cli_defaults():
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.contacts, args.invoices, args.seed) == ("127.0.0.1", 8070, 0, 0, 1)
    assert (args.access_token_ttl, args.refresh_token_ttl, args.code_ttl, args.businesses) == (300, 2678400, 60, 1)
    out = subprocess.run([sys.executable, "-m", "sage_sandbox", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for option in ("--state-file", "--auto-approve", "--redirect-uri", "--quiet", "default: 8070"):
        assert option in out
