"""Sage -> Odoo contacts, end to end against the sandbox: first import, incremental runs,
deletions on both sides, faults midway, and the review of near matches."""

from unittest.mock import patch

from ..models.sage_sync import SageSync
from .sync_common import SageSyncCase


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
        self.assertIn("Created from the Sage contact", quay.message_ids[0].body)
        # the watermark is set once the contacts were all read
        self.assertTrue(self.connection.contacts_synced_until)
        self.assertTrue(self.connection.last_sync_at)

    def test_first_import_costs_per_page_not_per_contact(self):
        with self.store.lock:
            for index in range(30):
                self.store.create_contact(self.biz, {
                    "name": "Bulk Customer %02d Ltd" % index, "contact_type_ids": ["CUSTOMER"],
                    "main_address": {"address_line_1": "%d High St" % index, "city": "Leeds",
                                     "country_id": "GB"},
                    "main_contact_person": {"name": "Person %d" % index, "email": "p%d@x.example" % index},
                })
        for index in range(10):
            self.Partner.create({"name": "Bulk Customer %02d Ltd" % index, "is_company": True})
        self.env.flush_all()
        queries = {}
        original = SageSync._contacts_page

        def counting(engine, state, contacts):
            before = self.cr.sql_log_count
            original(engine, state, contacts)
            queries[len(queries)] = self.cr.sql_log_count - before

        with patch.object(SageSync, "_contacts_page", counting):
            run = self.sync(sage_page_size=10)
        self.assertEqual((run.contacts_linked, run.contacts_created), (10, 20))
        # three pages of contacts: the linking page and the creating pages cost about the same
        self.assertEqual(len(queries), 3)
        self.assertLess(max(queries.values()), 60, queries)
        self.assertLess(abs(queries[1] - queries[2]), 10, queries)
        # 3 pages + the 3 (single-page) invoice listings, no deletions on a first import
        self.assertEqual(run.http_requests, 3 + 2)


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
        # The overlap window re-reads the 12 contacts (3 pages); deletions and invoices: 1 each.
        self.assertLessEqual(self.requests_total() - before, 3 + 1 + 4)

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


class TestInterruptions(SageSyncCase):

    def test_run_interrupted_by_faults_then_completed_without_duplicates(self):
        ids = [self.sage_contact("Storm %02d Ltd" % index) for index in range(12)]
        original = SageSync._contacts_page
        pages = []

        def fail_after_first_page(engine, state, contacts):
            original(engine, state, contacts)
            pages.append(len(contacts))
            if len(pages) == 1:
                # every later call to /contacts fails: more than the client's retries
                self.sandbox.add_fault(status=503, path="/v3.1/contacts")

        with patch.object(SageSync, "_contacts_page", fail_after_first_page):
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

    def test_not_a_duplicate_clears_the_flag(self):
        self.Partner.create({"name": "Gull & Co", "is_company": True})
        sage_id = self.sage_contact("Gull and Co.")
        self.sync()
        created = self.partner_of(sage_id)
        self.assertEqual(created.sage_review, "near_match")
        created.action_sage_clear_review()
        self.assertFalse(created.sage_review or created.sage_duplicate_of_id)
