"""A linked partner's open Sage quotes and estimates: stored figures and the list.

Open quotes are quotes and estimates neither invoiced nor declined and not past their expiry
date (accepted ones stay open until Sage invoices them: see ``sage.invoice.is_open_quote``).
Their total is a stored, company-dependent figure written with the other figures (one query per
recomputation), so that partners can be filtered and sorted by it; it never counts in what is
owed. The daily refresh recomputes the partners whose quotes expired since.
"""

from odoo import api, fields, models

from .sage_invoice import LIVE_QUOTE_STATUSES, QUOTE_TYPES


class ResPartner(models.Model):
    _inherit = "res.partner"

    sage_open_quote_amount = fields.Float(
        "Sage open quotes", company_dependent=True, copy=False, digits=(16, 2),
        help="Total of the open Sage quotes and estimates, in the Sage business's currency "
        "(not counted in what is owed).")
    sage_open_quote_count = fields.Integer("Sage open quotes count", company_dependent=True, copy=False)
    sage_display_quote_ids = fields.Many2many(
        "sage.invoice", string="Quotes and estimates", compute="_compute_sage_display_quotes")
    sage_display_open_quote_amount = fields.Monetary(
        "Open quotes", currency_field="sage_currency_id", compute="_compute_sage_display_quotes")

    @api.depends_context("company")
    @api.depends("sage_invoice_ids", "sage_open_quote_amount", "commercial_partner_id.sage_open_quote_amount")
    def _compute_sage_display_quotes(self):
        owners = {partner.id: partner._sage_figures_owner() for partner in self}
        owner_ids = list({owner.id for owner in owners.values()} - {False})
        quotes = self.env["sage.invoice"].search([
            ("partner_id", "in", owner_ids), ("company_id", "=", self.env.company.id),
            ("invoice_type", "in", QUOTE_TYPES),
        ], order="date desc, id desc") if owner_ids else self.env["sage.invoice"]
        for partner in self:
            owner = owners[partner.id]
            partner.sage_display_quote_ids = quotes.filtered(lambda q, owner=owner: q.partner_id == owner)
            partner.sage_display_open_quote_amount = owner.sage_open_quote_amount

    def _sage_add_quote_figures(self, figures, connection, today, currency_id):
        """Add the open quotes figures of these partners to ``figures`` (one query)."""
        for values in figures.values():
            values.update(sage_open_quote_amount=0.0, sage_open_quote_count=0)
        self.env.cr.execute(
            """SELECT partner_id, count(*),
                      sum(CASE WHEN base_amounts_known THEN base_total_amount ELSE total_amount END)
                          FILTER (WHERE base_amounts_known OR currency_id = %(currency)s)
                 FROM sage_invoice
                WHERE partner_id = ANY(%(ids)s) AND connection_id = %(connection)s
                  AND invoice_type = ANY(%(quotes)s)
                  AND (status = 'ACCEPTED' OR (status = ANY(%(live)s)
                       AND (expiry_date IS NULL OR expiry_date >= %(today)s)))
             GROUP BY partner_id""",
            {"ids": self.ids, "connection": connection.id, "quotes": list(QUOTE_TYPES),
             "live": list(LIVE_QUOTE_STATUSES), "today": today, "currency": currency_id},
        )
        for partner_id, count, amount in self.env.cr.fetchall():
            figures[partner_id].update(sage_open_quote_amount=amount or 0.0, sage_open_quote_count=count)
