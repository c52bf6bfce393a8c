"""The sync as production runs it: real transactions committed page by page, real threads.

Odoo's test cases run inside one rolled-back transaction, where the engine neither commits nor
rolls back. These tests use committed data instead, so that what a crash or a concurrent run does
to the database is what they see; each cleans up what it committed.
"""

import threading
from contextlib import contextmanager

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests.common import get_db_name

from .common import TEST_BASE_URL, configure_sandbox_params, connect_to_sandbox, get_sandbox

CONTACTS = 450  # three pages of 200


def _env(cr):
    return api.Environment(cr, SUPERUSER_ID, {})


@contextmanager
def committed_connection(contacts=CONTACTS, invoices=300):
    """A connected company with ``contacts`` Sage contacts, all committed; removed afterwards."""
    registry = Registry(get_db_name())
    sandbox = get_sandbox()
    sandbox.clear_faults()
    sandbox.seed(contacts=contacts, invoices=invoices, seed=5)
    with registry.cursor() as cr:
        env = _env(cr)
        configure_sandbox_params(env, sandbox)
        env["ir.config_parameter"].set_param("web.base.url", TEST_BASE_URL)
        gbp = env.ref("base.GBP")
        gbp.active = True
        connection = env["sage.connection"]._get_for_company(env.ref("base.main_company"))
        connect_to_sandbox(connection, sandbox)
        connection_id = connection.id
    try:
        yield registry, sandbox, connection_id
    finally:
        sandbox.clear_faults()
        with registry.cursor() as cr:
            env = _env(cr)
            partners = env["sage.binding"].search([("connection_id", "=", connection_id)]).partner_id
            children = env["res.partner"].with_context(active_test=False).search(
                [("parent_id", "in", partners.ids)])
            (children | partners).with_context(sage_deleted_in_sage=True).unlink()
            env["sage.connection"].browse(connection_id).unlink()


def _sync_here(registry, connection_id):
    with registry.cursor() as cr:
        env = _env(cr)
        run = env["sage.connection"].browse(connection_id)._run_sync(trigger="script")
        return run.read(["state", "contacts_read", "contacts_created", "message"])[0]


def _sync(registry, connection_id):
    """One run in a thread of its own: like a cron worker, it commits (pytest's thread is a test)."""
    result = []
    worker = threading.Thread(target=lambda: result.append(_sync_here(registry, connection_id)))
    worker.start()
    worker.join(120)
    assert result, "the sync thread did not finish"
    return result[0]


def _linked_ids(registry, connection_id):
    with registry.cursor() as cr:
        cr.execute("SELECT sage_contact_id FROM sage_binding WHERE connection_id = %s AND kind = 'contact'",
                   [connection_id])
        return [row[0] for row in cr.fetchall()]


def test_a_run_cut_off_midway_keeps_its_pages_and_the_next_run_completes_without_duplicates():
    with committed_connection() as (registry, sandbox, connection_id):
        # Pages 2 and 3 of the contact listing fail for longer than the client retries.
        sandbox.add_fault(status=503, path="/v3.1/contacts", after=1, count=50)
        first = _sync(registry, connection_id)
        assert first["state"] == "failed", first
        kept = _linked_ids(registry, connection_id)
        assert len(kept) == 200, "the first page was committed before the failure"

        sandbox.clear_faults()
        second = _sync(registry, connection_id)
        assert second["state"] in ("done", "partial"), second
        linked = _linked_ids(registry, connection_id)
        assert len(linked) == CONTACTS
        assert len(set(linked)) == CONTACTS, "no Sage contact is linked twice"
        with registry.cursor() as cr:
            cr.execute("SELECT count(*) FROM sage_invoice WHERE connection_id = %s", [connection_id])
            assert cr.fetchone()[0] > 0, "the completed run also brought the invoices"


def test_two_runs_at_once_one_works_the_other_skips():
    with committed_connection(contacts=250, invoices=0) as (registry, sandbox, connection_id):
        # Slow Sage down so that the first run is still busy when the second one starts.
        sandbox.add_fault(delay=0.5, path="/v3.1/contacts", count=2)
        results = []
        started = threading.Event()

        def first_run():
            started.set()
            results.append(("first", _sync_here(registry, connection_id)))

        worker = threading.Thread(target=first_run)
        worker.start()
        started.wait(10)
        threading.Event().wait(0.3)  # the first run has taken the lock and waits on Sage
        results.append(("second", _sync(registry, connection_id)))
        worker.join(60)

        outcome = dict(results)
        assert outcome["second"]["state"] == "skipped", outcome
        assert outcome["first"]["state"] in ("done", "partial"), outcome
        linked = _linked_ids(registry, connection_id)
        assert len(linked) == len(set(linked)) == 250
