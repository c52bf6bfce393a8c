"""The first import as production runs it (committed page by page): its progress while it runs,
and its undo, which compares what changed with the import's own time."""

import threading
import time

from .test_sync_committed import _env, committed_connection


def _watch_run(registry, connection_id, worker):
    """Poll the running run's progress from another transaction while ``worker`` lives."""
    seen = []
    while worker.is_alive():
        with registry.cursor() as cr:
            cr.execute("SELECT state, pages_done, pages_expected, contacts_read, estimated_end "
                       "FROM sage_sync_run WHERE connection_id = %s ORDER BY id DESC LIMIT 1", [connection_id])
            row = cr.fetchone()
            if row and row[0] == "running":
                seen.append(row)
        time.sleep(0.05)
    return seen


def test_progress_moves_while_the_pages_are_committed_and_the_cron_hears_of_it():
    with committed_connection(contacts=450, invoices=0) as (registry, sandbox, connection_id):
        with registry.cursor() as cr:
            env = _env(cr)
            cron = env.ref("sage_business_cloud.ir_cron_sage_sync")
            progress_id = env["ir.cron.progress"].create({"cron_id": cron.id}).id
        # Slow Sage down a little, so that the run is seen between its pages.
        sandbox.add_fault(delay=0.15, path="/v3.1/contacts", count=20)
        result = []

        def run():
            with registry.cursor() as cr:
                env = _env(cr)(context={"sage_page_size": 50, "ir_cron_progress_id": progress_id})
                done = env["sage.sync"]._sync_connection(env["sage.connection"].browse(connection_id), "script")
                result.append(done.read(["state", "pages_done", "pages_expected", "progress", "contacts_read"])[0])

        worker = threading.Thread(target=run)
        worker.start()
        seen = _watch_run(registry, connection_id, worker)
        worker.join(120)
        assert result and result[0]["state"] == "done", result
        final = result[0]
        assert (final["pages_done"], final["pages_expected"], final["progress"]) == (9, 9, 100.0)
        assert final["contacts_read"] == 450

        done_values = sorted({row[1] for row in seen if row[1]})
        assert len(done_values) >= 3, "the progress moved page after page: %s" % seen
        assert all(row[2] == 9 for row in seen if row[1]), "9 pages expected from $total of the first page"
        assert all(row[3] == 50 * row[1] for row in seen if row[1]), "contacts so far follow the pages"
        assert all(row[4] for row in seen if row[1]), "an estimated end while it runs"
        with registry.cursor() as cr:
            progress = _env(cr)["ir.cron.progress"].browse(progress_id)
            assert (progress.done, progress.remaining) == (9, 0), "the cron is told nothing remains"
            progress.unlink()


def test_undo_deletes_the_untouched_created_partners_and_keeps_the_ones_used_since():
    with committed_connection(contacts=12, invoices=10) as (registry, sandbox, connection_id):
        name = sandbox.store.contacts()[0]["name"]
        with registry.cursor() as cr:
            env = _env(cr)
            matched_id = env["res.partner"].create({"name": name, "is_company": True}).id
        try:
            _undo_case(registry, connection_id, matched_id)
        finally:
            with registry.cursor() as cr:
                _env(cr)["res.partner"].browse(matched_id).unlink()


def _undo_case(registry, connection_id, matched_id):
    with registry.cursor() as cr:
        env = _env(cr)
        env["sage.connection"].browse(connection_id).first_import_mode = "auto"
        run = env["sage.connection"].browse(connection_id)._run_sync(trigger="script")
        assert run.state == "done", run.message
        assert (run.contacts_linked, run.contacts_created) == (1, 11)
        run_id = run.id
        created = env["sage.binding"].search([("connection_id", "=", connection_id),
                                              ("link_method", "=", "imported")]).partner_id
        all_created = env["res.partner"].with_context(active_test=False).search(
            ["|", ("id", "in", created.ids), ("parent_id", "in", created.ids)])
    time.sleep(0.05)
    edited, noted, used, untouched = created[0].id, created[1].id, created[2].id, created[3:].ids
    with registry.cursor() as cr:  # later, users work with three of them
        env = _env(cr)
        env["res.partner"].browse(edited).write({"phone": "+44 117 496 0000"})
        env["res.partner"].browse(noted).message_post(body="Called them about their first order.",
                                                      message_type="comment", subtype_xmlid="mail.mt_note")
        env["res.partner.bank"].create({"acc_number": "GB00TEST0001", "partner_id": used})

    with registry.cursor() as cr:
        env = _env(cr)
        run = env["sage.sync.run"].browse(run_id)
        dialog = env["sage.sync.undo"].browse(run.action_sage_undo()["res_id"])
        assert (dialog.delete_count, dialog.keep_count, dialog.unlink_count) == (8, 3, 1), \
            run._sage_undo_plan()["keep"]
        assert set(dialog.kept_partner_ids.ids) == {edited, noted, used}
        dialog.action_confirm()

    with registry.cursor() as cr:
        env = _env(cr)
        Partner = env["res.partner"].with_context(active_test=False)
        survivors = Partner.search([("id", "in", all_created.ids), ("parent_id", "=", False)])
        assert set(survivors.ids) == {edited, noted, used}, "exactly the untouched ones were deleted"
        assert not Partner.search([("id", "in", all_created.ids), ("parent_id", "in", untouched)]), \
            "their children went with them"
        bindings = env["sage.binding"].search([("connection_id", "=", connection_id), ("kind", "=", "contact")])
        assert set(bindings.partner_id.ids) == {edited, noted, used}, "the kept ones stay linked"
        assert Partner.browse(matched_id).exists() and not Partner.browse(matched_id).sage_binding_ids, \
            "the link by name is removed, the partner stays"
        assert not env["sage.deleted.contact"].search([("connection_id", "=", connection_id)]), \
            "an undone import is not remembered as deleted in Odoo: a new import may bring them again"
        connection = env["sage.connection"].browse(connection_id)
        assert not connection.contacts_synced_until and not connection.invoices_synced_until
        assert connection.first_import_pending, "back to not yet imported"
        assert connection._sage_waits_for_preview(), "the cron does not import it again by itself"
        run = env["sage.sync.run"].browse(run_id)
        assert run.undone_at and not run.may_undo
        assert set(run.undo_kept_partner_ids.ids) == {edited, noted, used}
        assert "8 created partners deleted" in run.message
        env["res.partner.bank"].search([("acc_number", "=", "GB00TEST0001")]).unlink()
