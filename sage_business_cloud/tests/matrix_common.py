"""The ground of the fault matrix: one committed book, the work of each phase, and the invariants.

Like ``test_sync_committed``, everything here is committed for real: each unit of work (a sync
run, an Export click, a push cron, a Delete in Sage click) runs in a thread of its own with its
own cursor, as a cron worker or an HTTP request would, so the engine commits and rolls back as
in production. The database and its connection are reused by every cell; the sandbox is reset
and seeded with a small book for each one.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from unittest.mock import patch
from urllib.parse import parse_qsl

import odoo
from odoo import SUPERUSER_ID, api
from odoo.exceptions import UserError
from odoo.modules.registry import Registry
from odoo.tests.common import get_db_name

from ..models.sage_invoice import OPEN_STATUSES
from ..services.sage_api import INVOICE_RESOURCES
from .common import TEST_BASE_URL, configure_sandbox_params, connect_to_sandbox, get_sandbox

PAGE_SIZE = 2
CONTACTS = 6
INVOICES = 12
SEED = 5
#: The client's tuning in the matrix: a read timeout far below Sage's 60 s, quick backoff.
TIMEOUT = (2.0, 0.5)
MAX_RETRIES = 2
SLOW = 1.2  # seconds a slow answer takes: longer than TIMEOUT's read part
NAME_PREFIX = "Matrix "
#: Words that mean a user was shown a programmer's message.
UNREADABLE = ("Traceback", "Unexpected error: ", "object has no attribute", "KeyError", "NoneType")


def env_of(cr):
    return api.Environment(cr, SUPERUSER_ID, {})


def in_thread(work, timeout=120):
    """Run ``work()`` in a thread of its own (not a test thread: the code under test commits)."""
    result, failure = [], []

    def target():
        try:
            result.append(work())
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            failure.append(error)

    worker = threading.Thread(target=target, name="matrix-worker")
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "the unit of work did not finish in %s s" % timeout
    if failure:
        raise failure[0]
    return result[0]


def _fast_settings(original):
    def settings(self):
        return dataclasses.replace(original(self), timeout=TIMEOUT, max_retries=MAX_RETRIES,
                                   backoff_base=0.02, backoff_cap=1.0)
    return settings


class Book:
    """A connected company whose data is committed; one per matrix module."""

    def __init__(self):
        self.registry = Registry(get_db_name())
        self.sandbox = get_sandbox()
        model = self.registry["sage.connection"]
        self._patch = patch.object(model, "_get_sage_settings", _fast_settings(model._get_sage_settings))
        with self.registry.cursor() as cr:
            env = env_of(cr)
            configure_sandbox_params(env, self.sandbox)
            env["ir.config_parameter"].set_param("web.base.url", TEST_BASE_URL)
            gbp = env.ref("base.GBP")
            gbp.active = True
            self.connection_id = env["sage.connection"]._get_for_company(env.ref("base.main_company")).id

    @contextmanager
    def patched(self):
        with self._patch:
            yield

    # -- per cell ----------------------------------------------------------
    def reset(self):
        """Forget the last cell in Odoo, seed a fresh small book in Sage and connect to it."""
        self.sandbox.clear_faults()
        self.sandbox.seed(contacts=CONTACTS, invoices=INVOICES, seed=SEED)
        self.sandbox.clear_requests()
        self.business_id = self.sandbox.store.business_ids()[0]
        with self.registry.cursor() as cr:
            connection = self._forget(env_of(cr))
            connection.write({"contacts_synced_until": False, "invoices_synced_until": False,
                              "purchases_synced_until": False, "currency_asked": False,
                              "last_error": False})
            connect_to_sandbox(connection, self.sandbox, self.business_id)

    def cleanup(self):
        """Leave the database as the matrix found it: the other tests share its company."""
        self.sandbox.clear_faults()
        with self.registry.cursor() as cr:
            self._forget(env_of(cr)).unlink()

    def _forget(self, env):
        """Delete what the cells committed in Odoo; return the connection."""
        connection = env["sage.connection"].browse(self.connection_id)
        Partner = env["res.partner"].with_context(active_test=False)
        partners = env["sage.binding"].search([("connection_id", "=", connection.id)]).partner_id
        partners |= Partner.search([("name", "=like", NAME_PREFIX + "%")])
        partners |= Partner.search([("parent_id", "in", partners.commercial_partner_id.ids)])
        # every partner made from (or for) Sage, at any depth
        partners |= Partner.search([("parent_id", "in", partners.ids)])
        partners.with_context(sage_deleted_in_sage=True).unlink()
        for model in ("sage.invoice", "sage.sync.run", "sage.sync.backlog", "sage.deleted.contact"):
            env[model].search([("connection_id", "=", connection.id)]).unlink()
        return connection

    def reconnect(self):
        with self.registry.cursor() as cr:
            connect_to_sandbox(env_of(cr)["sage.connection"].browse(self.connection_id), self.sandbox,
                               self.business_id)

    def connection_state(self):
        with self.registry.cursor() as cr:
            cr.execute("SELECT state FROM sage_connection WHERE id = %s", [self.connection_id])
            return cr.fetchone()[0]

    # -- units of work -----------------------------------------------------
    def sync(self):
        """One sync run in a worker thread; returns the run's state and message."""
        def work():
            with self.registry.cursor() as cr:
                env = env_of(cr)
                run = env["sage.sync"].with_context(sage_page_size=PAGE_SIZE)._sync_connection(
                    env["sage.connection"].browse(self.connection_id), trigger="script")
                return run.read(["state", "message"])[0]
        return in_thread(work)

    def click(self, method, partner_id, **context):
        """A user's click on a partner (committed, or rolled back on a UserError shown to them)."""
        def work():
            with self.registry.cursor() as cr:
                partner = env_of(cr)["res.partner"].with_context(**context).browse(partner_id)
                try:
                    action = getattr(partner, method)()
                except UserError as error:
                    cr.rollback()
                    return {"state": "failed", "message": error.args[0]}
                return {"state": "done", "message": action["params"]["message"]}
        return in_thread(work)

    def push(self, partner_id, due_now=False):
        """The push cron (what is due); returns the push state of ``partner_id``'s binding."""
        def work():
            with self.registry.cursor() as cr:
                env = env_of(cr)
                if due_now:  # the retry delay has passed
                    cr.execute("UPDATE sage_binding SET push_next_at = NULL WHERE push_state = 'pending'")
                env["sage.binding"]._cron_sage_push()
                binding = env["sage.binding"].search([("partner_id", "=", partner_id)])
                return {"state": {"synced": "done", "pending": "failed", "error": "failed"}[binding.push_state],
                        "message": binding.push_error or False}
        return in_thread(work)

    def odoo(self, work):
        """Run ``work(env)`` in a committed transaction of this thread's own."""
        with self.registry.cursor() as cr:
            return work(env_of(cr))

    # -- a killed Odoo -----------------------------------------------------
    def sync_killed_midway(self, path):
        """Run a sync in an ``odoo-bin shell`` process and SIGKILL it once Sage served page 2 of
        ``path``'s listing (page 3 is held back meanwhile, so the run is mid-way)."""
        self.sandbox.add_fault(delay=20, path=path, method="GET", query={"page": "3"}, count=1)
        config = odoo.tools.config
        odoo_bin = Path(odoo.__file__).resolve().parents[1] / "odoo-bin"
        command = [sys.executable, str(odoo_bin), "shell", "-d", get_db_name(), "--no-http",
                   "--addons-path", config["addons_path"], "--log-level", "warn"]
        for key in ("db_host", "db_port", "db_user", "db_password"):
            if config.get(key):
                command += ["--%s" % key, str(config[key])]
        script = (
            "connection = env['sage.connection'].browse(%d)\n"
            "env['sage.sync'].with_context(sage_page_size=%d)._sync_connection(connection, trigger='script')\n"
            "env.cr.commit()\n" % (self.connection_id, PAGE_SIZE))
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=dict(os.environ), start_new_session=True)
        process.stdin.write(script.encode())
        process.stdin.close()
        try:
            deadline = time.monotonic() + 90
            while not self._served(path, "2"):
                assert process.poll() is None, "the shell ended before page 2"
                assert time.monotonic() < deadline, "page 2 was never asked for"
                time.sleep(0.05)
            running = self.odoo(lambda env: env["sage.sync.run"].search_count(
                [("connection_id", "=", self.connection_id), ("state", "=", "running")]))
            assert running == 1, "the killed process had a run going"
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        self.sandbox.clear_faults()
        return {"state": "failed", "message": "killed"}

    def _served(self, path, page):
        """True once Sage answered page ``page`` of the listing at ``path``."""
        return any(entry["path"] == path and entry["method"] == "GET" and entry["status"] == 200
                   and dict(parse_qsl(entry.get("query") or "")).get("page", "1") == page
                   for entry in self.sandbox.request_log()["log"])

    def when_served(self, path, page, action):
        """Call ``action()`` in the background as soon as Sage has answered that page."""
        def watch():
            deadline = time.monotonic() + 30
            while not self._served(path, page) and time.monotonic() < deadline:
                time.sleep(0.01)
            action()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        return watcher

    # -- Sage data added between runs -----------------------------------
    def sage_changes(self):
        """New contacts (two pages of them) and invoices in Sage, for an incremental run."""
        store = self.sandbox.store
        biz = store.business(self.business_id)
        ids = []
        with store.lock:
            for n in range(5):
                ids.append(store.create_contact(biz, {"name": "%sNew %s Ltd" % (NAME_PREFIX, n),
                                                      "contact_type_ids": ["CUSTOMER"]})["id"])
            issued = date.today() - timedelta(days=40)
            for n, contact_id in enumerate(ids[:2]):
                store.create_invoice(biz, "sales_invoices", {
                    "contact_id": contact_id, "date": issued.isoformat(),
                    "due_date": (issued + timedelta(days=30)).isoformat(), "status_id": "UNPAID",
                    "invoice_lines": [{"description": "Work", "ledger_account_id": "4000", "quantity": 1.0,
                                       "unit_price": 100.0 + n, "tax_rate_id": "GB_ZERO"}]})
        return ids

    # -- invariants ----------------------------------------------------
    def check_invariants(self):
        """Odoo equals Sage: bindings, invoice rows id for id, partners' figures."""
        store = self.sandbox.store
        sage_contacts = {c["id"]: c for c in store.contacts(self.business_id)}
        # every kind of document: invoices, credit notes, quotes and estimates
        invoices = {(kind, i["id"]): i for kind, resource in INVOICE_RESOURCES.items()
                    for i in store.records(resource, self.business_id)}

        def read(env):
            env.cr.execute("SELECT sage_contact_id, partner_id FROM sage_binding "
                           "WHERE connection_id = %s AND kind = 'contact'", [self.connection_id])
            bindings = env.cr.fetchall()
            env.cr.execute("SELECT invoice_type, sage_id, partner_id, status, total_amount, outstanding_amount "
                           "FROM sage_invoice WHERE connection_id = %s", [self.connection_id])
            rows = env.cr.fetchall()
            partners = env["res.partner"].browse({p for _s, p in bindings}).with_company(env.ref("base.main_company"))
            figures = {p.id: p.sage_outstanding_amount for p in partners}
            return bindings, rows, figures

        bindings, rows, figures = self.odoo(read)
        bound = {}
        for sage_id, partner_id in bindings:
            assert sage_id not in bound, "Sage contact %s is bound twice" % sage_id
            bound[sage_id] = partner_id
        assert len(set(bound.values())) == len(bound), "a partner is bound to two Sage contacts"
        ghosts = set(bound) - set(sage_contacts)
        assert not ghosts, "bindings to Sage contacts that do not exist: %s" % ghosts
        missing = set(sage_contacts) - set(bound)
        assert not missing, "Sage contacts bound to no partner: %s" % [sage_contacts[m]["name"] for m in missing]

        expected = {key: inv for key, inv in invoices.items() if inv["contact"]["id"] in bound}
        stored = {(row[0], row[1]): row for row in rows}
        assert set(stored) == set(expected), "invoice rows differ from Sage's: extra %s, missing %s" % (
            set(stored) - set(expected), set(expected) - set(stored))
        for key, invoice in expected.items():
            _t, _i, partner_id, status, total, outstanding = stored[key]
            assert partner_id == bound[invoice["contact"]["id"]], "invoice %s on the wrong partner" % (key,)
            assert (status, round(total, 2), round(outstanding, 2)) == (
                invoice["status"]["id"], round(invoice["total_amount"], 2),
                round(invoice.get("outstanding_amount") or 0.0, 2)), "invoice %s differs from Sage's" % (key,)
        owed = dict.fromkeys(bound.values(), 0.0)
        for (kind, _id), invoice in expected.items():
            if kind in ("sale", "sale_credit") and invoice["status"]["id"] in OPEN_STATUSES:
                sign = -1 if kind == "sale_credit" else 1  # credit not yet allocated is owed back
                owed[bound[invoice["contact"]["id"]]] += sign * invoice["base_currency_outstanding_amount"]
        for partner_id, amount in owed.items():
            assert round(figures[partner_id], 2) == round(amount, 2), (
                "partner %s shows %s outstanding, Sage's invoices less credit notes add up to %s" % (
                    partner_id, figures[partner_id], amount))
        return sage_contacts, bound


def readable(message):
    """A message a user understands: words, no traceback or programmer's jargon."""
    return bool(message) and not any(word in message for word in UNREADABLE)

