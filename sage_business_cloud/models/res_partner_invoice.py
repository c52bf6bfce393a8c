"""What a linked partner owes (or is owed) in Sage: stored figures, and the invoice list.

The figures are stored on the partner that carries the Sage link (the commercial partner, the
one Sage invoices) so that contacts can be filtered and sorted by them. They are written by
``_sage_recompute_invoice_figures`` - after each sync page that touched the partner's invoices,
after a merge, and once a day for partners with open invoices (overdue depends on today).

Currencies: the stored amounts are in the currency of the connection's company (pounds for a UK
book) and add up only invoices in that currency: pounds are never added to euros. Invoices in
other currencies are totalled per currency in ``sage_other_currency_summary``, shown in the Sage
tab. Void, draft and other non-posted invoices count in no figure (see ``sage_invoice``).

Sales and purchase invoices are never added up: the ``sage_*`` figures (outstanding, overdue,
due dates, count) are what the customer owes, from sales invoices only, and every internal user
can read them. What we owe a supplier is in the ``sage_payable_*`` fields, computed from purchase
invoices and readable only by the group "Sage: supplier invoices" (like the purchase rows).

A person of a linked company shows its company's figures and invoices through the non-stored
``sage_display_*`` fields.
"""

from markupsafe import Markup, escape

from odoo import _, api, fields, models
from odoo.tools.misc import formatLang

from .sage_invoice import COUNTED_STATUSES, OPEN_STATUSES

SUPPLIER_GROUP = "sage_business_cloud.group_sage_supplier_invoices"


class ResPartner(models.Model):
    _inherit = "res.partner"

    sage_invoice_ids = fields.One2many("sage.invoice", "partner_id", string="Sage invoices", readonly=True)
    sage_currency_id = fields.Many2one(
        "res.currency", string="Sage figures currency", compute="_compute_sage_currency_id",
    )
    sage_outstanding_amount = fields.Monetary(
        "Sage outstanding", currency_field="sage_currency_id", readonly=True, copy=False, default=0.0,
        help="Still to be paid on the Sage invoices in the company currency (void and draft excluded).",
    )
    sage_overdue_amount = fields.Monetary(
        "Sage overdue", currency_field="sage_currency_id", readonly=True, copy=False, default=0.0,
        help="Outstanding on Sage invoices past their due date, in the company currency.",
    )
    sage_next_due_date = fields.Date(
        "Sage next due date", readonly=True, copy=False,
        help="Earliest due date, today or later, of an invoice with money outstanding.",
    )
    sage_oldest_overdue_date = fields.Date(
        "Sage oldest overdue", readonly=True, copy=False,
        help="Due date of the oldest overdue invoice.",
    )
    sage_invoice_count = fields.Integer(
        "Sage invoices count", readonly=True, copy=False, default=0,
        help="Posted Sage sales invoices of this customer (void and draft excluded).",
    )
    # What we owe this supplier (purchase invoices): private, like the purchase invoice rows.
    sage_payable_amount = fields.Monetary(
        "Sage owed to supplier", currency_field="sage_currency_id", readonly=True, copy=False,
        default=0.0, groups=SUPPLIER_GROUP,
        help="Still to be paid to this supplier on Sage purchase invoices, in the company currency.",
    )
    sage_payable_overdue_amount = fields.Monetary(
        "Sage overdue to supplier", currency_field="sage_currency_id", readonly=True, copy=False,
        default=0.0, groups=SUPPLIER_GROUP,
        help="Owed to this supplier on Sage purchase invoices past their due date.",
    )
    sage_figures_date = fields.Date(readonly=True, copy=False, help="Day the figures were computed.")
    sage_other_currency_summary = fields.Html(
        "Other currencies", compute="_compute_sage_display", sanitize=False,
    )
    # What the form shows: the partner's own figures, or its company's for a person.
    sage_display_invoice_ids = fields.Many2many(
        "sage.invoice", string="Invoices in Sage", compute="_compute_sage_display",
    )
    sage_display_outstanding_amount = fields.Monetary(
        "Outstanding", currency_field="sage_currency_id", compute="_compute_sage_display",
    )
    sage_display_overdue_amount = fields.Monetary(
        "Overdue", currency_field="sage_currency_id", compute="_compute_sage_display",
    )
    sage_display_next_due_date = fields.Date("Next due date", compute="_compute_sage_display")
    sage_display_oldest_overdue_date = fields.Date("Oldest overdue", compute="_compute_sage_display")
    sage_display_invoice_count = fields.Integer("Invoices", compute="_compute_sage_display")

    def _sage_figures_owner(self):
        """The partner whose stored figures this one shows: itself when linked, else its company."""
        self.ensure_one()
        if self.sage_contact_id or not self.commercial_partner_id.sage_contact_id:
            return self
        return self.commercial_partner_id

    @api.depends_context("company")
    def _compute_sage_currency_id(self):
        for partner in self:
            company = partner.commercial_partner_id.sage_connection_id.company_id or self.env.company
            partner.sage_currency_id = company.currency_id

    @api.depends(
        "sage_invoice_ids", "sage_outstanding_amount", "commercial_partner_id.sage_outstanding_amount",
        "sage_contact_id", "commercial_partner_id.sage_contact_id",
    )
    def _compute_sage_display(self):
        owners = {partner.id: partner._sage_figures_owner() for partner in self}
        owner_set = self.browse({owner.id for owner in owners.values()} - {False})
        invoices = self.env["sage.invoice"].search([("partner_id", "in", owner_set.ids)]) if owner_set else []
        by_owner = {}
        for invoice in invoices:
            by_owner.setdefault(invoice.partner_id.id, []).append(invoice.id)
        summaries = owner_set._sage_other_currency_summaries(invoices)
        for partner in self:
            owner = owners[partner.id]
            partner.sage_display_invoice_ids = [(6, 0, by_owner.get(owner.id, []))]
            partner.sage_display_outstanding_amount = owner.sage_outstanding_amount
            partner.sage_display_overdue_amount = owner.sage_overdue_amount
            partner.sage_display_next_due_date = owner.sage_next_due_date
            partner.sage_display_oldest_overdue_date = owner.sage_oldest_overdue_date
            partner.sage_display_invoice_count = owner.sage_invoice_count
            partner.sage_other_currency_summary = summaries.get(owner.id, False)

    def _sage_other_currency_summaries(self, invoices):
        """HTML lines 'EUR: outstanding ..., overdue ...' per partner, for non-company currencies."""
        totals = {}
        for invoice in invoices or []:
            partner = invoice.partner_id
            if invoice.invoice_type != "sale" or invoice.status not in COUNTED_STATUSES \
                    or invoice.currency_id == partner.sage_currency_id:
                continue
            entry = totals.setdefault(partner.id, {}).setdefault(invoice.currency_id, [0.0, 0.0])
            entry[0] += invoice.outstanding_amount
            if invoice.is_overdue:
                entry[1] += invoice.outstanding_amount
        summaries = {}
        for partner_id, by_currency in totals.items():
            lines = [
                Markup("<div>%s</div>") % _(
                    "%(currency)s: outstanding %(outstanding)s, overdue %(overdue)s",
                    currency=currency.name,
                    outstanding=formatLang(self.env, amounts[0], currency_obj=currency),
                    overdue=formatLang(self.env, amounts[1], currency_obj=currency),
                )
                for currency, amounts in sorted(by_currency.items(), key=lambda item: item[0].name)
            ]
            summaries[partner_id] = Markup("").join(lines) if lines else escape("")
        return summaries

    def _sage_recompute_invoice_figures(self):
        """Recompute the stored Sage figures of these partners from their ``sage.invoice`` rows.

        One aggregate query for all of them; used by the sync, the daily refresh and the merge
        wizard (which moves invoice rows with raw SQL). The ``sage_*`` figures count sales
        invoices only; purchase invoices go to the ``sage_payable_*`` fields (supplier group).
        """
        partners = self.exists()
        if not partners:
            return
        self.env["sage.invoice"].flush_model()
        today = self.env["sage.invoice"]._sage_today()
        company_currency = {
            partner.id: partner.commercial_partner_id.sage_connection_id.company_id.currency_id.id
            or self.env.company.currency_id.id
            for partner in partners
        }
        self.env.cr.execute(
            """SELECT partner_id, currency_id, invoice_type,
                      count(*),
                      sum(outstanding_amount) FILTER (WHERE status = ANY(%(open)s)),
                      sum(outstanding_amount) FILTER (WHERE status = ANY(%(open)s) AND due_date < %(today)s),
                      min(due_date) FILTER (WHERE status = ANY(%(open)s) AND outstanding_amount > 0
                                            AND due_date >= %(today)s),
                      min(due_date) FILTER (WHERE status = ANY(%(open)s) AND outstanding_amount > 0
                                            AND due_date < %(today)s)
                 FROM sage_invoice
                WHERE partner_id = ANY(%(ids)s) AND status = ANY(%(counted)s)
             GROUP BY partner_id, currency_id, invoice_type""",
            {"open": list(OPEN_STATUSES), "counted": list(COUNTED_STATUSES), "today": today,
             "ids": partners.ids},
        )
        figures = {
            partner.id: {"sage_outstanding_amount": 0.0, "sage_overdue_amount": 0.0,
                         "sage_next_due_date": False, "sage_oldest_overdue_date": False,
                         "sage_invoice_count": 0, "sage_figures_date": today,
                         "sage_payable_amount": 0.0, "sage_payable_overdue_amount": 0.0}
            for partner in partners
        }
        rows = self.env.cr.fetchall()
        for partner_id, currency_id, invoice_type, count, outstanding, overdue, next_due, oldest in rows:
            values = figures[partner_id]
            in_company_currency = currency_id == company_currency[partner_id]
            if invoice_type != "sale":
                # What we owe a supplier: never mixed with what the customer owes.
                if in_company_currency:
                    values["sage_payable_amount"] = outstanding or 0.0
                    values["sage_payable_overdue_amount"] = max(overdue or 0.0, 0.0)
                continue
            values["sage_invoice_count"] += count
            # Dates tell when something is due whatever the currency; amounts stay per currency.
            if next_due and (not values["sage_next_due_date"] or next_due < values["sage_next_due_date"]):
                values["sage_next_due_date"] = next_due
            if oldest and (not values["sage_oldest_overdue_date"] or oldest < values["sage_oldest_overdue_date"]):
                values["sage_oldest_overdue_date"] = oldest
            if in_company_currency:
                values["sage_outstanding_amount"] = outstanding or 0.0
                values["sage_overdue_amount"] = max(overdue or 0.0, 0.0)
        # sudo: the supplier figures are written whoever triggers the recomputation.
        self.env["sage.sync"]._bulk_write(partners.sudo(), [figures[partner.id] for partner in partners])
