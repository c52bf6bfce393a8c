"""Sage invoices on the partner, end to end against the sandbox: figures, payments, supplier
invoices on and off, access of a plain user, waiting invoices and the cost of opening a form."""

from datetime import date, timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user

from ..models.sage_sync_invoices import SageSync as SageInvoiceImporter
from .sync_common import SageSyncCase

FORM_SPEC = {
    "sage_display_outstanding_amount": {}, "sage_display_overdue_amount": {},
    "sage_display_next_due_date": {}, "sage_display_oldest_overdue_date": {},
    "sage_display_invoice_count": {}, "sage_other_currency_summary": {}, "sage_currency_id": {"fields": {}},
    "sage_display_invoice_ids": {"fields": {
        "number": {}, "date": {}, "due_date": {}, "total_amount": {}, "outstanding_amount": {},
        "status_label": {}, "payment_state": {}, "is_overdue": {}, "sage_url": {}, "status": {},
        "currency_id": {"fields": {"display_name": {}}},
    }},
}


class TestInvoiceFigures(SageSyncCase):

    def _customer_with_every_kind_of_invoice(self):
        customer = self.sage_contact("Kittiwake Consulting Ltd")
        paid = self.sage_invoice(customer, 100, days_old=60, due_in=30)
        part = self.sage_invoice(customer, 200, days_old=50, due_in=30)        # overdue since 20 days
        self.sage_invoice(customer, 300, days_old=5, due_in=30)                # due in 25 days
        self.sage_invoice(customer, 400, days_old=40, due_in=30)               # overdue since 10 days
        void = self.sage_invoice(customer, 500, days_old=45, due_in=30)
        self.sage_invoice(customer, 600, days_old=2, due_in=10, status="DRAFT")
        self.sage_pay(customer, paid, 100)
        self.sage_pay(customer, part, 50)
        with self.store.lock:
            self.store.delete_invoice(self.biz, "sales_invoices", void, void_reason="Raised in error")
        return customer

    def test_figures_of_a_customer_with_every_kind_of_invoice(self):
        sage_id = self._customer_with_every_kind_of_invoice()
        other = self.sage_contact("Shag Harbour Ltd")
        self.sage_invoice(other, 1000, days_old=5, due_in=30)
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual((run.invoices_read, run.invoices_stored), (7, 7))
        partner = self.partner_of(sage_id)
        today = date.today()
        self.assertEqual(len(partner.sage_invoice_ids), 6)
        self.assertEqual(partner.sage_outstanding_amount, 150 + 300 + 400)
        self.assertEqual(partner.sage_overdue_amount, 150 + 400)
        self.assertEqual(partner.sage_next_due_date, today + timedelta(days=25))
        self.assertEqual(partner.sage_oldest_overdue_date, today - timedelta(days=20))
        self.assertEqual(partner.sage_invoice_count, 4)  # void and draft are not invoices to chase
        by_total = {inv.total_amount: inv for inv in partner.sage_invoice_ids}
        self.assertEqual(
            [(by_total[t].payment_state, by_total[t].is_overdue) for t in (100, 200, 300, 400)],
            [("paid", False), ("partial", True), ("not_paid", False), ("not_paid", True)],
        )
        self.assertEqual((by_total[500].status, by_total[600].status), ("VOID", "DRAFT"))
        self.assertFalse(by_total[500].is_overdue)
        self.assertTrue(by_total[200].sage_url.endswith("/sales_invoices/" + by_total[200].sage_id))
        self.assertEqual(by_total[200].number, "SI-2")

        # the contacts list: filter "Sage: overdue" and sort by overdue amount
        overdue = self.Partner.search([("sage_invoice_ids.is_overdue", "=", True)])
        self.assertEqual(overdue, partner)
        ranked = self.Partner.search([("sage_contact_id", "!=", False)], order="sage_overdue_amount desc")
        self.assertEqual(ranked[0], partner)

    def test_overdue_follows_today_without_a_sync(self):
        sage_id = self.sage_contact("Fulmar Ltd")
        self.sage_invoice(sage_id, 100, days_old=10, due_in=15)
        self.sync()
        partner = self.partner_of(sage_id)
        self.assertEqual(partner.sage_overdue_amount, 0)
        invoice = partner.sage_invoice_ids
        later = date.today() + timedelta(days=7)
        self.assertTrue(invoice.with_context(date=later).is_overdue)
        self.assertFalse(invoice.is_overdue)
        # the daily refresh (run by the first sync of each day) updates the stored figures
        partner.with_context(date=later)._sage_recompute_invoice_figures()
        self.assertEqual(partner.sage_overdue_amount, 100)

    def test_stale_figures_are_refreshed_even_when_the_sync_fails(self):
        sage_id = self.sage_contact("Gadwall Ltd")
        self.sage_invoice(sage_id, 130, days_old=40, due_in=30)
        self.sync()
        partner = self.partner_of(sage_id)
        self.assertEqual(partner.sage_overdue_amount, 130)
        # figures computed on an earlier day, before the invoice fell due
        partner.sudo().write({"sage_overdue_amount": 0.0, "sage_oldest_overdue_date": False,
                       "sage_figures_date": date.today() - timedelta(days=11)})
        # ... and this is the first run of a new day (the last one ran on that earlier day)
        self.connection.sudo().figures_refreshed_on = date.today() - timedelta(days=11)
        self.sandbox.add_fault(status=503, path="/v3.1/contacts")
        run = self.sync()
        self.assertEqual(run.state, "failed")
        self.assertEqual(partner.sage_overdue_amount, 130)
        self.assertEqual(partner.sage_figures_date, date.today())
        self.assertEqual(self.connection.figures_refreshed_on, date.today())

    def test_invoice_paid_in_sage_shows_paid_after_the_next_sync(self):
        sage_id = self.sage_contact("Guillemot Ltd")
        invoice_id = self.sage_invoice(sage_id, 250, days_old=40, due_in=30)
        self.sync()
        partner = self.partner_of(sage_id)
        self.assertEqual(partner.sage_overdue_amount, 250)
        self.sandbox.time_shift(5)
        self.sage_pay(sage_id, invoice_id, 250)
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(partner.sage_invoice_ids.payment_state, "paid")
        self.assertEqual((partner.sage_outstanding_amount, partner.sage_overdue_amount), (0, 0))
        self.assertFalse(self.Partner.search([("sage_invoice_ids.is_overdue", "=", True)]))

    def test_deleted_invoice_is_removed(self):
        sage_id = self.sage_contact("Razorbill Ltd")
        draft = self.sage_invoice(sage_id, 70, status="DRAFT")
        self.sync()
        partner = self.partner_of(sage_id)
        self.assertEqual(len(partner.sage_invoice_ids), 1)
        self.sandbox.time_shift(5)
        with self.store.lock:
            self.store.delete_invoice(self.biz, "sales_invoices", draft)
        run = self.sync()
        self.assertEqual(run.invoices_removed, 1)
        self.assertFalse(partner.sage_invoice_ids)

    def test_other_currencies_count_at_sages_rate_and_are_listed_apart(self):
        sage_id = self.sage_contact("Eider Export Ltd", currency_id="EUR")
        invoice_id = self.sage_invoice(sage_id, 100, days_old=50, due_in=30)
        gbp_id = self.sage_contact("Eider Home Ltd")
        self.sage_invoice(gbp_id, 40, days_old=50, due_in=30)
        self.sync()
        partner = self.partner_of(sage_id)
        self.assertEqual(partner.sage_invoice_ids.currency_id.name, "EUR")
        # What the customer owes, in the business's currency: Sage's base-currency amount.
        in_pounds = float(self.store.get("sales_invoices", invoice_id, self.business_id)[
            "base_currency_outstanding_amount"])
        self.assertNotEqual(in_pounds, 100.0)
        self.assertEqual((partner.sage_outstanding_amount, partner.sage_overdue_amount), (in_pounds, in_pounds))
        self.assertIn("EUR", partner.sage_other_currency_summary)
        self.assertIn("100", partner.sage_other_currency_summary)
        # still overdue in the list filter, and the dates count whatever the currency
        self.assertIn(partner, self.Partner.search([("sage_invoice_ids.is_overdue", "=", True)]))
        self.assertTrue(partner.sage_oldest_overdue_date)
        self.assertEqual(self.partner_of(gbp_id).sage_overdue_amount, 40)

    def test_person_of_a_linked_company_shows_the_company_figures(self):
        sage_id = self.sage_contact("Skua Holdings Ltd", person="Ana Skua")
        self.sage_invoice(sage_id, 90, days_old=50, due_in=30)
        self.sync()
        company = self.partner_of(sage_id)
        person = company.child_ids.filtered(lambda c: c.type == "contact")
        self.assertEqual(person.name, "Ana Skua")
        self.assertEqual(person.sage_display_overdue_amount, 90)
        self.assertEqual(person.sage_display_invoice_ids, company.sage_invoice_ids)
        self.assertEqual(person.sage_url, company.sage_url)

    def test_figures_recomputed_by_chunks_reach_every_partner(self):
        """The figures of a first import are recomputed a chunk of partners at a time: each
        partner, and the person of a company in a later chunk, gets its own amounts."""
        amounts = {self.sage_contact(f"Fulmar {n} Ltd", person=f"Ana Fulmar {n}" if n == 4 else None): 10.0 * n
                   for n in range(1, 6)}
        for sage_id, amount in amounts.items():
            self.sage_invoice(sage_id, amount, days_old=50, due_in=30)
        # today's refresh of stale figures done already: it would recompute every partner again
        self.connection._write_sync_state({"figures_refreshed_on": fields.Date.context_today(self.connection)})
        with patch("odoo.addons.sage_business_cloud.models.sage_sync_invoices.FIGURES_CHUNK", 2):
            run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        for sage_id, amount in amounts.items():
            partner = self.partner_of(sage_id)
            self.assertEqual((partner.sage_outstanding_amount, partner.sage_overdue_amount), (amount, amount),
                             partner.name)
        person = self.partner_of(list(amounts)[3]).child_ids.filtered(lambda c: c.type == "contact")
        self.assertEqual(person.sage_display_overdue_amount, 40.0)

    def test_unmappable_invoice_is_read_again_after_the_watermark_moved(self):
        sage_id = self.sage_contact("Garganey Ltd")
        self.sync()
        self.sandbox.time_shift(5)
        good = self.sage_invoice(sage_id, 45)
        bad = self.sage_invoice(sage_id, 55)
        original = SageInvoiceImporter._invoices_page

        def malformed(engine, state, invoice_type, invoices):
            for invoice in invoices:
                if invoice["id"] == bad:
                    invoice["updated_at"] = "31/12/2024 noon"
            return original(engine, state, invoice_type, invoices)

        with patch.object(SageInvoiceImporter, "_invoices_page", malformed):
            run = self.sync()
        self.assertEqual(run.state, "partial", run.message)
        self.assertEqual(run.error_ids.mapped("sage_id"), [bad])
        self.assertIn("updated_at", run.error_ids.reason)
        partner = self.partner_of(sage_id)
        self.assertEqual(partner.sage_invoice_ids.mapped("sage_id"), [good])
        self.assertTrue(self.connection.invoices_synced_until)
        # Out of the listing (as once the watermark has moved past it): read again by id.
        self.connection.invoices_synced_until = self.connection.invoices_synced_until + timedelta(hours=1)
        self.sandbox.clear_requests()
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(sorted(partner.sage_invoice_ids.mapped("sage_id")), sorted([good, bad]))
        self.assertEqual(self.sandbox.request_log()["by_path"].get("GET /v3.1/sales_invoices/" + bad), 1)
        # and only once
        self.sandbox.clear_requests()
        self.sync()
        self.assertFalse(self.sandbox.request_log()["by_path"].get("GET /v3.1/sales_invoices/" + bad))

    def test_an_invoice_waits_until_its_contact_is_linked(self):
        ok_id = self.sage_contact("Petrel Ltd")
        waiting_id = self.sage_contact("Shearwater Ltd", main_address={"city": "Paris", "country_id": "FR"})
        self.sage_invoice(waiting_id, 120, days_old=3)
        self.sage_invoice(ok_id, 60, days_old=3)
        self.env["res.country"].search([("code", "=", "FR")]).code = "XF"
        run = self.sync()
        self.assertEqual((run.invoices_stored, run.invoices_waiting), (1, 1))
        self.assertIn("wait for their contact", run.message)
        self.assertFalse(self.partner_of(waiting_id))

        self.env["res.country"].search([("code", "=", "XF")]).code = "FR"
        before = self.requests_total()
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(self.partner_of(waiting_id).sage_invoice_ids.mapped("total_amount"), [120.0])
        # the contact's documents were read for it alone: GET contact + 6 listings by contact_id
        # (sales and purchase invoices and credit notes, quotes, estimates)
        log = self.sandbox.request_log()["log"][-(self.requests_total() - before):]
        self.assertEqual(sum(1 for entry in log if "contact_id=" + waiting_id in (entry["query"] or "")), 6)
        run = self.sync()
        self.assertEqual(run.invoices_waiting, 0)


class TestSupplierInvoices(SageSyncCase):

    def setUp(self):
        super().setUp()
        self.supplier_id = self.sage_contact("Cormorant Supplies Ltd", kind="VENDOR")
        self.sage_invoice(self.supplier_id, 75, days_old=40, due_in=30, purchase=True)
        self.customer_id = self.sage_contact("Cormorant Retail Ltd")
        self.sage_invoice(self.customer_id, 35)

    def test_exclusion_on_and_off(self):
        self.connection.exclude_supplier_invoices = True
        self.sync()
        supplier = self.partner_of(self.supplier_id)
        self.assertTrue(supplier, "supplier contacts are imported even when their invoices are not")
        self.assertFalse(supplier.sage_invoice_ids)
        self.assertEqual(len(self.partner_of(self.customer_id).sage_invoice_ids), 1)

        self.connection.exclude_supplier_invoices = False
        self.sync()
        invoice = supplier.sage_invoice_ids
        self.assertEqual((invoice.invoice_type, invoice.number, invoice.total_amount), ("purchase", "SUP-75", 75))
        # what we owe the supplier is not what a customer owes us
        self.assertEqual((supplier.sage_outstanding_amount, supplier.sage_overdue_amount,
                          supplier.sage_invoice_count, supplier.sage_oldest_overdue_date), (0, 0, 0, False))
        self.assertEqual((supplier.sage_payable_amount, supplier.sage_payable_overdue_amount), (75, 75))

        self.connection.exclude_supplier_invoices = True
        run = self.sync()
        self.assertEqual(run.invoices_removed, 1)
        self.assertFalse(supplier.sage_invoice_ids)
        self.assertEqual((supplier.sage_overdue_amount, supplier.sage_payable_amount), (0, 0))
        self.assertFalse(self.connection.purchases_synced_until)

    def test_figures_of_a_contact_that_is_customer_and_supplier(self):
        both_id = self.sage_contact("Cormorant Trading Ltd")
        self.sage_invoice(both_id, 40, days_old=50, due_in=30)
        self.sync()
        partner = self.partner_of(both_id)
        # Sage lets a contact be customer and supplier (the sandbox does not): its purchases
        overdue_since = date.today() - timedelta(days=30)
        self.env["sage.invoice"].create([{
            "partner_id": partner.id, "connection_id": self.connection.id, "sage_id": "purchase-%s" % amount,
            "invoice_type": "purchase", "status": "UNPAID", "currency_id": currency.id,
            "due_date": overdue_since, "total_amount": amount, "outstanding_amount": amount,
        } for amount, currency in ((900, self.env.ref("base.GBP")), (300, self.env.ref("base.EUR")))])
        self.env.ref("base.EUR").active = True
        partner._sage_recompute_invoice_figures()
        self.env.invalidate_all()
        self.assertEqual((partner.sage_outstanding_amount, partner.sage_overdue_amount, partner.sage_invoice_count),
                         (40, 40, 1))
        self.assertEqual(partner.sage_oldest_overdue_date, date.today() - timedelta(days=20))
        self.assertEqual((partner.sage_payable_amount, partner.sage_payable_overdue_amount), (900, 900))
        self.assertFalse(partner.sage_other_currency_summary, "a purchase in euros is not owed to us")

    def test_plain_user_reads_sales_but_not_purchase_invoices(self):
        self.sync()
        plain = new_test_user(self.env, login="plain", groups="base.group_user")
        buyer = new_test_user(self.env, login="buyer",
                              groups="base.group_user,sage_business_cloud.group_sage_supplier_invoices")
        Invoice = self.env["sage.invoice"]
        self.assertEqual(Invoice.with_user(plain).search([]).mapped("invoice_type"), ["sale"])
        self.assertEqual(sorted(Invoice.with_user(buyer).search([]).mapped("invoice_type")), ["purchase", "sale"])
        supplier = self.partner_of(self.supplier_id).with_user(plain)
        self.assertFalse(supplier.sage_display_invoice_ids)
        customer = self.partner_of(self.customer_id).with_user(plain)
        self.assertEqual(len(customer.sage_display_invoice_ids), 1)
        # the stored figures a plain user reads tell nothing about supplier invoices
        figures = ["sage_outstanding_amount", "sage_overdue_amount", "sage_next_due_date",
                   "sage_oldest_overdue_date", "sage_invoice_count", "sage_display_outstanding_amount",
                   "sage_display_overdue_amount", "sage_display_invoice_count"]
        self.env.invalidate_all()
        values = supplier.read(figures)[0]
        self.assertEqual([values[name] for name in figures], [0, 0, False, False, 0, 0, 0, 0])
        self.assertEqual(customer.read(["sage_outstanding_amount"])[0]["sage_outstanding_amount"], 35)
        self.assertNotIn("sage_payable_amount", supplier.fields_get())
        with self.assertRaises(AccessError):
            supplier.read(["sage_payable_amount"])
        self.assertEqual(self.partner_of(self.supplier_id).with_user(buyer).sage_payable_amount, 75)


class TestFormCost(SageSyncCase):

    def test_form_with_hundreds_of_invoices_calls_no_sage_and_bounded_queries(self):
        small_id = self.sage_contact("Little Auk Ltd")
        big_id = self.sage_contact("Great Auk Ltd")
        self.sage_invoice(small_id, 10)
        for index in range(300):
            self.sage_invoice(big_id, 10 + index, days_old=index % 90)
        run = self.sync()
        self.assertEqual(run.invoices_stored, 301)
        small, big = self.partner_of(small_id), self.partner_of(big_id)

        def cost(partner):
            self.env.invalidate_all()
            requests, queries = self.requests_total(), self.cr.sql_log_count
            data = partner.web_read(FORM_SPEC)[0]
            return data, self.requests_total() - requests, self.cr.sql_log_count - queries

        data, requests, big_queries = cost(big)
        self.assertEqual(len(data["sage_display_invoice_ids"]), 300)
        self.assertEqual(requests, 0)
        _data, _requests, small_queries = cost(small)
        self.assertLessEqual(big_queries, small_queries + 2)
        self.assertLess(big_queries, 25)
