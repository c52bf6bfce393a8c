"""Helpers shared by the sync tests: put data in the sandbox the way Sage would hold it."""

from datetime import date, timedelta

from .common import SageTransactionCase


class SageSyncCase(SageTransactionCase):
    """A connected company plus helpers that write straight into the sandbox's store."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Partner = cls.env["res.partner"].with_context(active_test=False)
        cls.team = cls.env["crm.team"].create({"name": "Sage imports"})
        # A UK book: the company keeps its accounts in pounds.
        gbp = cls.env.ref("base.GBP")
        gbp.active = True
        cls.env.company.currency_id = gbp

    def setUp(self):
        super().setUp()
        self.connection.default_team_id = self.team
        self.sandbox.clear_faults()
        self.addCleanup(self.sandbox.clear_faults)

    # -- sandbox data --------------------------------------------------
    @property
    def store(self):
        return self.sandbox.store

    @property
    def biz(self):
        return self.store.business(self.business_id)

    def sage_contact(self, name, kind="CUSTOMER", person=None, **extra):
        """Create a Sage contact; ``person`` is the main contact person's name (default: none)."""
        data = {"name": name, "contact_type_ids": [kind], **extra}
        if person:
            data["main_contact_person"] = {"name": person, "email": extra.pop("person_email", None)}
        with self.store.lock:
            return self.store.create_contact(self.biz, data)["id"]

    def sage_invoice(self, contact_id, amount=100.0, days_old=10, due_in=20, status="UNPAID",
                     purchase=False, currency=None):
        """Create a Sage invoice of ``amount`` (no tax) dated ``days_old`` days ago."""
        issued = date.today() - timedelta(days=days_old)
        data = {
            "contact_id": contact_id, "date": issued.isoformat(),
            "due_date": (issued + timedelta(days=due_in)).isoformat(),
            "invoice_lines": [{"description": "Work", "ledger_account_id": "4000", "quantity": 1.0,
                               "unit_price": amount, "tax_rate_id": "GB_ZERO"}],
            "status_id": "DRAFT" if status == "DRAFT" else "UNPAID",
        }
        if currency:
            data["currency_id"] = currency
        if purchase:
            data["vendor_reference"] = "SUP-%s" % int(amount)
        resource = "purchase_invoices" if purchase else "sales_invoices"
        with self.store.lock:
            return self.store.create_invoice(self.biz, resource, data)["id"]

    def sage_pay(self, contact_id, invoice_id, amount):
        """Pay ``amount`` of an invoice in Sage, through the API (POST contact_payments)."""
        client = self.connection._get_client()
        client.create("contact_payments", {
            "contact_id": contact_id, "date": date.today().isoformat(), "total_amount": amount,
            "allocated_artefacts": [{"artefact_id": invoice_id, "amount": amount}],
        })

    def requests_total(self):
        return self.sandbox.request_log()["total"]

    # -- Odoo side -----------------------------------------------------
    def sync(self, **context):
        run = self.env["sage.sync"].with_context(**context)._sync_connection(self.connection, trigger="script")
        self.env.invalidate_all()
        return run

    def partner_of(self, sage_id):
        return self.Partner.search([("sage_connection_id", "=", self.connection.id),
                                    ("sage_contact_id", "=", sage_id)])
