"""The fault matrix (issue 12): every phase under every fault, and Odoo equals Sage afterwards.

Each cell: a small committed book (6 contacts, 12 invoices, pages of 2), one phase of the addon's
work (first import of contacts, sales or purchase invoices, an incremental run, Export to Sage of
a company, a B2B or a B2C person, a pushed edit, Delete in Sage) under one fault of the sandbox,
from the second page (listings) or the first write (actions) on, either shorter than the client's
retries (``short``: one call) or longer (``long``: until it clears). Then the fault clears, one more
run, click or push goes, and the same invariants must hold: every Sage contact bound to exactly
one partner and no binding to a contact Sage does not have; invoice rows equal Sage's id for id;
each partner's figures equal Sage's sums; one Sage contact (one contact person) per export; the
pushed value in Sage; the failure told in words a user understands; after a revoked grant the
connection needs reconnecting and, once reconnected, the next unit of work completes.
"""

import json
import os
import time

import pytest

from .matrix_common import NAME_PREFIX, SLOW, Book, readable

LISTINGS = {
    "import_contacts": "/v3.1/contacts",
    "import_sales": "/v3.1/sales_invoices",
    "import_purchases": "/v3.1/purchase_invoices",
    "incremental": "/v3.1/contacts",
}
ACTIONS = ("export_company", "export_b2b", "export_b2b_added", "export_b2c", "push", "delete")
PHASES = (*LISTINGS, *ACTIONS)

#: How each fault is asked of the sandbox (``None``: not a fault rule).
FAULTS = {
    "429_retry_after": {"status": 429, "retry_after": 0.2},
    "429": {"status": 429},
    "500": {"status": 500},
    "502": {"status": 502},
    "503": {"status": 503},
    "drop": {"drop": True},
    "slow": {"delay": SLOW},
    "lose_answer": {"lose_answer": True},
    "malformed": {"malformed": True},
    "unknown_enum": "data",
    "no_name": "data",
    "token_expired": None,
    "grant_revoked": None,
    "sigkill": None,
}
DATA_FAULTS = ("unknown_enum", "no_name")
ONCE = ("token_expired", "grant_revoked", "sigkill")


def _cells():
    for phase in PHASES:
        for fault in FAULTS:
            if fault == "sigkill" and phase not in LISTINGS:
                continue
            if fault in DATA_FAULTS and phase == "delete":
                continue  # a DELETE answers no JSON to alter
            for length in (("once",) if fault in ONCE else ("short", "long")):
                yield pytest.param(phase, fault, length, id="%s-%s-%s" % (phase, fault, length))


@pytest.fixture(scope="module")
def book():
    ground = Book()
    try:
        with ground.patched():
            yield ground
    finally:
        ground.cleanup()


@pytest.mark.parametrize(("phase", "fault", "length"), list(_cells()))
def test_fault_matrix(book, phase, fault, length):
    book.reset()
    cell = _Cell(book, phase)
    cell.prepare()
    outcome = cell.under_fault(fault, length)

    if fault in (*DATA_FAULTS, "token_expired") or (length == "short" and fault not in ("grant_revoked", "sigkill")):
        assert outcome["state"] != "failed", outcome
    else:
        assert outcome["state"] == "failed", outcome
        if fault != "sigkill":
            assert readable(outcome["message"]), outcome
    _report(phase, fault, length, outcome)
    book.sandbox.clear_faults()
    if fault == "grant_revoked":
        assert "reconnect" in outcome["message"], outcome
        assert book.connection_state() == "needs_reconnect"
        book.reconnect()

    if phase in LISTINGS or outcome["state"] == "failed":
        # one more run (the retry list worked through: nothing left to report), or the user's
        # next click, or the push once its retry is due
        again = cell.again()
        assert again["state"] == "done", again
    if fault == "sigkill":
        runs = book.odoo(lambda env: env["sage.sync.run"].search_read(
            [("connection_id", "=", book.connection_id)], ["state", "message"], order="id"))
        assert runs[-2]["state"] == "failed" and "interrupted" in runs[-2]["message"], runs
        assert not [run for run in runs if run["state"] == "running"], runs
    cell.check()


def _report(phase, fault, length, outcome):
    """With ``SAGE_MATRIX_REPORT=<file>``, one JSON line per cell: what the faulted work said."""
    path = os.environ.get("SAGE_MATRIX_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps({"cell": "%s-%s-%s" % (phase, fault, length), **outcome}, default=str) + "\n")


class _Cell:
    """One phase: what it prepares, the fault rule that hits it, the work, the checks."""

    def __init__(self, book, phase):
        self.book = book
        self.phase = phase
        self.partner_id = None
        self.contact_id = None

    # -- preparing ------------------------------------------------------
    def prepare(self):
        book = self.book
        if self.phase in ("import_contacts", "import_sales", "import_purchases"):
            return
        first = book.sync()
        assert first["state"] == "done", first
        if self.phase == "incremental":
            book.sage_changes()
            return
        names = {"export_company": "Export Ltd", "export_b2b": "B2B Ltd", "export_b2b_added": "B2B Ltd",
                 "export_b2c": "Jane B2C", "push": "Push Ltd", "delete": "Delete Ltd"}
        self.name = NAME_PREFIX + names[self.phase]

        def create(env):
            Partner = env["res.partner"]
            partner = Partner.create({"name": self.name, "is_company": self.phase != "export_b2c",
                                      "email": "matrix@example.com", "city": "Leeds"})
            if self.phase.startswith("export_b2b"):
                self.company_id = partner.id
                partner = Partner.create({"name": NAME_PREFIX + "Bob Person", "parent_id": partner.id,
                                          "email": "bob@example.com"})
            return partner.id

        self.partner_id = book.odoo(create)
        if self.phase in ("export_b2b_added", "push", "delete"):
            # the company is in Sage already: the person is added to it
            target = self.company_id if self.phase == "export_b2b_added" else self.partner_id
            done = book.click("action_export_to_sage", target)
            assert done["state"] == "done", done
            self.contact_id = book.odoo(lambda env: env["res.partner"].browse(target).sage_contact_id)
        if self.phase == "push":
            book.odoo(lambda env: env["res.partner"].browse(self.partner_id).write(
                {"name": NAME_PREFIX + "Pushed Ltd"}))

    # -- the fault ------------------------------------------------------
    def target(self):
        """``(path, method, skipped calls)``: the calls the fault hits."""
        if self.phase in LISTINGS:
            return LISTINGS[self.phase], "GET", 1
        return {
            "export_company": ("/v3.1/contacts", "POST", 0),
            "export_b2c": ("/v3.1/contacts", "POST", 0),
            "export_b2b": ("/v3.1/contacts", "POST", 0),
            "export_b2b_added": ("/v3.1/contact_persons", "POST", 0),
            "push": ("/v3.1/contacts/%s" % self.contact_id, "PUT", 0),
            "delete": ("/v3.1/contacts/%s" % self.contact_id, "DELETE", 0),
        }[self.phase]

    def data_fault(self, fault):
        path = self.target()[0]
        if "invoices" in path:
            return {"mutate": {"status.id": "WEIRD"}} if fault == "unknown_enum" else {"remove": ["contact"]}
        if "contact_persons" in path:
            return {"mutate": {"contact_person_types.0.id": "WEIRD"}} if fault == "unknown_enum" \
                else {"remove": ["name"]}
        return {"mutate": {"contact_types.0.id": "WEIRD"}} if fault == "unknown_enum" else {"remove": ["name"]}

    def under_fault(self, fault, length):
        book = self.book
        path, method, after = self.target()
        book.sandbox.clear_requests()  # what is watched below is this work's calls only
        if fault == "sigkill":
            return book.sync_killed_midway(path)
        if fault in ("token_expired", "grant_revoked"):
            strike = book.sandbox.expire_access_tokens if fault == "token_expired" else book.sandbox.revoke_grants
            if self.phase in LISTINGS:
                # page 1 answered, the token dies while page 2 is on its way
                book.sandbox.add_fault(delay=0.3, path=path, method="GET", after=1, count=1)
                book.when_served(path, "1", strike)
            else:
                strike()
            return self.work()
        spec = FAULTS[fault]
        if spec == "data":
            spec = self.data_fault(fault)
        spec = dict(spec, path=path, method=method, after=after)
        if length == "short":
            spec["count"] = 1
        book.sandbox.add_fault(**spec)
        outcome = self.work()
        if fault == "slow":
            time.sleep(SLOW)  # the calls the client gave up on land in Sage before anything else
        return outcome

    # -- the work -------------------------------------------------------
    def work(self, again=False):
        book = self.book
        if self.phase in LISTINGS:
            return book.sync()
        if self.phase == "push":
            return book.push(self.partner_id, due_now=again)
        if self.phase == "delete":
            return book.click("action_sage_delete", self.partner_id)
        return book.click("action_export_to_sage", self.partner_id)

    def again(self):
        return self.work(again=True)

    # -- the checks -----------------------------------------------------
    def check(self):
        book = self.book
        sage_contacts, bound = book.check_invariants()
        store = book.sandbox.store
        if self.phase.startswith("export_"):
            name = self.name
            same = [c for c in sage_contacts.values() if c["name"] == name]
            assert len(same) == 1, "%s Sage contacts named %s" % (len(same), name)
            if self.phase.startswith("export_b2b"):
                addresses = {a["id"] for a in store.records("addresses", book.business_id)
                             if a["contact"]["id"] == same[0]["id"]}
                persons = [p for p in store.records("contact_persons", book.business_id)
                           if p["address"]["id"] in addresses and p["name"] == NAME_PREFIX + "Bob Person"]
                assert len(persons) == 1, "%s contact persons for one B2B person" % len(persons)
                bound_person = book.odoo(lambda env: env["sage.binding"].search(
                    [("partner_id", "=", self.partner_id)]).sage_contact_person_id)
                assert bound_person == persons[0]["id"]
            else:
                assert bound.get(same[0]["id"]) == self.partner_id
        if self.phase == "push":
            contact = sage_contacts[self.contact_id]
            assert contact["name"] == NAME_PREFIX + "Pushed Ltd"
            state = book.odoo(lambda env: env["sage.binding"].search(
                [("partner_id", "=", self.partner_id)]).push_state)
            assert state == "synced"
        if self.phase == "delete":
            assert self.contact_id not in sage_contacts
            assert self.partner_id not in bound.values()
