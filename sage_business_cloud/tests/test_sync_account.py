"""The whole account: credit notes, quotes and estimates, balance and credit position."""

from datetime import date, timedelta

from odoo.exceptions import AccessError
from odoo.tests import new_test_user

from ..services.sage_api import SageService
from ..services.sage_mapping import MappingError, credit_values
from .sync_common import SageSyncCase

LINE = {"description": "Work", "ledger_account_id": "4000", "quantity": 1.0, "tax_rate_id": "GB_ZERO"}


class SageAccountCase(SageSyncCase):

    def old_contact(self, name, **extra):
        """A Sage contact last changed an hour ago: the overlap window of the next runs misses it."""
        with self.store.lock:
            return self.store.create_contact(self.biz, {"name": name, "contact_type_ids": ["CUSTOMER"], **extra},
                                             ts=self.store.clock.now() - 3600)["id"]

    def sage_document(self, resource, contact_id, amount, **extra):
        """Create a credit note, quote or estimate of ``amount`` (no tax) dated today."""
        lines = {"sales_credit_notes": "credit_note_lines", "purchase_credit_notes": "credit_note_lines",
                 "sales_quotes": "quote_lines", "sales_estimates": "estimate_lines"}[resource]
        data = {"contact_id": contact_id, "date": date.today().isoformat(),
                lines: [{**LINE, "unit_price": amount}], **extra}
        if resource in ("sales_quotes", "sales_estimates"):
            data.setdefault("expiry_date", (date.today() + timedelta(days=30)).isoformat())
        with self.store.lock:
            return self.store.create_invoice(self.biz, resource, data)["id"]

    def sage_allocate(self, contact_id, invoice_id, note_id, amount):
        """Allocate ``amount`` of a credit note to an invoice, through the API."""
        self.connection._get_client().create("contact_allocations", {
            "transaction_type_id": "CUSTOMER_ALLOCATION", "contact_id": contact_id,
            "date": date.today().isoformat(),
            "allocated_artefacts": [{"artefact_id": invoice_id, "amount": amount},
                                    {"artefact_id": note_id, "amount": -amount}]})

    def sage_pay_on_account(self, contact_id, amount):
        """A payment allocated to no invoice (through the API)."""
        self.connection._get_client().create("contact_payments", {
            "contact_id": contact_id, "date": date.today().isoformat(), "total_amount": amount})

    def sage_balance(self, contact_id):
        """The balance Sage states for the contact."""
        return float(self.connection._get_client().get("contacts", contact_id, show_balance=True)["balance"])

    def set_credit(self, contact_id, **values):
        with self.store.lock:
            self.store.update_contact(self.biz, contact_id, values)


class TestCreditNotesAndBalance(SageAccountCase):

    def test_invoice_part_allocated_credit_note_and_payment_on_account(self):
        customer_id = self.sage_contact("Puffin Joinery Ltd")
        invoice_id = self.sage_invoice(customer_id, 300.0)
        note_id = self.sage_document("sales_credit_notes", customer_id, 120.0)
        self.sage_allocate(customer_id, invoice_id, note_id, 50.0)
        self.sage_pay_on_account(customer_id, 40.0)
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        partner = self.partner_of(customer_id)
        # Sage: invoice 250 still to pay, 70 of credit not allocated, 40 paid on account
        self.assertEqual(self.sage_balance(customer_id), 140.0)
        self.assertTrue(partner.sage_balance_known)
        self.assertEqual(partner.sage_balance, 140.0)
        # the figures: invoices' outstanding less the credit notes' (a payment on account is in no document)
        self.assertEqual(partner.sage_outstanding_amount, 250.0 - 70.0)
        self.assertEqual(partner.sage_invoice_count, 1)
        rows = partner.sage_display_sale_invoice_ids
        self.assertEqual(sorted(rows.mapped("invoice_type")), ["sale", "sale_credit"])
        note = rows.filtered(lambda r: r.invoice_type == "sale_credit")
        self.assertEqual((note.total_amount, note.outstanding_amount, note.status), (120.0, 70.0, "PART_PAID"))
        self.assertTrue(note.number.startswith("SCN-"))
        self.assertFalse(note.is_overdue or note.aged_bucket)

    def test_incremental_runs_follow_new_credit_notes_payments_and_deletions(self):
        customer_id = self.old_contact("Guillemot Glass Ltd")
        self.sage_invoice(customer_id, 200.0)
        self.sync()
        partner = self.partner_of(customer_id)
        self.assertEqual((partner.sage_balance, partner.sage_outstanding_amount), (200.0, 200.0))

        # Neither a payment on account nor a credit note changes the contact itself in the sandbox:
        # the run still reads its new balance.
        note_id = self.sage_document("sales_credit_notes", customer_id, 30.0)
        self.sage_pay_on_account(customer_id, 25.0)
        before = self.requests_total()
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(run.contacts_read, 0, "the contact itself did not change")
        self.assertEqual(self.requests_total() - before, 13 + 1, "the listings, and one GET of the contact")
        self.assertEqual(partner.sage_balance, self.sage_balance(customer_id))
        self.assertEqual(partner.sage_balance, 200.0 - 30.0 - 25.0)
        self.assertEqual(partner.sage_outstanding_amount, 170.0)

        with self.store.lock:  # a credit note still in draft is deleted, a posted one voided
            self.store.delete_invoice(self.biz, "sales_credit_notes", note_id, void_reason="typo")
        self.sync()
        self.assertEqual(partner.sage_outstanding_amount, 200.0)
        self.assertEqual(partner.sage_balance, 200.0 - 25.0)

    def test_when_sage_also_changes_the_contact_its_listing_brings_the_balance(self):
        self.sandbox.configure(balance_changes_contact="yes")
        self.addCleanup(self.sandbox.configure, balance_changes_contact="no")
        customer_id = self.old_contact("Cormorant Tiles Ltd")
        self.sync()
        self.sage_invoice(customer_id, 90.0)
        self.sage_pay_on_account(customer_id, 15.0)
        before = self.requests_total()
        run = self.sync()
        self.assertEqual(run.contacts_read, 1)
        self.assertEqual(self.requests_total() - before, 13, "no GET: the listing gave the balance")
        self.assertEqual(self.partner_of(customer_id).sage_balance, 75.0)

    def test_many_changed_balances_cost_one_listing_not_one_get_each(self):
        ids = [self.old_contact("Auk %s Ltd" % index) for index in range(3)]
        self.sync()
        for contact_id in ids:
            self.sage_pay_on_account(contact_id, 10.0)
        before = self.requests_total()
        run = self.sync(sage_credit_read_limit=2, sage_page_size=2)
        self.assertEqual(run.state, "done", run.message)
        log = self.sandbox.request_log()["log"][-(self.requests_total() - before):]
        self.assertFalse([entry for entry in log if entry["path"].startswith("/v3.1/contacts/")])
        # 13 listings (contact_payments in 2 pages of 2) + every contact's position in 2 pages
        self.assertEqual(self.requests_total() - before, 13 + 1 + 2)
        self.assertEqual([self.partner_of(contact_id).sage_balance for contact_id in ids], [-10.0] * 3)

    def test_supplier_credit_notes_stay_with_the_supplier_group(self):
        supplier_id = self.sage_contact("Skua Timber Ltd", kind="VENDOR")
        self.sage_invoice(supplier_id, 500.0, purchase=True)
        self.sage_document("purchase_credit_notes", supplier_id, 80.0, vendor_reference="CN-80")
        self.sync()
        plain = new_test_user(self.env, login="plain_credit", groups="base.group_user")
        buyer = new_test_user(self.env, login="buyer_credit",
                              groups="base.group_user,sage_business_cloud.group_sage_supplier_invoices")
        supplier = self.partner_of(supplier_id)
        self.assertEqual(supplier.with_user(buyer).sage_payable_amount, 500.0 - 80.0)
        self.assertEqual(sorted(supplier.with_user(buyer).sage_display_purchase_invoice_ids.mapped("number")),
                         ["CN-80", "SUP-500"])
        self.assertFalse(self.env["sage.invoice"].with_user(plain).search([("partner_id", "=", supplier.id)]))
        self.assertEqual(supplier.with_user(buyer).sage_balance, 420.0)
        self.assertFalse(supplier.with_user(plain).sage_balance_known, "what we owe a supplier is private")

        self.connection.exclude_supplier_invoices = True
        run = self.sync()
        self.assertFalse(self.env["sage.invoice"].search([("partner_id", "=", supplier.id)]))
        self.assertEqual(supplier.with_user(buyer).sage_payable_amount, 0.0)
        self.assertEqual(run.http_requests, 13 - 4, "no purchase invoice nor credit note listing")


class TestQuotes(SageAccountCase):

    def test_quotes_are_listed_and_not_counted(self):
        customer_id = self.sage_contact("Shag Boats Ltd")
        self.sage_invoice(customer_id, 100.0)
        self.sage_document("sales_quotes", customer_id, 500.0)
        self.sage_document("sales_estimates", customer_id, 200.0, status_id="DRAFT")
        self.sage_document("sales_quotes", customer_id, 50.0, status_id="ACCEPTED",
                           expiry_date=(date.today() - timedelta(days=3)).isoformat())
        self.sage_document("sales_quotes", customer_id, 70.0, status_id="DECLINED")
        expired = (date.today() - timedelta(days=1)).isoformat()
        self.sage_document("sales_quotes", customer_id, 90.0, expiry_date=expired)
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        partner = self.partner_of(customer_id)
        self.assertEqual(partner.sage_outstanding_amount, 100.0, "quotes are not owed")
        self.assertEqual(partner.sage_invoice_count, 1)
        quotes = partner.sage_display_quote_ids
        self.assertEqual(len(quotes), 5)
        self.assertEqual(sorted(quotes.mapped("invoice_type")), ["estimate", "quote", "quote", "quote", "quote"])
        self.assertEqual(quotes.filtered(lambda q: q.total_amount == 90.0).expiry_date.isoformat(), expired)
        self.assertEqual(sorted(quotes.filtered("is_open_quote").mapped("total_amount")), [50.0, 200.0, 500.0])
        self.assertEqual((partner.sage_open_quote_amount, partner.sage_open_quote_count), (750.0, 3))
        self.assertEqual(partner.sage_display_open_quote_amount, 750.0)
        self.assertFalse(partner.sage_display_sale_invoice_ids & quotes)
        self.assertFalse(partner.sage_display_invoice_ids & quotes, "quotes are not invoices")
        plain = new_test_user(self.env, login="plain_quotes", groups="base.group_user")
        self.assertEqual(len(partner.with_user(plain).sage_display_quote_ids), 5, "sales documents: every user")
        self.assertEqual(self.env["sage.invoice"].search_count(
            [("partner_id", "=", partner.id), ("is_open_quote", "=", True)]), 3)
        self.assertEqual(self.env["sage.invoice"].search_count(
            [("partner_id", "=", partner.id), ("is_open_quote", "=", False)]), 3)
        # the quote of 500 ends tomorrow + 29: on that day it no longer counts
        later = date.today() + timedelta(days=31)
        partner.with_context(date=later)._sage_recompute_invoice_figures(self.connection)
        self.assertEqual(partner.sage_open_quote_amount, 50.0)

    def test_a_quote_deleted_in_sage_goes_at_the_daily_check(self):
        customer_id = self.sage_contact("Eider Sails Ltd")
        kept = self.sage_document("sales_quotes", customer_id, 300.0)
        gone = self.sage_document("sales_quotes", customer_id, 100.0)
        self.sync()
        partner = self.partner_of(customer_id)
        self.assertEqual(partner.sage_open_quote_amount, 400.0)
        with self.store.lock:
            self.store.delete_invoice(self.biz, "sales_quotes", gone)
        self.sync()
        self.assertEqual(partner.sage_open_quote_amount, 400.0, "Sage lists no deleted quotes")
        self.connection.credit_checked_on = date.today() - timedelta(days=1)
        self.sync()
        self.assertEqual(partner.sage_display_quote_ids.mapped("sage_id"), [kept])
        self.assertEqual(partner.sage_open_quote_amount, 300.0)


class TestCreditPosition(SageAccountCase):

    def test_credit_values_read_sages_strings_and_leave_the_unknown_unknown(self):
        values = credit_values({"balance": "110.50", "credit_limit": "100.0", "credit_days": "30",
                                "credit_terms": "date_from_invoice", "contact_types": [{"id": "CUSTOMER"}]})
        self.assertEqual(values, {"balance": 110.5, "balance_known": True, "credit_limit": 100.0, "credit_days": 30,
                                  "credit_terms": "date_from_invoice", "is_customer": True})
        values = credit_values({"balance": None, "credit_terms": "next_full_moon", "contact_types": [{"id": "VENDOR"}]})
        self.assertEqual((values["balance_known"], values["credit_terms"], values["is_customer"]),
                         (False, False, False))
        with self.assertRaises(MappingError):
            credit_values({"balance": "lots"})

    def test_over_credit_limit_filter_finds_exactly_those_over(self):
        over_id = self.old_contact("Gannet Haulage Ltd")
        under_id = self.sage_contact("Tern Bakery Ltd")
        unlimited_id = self.sage_contact("Fulmar Foods Ltd")
        self.sage_contact("Petrel Print Ltd")  # owes nothing
        for contact_id in (over_id, under_id, unlimited_id):
            self.sage_invoice(contact_id, 300.0)
        with self.store.lock:  # set an hour ago too
            record = self.biz.get("contacts", over_id)
            record.update(credit_limit=100.0, credit_days=30, credit_terms="date_from_invoice")
        self.set_credit(under_id, credit_limit=1000.0, credit_terms="month_end_invoice", credit_days=14)
        self.set_credit(unlimited_id, credit_terms="date_from_invoice")
        # Petrel, already linked in Odoo: the importer keeps Odoo's values but stores Sage's credit facts
        self.sync()
        Partner = self.env["res.partner"]
        self.assertEqual(Partner.search([("sage_over_credit_limit", "=", True)]), self.partner_of(over_id))
        over = self.partner_of(over_id)
        self.assertTrue(over.sage_over_credit_limit)
        self.assertEqual((over.sage_credit_limit, over.sage_balance, over.sage_available_credit),
                         (100.0, 300.0, -200.0))
        self.assertEqual(over.sage_payment_terms, "30 days from the invoice date")
        under = self.partner_of(under_id)
        self.assertEqual(under.sage_available_credit, 700.0)
        self.assertEqual(under.sage_payment_terms, "14 days after the end of the invoice month")
        unlimited = self.partner_of(unlimited_id)
        self.assertFalse(unlimited.sage_over_credit_limit)
        self.assertEqual((unlimited.sage_credit_limit, unlimited.sage_available_credit), (0.0, 0.0))
        self.assertEqual(unlimited.sage_payment_terms,
                         "Days from the invoice date (the business's default credit days)")
        self.assertIn(under, Partner.search([("sage_over_credit_limit", "=", False)]))

        # Sage lowers a limit of a linked contact, and a payment brings another under its limit.
        self.set_credit(under_id, credit_limit=200.0)
        self.sage_pay_on_account(over_id, 250.0)
        run = self.sync()
        self.assertEqual(run.contacts_read, 4 - 1, "Gannet did not change: its position is read by id")
        self.assertEqual(Partner.search([("sage_over_credit_limit", "=", True)]), under)
        self.assertEqual(self.partner_of(over_id).sage_balance, 50.0)

    def test_a_person_shows_its_company_position_and_nobody_writes_it(self):
        company_id = self.sage_contact("Kittiwake Ltd", person="Ana Kitt")
        self.sage_invoice(company_id, 300.0)
        self.set_credit(company_id, credit_limit=100.0)
        self.sync()
        company = self.partner_of(company_id)
        person = company.child_ids.filtered(lambda p: p.name == "Ana Kitt")
        self.assertEqual((person.sage_balance, person.sage_over_credit_limit), (300.0, True))
        self.assertNotIn(person, self.env["res.partner"].search([("sage_over_credit_limit", "=", True)]))
        manager = new_test_user(self.env, login="credit_manager",
                                groups="base.group_partner_manager,sage_business_cloud.group_sage_manager")
        with self.assertRaises(AccessError):
            company.with_user(manager).write({"sage_balance": 0.0})
        with self.assertRaises(AccessError):
            company.sage_binding_ids.with_user(manager).write({"balance": 0.0, "credit_limit": 0.0})
        self.assertEqual(company.sage_binding_ids.balance, 300.0)

    def test_a_contact_linked_by_hand_shows_its_position_at_once(self):
        contact_id = self.old_contact("Shearwater Marine Ltd", credit_limit=50.0)
        self.sage_invoice(contact_id, 80.0)
        partner = self.env["res.partner"].create({"name": "Shearwater (Odoo)", "is_company": True})
        contact = SageService(self.connection._get_client()).get_contact(contact_id)
        partner._sage_link_by_hand(self.connection, contact)
        self.assertEqual((partner.sage_balance, partner.sage_credit_limit), (80.0, 50.0))
        self.assertTrue(partner.sage_over_credit_limit)

    def test_incremental_run_with_nothing_new_costs_one_request_per_listing(self):
        customer_id = self.sage_contact("Razorbill Tools Ltd")
        self.sage_invoice(customer_id, 10.0)
        self.sage_document("sales_credit_notes", customer_id, 5.0)
        self.sage_document("sales_quotes", customer_id, 5.0)
        self.sync()
        before = self.requests_total()
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        log = self.sandbox.request_log()["log"][-(self.requests_total() - before):]
        paths = sorted(entry["path"].removeprefix("/v3.1") + (
            "?deleted" if "deleted_since" in (entry["query"] or "") else "") for entry in log)
        self.assertEqual(paths, sorted([
            "/contacts", "/contacts?deleted", "/sales_invoices", "/sales_invoices?deleted",
            "/purchase_invoices", "/purchase_invoices?deleted", "/sales_credit_notes",
            "/sales_credit_notes?deleted", "/purchase_credit_notes", "/purchase_credit_notes?deleted",
            "/sales_quotes", "/sales_estimates", "/contact_payments"]))
        self.assertEqual(run.http_requests, 13)
