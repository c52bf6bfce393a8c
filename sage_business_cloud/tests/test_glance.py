"""A contact's Sage picture at a glance: aged debt buckets, counts that match the rows, sales apart
from supplier bills, a person showing its company's figures, nothing shown for unlinked partners."""

from datetime import date, timedelta

from .sync_common import SageSyncCase


class TestGlance(SageSyncCase):

    def test_buckets_against_invoices_in_every_state(self):
        sage_id = self.sage_contact("Buckets Ltd", person="Bea Buckets")
        # (amount, days since issue, days to pay) -> late by days_old - due_in
        self.sage_invoice(sage_id, 10, days_old=5, due_in=30)      # not yet due
        self.sage_invoice(sage_id, 20, days_old=40, due_in=30)     # 10 days late
        self.sage_invoice(sage_id, 40, days_old=75, due_in=30)     # 45 days late
        self.sage_invoice(sage_id, 80, days_old=105, due_in=30)    # 75 days late
        self.sage_invoice(sage_id, 160, days_old=150, due_in=30)   # 120 days late
        paid = self.sage_invoice(sage_id, 320, days_old=150, due_in=30)
        self.sage_invoice(sage_id, 640, status="DRAFT")
        self.sync()
        self.sage_pay(sage_id, paid, 320)
        self.sync()
        company = self.partner_of(sage_id)
        self.assertEqual(
            (company.sage_aged_current, company.sage_aged_1_30, company.sage_aged_31_60,
             company.sage_aged_61_90, company.sage_aged_90_plus), (10, 20, 40, 80, 160))
        self.assertEqual(company.sage_outstanding_amount, 310)
        self.assertEqual(company.sage_overdue_amount, 300)
        by_amount = {int(i.total_amount): i for i in company.sage_invoice_ids}
        self.assertEqual({k: v.aged_bucket for k, v in by_amount.items()}, {
            10: "current", 20: "1_30", 40: "31_60", 80: "61_90", 160: "90_plus", 320: False, 640: False})
        # the counts match the rows: 7 rows listed, 6 posted (the draft is listed, not counted)
        rows = company.sage_display_sale_invoice_ids
        self.assertEqual(len(rows), 7)
        self.assertEqual(company.sage_display_invoice_count, len(rows.filtered(lambda r: r.status != "DRAFT")))
        self.assertEqual(sum(rows.filtered(lambda r: r.status != "DRAFT").mapped("outstanding_amount")),
                         company.sage_outstanding_amount)
        # a person of the company shows its figures, in the list too (stored for her company)
        bea = company.child_ids.filtered(lambda c: c.name == "Bea Buckets")
        self.assertEqual(bea.sage_overdue_amount, 300)
        self.assertEqual(bea.sage_display_overdue_amount, 300)
        self.assertIn(bea, self.Partner.search([("sage_overdue_amount", ">", 0)]))
        action = bea.action_sage_open_invoices()
        self.assertEqual(self.env["sage.invoice"].search(action["domain"]), company.sage_invoice_ids)

    def test_invoices_move_bucket_as_days_pass_and_only_those_are_written(self):
        sage_id = self.sage_contact("Ageing Ltd")
        self.sage_invoice(sage_id, 10, days_old=5, due_in=30)      # due in 25 days
        self.sage_invoice(sage_id, 20, days_old=20, due_in=30)     # due in 10 days
        self.sync()
        rows = self.partner_of(sage_id).sage_invoice_ids
        self.assertEqual(set(rows.mapped("aged_bucket")), {"current"})
        Invoice = self.env["sage.invoice"].with_context(date=date.today() + timedelta(days=15))
        Invoice._sage_refresh_aged_buckets(self.connection)
        self.assertEqual(self.env.cr.rowcount, 1, "only the invoice that fell due was written")
        self.assertEqual({int(r.total_amount): r.aged_bucket for r in rows}, {10: "current", 20: "1_30"})
        Invoice._sage_refresh_aged_buckets(self.connection)
        self.assertEqual(self.env.cr.rowcount, 0, "the same day again writes nothing")

    def test_sales_invoices_and_supplier_bills_are_kept_apart(self):
        supplier_id = self.sage_contact("Supplies Ltd", kind="VENDOR")
        customer_id = self.sage_contact("Buys Ltd")
        self.sage_invoice(customer_id, 50, days_old=60, due_in=30)
        self.sage_invoice(supplier_id, 70, days_old=60, due_in=30, purchase=True)
        self.sync()
        supplier, customer = self.partner_of(supplier_id), self.partner_of(customer_id)
        self.assertFalse(supplier.sage_display_sale_invoice_ids)
        self.assertEqual(supplier.sage_display_purchase_invoice_ids.mapped("invoice_type"), ["purchase"])
        self.assertEqual(supplier.sage_display_purchase_count, 1)
        self.assertEqual((supplier.sage_outstanding_amount, supplier.sage_payable_amount), (0, 70))
        self.assertEqual(supplier.sage_display_invoice_count, 0, "no sales invoice: the bill is not counted there")
        self.assertEqual(customer.sage_display_sale_invoice_ids.mapped("invoice_type"), ["sale"])
        self.assertFalse(customer.sage_display_purchase_invoice_ids)
        # a plain user sees the sales rows, not the supplier bills
        from odoo.tests import new_test_user
        clerk = new_test_user(self.env, "sage_clerk", groups="base.group_user")
        self.assertFalse(supplier.with_user(clerk).sage_display_purchase_invoice_ids)

    def test_unlinked_partners_show_no_figure(self):
        loner = self.Partner.create({"name": "Loner Ltd", "is_company": True})
        self.sync()
        self.assertFalse(loner.sage_commercial_linked)
        self.assertFalse(loner.sage_overdue_amount)
        self.assertNotIn(loner, self.Partner.search([("sage_outstanding_amount", ">", 0)]))
