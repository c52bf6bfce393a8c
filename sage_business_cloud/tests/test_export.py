"""Export to Sage, end to end against the sandbox: B2C, B2B, companies, twins, retries, refusals."""

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user

from .common import SageTransactionCase


class ExportHelpers:
    """Shared helpers for the export, push and merge tests (a mixin, not a test case)."""

    def setUp(self):
        super().setUp()
        self.addCleanup(self.sandbox.clear_faults)
        self.Partner = self.env["res.partner"]
        self.uk = self.env.ref("base.uk")

    def sage_contacts(self):
        return self.sandbox.store.contacts(self.business_id)

    def sage_contact(self, partner):
        return self.sandbox.store.get("contacts", partner.sage_contact_id, self.business_id)

    def sage_persons(self, contact_id):
        return [p for p in self.sandbox.store.records("contact_persons", self.business_id)
                if self.sandbox.store.get("contacts", contact_id, self.business_id)
                and p["address"]["id"] in self._address_ids(contact_id)]

    def _address_ids(self, contact_id):
        return {a["id"] for a in self.sandbox.store.records("addresses", self.business_id)
                if a["contact"]["id"] == contact_id}

    def requests_to(self, prefix):
        """``{"METHOD path": count}`` of API calls under ``prefix`` since the log was cleared."""
        return {key: count for key, count in self.sandbox.request_log()["by_path"].items()
                if key.split(" ", 1)[1].startswith(prefix)}

    def sage_client(self):
        return self.connection._get_client()

    def run_push(self, **kwargs):
        self.env.flush_all()
        return self.Partner._cron_sage_push(**kwargs)

    def make_company(self, name="Acme Trading Ltd", **values):
        return self.Partner.create(dict({
            "name": name, "is_company": True, "email": "accounts@acme.example",
            "phone": "020 7946 0000", "street": "1 High Street", "city": "London", "zip": "EC1A 1AA",
            "country_id": self.uk.id,
        }, **values))


class TestExport(ExportHelpers, SageTransactionCase):

    def test_b2c_person_exported_as_itself_with_exact_fields(self):
        jane = self.Partner.create({
            "name": "Jane Smith", "email": "jane@example.com, jane.other@example.com",
            "phone": "020 7946 0001 / 0161 496 0000", "mobile": "07700 900123",
            "street": "2 Low Road", "street2": "Flat 3", "city": "Leeds", "zip": "LS1 4AP",
            "country_id": self.uk.id,
        })
        self.assertTrue(jane.sage_can_export)
        action = jane.action_export_to_sage()

        [contact] = self.sage_contacts()
        self.assertEqual(contact["name"], "Jane Smith")
        self.assertEqual([t["id"] for t in contact["contact_types"]], ["CUSTOMER"])
        person = contact["main_contact_person"]
        self.assertEqual((person["name"], person["email"], person["telephone"], person["mobile"]),
                         ("Jane Smith", "jane@example.com", "020 7946 0001", "07700 900123"))
        address = contact["main_address"]
        self.assertEqual(
            (address["address_line_1"], address["address_line_2"], address["city"],
             address["postal_code"], address["country"]["id"]),
            ("2 Low Road", "Flat 3", "Leeds", "LS1 4AP", "GB"))
        self.assertIsNone(contact["delivery_address"])
        # the link, shown on the Sage tab with an Open in Sage link
        self.assertEqual(jane.sage_contact_id, contact["id"])
        self.assertEqual(jane.sage_link_method, "exported")
        self.assertEqual(jane.sage_url, contact["links"][0]["href"])
        self.assertEqual(jane.sage_push_state, "synced")
        self.assertFalse(jane.sage_can_export)
        self.assertEqual(action["tag"], "display_notification")
        self.assertIn("created in Sage", action["params"]["message"])

    def test_company_exports_invoice_and_delivery_addresses(self):
        company = self.make_company()
        self.Partner.create({"name": "Acme accounts", "parent_id": company.id, "type": "invoice",
                             "street": "PO Box 12", "city": "Bristol", "zip": "BS1 1AA",
                             "country_id": self.uk.id})
        self.Partner.create({"name": "Acme warehouse", "parent_id": company.id, "type": "delivery",
                             "street": "3 Dock Road", "city": "Tilbury", "zip": "RM18 7AA",
                             "country_id": self.uk.id})
        company.action_export_to_sage()

        [contact] = self.sage_contacts()
        self.assertEqual(contact["name"], "Acme Trading Ltd")
        self.assertEqual((contact["main_address"]["address_line_1"], contact["main_address"]["city"]),
                         ("PO Box 12", "Bristol"))
        self.assertEqual((contact["delivery_address"]["address_line_1"], contact["delivery_address"]["city"]),
                         ("3 Dock Road", "Tilbury"))
        self.assertEqual(contact["main_contact_person"]["email"], "accounts@acme.example")
        self.assertEqual(contact["main_contact_person"]["telephone"], "020 7946 0000")
        self.assertEqual(company.sage_contact_id, contact["id"])

    def test_b2b_person_of_unlinked_company_exports_the_company(self):
        company = self.make_company()
        bob = self.Partner.create({"name": "Bob Jones", "parent_id": company.id,
                                   "email": "bob@acme.example", "mobile": "07700 900456"})
        self.assertTrue(bob.sage_can_export)
        bob.action_export_to_sage()

        [contact] = self.sage_contacts()
        self.assertEqual(contact["name"], "Acme Trading Ltd")
        person = contact["main_contact_person"]
        # The person's name; the organisation's e-mail and phone, the person's mobile where the
        # organisation has none.
        self.assertEqual((person["name"], person["email"], person["mobile"], person["telephone"]),
                         ("Bob Jones", "accounts@acme.example", "07700 900456", "020 7946 0000"))
        self.assertEqual(company.sage_contact_id, contact["id"])
        self.assertFalse(bob.sage_contact_id, "the person is linked through its company")
        self.assertTrue(bob.sage_commercial_linked)
        self.assertEqual(bob.sage_url, company.sage_url)
        self.assertEqual(company.sage_main_person_id, bob)
        self.assertFalse(bob.sage_can_export)

    def test_b2b_person_of_linked_company_becomes_a_contact_person(self):
        company = self.make_company()
        company.action_export_to_sage()
        carol = self.Partner.create({"name": "Carol White", "parent_id": company.id,
                                     "email": "carol@acme.example", "phone": "020 7946 0999"})
        self.assertTrue(carol.sage_can_export)
        self.sandbox.clear_requests()
        action = carol.action_export_to_sage()

        self.assertEqual(len(self.sage_contacts()), 1, "no new Sage contact")
        self.assertEqual(self.requests_to("/v3.1/contacts").get("POST /v3.1/contacts"), None)
        persons = {p["name"]: p for p in self.sage_persons(company.sage_contact_id)}
        self.assertIn("Carol White", persons)
        self.assertEqual(persons["Carol White"]["email"], "carol@acme.example")
        self.assertEqual(persons["Carol White"]["telephone"], "020 7946 0999")
        self.assertFalse(persons["Carol White"]["is_main_contact"])
        self.assertEqual(carol.sage_contact_person_id, persons["Carol White"]["id"])
        self.assertIn("contact person", action["params"]["message"])
        self.assertFalse(carol.sage_can_export)

    def test_double_export_makes_one_contact(self):
        partner = self.make_company()
        partner.action_export_to_sage()
        self.sandbox.clear_requests()
        action = partner.action_export_to_sage()
        self.assertEqual(len(self.sage_contacts()), 1)
        self.assertEqual(self.sandbox.request_log()["total"], 0, "the second click asks Sage nothing")
        self.assertIn("already linked", action["params"]["message"])

    def test_dropped_connection_on_post_is_retried_once_created(self):
        partner = self.make_company()
        self.sandbox.clear_requests()
        self.sandbox.add_fault(drop=True, count=1, path="/v3.1/contacts", method="POST")
        partner.action_export_to_sage()
        self.assertEqual(self.requests_to("/v3.1/contacts")["POST /v3.1/contacts"], 2)
        self.assertEqual(len(self.sage_contacts()), 1)
        self.assertTrue(partner.sage_contact_id)

    def test_retry_after_a_lost_answer_reuses_the_sage_contact(self):
        """Sage created the contact but Odoo lost the answer (its transaction rolled back)."""
        partner = self.make_company(name="Lost Answer Ltd")

        class LostAnswer(Exception):
            pass

        with self.assertRaises(LostAnswer), self.env.cr.savepoint():
            partner.action_export_to_sage()
            raise LostAnswer
        self.env.invalidate_all()
        self.assertFalse(partner.sage_contact_id)
        [first] = self.sage_contacts()
        # renamed meanwhile: the name search cannot find it, the idempotency id does
        partner.name = "Lost Answer Limited"
        partner.action_export_to_sage()
        [contact] = self.sage_contacts()
        self.assertEqual(contact["id"], first["id"])
        self.assertEqual(partner.sage_contact_id, first["id"])
        self.assertEqual(partner.sage_push_state, "pending", "Sage still shows the old name")
        self.run_push()
        self.assertEqual(self.sage_contact(partner)["name"], "Lost Answer Limited")

    def test_existing_sage_contact_with_the_same_name_is_linked_not_duplicated(self):
        twin = self.sage_client().create("contacts", {"name": "Twin Traders", "contact_type_ids": ["CUSTOMER"]})
        partner = self.make_company(name="Twin Traders", email="hello@twin.example")
        action = partner.action_export_to_sage()
        self.assertEqual(len(self.sage_contacts()), 1)
        self.assertEqual(partner.sage_contact_id, twin["id"])
        self.assertEqual(partner.sage_link_method, "name_match")
        self.assertIn("already had a contact named", action["params"]["message"])
        # Odoo is the source of truth once linked: its details reach the Sage contact
        self.assertEqual(partner.sage_push_state, "pending")
        self.run_push()
        self.assertEqual(self.sage_contact(partner)["main_contact_person"]["email"], "hello@twin.example")

    def test_same_name_linked_to_another_partner_is_not_taken(self):
        first = self.make_company(name="Same Name Ltd")
        first.action_export_to_sage()
        second = self.make_company(name="Same Name Ltd", email="other@same.example")
        second.action_export_to_sage()
        self.assertEqual(len(self.sage_contacts()), 2)
        self.assertNotEqual(first.sage_contact_id, second.sage_contact_id)

    def test_sage_refusal_shows_sages_message_and_links_nothing(self):
        partner = self.Partner.create({"name": "X" * 101, "is_company": True})
        with self.assertRaisesRegex(UserError, r"name is too long \(maximum is 100 characters\)"):
            partner.action_export_to_sage()
        self.assertFalse(partner.sage_contact_id)
        self.assertEqual(self.sage_contacts(), [])

    def test_several_ids_export_the_good_ones_and_list_the_refused(self):
        good = self.make_company(name="Good One Ltd")
        bad = self.Partner.create({"name": "Y" * 101, "is_company": True})
        action = (good | bad).action_export_to_sage()
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("too long", action["params"]["message"])
        self.assertTrue(good.sage_contact_id)
        self.assertFalse(bad.sage_contact_id)
        self.assertEqual([c["name"] for c in self.sage_contacts()], ["Good One Ltd"])

    def test_vendor_exported_as_supplier(self):
        partner = self.make_company(name="Supplies Ltd", sage_contact_type="vendor")
        partner.action_export_to_sage()
        self.assertEqual(self.sage_contact(partner)["contact_types"][0]["id"], "VENDOR")
        customer = self.make_company(name="Buyers Ltd")
        customer.action_export_to_sage()
        self.assertEqual(self.sage_contact(customer)["contact_types"][0]["id"], "CUSTOMER")

    def test_partner_locked_by_another_user_is_refused_without_calling_sage(self):
        partner = self.env.company.partner_id
        with self.env.registry.cursor() as other:
            other.execute("SELECT id FROM res_partner WHERE id = %s FOR NO KEY UPDATE NOWAIT", [partner.id])
            self.sandbox.clear_requests()
            with self.assertRaisesRegex(UserError, "someone else"):
                partner.action_export_to_sage()
            other.rollback()
        self.assertEqual(self.sandbox.request_log()["total"], 0)
        self.assertEqual(self.sage_contacts(), [])

    def test_no_export_button_when_company_not_connected(self):
        partner = self.make_company()
        self.assertTrue(partner.sage_can_export)
        self.connection.sudo().state = "disconnected"
        partner.invalidate_recordset(["sage_can_export"])
        self.assertFalse(partner.sage_can_export)
        with self.assertRaisesRegex(UserError, "not connected"):
            partner.action_export_to_sage()

    def test_person_export_needs_write_access_on_its_company(self):
        """The link is written on the company: a user who may edit the person but not the
        company must not export it (nor reach Sage)."""
        group = self.env["res.groups"].create({"name": "Sage test: may edit people only"})
        self.env["ir.rule"].create({
            "name": "Sage test: write people only", "model_id": self.env.ref("base.model_res_partner").id,
            "groups": [Command.link(group.id)], "domain_force": "[('is_company', '=', False)]",
            "perm_read": False, "perm_write": True, "perm_create": False, "perm_unlink": False,
        })
        user = new_test_user(self.env, login="people_only_user",
                             groups="base.group_user,base.group_partner_manager")
        user.groups_id = [Command.link(group.id)]
        company = self.make_company()
        bob = self.Partner.create({"name": "Bob Jones", "parent_id": company.id, "email": "bob@acme.example"})
        bob.with_user(user).write({"mobile": "07700 900456"})  # the person is his to edit
        with self.assertRaises(AccessError):
            company.with_user(user).write({"comment": "not his"})
        self.sandbox.clear_requests()
        with self.assertRaises(AccessError):
            bob.with_user(user).action_export_to_sage()
        self.assertEqual(self.sandbox.request_log()["total"], 0, "nothing was sent to Sage")
        self.assertEqual(self.sage_contacts(), [])
        self.assertFalse(company.sage_contact_id)
        self.assertFalse(company.sage_main_person_id)
        # with several ids, the person is listed as refused and nothing reaches Sage either
        solo = self.Partner.create({"name": "Solo Person"})
        action = (bob | solo).with_user(user).action_export_to_sage()
        self.assertEqual(action["params"]["type"], "warning")
        self.assertEqual([c["name"] for c in self.sage_contacts()], ["Solo Person"])
        self.assertFalse(company.sage_contact_id)


class TestExportWhenSageReplacesNestedObjects(TestExport):
    """Every export test again, with a Sage whose PUT replaces a nested object whole."""

    def setUp(self):
        super().setUp()
        self.sandbox.set_nested_put("replace")
