"""Edits of linked partners reach Sage through the push cron: what is sent, what costs nothing,
Sage being down, values changed in Sage, and no echo of the sync's own writes."""

from datetime import timedelta

from odoo import fields
from odoo.tools.safe_eval import safe_eval

from .common import SageTransactionCase
from .test_export import ExportHelpers


class TestPush(ExportHelpers, SageTransactionCase):

    def setUp(self):
        super().setUp()
        self.cron = self.env.ref("sage_business_cloud.ir_cron_sage_push")
        self.company = self.make_company()
        self.company.action_export_to_sage()
        self.contact_path = "/v3.1/contacts/" + self.company.sage_contact_id

    def triggers(self):
        return self.env["ir.cron.trigger"].search_count([("cron_id", "=", self.cron.id)])

    def test_edit_marks_pending_triggers_the_cron_and_reaches_sage(self):
        before = self.triggers()
        self.company.write({"name": "Acme Trading Limited", "email": "billing@acme.example",
                            "mobile": "07700 900999", "city": "Manchester", "zip": "M1 1AE"})
        self.assertEqual(self.company.sage_push_state, "pending")
        self.assertEqual(self.triggers(), before + 1, "the push cron is triggered for after the commit")
        self.sandbox.clear_requests()
        self.run_push()

        contact = self.sage_contact(self.company)
        self.assertEqual(contact["name"], "Acme Trading Limited")
        self.assertEqual(contact["main_contact_person"]["email"], "billing@acme.example")
        self.assertEqual(contact["main_contact_person"]["mobile"], "07700 900999")
        self.assertEqual((contact["main_address"]["city"], contact["main_address"]["postal_code"]),
                         ("Manchester", "M1 1AE"))
        self.assertEqual(len(self.sage_contacts()), 1)
        self.assertEqual(self.requests_to("/v3.1/"), {
            "GET " + self.contact_path: 1, "PUT " + self.contact_path: 1})
        self.assertEqual(self.company.sage_push_state, "synced")
        self.assertTrue(self.company.sage_pushed_at)
        self.assertFalse(self.company.sage_push_error)

    def test_unchanged_fields_cost_no_request(self):
        self.company.write({"name": self.company.name, "city": "London", "comment": "<p>A note</p>"})
        self.assertEqual(self.company.sage_push_state, "synced", "nothing Sage holds changed")
        # changed and changed back before the cron ran: still no request
        self.company.city = "Oxford"
        self.assertEqual(self.company.sage_push_state, "pending")
        self.company.city = "London"
        self.sandbox.clear_requests()
        self.run_push()
        self.assertEqual(self.sandbox.request_log()["total"], 0)
        self.assertEqual(self.company.sage_push_state, "synced")

    def test_only_changed_parts_are_sent(self):
        self.company.email = "new@acme.example"
        self.run_push()
        self.company.email = "newer@acme.example"
        self.sandbox.clear_requests()
        self.run_push()
        put = [e for e in self.sandbox.request_log()["log"] if e["method"] == "PUT"]
        self.assertEqual(len(put), 1)
        self.assertEqual(self.sage_contact(self.company)["main_contact_person"]["email"], "newer@acme.example")

    def test_sync_writes_are_not_pushed(self):
        self.company.with_context(sage_no_push=True).write({"name": "Renamed by the sync"})
        self.assertEqual(self.company.sage_push_state, "synced")
        self.sandbox.clear_requests()
        self.run_push()
        self.assertEqual(self.sandbox.request_log()["total"], 0)

    def test_sage_down_keeps_pending_with_backoff_then_completes(self):
        self.sandbox.add_fault(status=503, path=self.contact_path)
        self.company.name = "Acme Renamed Ltd"
        self.run_push()
        self.assertEqual(self.company.sage_push_state, "pending")
        self.assertIn("could not be reached", self.company.sage_push_error)
        self.assertEqual(self.company.sage_push_attempts, 1)
        self.assertGreater(self.company.sage_push_next_at, fields.Datetime.now())
        self.assertEqual(self.sage_contact(self.company)["name"], "Acme Trading Ltd")
        failed = self.env.ref("sage_business_cloud.res_partner_action_sage_push_failed")
        self.assertIn(self.company, self.Partner.search(safe_eval(failed.domain)))
        # not retried before its time
        self.sandbox.clear_requests()
        self.run_push()
        self.assertEqual(self.sandbox.request_log()["total"], 0)
        # Sage is back and the time has come
        self.sandbox.clear_faults()
        self.company.sage_binding_id.sudo().push_next_at = fields.Datetime.now() - timedelta(seconds=1)
        self.run_push()
        self.assertEqual(self.sage_contact(self.company)["name"], "Acme Renamed Ltd")
        self.assertEqual(self.company.sage_push_state, "synced")
        self.assertFalse(self.company.sage_push_error)
        self.assertEqual(self.company.sage_push_attempts, 0)

    def test_sage_refusal_puts_the_partner_in_error(self):
        self.company.name = "Z" * 120
        self.run_push()
        self.assertEqual(self.company.sage_push_state, "error")
        self.assertIn("name is too long", self.company.sage_push_error)
        # fixing it in Odoo sends it again
        self.company.name = "Acme Fixed Ltd"
        self.run_push()
        self.assertEqual(self.company.sage_push_state, "synced")
        self.assertEqual(self.sage_contact(self.company)["name"], "Acme Fixed Ltd")

    def test_odoo_wins_over_a_change_made_in_sage_and_the_chatter_says_what_was_lost(self):
        self.sandbox.time_shift(5)
        self.sage_client().update("contacts", self.company.sage_contact_id,
                                  {"main_address": {"city": "Glasgow"}})
        self.company.city = "York"
        self.run_push()
        self.assertEqual(self.sage_contact(self.company)["main_address"]["city"], "York")
        note = self.company.message_ids[:1]
        self.assertIn("Glasgow", note.body)
        self.assertIn("York", note.body)

    def test_no_overwrite_note_when_sage_was_not_changed(self):
        self.company.city = "York"
        self.run_push()
        self.assertNotIn("replaced values changed in Sage", self.company.message_ids[:1].body or "")

    def test_main_person_and_delivery_address_edits_push_the_company(self):
        bob = self.Partner.create({"name": "Bob Jones", "parent_id": self.company.id, "email": "bob@acme.example"})
        # as if Bob had been exported with the company
        self.company.sage_binding_id.sudo().write({"main_person_id": bob.id, "push_state": "synced"})
        delivery = self.Partner.create({"name": "Dock", "parent_id": self.company.id, "type": "delivery",
                                        "street": "9 Quay", "city": "Hull", "zip": "HU1 1AA"})
        self.assertEqual(self.company.sage_push_state, "pending")
        self.run_push()
        contact = self.sage_contact(self.company)
        self.assertEqual(contact["main_contact_person"]["name"], "Bob Jones")
        self.assertEqual(contact["delivery_address"]["city"], "Hull")
        bob.write({"name": "Robert Jones", "email": "robert@acme.example"})
        delivery.city = "Grimsby"
        self.assertEqual(self.company.sage_push_state, "pending")
        self.run_push()
        contact = self.sage_contact(self.company)
        # The person's name; the organisation's e-mail (the company has one).
        self.assertEqual((contact["main_contact_person"]["name"], contact["main_contact_person"]["email"]),
                         ("Robert Jones", "accounts@acme.example"))
        self.assertEqual(contact["delivery_address"]["city"], "Grimsby")

    def test_added_contact_person_edits_go_to_its_contact_person(self):
        carol = self.Partner.create({"name": "Carol White", "parent_id": self.company.id,
                                     "email": "carol@acme.example"})
        carol.action_export_to_sage()
        carol.email = "carol.white@acme.example"
        self.assertEqual(carol.sage_push_state, "pending")
        self.assertEqual(self.company.sage_push_state, "synced", "the company's Sage values did not change")
        self.sandbox.clear_requests()
        self.run_push()
        person_path = "/v3.1/contact_persons/" + carol.sage_contact_person_id
        self.assertEqual(self.requests_to("/v3.1/"), {"GET " + person_path: 1, "PUT " + person_path: 1})
        person = self.sandbox.store.get("contact_persons", carol.sage_contact_person_id, self.business_id)
        self.assertEqual(person["email"], "carol.white@acme.example")

    def unlinked_by_the_sync(self, partner):
        """What the sync does when Sage deleted the contact: its own write of the link fields."""
        partner.sage_binding_id._sage_end()
        partner.invalidate_recordset()

    def test_pending_partner_with_nothing_to_push_does_not_starve_the_cron(self):
        stuck = self.company
        stuck.city = "Oxford"
        self.assertEqual(stuck.sage_push_state, "pending")
        self.unlinked_by_the_sync(stuck)
        real = self.make_company(name="Real Pending Ltd")
        real.action_export_to_sage()
        real.city = "York"
        self.assertEqual(real.sage_push_state, "pending")
        self.assertLess(stuck.id, real.id, "the stuck partner comes first in the cron's order")
        for _run in range(5):
            before = self.triggers()
            self.run_push(limit=1)
            if self.triggers() == before:
                break
        else:
            self.fail("the push cron keeps triggering itself")
        self.assertEqual(self.sage_contact(real)["main_address"]["city"], "York")
        self.assertEqual(real.sage_push_state, "synced")
        self.assertFalse(stuck.sage_push_state, "nothing can be sent for it: no longer pending")

    def test_push_of_a_partner_unlinked_since_it_was_queued_clears_its_state(self):
        self.company.city = "Oxford"
        binding = self.company.sage_binding_id
        self.unlinked_by_the_sync(self.company)
        self.sandbox.clear_requests()
        self.assertTrue(binding._sage_push_one({}))
        self.assertFalse(self.company.sage_push_state)
        self.assertEqual(self.sandbox.request_log()["total"], 0)

    def test_reset_push_state_forgets_the_holder_and_its_added_persons(self):
        carol = self.Partner.create({"name": "Carol White", "parent_id": self.company.id,
                                     "email": "carol@acme.example"})
        carol.action_export_to_sage()
        bob = self.Partner.create({"name": "Bob Jones", "parent_id": self.company.id})
        self.company.sage_binding_id.sudo().main_person_id = bob
        self.company.city = "Oxford"
        carol.email = "carol.white@acme.example"
        self.assertEqual((self.company | carol).mapped("sage_push_state"), ["pending", "pending"])
        generations = {p.id: p.sage_export_generation for p in self.company | carol}

        ended = self.company.sage_binding_id._sage_end()
        self.env.invalidate_all()

        self.assertEqual(ended.exists(), self.env["sage.binding"], "the company's and Carol's links are gone")
        for partner in (self.company, carol):
            self.assertFalse(partner.sage_push_state)
            self.assertFalse(partner.sage_push_snapshot)
            self.assertGreater(partner.sage_export_generation, generations[partner.id])
        self.assertFalse(carol.sage_contact_person_id)
        self.assertFalse(self.company.sage_main_person_id)
        self.sandbox.clear_requests()
        self.run_push()
        self.assertEqual(self.sandbox.request_log()["total"], 0)

    def test_archiving_or_retyping_without_a_change_for_sage_costs_no_request(self):
        bob = self.Partner.create({"name": "Bob Jones", "parent_id": self.company.id, "email": "bob@acme.example"})
        self.company.sage_binding_id.sudo().main_person_id = bob
        delivery = self.Partner.create({"name": "Dock", "parent_id": self.company.id, "type": "delivery",
                                        "street": "9 Quay", "city": "Hull", "zip": "HU1 1AA"})
        other = self.Partner.create({"name": "Dan Other", "parent_id": self.company.id})
        self.run_push()
        self.assertEqual(self.company.sage_push_state, "synced")
        self.sandbox.clear_requests()
        before = self.triggers()

        self.company.action_archive()
        bob.action_archive()
        delivery.action_archive()
        other.type = "other"
        bob.type = "other"
        self.assertEqual(self.company.sage_push_state, "synced")
        self.run_push()
        (self.company | bob | delivery).action_unarchive()
        self.assertEqual(self.company.sage_push_state, "synced")
        self.run_push()

        self.assertEqual(self.sandbox.request_log()["total"], 0)
        self.assertEqual(self.triggers(), before, "nothing to send: the cron is not even woken")


class TestPushWhenSageReplacesNestedObjects(TestPush):
    """Every push test again, with a Sage whose PUT replaces a nested object whole."""

    def setUp(self):
        super().setUp()
        self.sandbox.set_nested_put("replace")
