"""Sage links as bindings: written only by the addon, one per partner and business, per company."""

import xmlrpc.client
from datetime import date, timedelta

import odoo
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import SageHttpCase
from .sync_common import SageSyncCase

WRITABLE_BY_NOBODY = [
    ("sage_contact_id", "x" * 32), ("sage_connection_id", 1), ("sage_contact_person_id", "p" * 32),
    ("sage_link_method", "manual"), ("sage_push_state", "pending"), ("sage_push_snapshot", {}),
    ("sage_url", "https://phishing.example/"), ("sage_outstanding_amount", 99.0),
    ("sage_overdue_amount", 99.0), ("sage_invoice_count", 3), ("sage_review", False),
    ("sage_export_generation", 7), ("sage_main_person_id", 1),
]


class TestBindings(SageSyncCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_a = cls.env.company
        cls.company_b = cls.env["res.company"].create({"name": "Company B", "currency_id": cls.env.ref("base.GBP").id})
        cls.env.user.company_ids |= cls.company_b
        cls.editor = new_test_user(cls.env, "sage_editor", groups="base.group_user,base.group_partner_manager",
                                   company_id=cls.company_a.id, company_ids=[cls.company_a.id])
        cls.manager_a = new_test_user(
            cls.env, "sage_manager_a", groups="base.group_user,sage_business_cloud.group_sage_manager",
            company_id=cls.company_a.id, company_ids=[cls.company_a.id])

    def setUp(self):
        super().setUp()
        self.connection_b = self.env["sage.connection"]._get_for_company(self.company_b)
        self.connect_to_sandbox(self.connection_b, self.sandbox.store.business_ids()[1])

    def sync_b(self):
        run = self.env["sage.sync"].with_company(self.company_b)._sync_connection(self.connection_b, trigger="script")
        self.env.invalidate_all()
        return run

    def sage_contact_b(self, name):
        with self.store.lock:
            return self.store.create_contact(
                self.store.business(self.connection_b.business_id),
                {"name": name, "contact_type_ids": ["CUSTOMER"]})["id"]

    def sage_invoice_b(self, contact_id, amount):
        issued = date.today() - timedelta(days=40)
        with self.store.lock:
            return self.store.create_invoice(self.store.business(self.connection_b.business_id), "sales_invoices", {
                "contact_id": contact_id, "date": issued.isoformat(),
                "due_date": (issued + timedelta(days=10)).isoformat(), "status_id": "UNPAID",
                "invoice_lines": [{"description": "Work", "ledger_account_id": "4000", "quantity": 1.0,
                                   "unit_price": amount, "tax_rate_id": "GB_ZERO"}]})["id"]

    # ------------------------------------------------------------------
    def test_no_user_writes_a_sage_field(self):
        sage_id = self.sage_contact("Guarded Ltd")
        self.sync()
        partner = self.partner_of(sage_id)
        self.assertTrue(partner)
        as_editor = partner.with_user(self.editor)
        as_editor.write({"email": "ok@guarded.example"})  # ordinary edits still work
        for fname, value in WRITABLE_BY_NOBODY:
            with self.subTest(field=fname), self.assertRaises(AccessError):
                as_editor.write({fname: value})
            with self.subTest(create=fname), self.assertRaises(AccessError):
                self.env["res.partner"].with_user(self.editor).create({"name": "New", fname: value})
        # Not even an administrator writes a binding or a Sage field directly.
        with self.assertRaises(AccessError):
            partner.sage_binding_ids.with_user(self.env.ref("base.user_admin")).write({"sage_contact_id": "z"})
        with self.assertRaises(AccessError):
            self.env["sage.binding"].with_user(self.editor).create({
                "connection_id": self.connection_b.id, "partner_id": partner.id, "sage_contact_id": "z"})
        self.assertEqual(partner.sage_contact_id, sage_id)

    def test_push_cannot_be_pointed_at_another_business(self):
        """The attack seen on main: a company-A user rebinds an A partner into B's book."""
        victim_id = self.sage_contact_b("Victim Plc")
        self.sync_b()
        partner = self.env["res.partner"].create({"name": "Mine Ltd", "is_company": True,
                                                  "company_id": self.company_a.id})
        with self.assertRaises(AccessError):
            partner.with_user(self.editor).write({"sage_connection_id": self.connection_b.id,
                                                  "sage_contact_id": victim_id})
        # The manager of A cannot act on B's links either.
        victim = self.env["res.partner"].with_company(self.company_b).search([("sage_contact_id", "=", victim_id)])
        self.assertTrue(victim)
        with self.assertRaises(AccessError):
            victim.with_user(self.manager_a).action_sage_unlink()
        self.assertTrue(victim.with_company(self.company_b).sage_contact_id)

    def test_company_a_user_sees_none_of_b(self):
        contact_id = self.sage_contact_b("Only B Ltd")
        self.sage_invoice_b(contact_id, 500.0)
        self.sync_b()
        partner_b = self.env["res.partner"].with_company(self.company_b).search([("sage_contact_id", "=", contact_id)])
        self.assertEqual(partner_b.with_company(self.company_b).sage_overdue_amount, 500.0)
        self.assertEqual(partner_b.company_id, self.company_b, "imported partners belong to their book's company")
        user_a = self.editor
        Partner = self.env["res.partner"].with_user(user_a)
        self.assertFalse(Partner.search([("sage_overdue_amount", ">", 0)]) & partner_b)
        groups = Partner.read_group([], ["sage_outstanding_amount:sum"], [])
        self.assertFalse(groups and groups[0].get("sage_outstanding_amount"))
        self.assertFalse(self.env["sage.invoice"].with_user(user_a).search([]))
        self.assertFalse(self.env["sage.binding"].with_user(user_a).search([("company_id", "=", self.company_b.id)]))
        self.assertFalse(self.env["sage.connection"].with_user(user_a).search([("company_id", "=", self.company_b.id)]))
        self.assertFalse(self.env["sage.sync.run"].with_user(self.manager_a).search(
            [("connection_id", "=", self.connection_b.id)]))

    def test_shared_partner_bound_in_two_businesses(self):
        shared = self.env["res.partner"].create({"name": "Shared Customer Ltd", "is_company": True})
        in_a = self.sage_contact("Shared Customer Ltd")
        in_b = self.sage_contact_b("Shared Customer Ltd")
        self.sage_invoice(in_a, amount=100.0, days_old=40, due_in=10)
        self.sage_invoice_b(in_b, 700.0)
        self.sync()
        self.sync_b()
        shared.invalidate_recordset()
        self.assertEqual(len(shared.sage_binding_ids), 2, "matched by name in each business, never duplicated")
        self.assertEqual(shared.with_company(self.company_a).sage_contact_id, in_a)
        self.assertEqual(shared.with_company(self.company_b).sage_contact_id, in_b)
        self.assertEqual(shared.with_company(self.company_a).sage_overdue_amount, 100.0)
        self.assertEqual(shared.with_company(self.company_b).sage_overdue_amount, 700.0)
        self.assertEqual(shared.with_company(self.company_a).sage_display_invoice_count, 1)
        # An edit is pushed to both books.
        shared.write({"email": "accounts@shared.example"})
        self.assertEqual(set(shared.sage_binding_ids.mapped("push_state")), {"pending"})
        self.env["sage.binding"]._cron_sage_push()
        for connection, sage_id in ((self.connection, in_a), (self.connection_b, in_b)):
            stored = self.store.get("contacts", sage_id, connection.business_id)
            self.assertEqual(stored["main_contact_person"]["email"], "accounts@shared.example")

    def test_every_link_ending_path_leaves_no_stale_person(self):
        company = self.env["res.partner"].create({"name": "Ending Co Ltd", "is_company": True,
                                                  "email": "info@ending.example"})
        pat = self.env["res.partner"].create({"name": "Pat Ending", "parent_id": company.id})
        ann = self.env["res.partner"].create({"name": "Ann Ending", "parent_id": company.id})
        self.sync()  # the first import is done: later runs read Sage's deletions
        for end in ("unlink", "deleted_in_sage"):
            with self.subTest(path=end):
                pat.action_export_to_sage()
                ann.action_export_to_sage()
                self.assertTrue(ann.sage_contact_person_id)
                sage_id = company.sage_contact_id
                generation = ann.sage_export_generation
                if end == "unlink":
                    company.action_sage_unlink()
                else:
                    self.connection._get_client().delete("contacts", sage_id)
                    self.sync()
                self.env.invalidate_all()
                self.assertFalse(company.sage_contact_id)
                self.assertFalse((pat | ann).sage_binding_ids, "the persons' links end with their company's")
                self.assertFalse(ann.sage_contact_person_id)
                self.assertGreater(ann.sage_export_generation, generation)


@tagged("post_install", "-at_install")
class TestBindingsRpc(SageHttpCase):

    def test_xmlrpc_write_refused_and_secret_private(self):
        new_test_user(self.env, "rpc_editor", password="rpc_editor_pw",  # noqa: S106 - test account
                      groups="base.group_user,base.group_partner_manager")
        portal = new_test_user(self.env, "rpc_portal", password="rpc_portal_pw",  # noqa: S106
                               groups="base.group_portal")
        self.env["ir.config_parameter"].sudo().set_param("sage_business_cloud.client_secret", "s3cret-value")
        partner = self.env["res.partner"].create({"name": "Rpc Ltd", "is_company": True})
        url = "http://127.0.0.1:%s/xmlrpc/2/" % odoo.tools.config["http_port"]
        common = xmlrpc.client.ServerProxy(url + "common")
        models = xmlrpc.client.ServerProxy(url + "object")
        db = self.env.cr.dbname
        uid = common.authenticate(db, "rpc_editor", "rpc_editor_pw", {})
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            models.execute_kw(db, uid, "rpc_editor_pw", "res.partner", "write",
                              [[partner.id], {"sage_contact_id": "f" * 32}])
        self.assertIn("written by the Sage Business Cloud addon only", caught.exception.faultString)
        partner.invalidate_recordset()
        self.assertFalse(partner.sage_contact_id)
        with self.assertRaises(xmlrpc.client.Fault):
            models.execute_kw(db, uid, "rpc_editor_pw", "res.partner", "write",
                              [[partner.id], {"sage_overdue_amount": 1000.0}])
        for login, password in (("rpc_editor", "rpc_editor_pw"), ("rpc_portal", "rpc_portal_pw")):
            user_id = common.authenticate(db, login, password, {})
            try:
                defaults = models.execute_kw(db, user_id, password, "res.config.settings", "default_get",
                                             [["sage_client_secret", "sage_client_id"]])
            except xmlrpc.client.Fault:
                defaults = {}
            self.assertNotIn("s3cret-value", str(defaults), login)
        self.assertTrue(portal)

    def test_callback_shows_no_text_from_the_link(self):
        self.authenticate("admin", "admin")
        response = self.url_open("/sage_business_cloud/oauth/callback?error=access_denied"
                                 "&error_description=Call+0900+FAKE+support")
        self.assertEqual(response.status_code, 400)
        self.assertNotIn("0900", response.text)
        self.assertIn("refused the access", response.text)
        response = self.url_open("/sage_business_cloud/oauth/callback?error=Your+account+is+locked")
        self.assertNotIn("locked", response.text)
