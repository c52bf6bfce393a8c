"""What a linked partner owes (or is owed) in Sage: stored figures, and the invoice list.

The figures are stored on the partner that carries the Sage link (the commercial partner, the
one Sage invoices) so that contacts can be filtered and sorted by them. They are written by
``_sage_recompute_invoice_figures`` - after each sync page that touched the partner's invoices,
after a merge, and once a day for partners with open invoices (overdue depends on today).

Currencies: the stored amounts are in the currency of the connection's company (pounds for a UK
book) and add up only invoices in that currency: pounds are never added to euros. Invoices in
other currencies are totalled per currency in ``sage_other_currency_summary``, shown in the Sage
tab. Void, draft and other non-posted invoices count in no figure (see ``sage_invoice``).

Credit notes take the credit they still carry (not yet allocated) off the outstanding figure of
their side (``sage_outstanding_amount``, ``sage_payable_amount``); they are never overdue. Quotes
and estimates count in no amount owed: they have their own figures (``res_partner_quote``).

Sales and purchase invoices are never added up: the ``sage_*`` figures (outstanding, overdue,
due dates, count) are what the customer owes, from sales invoices only, and every internal user
can read them. What we owe a supplier is in the ``sage_payable_*`` fields, computed from purchase
invoices and readable only by the group "Sage: supplier invoices" (like the purchase rows).

A person of a linked company shows its company's figures and invoices through the non-stored
``sage_display_*`` fields.
"""

from markupsafe import Markup, escape

from odoo import _, api, fields, models
from odoo.tools import SQL
from odoo.tools.misc import formatLang

from .sage_invoice import COUNTED_STATUSES, INVOICE_TYPES, OPEN_STATUSES, QUOTE_TYPES

SUPPLIER_GROUP = "sage_business_cloud.group_sage_supplier_invoices"
#: Figure that the credit notes of each kind take their unallocated credit off.
CREDIT_OFFSETS = {"sale_credit": "sage_outstanding_amount", "purchase_credit": "sage_payable_amount"}
#: Aged debt buckets, in the order of the figures query's last columns.
AGED_FIELDS = ("sage_aged_current", "sage_aged_1_30", "sage_aged_31_60", "sage_aged_61_90", "sage_aged_90_plus")


class ResPartner(models.Model):
    _inherit = "res.partner"

    sage_invoice_ids = fields.One2many("sage.invoice", "partner_id", string="Sage invoices", readonly=True)
    sage_currency_id = fields.Many2one(
        "res.currency", string="Sage figures currency", compute="_compute_sage_currency_id",
    )
    # The figures are company-dependent (stored per company in one jsonb column, searchable and
    # sortable in 18.0): each company sees the figures of its own Sage business only.
    sage_outstanding_amount = fields.Float(
        "Sage outstanding", company_dependent=True, copy=False, digits=(16, 2),
        help="Still to be paid on the Sage invoices less the credit not yet allocated on Sage "
        "credit notes, in the Sage business's currency (void and draft excluded).",
    )
    sage_overdue_amount = fields.Float(
        "Sage overdue", company_dependent=True, copy=False, digits=(16, 2),
        help="Outstanding on Sage invoices past their due date, in the Sage business's currency.",
    )
    sage_next_due_date = fields.Date(
        "Sage next due date", company_dependent=True, copy=False,
        help="Earliest due date, today or later, of an invoice with money outstanding.",
    )
    sage_oldest_overdue_date = fields.Date(
        "Sage oldest overdue", company_dependent=True, copy=False,
        help="Due date of the oldest overdue invoice.",
    )
    sage_invoice_count = fields.Integer(
        "Sage invoices count", company_dependent=True, copy=False,
        help="Posted Sage sales invoices of this customer (void and draft excluded).",
    )
    # What we owe this supplier (purchase invoices): private, like the purchase invoice rows.
    sage_payable_amount = fields.Float(
        "Sage owed to supplier", company_dependent=True, copy=False, digits=(16, 2),
        groups=SUPPLIER_GROUP,
        help="Still to be paid to this supplier on Sage purchase invoices.",
    )
    sage_payable_overdue_amount = fields.Float(
        "Sage overdue to supplier", company_dependent=True, copy=False, digits=(16, 2),
        groups=SUPPLIER_GROUP,
        help="Owed to this supplier on Sage purchase invoices past their due date.",
    )
    sage_figures_date = fields.Date(company_dependent=True, copy=False, help="Day the figures were computed.")
    # Aged debt: what is outstanding on sales invoices, by how late it is.
    sage_aged_current = fields.Float("Not yet due", company_dependent=True, copy=False, digits=(16, 2))
    sage_aged_1_30 = fields.Float("1-30 days overdue", company_dependent=True, copy=False, digits=(16, 2))
    sage_aged_31_60 = fields.Float("31-60 days overdue", company_dependent=True, copy=False, digits=(16, 2))
    sage_aged_61_90 = fields.Float("61-90 days overdue", company_dependent=True, copy=False, digits=(16, 2))
    sage_aged_90_plus = fields.Float("Over 90 days overdue", company_dependent=True, copy=False, digits=(16, 2))
    sage_display_sale_invoice_ids = fields.Many2many(
        "sage.invoice", string="Sales invoices", compute="_compute_sage_display")
    sage_display_purchase_invoice_ids = fields.Many2many(
        "sage.invoice", string="Supplier bills", compute="_compute_sage_display")
    sage_display_purchase_count = fields.Integer("Supplier bills count", compute="_compute_sage_display")
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

    def _order_field_to_sql(self, alias, field_name, direction, nulls, query):
        """Sorting by a Sage figure: partners without one (no value for the company) sort as zero,
        so "overdue, highest first" starts with the highest, not with every unlinked contact."""
        field = self._fields.get(field_name)
        if field is not None and field.company_dependent and field_name.startswith("sage_") and not nulls.code:
            nulls = SQL("NULLS LAST") if direction.code.strip().upper() == "DESC" else SQL("NULLS FIRST")
        return super()._order_field_to_sql(alias, field_name, direction, nulls, query)

    def _sage_figures_owner(self):
        """The partner whose stored figures this one shows: itself when linked, else its company."""
        self.ensure_one()
        if self.sage_contact_id or not self.commercial_partner_id.sage_contact_id:
            return self
        return self.commercial_partner_id

    @api.depends_context("company")
    def _compute_sage_currency_id(self):
        connection = self.env["sage.connection"]._get_for_company(self.env.company, create=False)
        currency = connection._sage_currency() if connection else self.env.company.currency_id
        for partner in self:
            partner.sage_currency_id = currency

    @api.depends_context("company", "uid")
    @api.depends(
        "sage_invoice_ids", "sage_outstanding_amount", "commercial_partner_id.sage_outstanding_amount",
        "sage_contact_id", "commercial_partner_id.sage_contact_id",
    )
    def _compute_sage_display(self):
        owners = {partner.id: partner._sage_figures_owner() for partner in self}
        owner_set = self.browse({owner.id for owner in owners.values()} - {False})
        invoices = self.env["sage.invoice"].search([
            ("partner_id", "in", owner_set.ids), ("company_id", "=", self.env.company.id),
        ]) if owner_set else []
        by_owner = {}
        for invoice in invoices:
            by_owner.setdefault(invoice.partner_id.id, []).append(invoice)
        summaries = owner_set._sage_other_currency_summaries(invoices)
        for partner in self:
            owner = owners[partner.id]
            rows = by_owner.get(owner.id, [])
            partner.sage_display_invoice_ids = [(6, 0, [row.id for row in rows if row.invoice_type not in QUOTE_TYPES])]
            partner.sage_display_sale_invoice_ids = [
                (6, 0, [r.id for r in rows if r.invoice_type in ("sale", "sale_credit")])]
            purchases = [r.id for r in rows if r.invoice_type in ("purchase", "purchase_credit")]
            partner.sage_display_purchase_invoice_ids = [(6, 0, purchases)]
            partner.sage_display_purchase_count = len(purchases)
            partner.sage_display_outstanding_amount = owner.sage_outstanding_amount
            partner.sage_display_overdue_amount = owner.sage_overdue_amount
            partner.sage_display_next_due_date = owner.sage_next_due_date
            partner.sage_display_oldest_overdue_date = owner.sage_oldest_overdue_date
            partner.sage_display_invoice_count = owner.sage_invoice_count
            partner.sage_other_currency_summary = summaries.get(owner.id, False)

    def action_sage_open_invoices(self):
        """The smart button: this partner's Sage invoices (its company's for a person)."""
        self.ensure_one()
        owner = self._sage_figures_owner()
        return {
            "type": "ir.actions.act_window", "name": _("Sage invoices of %s", owner.display_name),
            "res_model": "sage.invoice", "view_mode": "list,form,pivot,graph",
            "domain": [("partner_id", "=", owner.id), ("company_id", "=", self.env.company.id)],
            "context": {"search_default_sales": 1, "create": False},
        }

    def _sage_other_currency_summaries(self, invoices):
        """HTML lines 'EUR: outstanding ..., overdue ...' per partner, for non-company currencies."""
        totals = {}
        for invoice in invoices or []:
            partner = invoice.partner_id
            if invoice.invoice_type not in ("sale", "sale_credit") or invoice.status not in COUNTED_STATUSES \
                    or invoice.currency_id == partner.sage_currency_id:
                continue
            entry = totals.setdefault(partner.id, {}).setdefault(invoice.currency_id, [0.0, 0.0])
            entry[0] += invoice.outstanding_amount if invoice.invoice_type == "sale" else -invoice.outstanding_amount
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

    def _sage_recompute_invoice_figures(self, connection=None):
        """Recompute the stored Sage figures of these partners from their ``sage.invoice`` rows.

        Per connection (all of the partners' connections when none is given): one aggregate
        query, and the figures are written as that connection's company's values. Used by the
        sync, the daily refresh, unlinking and the merge wizard. The ``sage_*`` figures count
        sales invoices only; purchase invoices go to the ``sage_payable_*`` fields (supplier
        group). Amounts are those of the Sage business's currency.
        """
        partners = self.exists()
        if not partners:
            return
        if connection is None:
            connections = self.env["sage.binding"].sudo().search(
                [("partner_id", "in", partners.ids)]).connection_id
            connections |= self.env["sage.invoice"].sudo().search(
                [("partner_id", "in", partners.ids)]).connection_id
            for each in connections:
                partners._sage_recompute_invoice_figures(each)
            return
        connection = connection.sudo()
        self.env["sage.invoice"].flush_model()
        today = self.env["sage.invoice"]._sage_today()
        currency_id = connection._sage_currency().id
        # amounts: Sage's base-currency amount when it gave one, else the invoice's own
        self.env.cr.execute(
            """SELECT partner_id, currency_id, invoice_type,
                      count(*),
                      sum(CASE WHEN base_amounts_known THEN base_outstanding_amount
                               ELSE outstanding_amount END) FILTER (WHERE status = ANY(%(open)s)),
                      sum(CASE WHEN base_amounts_known THEN base_outstanding_amount
                               ELSE outstanding_amount END)
                          FILTER (WHERE status = ANY(%(open)s) AND due_date < %(today)s),
                      min(due_date) FILTER (WHERE status = ANY(%(open)s) AND outstanding_amount > 0
                                            AND due_date >= %(today)s),
                      min(due_date) FILTER (WHERE status = ANY(%(open)s) AND outstanding_amount > 0
                                            AND due_date < %(today)s),
                      bool_and(base_amounts_known),
                      sum(CASE WHEN base_amounts_known THEN base_outstanding_amount ELSE outstanding_amount END)
                          FILTER (WHERE status = ANY(%(open)s) AND (due_date >= %(today)s OR due_date IS NULL)),
                      sum(CASE WHEN base_amounts_known THEN base_outstanding_amount ELSE outstanding_amount END)
                          FILTER (WHERE status = ANY(%(open)s) AND %(today)s - due_date BETWEEN 1 AND 30),
                      sum(CASE WHEN base_amounts_known THEN base_outstanding_amount ELSE outstanding_amount END)
                          FILTER (WHERE status = ANY(%(open)s) AND %(today)s - due_date BETWEEN 31 AND 60),
                      sum(CASE WHEN base_amounts_known THEN base_outstanding_amount ELSE outstanding_amount END)
                          FILTER (WHERE status = ANY(%(open)s) AND %(today)s - due_date BETWEEN 61 AND 90),
                      sum(CASE WHEN base_amounts_known THEN base_outstanding_amount ELSE outstanding_amount END)
                          FILTER (WHERE status = ANY(%(open)s) AND %(today)s - due_date > 90)
                 FROM sage_invoice
                WHERE partner_id = ANY(%(ids)s) AND connection_id = %(connection)s AND status = ANY(%(counted)s)
             GROUP BY partner_id, currency_id, invoice_type""",
            {"open": list(OPEN_STATUSES), "counted": list(COUNTED_STATUSES), "today": today,
             "ids": partners.ids, "connection": connection.id},
        )
        figures = {
            partner.id: {"sage_outstanding_amount": 0.0, "sage_overdue_amount": 0.0,
                         "sage_next_due_date": False, "sage_oldest_overdue_date": False,
                         "sage_invoice_count": 0, "sage_figures_date": today,
                         "sage_payable_amount": 0.0, "sage_payable_overdue_amount": 0.0,
                         **dict.fromkeys(AGED_FIELDS, 0.0)}
            for partner in partners
        }
        for partner_id, invoice_currency, invoice_type, count, outstanding, overdue, next_due, oldest, in_base, \
                *aged in self.env.cr.fetchall():
            values = figures[partner_id]
            if invoice_type in CREDIT_OFFSETS:
                # Credit not yet allocated is owed back: it comes off what is outstanding (a credit
                # note has no due date, so it changes neither overdue nor the aged buckets).
                if in_base or invoice_currency == currency_id:
                    values[CREDIT_OFFSETS[invoice_type]] -= outstanding or 0.0
                continue
            if invoice_type not in INVOICE_TYPES:
                continue
            if invoice_type == "sale" and (in_base or invoice_currency == currency_id):
                for fname, amount in zip(AGED_FIELDS, aged, strict=True):
                    values[fname] += amount or 0.0
            # Sage's base-currency amounts add up whatever the invoice's currency; without them
            # only invoices in the business's own currency can be added (never pounds to euros).
            countable = in_base or invoice_currency == currency_id
            prefix = "sage_payable" if invoice_type != "sale" else "sage"
            if invoice_type == "sale":
                values["sage_invoice_count"] += count
                # Dates tell when something is due whatever the currency.
                if next_due and (not values["sage_next_due_date"] or next_due < values["sage_next_due_date"]):
                    values["sage_next_due_date"] = next_due
                if oldest and (not values["sage_oldest_overdue_date"] or oldest < values["sage_oldest_overdue_date"]):
                    values["sage_oldest_overdue_date"] = oldest
                key_outstanding, key_overdue = "sage_outstanding_amount", "sage_overdue_amount"
            else:
                key_outstanding, key_overdue = f"{prefix}_amount", f"{prefix}_overdue_amount"
            if countable:
                values[key_outstanding] += outstanding or 0.0
                values[key_overdue] += max(overdue or 0.0, 0.0)
        partners._sage_add_quote_figures(figures, connection, today, currency_id)
        # A person of a bound company shows its company's figures (contacts list, filters).
        persons = self.sudo().with_context(active_test=False).search([
            ("parent_id", "in", partners.ids), ("is_company", "=", False), ("type", "=", "contact"),
            ("id", "not in", partners.ids)])
        owners = partners | persons
        values_list = [figures[partner.id] for partner in partners]
        values_list += [figures[person.parent_id.id] for person in persons]
        # sudo: the figures are written whoever triggers the recomputation, in the connection's company.
        self.env["sage.sync"]._bulk_write(owners.sudo().with_company(connection.company_id), values_list)
