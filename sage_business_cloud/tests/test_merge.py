"""Links that survive merges, manual link/unlink, Delete in Sage, and who may do them."""

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user

from .common import SageTransactionCase
from .test_export import ExportHelpers


class TestMergeLinkDelete(ExportHelpers, SageTransactionCase):

    def setUp(self):
        super().setUp()
        self.wizard = self.env["base.partner.merge.automatic.wizard"]

    def add_invoice(self, partner, sage_id="inv-1", outstanding=100.0):
        return self.env["sage.invoice"].create({
            "partner_id": partner.id, "connection_id": self.connection.id, "sage_id": sage_id,
            "sage_contact_id": partner.sage_contact_id, "invoice_type": "sale", "number": sage_id,
            "currency_id": self.connection._sage_currency().id, "total_amount": outstanding,
            "outstanding_amount": outstanding, "status": "UNPAID", "date": "2025-01-01",
            "due_date": "2099-01-01",
        })

    # ------------------------------------------------------------------ merge
    def test_merge_linked_into_unlinked_keeps_the_link_moves_invoices_and_pushes_the_name(self):
        linked = self.make_company(name="Acme Ltd (Sage)")
        linked.action_export_to_sage()
        sage_id = linked.sage_contact_id
        invoice = self.add_invoice(linked)
        survivor = self.make_company(name="Acme Ltd")
        own = self.env["sage.invoice"].create({
            **invoice.copy_data()[0], "partner_id": survivor.id, "sage_id": "inv-2",
            "outstanding_amount": 50.0, "total_amount": 50.0})
        if hasattr(linked, "_sage_recompute_invoice_figures"):
            (linked | survivor)._sage_recompute_invoice_figures()

        self.wizard._merge([survivor.id, linked.id], survivor)

        self.assertFalse(linked.exists())
        self.assertEqual(survivor.sage_contact_id, sage_id)
        self.assertEqual(survivor.sage_connection_id, self.connection)
        self.assertTrue(survivor.sage_url)
        self.assertEqual((invoice | own).partner_id, survivor)
        if "sage_outstanding_amount" in survivor._fields:
            self.assertEqual(survivor.sage_outstanding_amount, 150.0, "figures of both, recomputed")
        self.assertFalse(self.env["sage.deleted.contact"].search([("sage_contact_id", "=", sage_id)]),
                         "the merged-away partner must not be remembered as deleted")
        self.assertEqual(survivor.sage_push_state, "pending")
        self.run_push()
        self.assertEqual(self.sage_contact(survivor)["name"], "Acme Ltd")
        self.assertEqual(len(self.sage_contacts()), 1)

    def test_merge_unlinked_into_linked_keeps_the_destination_link(self):
        linked = self.make_company(name="Keep Me Ltd")
        linked.action_export_to_sage()
        sage_id = linked.sage_contact_id
        other = self.make_company(name="Keep Me Limited")
        self.wizard._merge([linked.id, other.id], linked)
        self.assertEqual(linked.sage_contact_id, sage_id)
        self.assertFalse(other.exists())

    def test_merge_of_two_partners_linked_to_different_sage_contacts_is_refused(self):
        first = self.make_company(name="First Ltd")
        second = self.make_company(name="Second Ltd")
        (first | second).action_export_to_sage()
        with self.assertRaises(UserError) as caught:
            self.wizard._merge([first.id, second.id], first)
        message = caught.exception.args[0]
        for partner in (first, second):
            self.assertIn(partner.name, message)
            self.assertIn(partner.sage_contact_id, message)
        self.assertTrue(second.exists())

    # ------------------------------------------------------------------ Delete in Sage
    def test_delete_in_sage_when_sage_allows_it(self):
        partner = self.make_company(name="Short Lived Ltd")
        partner.action_export_to_sage()
        sage_id = partner.sage_contact_id
        partner.action_sage_delete()
        self.assertEqual(self.sage_contacts(), [])
        self.assertTrue(partner.exists())
        self.assertFalse(partner.sage_contact_id)
        self.assertIn(sage_id, partner.message_ids[:1].body)
        # a new export is a new Sage contact, not the deleted one
        partner.action_export_to_sage()
        self.assertEqual(len(self.sage_contacts()), 1)
        self.assertNotEqual(partner.sage_contact_id, sage_id)

    def test_delete_in_sage_and_odoo(self):
        partner = self.make_company(name="Gone Ltd")
        partner.action_export_to_sage()
        sage_id = partner.sage_contact_id
        partner.with_context(sage_delete_partner=True).action_sage_delete()
        self.assertFalse(partner.exists())
        self.assertEqual(self.sage_contacts(), [])
        self.assertFalse(self.env["sage.deleted.contact"].search([("sage_contact_id", "=", sage_id)]))

    def test_delete_of_a_contact_already_gone_from_sage_ends_the_link(self):
        """A first click whose answer was lost deleted it already (or someone did, in Sage)."""
        kept = self.make_company(name="Already Gone Ltd")
        gone = self.make_company(name="Already Gone Too Ltd")
        (kept | gone).action_export_to_sage()
        for partner in (kept, gone):
            self.sage_client().delete("contacts", partner.sage_contact_id)
        action = kept.action_sage_delete()
        self.assertIn("already deleted in Sage", action["params"]["message"])
        self.assertTrue(kept.exists())
        self.assertFalse(kept.sage_contact_id)
        gone.with_context(sage_delete_partner=True).action_sage_delete()
        self.assertFalse(gone.exists())

    def test_delete_refused_when_the_contact_has_transactions(self):
        partner = self.make_company(name="Has Invoices Ltd")
        partner.action_export_to_sage()
        self.sage_client().create("sales_invoices", {
            "contact_id": partner.sage_contact_id, "date": "2025-01-01",
            "invoice_lines": [{"description": "Work", "ledger_account_id": "4000", "quantity": 1,
                               "unit_price": 10}]})
        with self.assertRaisesRegex(UserError, "has transactions"):
            partner.with_context(sage_delete_partner=True).action_sage_delete()
        self.assertEqual(len(self.sage_contacts()), 1)
        self.assertTrue(partner.exists())
        self.assertTrue(partner.sage_contact_id)

    # ------------------------------------------------------------------ manual link / unlink
    def test_link_by_hand_then_unlink(self):
        sage = self.sage_client().create("contacts", {"name": "Bolt Hardware Ltd", "contact_type_ids": ["CUSTOMER"]})
        partner = self.make_company(name="Bolt Hardware")
        action = partner.action_sage_link_wizard()
        wizard = self.env["sage.link.wizard"].with_context(**action["context"]).create({})
        self.assertEqual(wizard.search_text, "Bolt Hardware")
        wizard.action_search()
        self.assertEqual(wizard.line_ids.mapped("sage_id"), [sage["id"]])
        wizard.line_ids.action_link()
        self.assertEqual(partner.sage_contact_id, sage["id"])
        self.assertEqual(partner.sage_link_method, "manual")
        self.assertEqual(partner.sage_push_state, "pending", "Odoo's details go to the linked contact")

        # the same Sage contact cannot be linked to a second partner
        other = self.make_company(name="Bolt Hardware (old)")
        wizard = self.env["sage.link.wizard"].create({"partner_id": other.id, "search_text": "Bolt"})
        wizard.action_search()
        self.assertEqual(wizard.line_ids.linked_partner_id, partner)
        with self.assertRaisesRegex(UserError, "already linked to"):
            wizard.line_ids.action_link()

        partner.action_sage_unlink()
        self.assertFalse(partner.sage_contact_id)
        self.assertFalse(partner.sage_push_state)
        self.assertIn("Unlinked from Sage", partner.message_ids[:1].body)
        self.assertEqual(len(self.sage_contacts()), 1, "the Sage contact stays")

    def test_plain_user_cannot_link_unlink_or_delete_by_hand(self):
        user = new_test_user(self.env, login="plain_sage_user", groups="base.group_user,base.group_partner_manager")
        partner = self.make_company(name="Guarded Ltd")
        partner.action_export_to_sage()
        as_user = partner.with_user(user)
        with self.assertRaises(AccessError):
            self.env["sage.link.wizard"].with_user(user).create({"partner_id": partner.id})
        with self.assertRaises(AccessError):
            as_user.action_sage_link_wizard()
        with self.assertRaises(AccessError):
            as_user.action_sage_unlink()
        with self.assertRaises(AccessError):
            as_user.action_sage_delete()
        self.assertTrue(partner.sage_contact_id)
        # but a plain user may export
        other = self.make_company(name="Open Ltd").with_user(user)
        self.assertTrue(other.sage_can_export)
        other.action_export_to_sage()
        self.assertTrue(other.sage_contact_id)

    # ------------------------------------------------------------------ unlink forgets the invoices
    def assert_no_sage_invoices_left(self, partner):
        self.assertFalse(self.env["sage.invoice"].search([("partner_id", "=", partner.id)]))
        self.assertEqual((partner.sage_outstanding_amount, partner.sage_overdue_amount,
                          partner.sage_invoice_count), (0.0, 0.0, 0))
        self.assertFalse(partner.sage_oldest_overdue_date)
        # the domain of the "Sage: overdue" filter
        self.assertNotIn(partner, self.Partner.search([("sage_invoice_ids", "any", [
            ("invoice_type", "=", "sale"), ("is_overdue", "=", True)])]), "not under “Sage: overdue”")

    def linked_with_overdue_invoice(self, name):
        partner = self.make_company(name=name)
        partner.action_export_to_sage()
        invoice = self.add_invoice(partner, sage_id="inv-" + name)
        invoice.due_date = "2020-01-01"
        partner._sage_recompute_invoice_figures()
        self.assertEqual(partner.sage_overdue_amount, 100.0)
        return partner

    def test_unlink_removes_the_sage_invoices_and_figures(self):
        partner = self.linked_with_overdue_invoice("Unlinked Debts Ltd")
        carol = self.Partner.create({"name": "Carol White", "parent_id": partner.id})
        carol.action_export_to_sage()
        self.assertTrue(carol.sage_contact_person_id)
        partner.action_sage_unlink()
        self.assertFalse(partner.sage_contact_id)
        self.assertFalse(carol.sage_contact_person_id, "its added person is detached too")
        self.assert_no_sage_invoices_left(partner)
        # a later link to another Sage contact starts from its own invoices only
        partner.action_export_to_sage()
        self.assertEqual(partner.sage_invoice_count, 0)

    def test_delete_in_sage_removes_the_sage_invoices_and_figures(self):
        partner = self.linked_with_overdue_invoice("Deleted Debts Ltd")
        partner.action_sage_delete()
        self.assertFalse(partner.sage_contact_id)
        self.assert_no_sage_invoices_left(partner)
