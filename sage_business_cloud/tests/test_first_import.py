"""The first import an administrator can trust: its preview, its scope and when it starts."""

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user

from .sync_common import SageSyncCase


class FirstImportCase(SageSyncCase):

    def book(self):
        """A book with customers and suppliers, with and without invoices, name matches,
        an ambiguous name and a near match; returns the Sage ids by role."""
        self.Partner.create({"name": "Harbour Joinery Ltd", "is_company": True})
        self.Partner.create({"name": "Twin Bakery Ltd", "is_company": True})
        self.Partner.create({"name": "Twin Bakery Ltd", "is_company": True})
        self.Partner.create({"name": "Oak & Ash Limited", "is_company": True})
        ids = {
            "linked": self.sage_contact("Harbour Joinery Ltd"),
            "ambiguous": self.sage_contact("Twin Bakery Ltd"),
            "near": self.sage_contact("OAK AND ASH LTD."),
            "customer_invoiced": self.sage_contact("Quay Logistics Ltd"),
            "customer_idle": self.sage_contact("Idle Customer Ltd"),
            "supplier_invoiced": self.sage_contact("Bolt Supplies Ltd", kind="VENDOR"),
            "supplier_idle": self.sage_contact("Quiet Supplier Ltd", kind="VENDOR"),
        }
        self.sage_invoice(ids["customer_invoiced"])
        self.sage_invoice(ids["supplier_invoiced"], purchase=True)
        return ids

    def preview(self, **context):
        self.connection.sudo()._write_sync_state({"preview_requested": True})
        run = self.connection.with_context(**context)._run_sync(trigger="cron")
        self.env.invalidate_all()
        return run

    def counts(self, run):
        return {name: run[name] for name in ("contacts_linked", "contacts_created", "contacts_flagged",
                                             "contacts_skipped")}

    def partner_state(self):
        partners = self.Partner.search([])
        return (len(partners), self.env["sage.binding"].sudo().search_count([]),
                {p.id: p.write_date for p in partners},
                self.env["mail.message"].search_count([("model", "=", "res.partner")]))


class TestPreview(FirstImportCase):

    def test_preview_lists_what_the_import_then_does_and_writes_no_partner(self):
        ids = self.book()
        before = self.partner_state()
        preview = self.preview()
        self.assertEqual((preview.trigger, preview.state), ("preview", "done"), preview.message)
        self.assertEqual(self.partner_state(), before, "the preview created, linked or wrote nothing")
        self.assertFalse(self.connection.contacts_synced_until, "still not imported")
        self.assertFalse(self.connection.last_sync_at)
        lines = {line.sage_contact_id: line for line in preview.preview_line_ids}
        self.assertEqual(lines[ids["linked"]].decision, "link")
        self.assertEqual(lines[ids["linked"]].partner_id.name, "Harbour Joinery Ltd")
        self.assertEqual(lines[ids["ambiguous"]].decision, "ambiguous")
        self.assertEqual(lines[ids["near"]].decision, "near_match")
        self.assertEqual(lines[ids["near"]].partner_id.name, "Oak & Ash Limited")
        self.assertEqual((preview.preview_ambiguous, preview.preview_near_match), (1, 1))
        self.assertEqual(self.counts(preview), {"contacts_linked": 1, "contacts_created": 6,
                                                "contacts_flagged": 2, "contacts_skipped": 0})

        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(self.counts(run), self.counts(preview))
        self.assertEqual(run.contacts_read, preview.contacts_read)

    def test_preview_counts_equal_the_import_in_every_scope_and_across_pages(self):
        # A name linked on page 1 and met again on page 3: the preview must count it as linked.
        self.Partner.create({"name": "Repeat Name Ltd", "is_company": True})
        self.sage_contact("Repeat Name Ltd")
        self.book()
        self.sage_contact("Repeat Name Ltd")
        self.sage_contact("Another Supplier Ltd", kind="VENDOR")
        for scope in ("all", "customers", "invoiced", "link_only"):
            with self.subTest(scope=scope):
                savepoint = self.env.cr.savepoint()
                self.connection.import_scope = scope
                preview = self.preview(sage_page_size=3)
                run = self.sync(sage_page_size=3)
                self.assertEqual(run.state, "done", run.message)
                self.assertEqual(self.counts(preview), self.counts(run))
                self.assertEqual(
                    sorted(preview.preview_line_ids.filtered(lambda line: line.decision == "skipped")
                           .mapped("sage_contact_id")),
                    sorted(run.skipped_ids.mapped("sage_contact_id")))
                self.env.flush_all()
                savepoint.rollback()
                savepoint.close(rollback=False)
                self.env.invalidate_all()

    def test_a_preview_sage_cannot_answer_fails_in_words_and_writes_nothing(self):
        self.book()
        before = self.partner_state()
        self.sandbox.add_fault(status=503, path="/v3.1/contacts", count=50)
        preview = self.preview()
        self.assertEqual(preview.state, "failed")
        self.assertIn("Sage is not answering", preview.message)
        self.assertEqual(self.partner_state(), before)
        self.assertFalse(self.connection.last_error, "a preview does not mark the connection")

    def test_preview_pages_like_the_import_and_counts_its_requests(self):
        for number in range(7):
            self.sage_contact("Paged Contact %s" % number)
        preview = self.preview(sage_page_size=3)
        self.assertEqual((preview.pages_done, preview.pages_expected), (3, 3))
        self.assertEqual(preview.progress, 100.0)
        self.assertEqual(preview.http_requests, 3, "one request per page, none per contact")


class TestScope(FirstImportCase):

    def created_names(self):
        return set(self.Partner.search([("sage_link_method", "=", "imported"), ("parent_id", "=", False)])
                   .mapped("name"))

    def test_all_contacts(self):
        self.book()
        run = self.sync()
        self.assertEqual((run.contacts_created, run.contacts_skipped), (6, 0))

    def test_customers_only_then_a_supplier_becomes_a_customer(self):
        ids = self.book()
        self.connection.import_scope = "customers"
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertNotIn("Bolt Supplies Ltd", self.created_names())
        self.assertNotIn("Quiet Supplier Ltd", self.created_names())
        self.assertIn("Idle Customer Ltd", self.created_names())
        self.assertEqual(set(run.skipped_ids.mapped("sage_contact_id")),
                         {ids["supplier_invoiced"], ids["supplier_idle"]})
        self.assertEqual(set(run.skipped_ids.mapped("reason")), {"not_customer"})
        self.assertEqual(run.contacts_skipped, 2)

        with self.store.lock:
            self.store.update_contact(self.biz, ids["supplier_idle"], {"contact_type_ids": ["CUSTOMER"]})
        self.sync()
        self.assertEqual(self.partner_of(ids["supplier_idle"]).name, "Quiet Supplier Ltd")
        self.assertFalse(self.partner_of(ids["supplier_invoiced"]), "still a supplier: still skipped")
        skipped = self.env["sage.sync.skipped"].sudo().search([("connection_id", "=", self.connection.id)])
        self.assertEqual(skipped.mapped("sage_contact_id"), [ids["supplier_invoiced"]])

    def test_contacts_with_an_invoice_then_a_first_invoice_arrives(self):
        ids = self.book()
        self.connection.import_scope = "invoiced"
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(self.created_names(), {"Quay Logistics Ltd", "Bolt Supplies Ltd"})
        self.assertEqual(self.partner_of(ids["linked"]).name, "Harbour Joinery Ltd", "links are always made")
        self.assertEqual(run.contacts_skipped, 4)
        self.assertEqual(self.partner_of(ids["customer_invoiced"]).sage_invoice_count, 1)
        idle = ids["customer_idle"]
        self.assertIn(idle, run.skipped_ids.mapped("sage_contact_id"))

        self.sage_invoice(idle, amount=250.0)
        second = self.sync()
        self.assertEqual(second.state, "done", second.message)
        partner = self.partner_of(idle)
        self.assertEqual(partner.name, "Idle Customer Ltd", "created once its first invoice came")
        self.assertEqual((partner.sage_invoice_count, partner.sage_outstanding_amount), (1, 250.0))
        self.assertNotIn(idle, self.env["sage.sync.skipped"].sudo().search([]).mapped("sage_contact_id"))

    def test_link_only_creates_nothing_and_a_wider_scope_brings_the_rest(self):
        ids = self.book()
        self.connection.import_scope = "link_only"
        run = self.sync()
        self.assertEqual((run.contacts_linked, run.contacts_created, run.contacts_skipped), (1, 0, 6))
        self.assertEqual(self.created_names(), set())
        self.assertEqual(self.partner_of(ids["linked"]).name, "Harbour Joinery Ltd")

        with self.store.lock:
            self.store.delete_contact(self.biz, ids["supplier_idle"])
        self.connection.import_scope = "all"
        self.sync()
        self.assertEqual(len(self.created_names()), 5, "the skipped contacts arrive, from what Sage gave")
        self.assertNotIn("Quiet Supplier Ltd", self.created_names(), "but not one deleted in Sage since")
        self.assertFalse(self.env["sage.sync.skipped"].sudo().search([("connection_id", "=", self.connection.id)]))


class TestStartWhenReady(FirstImportCase):

    def test_the_cron_waits_for_import_now_when_a_preview_was_asked_for(self):
        self.sage_contact("Waiting Ltd")
        self.assertEqual(self.connection.first_import_mode, "preview", "a preview first, by default")
        self.assertFalse(self.connection._run_sync(trigger="cron"), "the cron does not start the import")
        self.assertFalse(self.env["sage.sync.run"].search([("connection_id", "=", self.connection.id)]))

        self.connection.action_preview_first_import()
        self.assertTrue(self.connection.preview_requested)
        preview = self.connection._run_sync(trigger="cron")
        self.assertEqual(preview.trigger, "preview")
        self.assertFalse(self.connection.preview_requested)
        self.assertFalse(self.connection._run_sync(trigger="cron"), "a preview is not an Import now")

        self.connection.action_import_now()
        self.assertTrue(self.connection.sync_requested)
        run = self.connection._run_sync(trigger="cron")
        self.assertEqual((run.trigger, run.contacts_created), ("cron", 1))
        self.assertFalse(self.connection.first_import_pending)

    def test_auto_mode_imports_at_the_first_cron_run(self):
        self.sage_contact("Eager Ltd")
        self.connection.first_import_mode = "auto"
        run = self.connection._run_sync(trigger="cron")
        self.assertEqual(run.contacts_created, 1)

    def test_only_administrators_preview_or_import_and_internal_flags_are_the_addons(self):
        manager = new_test_user(self.env, "sage_manager_fi",
                                groups="base.group_user,sage_business_cloud.group_sage_manager")
        with self.assertRaises(UserError):
            self.connection.with_user(manager).action_preview_first_import()
        with self.assertRaises(UserError):
            self.connection.with_user(manager).action_import_now()
        admin = new_test_user(self.env, "sage_admin_fi", groups="base.group_user,base.group_system")
        with self.assertRaises(AccessError):
            self.connection.with_user(admin).write({"first_import_approved": True})
        with self.assertRaises(AccessError):
            self.env["sage.sync.preview.line"].with_user(manager).create({"run_id": 1, "decision": "link"})

    def test_settings_show_the_preview_and_offer_import_now(self):
        self.sage_contact("Settings Ltd")
        preview = self.preview()
        settings = self.env["res.config.settings"].create({})
        self.assertTrue(settings.sage_first_import_pending)
        self.assertEqual(settings.sage_preview_run_id, preview)
        self.assertEqual(settings.sage_preview_created, 1)
        action = settings.action_sage_open_preview()
        self.assertEqual(self.env["sage.sync.preview.line"].search(action["domain"]).name, "Settings Ltd")


class TestUndoRights(FirstImportCase):

    def test_only_an_administrator_undoes_a_finished_first_import(self):
        self.sage_contact("Undo Rights Ltd")
        preview = self.preview()
        run = self.sync()
        self.assertTrue(run.may_undo)
        self.assertFalse(preview.may_undo, "a preview created nothing: nothing to undo")
        with self.assertRaises(UserError):
            preview.action_sage_undo()
        manager = new_test_user(self.env, "sage_manager_undo",
                                groups="base.group_user,sage_business_cloud.group_sage_manager")
        with self.assertRaises(UserError):
            run.with_user(manager).action_sage_undo()
        second = self.sync()
        self.assertFalse(second.may_undo, "an incremental run is not a first import")
        dialog = self.env["sage.sync.undo"].browse(run.action_sage_undo()["res_id"])
        self.assertIn("1 partners the import created will be deleted", dialog.summary)


class TestCosts(FirstImportCase):

    def preview_queries(self, contacts):
        for number in range(contacts):
            name = "Cost %s %s Ltd" % (contacts, number)
            self.sage_contact(name, kind="VENDOR" if number % 2 else "CUSTOMER")
            if number % 3 == 0:
                self.Partner.create({"name": name, "is_company": True})
        self.connection.import_scope = "customers"
        self.env.flush_all()
        before = self.env.cr.sql_log_count
        preview = self.preview(sage_page_size=contacts)
        self.assertEqual(preview.contacts_read, contacts)
        return self.env.cr.sql_log_count - before

    def test_the_preview_costs_queries_per_page_not_per_contact(self):
        few = self.preview_queries(5)
        self.sandbox.reset()
        self.connect_to_sandbox(self.connection, self.sandbox.store.business_ids()[0])
        many = self.preview_queries(60)
        self.assertLessEqual(many, few + 3, "60 contacts in a page cost what 5 do")

    def test_settings_show_the_run_in_progress(self):
        run = self.env["sage.sync.run"].create({"connection_id": self.connection.id, "trigger": "manual",
                                                "pages_done": 2, "pages_expected": 8})
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.sage_running_run_id, run)
        self.assertEqual(settings.sage_running_progress, 25.0)
        self.assertEqual(settings.action_sage_open_running()["res_id"], run.id)
