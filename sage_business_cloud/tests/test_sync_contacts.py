"""Sage -> Odoo contacts, end to end against the sandbox: first import, incremental runs,
deletions on both sides, faults midway, and the review of near matches."""

from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user

from ..models.sage_sync import SageSync
from ..models.sage_sync_contacts import SageSync as SageContactImporter
from ..services import sage_export
from ..services.sage_format import parse_datetime
from ..services.sage_mapping import MappingError
from .sync_common import SageSyncCase

#: Fields of the connection row that the sync writes (only through ``_write_sync_state``).
SYNC_STATE_FIELDS = {
    "contacts_synced_until", "invoices_synced_until", "purchases_synced_until", "sync_requested",
    "last_sync_at", "last_error", "last_error_at",
}


class TestFirstImport(SageSyncCase):

    def test_first_import_links_exact_names_and_creates_the_rest(self):
        existing = self.Partner.create({"name": "  Harbour Joinery Ltd ", "is_company": True})
        twin_a = self.Partner.create({"name": "Twin Bakery Ltd", "is_company": True})
        twin_b = self.Partner.create({"name": "Twin Bakery Ltd", "is_company": True})
        near = self.Partner.create({"name": "Oak & Ash Limited", "is_company": True})
        # A person inside a company is never a name candidate.
        company = self.Partner.create({"name": "Holding Co", "is_company": True})
        self.Partner.create({"name": "Jo Bloggs", "parent_id": company.id})

        exact_id = self.sage_contact("Harbour Joinery Ltd", person="Ann Lee", reference="HARB01")
        twin_id = self.sage_contact("Twin Bakery Ltd")
        near_id = self.sage_contact("OAK AND ASH LTD.", kind="VENDOR")
        person_id = self.sage_contact("Jo Bloggs", person="Jo Bloggs")
        new_id = self.sage_contact(
            "Quay Logistics Ltd", person="Sam Quay", reference="QUAY01",
            main_address={"address_line_1": "1 Dock Road", "city": "Bristol", "postal_code": "BS1 4AA",
                          "country_id": "GB"},
            delivery_address={"address_line_1": "Unit 9", "city": "Avonmouth", "postal_code": "BS11 9AA",
                              "country_id": "GB"},
        )
        with self.store.lock:
            self.store.update_person(self.biz, self.store.get("contacts", new_id, self.business_id)[
                "main_contact_person"]["id"], {"telephone": "0117 000 0000", "email": "sam@quay.example"})

        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertTrue(run.full_import)
        self.assertEqual((run.contacts_read, run.contacts_linked, run.contacts_created, run.contacts_flagged),
                         (5, 1, 4, 2))

        # exact name (whitespace ignored): linked, not duplicated
        self.assertEqual(self.partner_of(exact_id), existing)
        self.assertEqual(existing.sage_link_method, "name_match")
        self.assertEqual(self.Partner.search_count([("name", "ilike", "Harbour Joinery")]), 1)
        self.assertIn("same name", existing.message_ids[0].body)

        # several exact candidates: nothing guessed, created and flagged
        twin = self.partner_of(twin_id)
        self.assertNotIn(twin, twin_a | twin_b)
        self.assertEqual((twin.sage_review, twin.sage_link_method), ("ambiguous", "imported"))
        self.assertFalse(twin_a.sage_contact_id or twin_b.sage_contact_id)

        # near miss: created, flagged as a possible duplicate of the near match
        supplier = self.partner_of(near_id)
        self.assertNotEqual(supplier, near)
        self.assertEqual((supplier.sage_review, supplier.sage_duplicate_of_id), ("near_match", near))
        self.assertEqual(supplier.sage_contact_type, "vendor")

        # a person inside a company was not linked; the contact became an individual
        jo = self.partner_of(person_id)
        self.assertFalse(jo.is_company)
        self.assertFalse(jo.parent_id)

        # created: all the Sage details, the default team, children, chatter note
        quay = self.partner_of(new_id)
        self.assertEqual(quay.team_id, self.team)
        self.assertTrue(quay.is_company)
        self.assertEqual((quay.ref, quay.street, quay.city, quay.zip, quay.country_id.code,
                          quay.sage_contact_type),
                         ("QUAY01", "1 Dock Road", "Bristol", "BS1 4AA", "GB", "customer"))
        self.assertEqual(quay.email, "sam@quay.example")
        self.assertEqual(quay.phone, "0117 000 0000")
        self.assertTrue(quay.sage_url)
        delivery = quay.child_ids.filtered(lambda c: c.type == "delivery")
        self.assertEqual((delivery.street, delivery.city), ("Unit 9", "Avonmouth"))
        person = quay.child_ids.filtered(lambda c: c.type == "contact")
        self.assertEqual((person.name, person.email), ("Sam Quay", "sam@quay.example"))
        # what a child copies from its company, as when a user adds it in Odoo: the address
        # (a contact person only), the language and the commercial fields
        self.assertEqual((person.street, person.city, person.zip, person.country_id.code),
                         ("1 Dock Road", "Bristol", "BS1 4AA", "GB"))
        self.assertEqual((person.lang, delivery.lang), (quay.lang, quay.lang))
        self.assertEqual(person.commercial_partner_id, quay)
        self.assertIn("Created from the Sage contact", quay.message_ids[0].body)
        # the watermark is set once the contacts were all read
        self.assertTrue(self.connection.contacts_synced_until)
        self.assertTrue(self.connection.last_sync_at)

    def test_delivery_address_stays_the_childs_and_vat_is_inherited(self):
        """A Sage contact with only a delivery address: the new company does not take it as its
        own address (it would be pushed to Sage as the main address); a VAT number set later on
        the company reaches its children, as Odoo does for contacts it creates itself."""
        # its only child: the case where Odoo would hand the child's address to the company
        sage_id = self.sage_contact("Depot Only Ltd",
                                    delivery_address={"address_line_1": "Bay 2", "city": "Crewe",
                                                      "country_id": "GB"})
        self.assertEqual(self.sync().state, "done")
        company = self.partner_of(sage_id)
        self.assertFalse(company.street or company.city)
        delivery = company.child_ids
        self.assertEqual((delivery.type, delivery.street, delivery.city), ("delivery", "Bay 2", "Crewe"))
        company.write({"vat": "GB123456789"})
        self.assertEqual(delivery.vat, "GB123456789")

    def _seed_batch(self, prefix, count, matched):
        """``count`` new Sage contacts with a person, both addresses, and ``matched`` of them
        already in Odoo under the same name (linked by name)."""
        with self.store.lock:
            for index in range(count):
                self.store.create_contact(self.biz, {
                    "name": "%s %02d Ltd" % (prefix, index), "contact_type_ids": ["CUSTOMER"],
                    "main_address": {"address_line_1": "%d High St" % index, "city": "Leeds",
                                     "country_id": "GB"},
                    "delivery_address": {"address_line_1": "Unit %d" % index, "city": "Hull",
                                         "country_id": "GB"},
                    "main_contact_person": {"name": "Person %d" % index, "email": "p%d@x.example" % index},
                })
        for index in range(matched):
            self.Partner.create({"name": "%s %02d Ltd" % (prefix, index), "is_company": True,
                                 "street": "%d High St" % index})
        self.env.flush_all()

    def test_first_import_costs_per_page_not_per_contact(self):
        self._seed_batch("Bulk Customer", 30, 10)
        run = self.sync(sage_page_size=10)
        self.assertEqual((run.contacts_linked, run.contacts_created), (10, 20))
        # 3 pages + the (single-page) listings of sales and purchase invoices and credit notes, quotes
        # and estimates; no deletions nor payments on a first import
        self.assertEqual(run.http_requests, 3 + 6)

    def test_a_run_records_how_long_it_waited_for_sage(self):
        """An administrator reading a slow run can tell Sage's share from Odoo's."""
        self._seed_batch("Slow Answer", 3, 0)
        self.sandbox.add_fault(delay=0.4, path="/v3.1/contacts", method="GET", count=1)
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertGreaterEqual(run.wait_seconds, 0.4)
        self.assertLess(run.wait_seconds, run.duration)

    def test_run_cost_does_not_grow_with_the_page(self):
        """A page of 10 new contacts and a page of 40 cost the same number of queries."""
        self._seed_batch("Seed", 3, 1)
        self.sync()

        def run_cost(prefix, count, matched):
            # The overlap window re-reads the earlier contacts too (linked: nothing to do).
            self._seed_batch(prefix, count, matched)
            before = self.cr.sql_log_count
            run = self.sync()
            self.assertEqual(run.state, "done", run.message)
            self.assertEqual((run.contacts_linked, run.contacts_created), (matched, count - matched))
            return self.cr.sql_log_count - before

        small = run_cost("Small Batch", 10, 3)
        large = run_cost("Large Batch", 40, 12)
        # Slack: the connection's watermark writes (one per stream, 11 streams) are coalesced by the
        # ORM or not, depending on whether the two runs start in the same second.
        self.assertLessEqual(abs(large - small), 4 + 5, (small, large))

    def test_exact_name_lookup_uses_the_trim_name_index(self):
        self.cr.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'res_partner_sage_trim_name_index'")
        self.assertIn("trim", self.cr.fetchone()[0].lower())
        self.cr.execute("SET LOCAL enable_seqscan = off")
        try:
            self.cr.execute(
                "EXPLAIN SELECT trim(p.name), p.id FROM res_partner p WHERE trim(p.name) = ANY(%s)",
                [["Harbour Joinery Ltd", "Quay Logistics Ltd"]],
            )
            plan = "\n".join(row[0] for row in self.cr.fetchall())
        finally:
            self.cr.execute("SET LOCAL enable_seqscan = on")
        self.assertIn("res_partner_sage_trim_name_index", plan)


class TestNameMatching(SageSyncCase):

    def test_two_sage_contacts_with_one_name_are_not_guessed(self):
        existing = self.Partner.create({"name": "Redstart Ltd", "is_company": True})
        first, second = self.sage_contact("Redstart Ltd"), self.sage_contact("Redstart Ltd")
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual((run.contacts_linked, run.contacts_created, run.contacts_flagged), (0, 2, 2))
        self.assertFalse(existing.sage_contact_id, "which of the two is it? nothing is guessed")
        for sage_id in (first, second):
            created = self.partner_of(sage_id)
            self.assertNotEqual(created, existing)
            self.assertEqual((created.sage_review, created.sage_duplicate_of_id, created.sage_link_method),
                             ("ambiguous", existing, "imported"))
            self.assertIn("review it", created.message_ids[0].body)

    def test_later_contact_named_like_a_linked_partner_is_flagged(self):
        existing = self.Partner.create({"name": "Whinchat Ltd", "is_company": True})
        first = self.sage_contact("Whinchat Ltd")
        self.sync()
        self.assertEqual(self.partner_of(first), existing)
        self.sandbox.time_shift(10)
        second = self.sage_contact("Whinchat Ltd")
        run = self.sync()
        self.assertEqual((run.contacts_created, run.contacts_flagged), (1, 1))
        created = self.partner_of(second)
        self.assertEqual((created.sage_review, created.sage_duplicate_of_id), ("near_match", existing))
        self.assertEqual(existing.sage_contact_id, first)

    def test_sage_contacts_sharing_a_name_unknown_to_odoo_are_mirrored_without_review(self):
        first, second = self.sage_contact("Goldcrest Ltd"), self.sage_contact("Goldcrest Ltd")
        run = self.sync()
        self.assertEqual((run.contacts_created, run.contacts_flagged), (2, 0), run.message)
        self.sandbox.time_shift(10)
        third = self.sage_contact("Goldcrest Ltd")
        run = self.sync()
        self.assertEqual((run.contacts_created, run.contacts_flagged), (1, 0), run.message)
        created = self.partner_of(first) | self.partner_of(second) | self.partner_of(third)
        self.assertEqual(len(created), 3)
        self.assertFalse(any(created.mapped("sage_review")), "nothing in Odoo was there to be duplicated")

    def test_same_name_on_two_pages_is_flagged_not_linked_twice(self):
        existing = self.Partner.create({"name": "Stonechat Ltd", "is_company": True})
        first, second = self.sage_contact("Stonechat Ltd"), self.sage_contact("Stonechat Ltd")
        self.sync(sage_page_size=1)
        # the first page links by name; the second sees that name linked already
        self.assertEqual(self.partner_of(first), existing)
        self.assertEqual(self.partner_of(second).sage_duplicate_of_id, existing)
        self.assertTrue(self.partner_of(second).sage_review)


class TestPushSnapshot(SageSyncCase):
    """Partners the sync links or creates remember Sage's values: a later edit pushes only it."""

    def requests_to(self, path):
        return {key: count for key, count in self.sandbox.request_log()["by_path"].items() if path in key}

    def test_partner_linked_by_name_keeps_sage_email_and_phone_on_an_unrelated_edit(self):
        gb = self.env.ref("base.uk")
        partner = self.Partner.create({  # no postcode in Odoo: Sage's must survive the push
            "name": "Merlin Tiles Ltd", "is_company": True, "street": "1 Kiln Lane", "city": "Stoke",
            "country_id": gb.id,
        })
        sage_id = self.sage_contact("Merlin Tiles Ltd", person="Pat Merlin", main_address={
            "address_line_1": "1 Kiln Lane", "city": "Stoke", "postal_code": "ST1 1AA", "country_id": "GB"})
        with self.store.lock:
            person_id = self.store.get("contacts", sage_id, self.business_id)["main_contact_person"]["id"]
            self.store.update_person(self.biz, person_id, {"email": "pat@merlin.example",
                                                           "telephone": "01782 000000"})
        run = self.sync()
        self.assertEqual(run.contacts_linked, 1, run.message)
        self.assertEqual((partner.sage_link_method, partner.email, partner.phone), ("name_match", False, False))
        self.assertTrue(partner.sage_push_snapshot)
        contact_path = "/v3.1/contacts/" + sage_id

        # an edit that changes nothing Sage holds: not pending, no request
        partner.write({"city": "Stoke", "comment": "<p>Good payer</p>"})
        self.assertNotEqual(partner.sage_push_state, "pending")
        self.sandbox.clear_requests()
        self.env["res.partner"]._cron_sage_push()
        self.assertEqual(self.requests_total(), 0)

        # an unrelated pushed field: only the address goes; Sage's e-mail and phone survive
        partner.street = "2 Kiln Lane"
        self.assertEqual(partner.sage_push_state, "pending")
        self.env["res.partner"]._cron_sage_push()
        self.assertEqual(partner.sage_push_state, "synced", partner.sage_push_error)
        self.assertEqual(self.requests_to(contact_path), {"GET " + contact_path: 1, "PUT " + contact_path: 1})
        contact = self.store.get("contacts", sage_id, self.business_id)
        self.assertEqual(contact["main_address"]["address_line_1"], "2 Kiln Lane")
        self.assertEqual(contact["main_address"]["postal_code"], "ST1 1AA", "only the street was sent")
        self.assertEqual((contact["main_contact_person"]["email"], contact["main_contact_person"]["telephone"]),
                         ("pat@merlin.example", "01782 000000"))
        # the next edit compares with the merged snapshot: still one part, one request
        partner.street = "3 Kiln Lane"
        self.sandbox.clear_requests()
        self.env["res.partner"]._cron_sage_push()
        self.assertEqual(self.requests_to(contact_path), {"GET " + contact_path: 1, "PUT " + contact_path: 1})
        contact = self.store.get("contacts", sage_id, self.business_id)
        self.assertEqual((contact["main_address"]["address_line_1"], contact["main_address"]["city"],
                          contact["main_address"]["postal_code"]), ("3 Kiln Lane", "Stoke", "ST1 1AA"))

    def test_created_partner_snapshot_matches_what_odoo_holds(self):
        sage_id = self.sage_contact(
            "Linnet Freight Ltd", person="Lee Linnet", reference="LIN01",
            main_address={"address_line_1": "1 Quay", "city": "Hull", "postal_code": "HU1 1AA",
                          "country_id": "GB"},
            delivery_address={"address_line_1": "Shed 4", "city": "Goole", "country_id": "GB"},
        )
        self.sync()
        partner = self.partner_of(sage_id)
        self.assertTrue(partner.sage_push_snapshot)
        binding = partner.sage_binding_id
        self.assertEqual(sage_export.changes(binding._sage_push_values(), partner.sage_push_snapshot), {})
        partner.write({"ref": "LIN02"})  # not a pushed field
        partner.write({"city": "Hull"})
        self.assertNotEqual(partner.sage_push_state, "pending")


class TestIncremental(SageSyncCase):

    def test_second_run_without_changes_is_cheap_and_changes_nothing(self):
        for index in range(12):
            self.sage_contact("Steady %02d Ltd" % index)
        self.sync(sage_page_size=5)
        count = self.Partner.search_count([("sage_contact_id", "!=", False)])
        before = self.requests_total()
        run = self.sync(sage_page_size=5)
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual((run.contacts_created, run.contacts_linked, run.contacts_ignored), (0, 0, 0))
        self.assertEqual(self.Partner.search_count([("sage_contact_id", "!=", False)]), count)
        # The overlap window re-reads the 12 contacts (3 pages); deleted contacts, then the changed
        # and the deleted sales and purchase invoices and credit notes, quotes, estimates and
        # payments: 1 each.
        self.assertLessEqual(self.requests_total() - before, 3 + 1 + 8 + 2 + 1)

    def test_new_edited_and_deleted_contacts(self):
        kept_id = self.sage_contact("Kestrel Print Ltd")
        gone_id = self.sage_contact("Gannet Roofing Ltd")
        self.sync()
        kept, gone = self.partner_of(kept_id), self.partner_of(gone_id)
        self.sage_invoice(gone_id, status="DRAFT")
        self.sync()
        self.assertEqual(len(gone.sage_invoice_ids), 1)
        with self.store.lock:
            # Sage refuses to delete a contact with transactions: drop its draft first.
            self.store.delete_invoice(self.biz, "sales_invoices", gone.sage_invoice_ids.sage_id)
            self.sandbox.time_shift(5)
        # edits in Sage to a linked contact, a deletion, and a new contact
        kept.name = "Kestrel Print Limited (Odoo name)"
        with self.store.lock:
            self.store.update_contact(self.biz, kept_id, {"name": "Kestrel Printing"})
            self.store.delete_contact(self.biz, gone_id)
        new_id = self.sage_contact("Heron Catering Ltd")

        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual((run.contacts_created, run.contacts_ignored, run.contacts_unlinked), (1, 1, 1))
        self.assertIn("Odoo keeps its own values", run.message)
        self.assertEqual(kept.name, "Kestrel Print Limited (Odoo name)")
        self.assertTrue(self.partner_of(new_id))
        # the partner of the deleted contact stays, unlinked, without invoices, with a note
        self.assertTrue(gone.exists())
        self.assertFalse(gone.sage_contact_id)
        self.assertFalse(gone.sage_invoice_ids)
        self.assertIn("deleted in Sage", gone.message_ids[0].body)

    def test_archived_partner_stays_linked(self):
        sage_id = self.sage_contact("Wren Textiles Ltd")
        self.sync()
        partner = self.partner_of(sage_id)
        partner.active = False
        with self.store.lock:
            self.sandbox.time_shift(5)
            self.store.update_contact(self.biz, sage_id, {"notes": "touched"})
        run = self.sync()
        self.assertEqual(run.contacts_created, 0)
        self.assertEqual(self.partner_of(sage_id), partner)

    def test_partner_deleted_in_odoo_stays_deleted_until_restored(self):
        sage_id = self.sage_contact("Plover Motors Ltd")
        self.sage_invoice(sage_id, amount=80)
        self.sync()
        self.partner_of(sage_id).unlink()
        remembered = self.env["sage.deleted.contact"].search([("sage_contact_id", "=", sage_id)])
        self.assertEqual(remembered.name, "Plover Motors Ltd")
        with self.store.lock:
            self.sandbox.time_shift(5)
            self.store.update_contact(self.biz, sage_id, {"notes": "changed in Sage"})
        run = self.sync()
        self.assertEqual(run.contacts_created, 0)
        self.assertFalse(self.partner_of(sage_id))

        remembered.action_restore()
        run = self.sync()
        restored = self.partner_of(sage_id)
        self.assertTrue(restored, run.message)
        self.assertEqual(restored.sage_invoice_ids.mapped("total_amount"), [80.0])

    def test_deleted_in_sage_by_the_user_is_not_remembered(self):
        sage_id = self.sage_contact("Snipe Design Ltd")
        self.sync()
        self.partner_of(sage_id).with_context(sage_deleted_in_sage=True).unlink()
        self.assertFalse(self.env["sage.deleted.contact"].search([("sage_contact_id", "=", sage_id)]))

    def test_unmappable_contact_is_an_error_and_is_retried(self):
        good_id = self.sage_contact("Lapwing Software Ltd")
        bad_id = self.sage_contact("Curlew Brewing Ltd", main_address={"address_line_1": "1 Rue", "country_id": "FR"})
        # Odoo does not know this country code: the contact cannot be mapped.
        self.env["res.country"].search([("code", "=", "FR")]).code = "XF"
        run = self.sync()
        self.assertEqual(run.state, "partial")
        self.assertEqual(run.error_ids.mapped("sage_id"), [bad_id])
        self.assertIn("country", run.error_ids.reason)
        self.assertTrue(self.partner_of(good_id))
        self.assertFalse(self.partner_of(bad_id))

        self.env["res.country"].search([("code", "=", "XF")]).code = "FR"
        run = self.sync()  # nothing changed in Sage: the retry list brings it back
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(self.partner_of(bad_id).country_id.code, "FR")


    def test_malformed_timestamp_is_an_error_of_one_contact(self):
        self.assertRaises(MappingError, parse_datetime, "yesterday at noon")
        self.assertRaises(MappingError, parse_datetime, 12)
        good_id = self.sage_contact("Dipper Ltd")
        linked_id = self.sage_contact("Linked Clock Ltd")
        self.sync()
        self.sandbox.time_shift(10)
        with self.store.lock:
            self.store.update_contact(self.biz, linked_id, {"notes": "touched"})
        bad_id = self.sage_contact("Bad Clock Two Ltd")
        original = SageContactImporter._contacts_page

        def malformed(engine, state, contacts):
            for contact in contacts:
                if contact["id"] in (bad_id, linked_id):
                    contact["updated_at"] = "not a date"
            return original(engine, state, contacts)

        with patch.object(SageContactImporter, "_contacts_page", malformed):
            run = self.sync()
        self.assertEqual(run.state, "partial", run.message)
        self.assertEqual(sorted(run.error_ids.mapped("sage_id")), sorted([bad_id, linked_id]))
        self.assertIn("updated_at", run.error_ids[0].reason)
        self.assertTrue(self.partner_of(good_id))
        self.assertFalse(self.partner_of(bad_id))
        self.assertTrue(self.connection.contacts_synced_until)
        # the next run reads it again by id and Sage's own (valid) timestamp maps
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertTrue(self.partner_of(bad_id))


class TestInterruptions(SageSyncCase):

    def test_a_run_whose_process_died_is_closed_by_the_next_run(self):
        # what a SIGKILL leaves behind: a run record still "running", its lock long gone
        ghost = self.env["sage.sync.run"].create({"connection_id": self.connection.id, "trigger": "cron"})
        self.assertEqual(ghost.state, "running")
        run = self.sync()
        self.assertEqual(run.state, "done")
        self.assertEqual(ghost.state, "failed")
        self.assertIn("interrupted", ghost.message)
        self.assertTrue(ghost.finished_at)

    def test_run_interrupted_by_faults_then_completed_without_duplicates(self):
        ids = [self.sage_contact("Storm %02d Ltd" % index) for index in range(12)]
        # every call to /contacts after the first page fails: more than the client's retries
        # (pages read ahead fail the same way)
        self.sandbox.add_fault(status=503, path="/v3.1/contacts", method="GET", after=1)
        run = self.sync(sage_page_size=5)
        self.sandbox.clear_faults()
        self.assertEqual(run.state, "failed")
        self.assertIn("next run", run.message)
        self.assertEqual(run.contacts_created, 5)
        self.assertFalse(self.connection.contacts_synced_until)
        self.assertFalse(self.connection.last_sync_at)
        self.assertTrue(self.connection.last_error)

        run = self.sync(sage_page_size=5)
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(run.contacts_created, 7)
        for sage_id in ids:
            self.assertEqual(len(self.partner_of(sage_id)), 1)
        self.assertFalse(self.connection.last_error)

    def test_dropped_connection_on_invoices_keeps_contacts_and_invoice_watermark(self):
        sage_id = self.sage_contact("Tern Engineering Ltd")
        self.sage_invoice(sage_id)
        self.sandbox.add_fault(drop=True, path="/v3.1/sales_invoices")
        run = self.sync()
        self.sandbox.clear_faults()
        self.assertEqual(run.state, "failed")
        self.assertTrue(self.connection.contacts_synced_until)
        self.assertFalse(self.connection.invoices_synced_until)
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(len(self.partner_of(sage_id)), 1)
        self.assertEqual(len(self.partner_of(sage_id).sage_invoice_ids), 1)

    def test_lost_grant_marks_the_connection_for_reconnect(self):
        self.sage_contact("Avocet Ltd")
        self.sandbox.revoke_grants()
        self.sandbox.expire_access_tokens()
        run = self.sync()
        self.assertEqual(run.state, "failed")
        self.assertEqual(self.connection.state, "needs_reconnect")
        # the token refresh marked it; the sync does not mark it a second time
        activities = self.env["mail.activity"].search([
            ("res_model", "=", "sage.connection"), ("res_id", "=", self.connection.id),
            ("activity_type_id", "=", self.env.ref("sage_business_cloud.mail_activity_sage_reconnect").id),
        ])
        admins = self.env.ref("base.group_system").users.filtered(
            lambda u: not u.share and self.env.company in u.company_ids)
        self.assertTrue(admins)
        self.assertEqual(sorted(activities.user_id.ids), sorted(admins.ids))
        self.assertEqual(len(activities), len(admins), "exactly one activity per administrator")

    def test_sync_writes_the_connection_row_only_through_write_sync_state(self):
        Connection = type(self.connection)
        original_write, original_state = Connection.write, Connection._write_sync_state
        inside, direct, routed = [], [], []

        def write(records, vals):
            if SYNC_STATE_FIELDS & set(vals) and not inside:
                direct.append(dict(vals))
            return original_write(records, vals)

        def write_sync_state(records, vals):
            inside.append(True)
            routed.extend(vals)
            try:
                return original_state(records, vals)
            finally:
                inside.pop()

        self.sage_contact("Bunting Ltd")
        self.connection.sync_requested = True
        with patch.object(Connection, "write", write), \
                patch.object(Connection, "_write_sync_state", write_sync_state):
            self.sync()
            self.connection.exclude_supplier_invoices = True
            self.sync()  # resets the purchases watermark
            self.sandbox.add_fault(status=503, path="/v3.1/contacts")
            run = self.sync()  # fails: last_error
        self.assertEqual(run.state, "failed")
        self.assertEqual(direct, [])
        self.assertLessEqual({"sync_requested", "contacts_synced_until", "invoices_synced_until",
                              "purchases_synced_until", "last_sync_at", "last_error", "last_error_at"},
                             set(routed))
        self.assertFalse(self.connection.sync_requested)
        self.assertFalse(self.connection.purchases_synced_until)
        self.assertTrue(self.connection.last_error)

    def test_failure_while_recording_the_result_closes_the_run(self):
        self.sage_contact("Brambling Ltd")
        with patch.object(SageSync, "_finish", side_effect=RuntimeError("disk full")):
            run = self.sync()
        self.assertEqual(run.state, "failed")
        self.assertIn("disk full", run.message)
        self.assertTrue(run.finished_at)

    def test_cron_goes_on_with_other_companies_when_one_fails(self):
        other_company = self.env["res.company"].create({"name": "Second Books Ltd"})
        self.env.user.company_ids |= other_company
        other = self.env["sage.connection"]._get_for_company(other_company)
        self.connect_to_sandbox(other, self.sandbox.store.business_ids()[1])
        self.assertEqual(other.state, "connected")
        # Both first imports may start by themselves (no preview asked for).
        (self.connection | other).write({"first_import_mode": "auto"})
        original = SageSync._finish
        calls = []

        def finish_fails_once(engine, state, failure, clock):
            calls.append(state.connection)
            if len(calls) == 1:
                raise RuntimeError("cannot record")
            return original(engine, state, failure, clock)

        with patch.object(SageSync, "_finish", finish_fails_once):
            self.env["sage.connection"]._cron_sync()
        self.assertEqual(len(calls), 2, "the second company was synced too")
        runs = self.env["sage.sync.run"].search([("connection_id", "in", (self.connection | other).ids)])
        self.assertEqual(sorted(runs.mapped("state")), ["done", "failed"])
        self.assertNotIn("running", runs.mapped("state"))


class TestReview(SageSyncCase):

    def test_link_near_match_to_the_existing_partner(self):
        existing = self.Partner.create({"name": "Puffin Foods Limited", "is_company": True})
        sage_id = self.sage_contact("Puffin Foods Ltd", person="Mo Puffin")
        self.sage_invoice(sage_id)
        self.sync()
        created = self.partner_of(sage_id)
        self.assertEqual(created.sage_duplicate_of_id, existing)

        created.action_sage_link_existing()
        self.assertFalse(created.exists())
        self.assertEqual(existing.sage_contact_id, sage_id)
        self.assertFalse(existing.sage_review)
        self.assertEqual(len(existing.sage_invoice_ids), 1)
        self.assertFalse(self.env["sage.deleted.contact"].search([("sage_contact_id", "=", sage_id)]))
        # the next sync neither recreates nor forgets it
        run = self.sync()
        self.assertEqual(run.contacts_created, 0)
        self.assertEqual(self.partner_of(sage_id), existing)

    def test_merge_only_partners_the_sync_flagged(self):
        manager = new_test_user(self.env, login="sage_links", groups=(
            "base.group_user,base.group_partner_manager,sage_business_cloud.group_sage_manager"))
        # an arbitrary partner pointed at another one: not created by the sync, not flagged
        victim = self.Partner.create({"name": "Victim Ltd", "is_company": True})
        target = self.Partner.create({"name": "Target Ltd", "is_company": True})
        victim.sage_duplicate_of_id = target
        with self.assertRaises(UserError):
            victim.with_user(manager).action_sage_link_existing()
        # linked by name (not created by the sync), even when flagged
        matched = self.Partner.create({"name": "Matched Ltd", "is_company": True})
        self.sage_contact("Matched Ltd")
        self.sync()
        matched.sudo().write({"sage_review": "near_match", "sage_duplicate_of_id": target.id})
        with self.assertRaises(UserError):
            matched.with_user(manager).action_sage_link_existing()
        self.assertTrue(victim.exists() and matched.exists() and target.exists())

    def test_merge_needs_write_access_to_both_partners(self):
        reviewer = new_test_user(self.env, login="sage_reader",
                                 groups="base.group_user,sage_business_cloud.group_sage_manager")
        existing = self.Partner.create({"name": "Siskin Foods Limited", "is_company": True})
        sage_id = self.sage_contact("Siskin Foods Ltd")
        self.sync()
        created = self.partner_of(sage_id)
        self.assertEqual(created.sage_duplicate_of_id, existing)
        with self.assertRaises(AccessError):
            created.with_user(reviewer).action_sage_link_existing()
        self.assertTrue(created.exists())
        self.assertFalse(existing.sage_contact_id)

    def test_not_a_duplicate_clears_the_flag(self):
        self.Partner.create({"name": "Gull & Co", "is_company": True})
        sage_id = self.sage_contact("Gull and Co.")
        self.sync()
        created = self.partner_of(sage_id)
        self.assertEqual(created.sage_review, "near_match")
        created.action_sage_clear_review()
        self.assertFalse(created.sage_review or created.sage_duplicate_of_id)
