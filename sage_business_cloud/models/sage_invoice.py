"""Summary of one Sage document of a linked partner (read-only copy).

Invoices, credit notes, quotes and estimates share this model; ``invoice_type`` says which. Credit
notes take money off what is owed (their outstanding amount is the credit not yet allocated);
quotes and estimates count in no amount owed, only in the partner's open quotes.
"""

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..services.sage_api import SageService
from ..services.sage_client import SageError
from .sage_binding import sage_user_message

AGED_BUCKETS = [
    ("current", "Not yet due"), ("1_30", "1-30 days overdue"), ("31_60", "31-60 days overdue"),
    ("61_90", "61-90 days overdue"), ("90_plus", "Over 90 days overdue"),
]
PAYMENT_STATES = [("paid", "Paid"), ("partial", "Part paid"), ("not_paid", "Not paid")]
# Sage statuses that count in the figures; DRAFT, VOID and the like do not.
OPEN_STATUSES = ("UNPAID", "PART_PAID", "DISPUTED")
COUNTED_STATUSES = OPEN_STATUSES + ("PAID",)
DOCUMENT_TYPES = [
    ("sale", "Sales invoice"), ("purchase", "Purchase invoice"),
    ("sale_credit", "Sales credit note"), ("purchase_credit", "Purchase credit note"),
    ("quote", "Sales quote"), ("estimate", "Sales estimate"),
]
#: Documents that carry an amount owed (invoices) or owed back (credit notes).
INVOICE_TYPES = ("sale", "purchase")
#: Stored computed fields that ``_sage_with_computed`` gives for the rows the sync creates.
SYNC_COMPUTED = ("company_id", "partner_team_id", "payment_state", "aged_bucket")
CREDIT_TYPES = ("sale_credit", "purchase_credit")
QUOTE_TYPES = ("quote", "estimate")
#: What is only for the group "Sage: supplier invoices".
SUPPLIER_TYPES = ("purchase", "purchase_credit")
#: Sage's quote and estimate statuses (``QuoteStatus``; the Swagger file lists no ids).
QUOTE_STATUSES = ("DRAFT", "PENDING", "ACCEPTED", "DECLINED", "INVOICED", "EXPIRED")
#: Quotes still in play: not invoiced nor declined (DRAFT and PENDING ones until they expire).
LIVE_QUOTE_STATUSES = ("DRAFT", "PENDING")


class SageInvoice(models.Model):
    _name = "sage.invoice"
    _description = "Sage Business Cloud invoice summary"
    _order = "due_date desc, date desc, id desc"
    _rec_name = "number"

    partner_id = fields.Many2one("res.partner", required=True, ondelete="cascade", index=True)
    connection_id = fields.Many2one("sage.connection", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True)
    sage_id = fields.Char("Sage id", required=True, index=True)
    sage_contact_id = fields.Char("Sage contact id", index=True)
    invoice_type = fields.Selection(DOCUMENT_TYPES, string="Kind", required=True, index=True)
    number = fields.Char(help="Sage's number (invoice_number, credit_note_number, quote_number, "
                         "estimate_number); vendor_reference for purchase documents.")
    date = fields.Date()
    due_date = fields.Date(index=True)
    expiry_date = fields.Date(help="Quotes and estimates: the day the offer ends.")
    is_open_quote = fields.Boolean(
        "Open quote", compute="_compute_is_open_quote", search="_search_is_open_quote",
        help="A quote or estimate neither invoiced nor declined, and not past its expiry date "
        "(accepted ones stay open until Sage invoices them).")
    currency_id = fields.Many2one("res.currency", required=True)
    total_amount = fields.Monetary(currency_field="currency_id")
    outstanding_amount = fields.Monetary(currency_field="currency_id")
    base_total_amount = fields.Float(
        "Total (base currency)", digits=(16, 2),
        help="Total in the Sage business's base currency, at Sage's exchange rate.")
    base_outstanding_amount = fields.Float(
        "Outstanding (base currency)", digits=(16, 2),
        help="Outstanding in the Sage business's base currency, at Sage's exchange rate.")
    base_amounts_known = fields.Boolean(help="Sage gave the base-currency amounts of this invoice.")
    status = fields.Char("Sage status", help="Sage's status id: UNPAID, PART_PAID, PAID, VOID, DRAFT...")
    status_label = fields.Char("Status")
    payment_state = fields.Selection(PAYMENT_STATES, compute="_compute_payment_state", store=True)
    is_overdue = fields.Boolean(
        "Overdue", compute="_compute_is_overdue", search="_search_is_overdue",
        help="Money outstanding and the due date is past (computed against today).",
    )
    sage_url = fields.Char("Sage URL", help="Sage's own web-app link for this invoice.")
    partner_team_id = fields.Many2one(related="partner_id.team_id", string="Sales team", store=True)
    aged_bucket = fields.Selection(
        AGED_BUCKETS, string="Age", compute="_compute_aged_bucket", store=True,
        help="How late the money outstanding is (as of the last sync or daily refresh).")
    sage_updated_at = fields.Datetime()

    _sql_constraints = [
        ("sage_id_uniq", "unique(connection_id, invoice_type, sage_id)",
         "This Sage invoice is already summarised."),
    ]

    @api.depends("status", "outstanding_amount", "total_amount")
    def _compute_payment_state(self):
        for invoice in self:
            invoice.payment_state = _payment_state(
                invoice.status, invoice.outstanding_amount, invoice.total_amount, invoice.currency_id)

    @api.model
    def _sage_create_computed(self, vals_list, connection):
        """Create the rows of ``vals_list`` with their stored computed fields given
        (``_sage_with_computed``). Odoo protects only editable or precomputed fields given to
        ``create`` from being computed again, so these would be recomputed row by row at the
        next flush, to the same values: they are taken off the list of fields to compute."""
        rows = self.create(self._sage_with_computed(vals_list, connection))
        for fname in SYNC_COMPUTED:
            self.env.remove_to_compute(self._fields[fname], rows)
        return rows

    @api.model
    def _sage_with_computed(self, vals_list, connection):
        """``vals_list`` of rows the sync is about to create, with their stored computed fields
        given (as their computes would set them), so that ``create`` does not compute them row
        by row: the partner's sales team is read once for all rows."""
        partners = self.env["res.partner"].browse({vals["partner_id"] for vals in vals_list})
        partners.fetch(["team_id"])
        Currency = self.env["res.currency"]
        today = self._sage_today()
        return [{
            **vals,
            "company_id": connection.company_id.id,
            "partner_team_id": partners.browse(vals["partner_id"]).team_id.id,
            "payment_state": _payment_state(vals["status"], vals["outstanding_amount"], vals["total_amount"],
                                            Currency.browse(vals["currency_id"])),
            "aged_bucket": vals["invoice_type"] in INVOICE_TYPES and _bucket(
                vals["status"], vals["outstanding_amount"], vals["due_date"], today),
        } for vals in vals_list]

    @api.depends("status", "outstanding_amount", "due_date", "invoice_type")
    def _compute_aged_bucket(self):
        today = self._sage_today()
        for invoice in self:
            invoice.aged_bucket = invoice.invoice_type in INVOICE_TYPES and _bucket(
                invoice.status, invoice.outstanding_amount, invoice.due_date, today)

    @api.depends("invoice_type", "status", "expiry_date")
    @api.depends_context("date")
    def _compute_is_open_quote(self):
        today = self._sage_today()
        for invoice in self:
            invoice.is_open_quote = invoice.invoice_type in QUOTE_TYPES and (
                invoice.status == "ACCEPTED" or (
                    invoice.status in LIVE_QUOTE_STATUSES
                    and (not invoice.expiry_date or invoice.expiry_date >= today)))

    def _search_is_open_quote(self, operator, value):
        if operator not in ("=", "!="):
            raise UserError(_("Open quote can only be searched with = or !=."))
        domain = self._open_quote_domain()
        positive = bool(value) == (operator == "=")
        return domain if positive else ["!", *domain]

    def _open_quote_domain(self):
        today = self._sage_today()
        return ["&", ("invoice_type", "in", QUOTE_TYPES), "|", ("status", "=", "ACCEPTED"),
                "&", ("status", "in", LIVE_QUOTE_STATUSES), "|", ("expiry_date", "=", False),
                ("expiry_date", ">=", today)]

    @api.model
    def _sage_refresh_aged_buckets(self, connection):
        """Overdue moves with the calendar: put every open invoice of ``connection`` in today's
        bucket (one UPDATE, run by every sync)."""
        self.flush_model()
        # Only the rows whose bucket changes are written: most days, few or none.
        self.env.cr.execute(
            """UPDATE sage_invoice SET aged_bucket = bucket FROM (
                    SELECT id AS row_id, CASE
                        WHEN due_date IS NULL OR due_date >= %(today)s THEN 'current'
                        WHEN %(today)s - due_date <= 30 THEN '1_30'
                        WHEN %(today)s - due_date <= 60 THEN '31_60'
                        WHEN %(today)s - due_date <= 90 THEN '61_90'
                        ELSE '90_plus' END AS bucket
                      FROM sage_invoice
                     WHERE connection_id = %(connection)s AND status = ANY(%(open)s) AND outstanding_amount > 0
                       AND invoice_type = ANY(%(types)s)
                ) AS aged
                WHERE sage_invoice.id = aged.row_id AND sage_invoice.aged_bucket IS DISTINCT FROM aged.bucket""",
            {"today": self._sage_today(), "connection": connection.id, "open": list(OPEN_STATUSES),
             "types": list(INVOICE_TYPES)})
        self.invalidate_model(["aged_bucket"])

    @api.model
    def _sage_today(self):
        """Today in the user's time zone, or the ``date`` given in the context (reports, tests)."""
        return fields.Date.to_date(self.env.context.get("date")) or fields.Date.context_today(self)

    @api.depends("status", "outstanding_amount", "due_date")
    @api.depends_context("date")
    def _compute_is_overdue(self):
        today = self._sage_today()
        for invoice in self:
            invoice.is_overdue = bool(
                invoice.status in OPEN_STATUSES
                and invoice.outstanding_amount > 0
                and invoice.due_date
                and invoice.due_date < today
            )

    def _search_is_overdue(self, operator, value):
        today = self._sage_today()
        domain = [
            ("status", "in", OPEN_STATUSES),
            ("outstanding_amount", ">", 0),
            ("due_date", "<", today),
        ]
        positive = (operator in ("=", "!=")) and (bool(value) == (operator == "="))
        return domain if positive else ["!", "&", "&", *domain]

    def action_open_in_sage(self):
        """Open this invoice in Sage's web app."""
        self.ensure_one()
        return {"type": "ir.actions.act_url", "url": self.sage_url, "target": "new"}

    def action_download_pdf(self):
        """Fetch Sage's PDF of this invoice now (never when the form opens) and download it."""
        self.ensure_one()
        self.check_access("read")
        service = SageService(self.connection_id.sudo()._get_client())
        try:
            pdf = service.invoice_pdf(self.invoice_type, self.sage_id)
        except SageError as error:
            raise UserError(sage_user_message(error)) from None
        if not pdf or not pdf.startswith(b"%PDF"):
            raise UserError(_("Sage did not send a PDF for %s.", self.number or self.sage_id))
        attachment = self.env["ir.attachment"].sudo().create({
            "name": "%s.pdf" % (self.number or self.sage_id), "raw": pdf, "mimetype": "application/pdf",
            "res_model": self._name, "res_id": self.id,
        })
        return {"type": "ir.actions.act_url", "target": "self",
                "url": "/web/content/%s?download=true" % attachment.id}


def _payment_state(status, outstanding, total, currency):
    if status == "PAID" or (status in OPEN_STATUSES and currency.is_zero(outstanding)):
        return "paid"
    if status == "PART_PAID" or (status in OPEN_STATUSES and outstanding < total):
        return "partial"
    return "not_paid"


def _bucket(status, outstanding, due_date, today):
    if status not in OPEN_STATUSES or not outstanding or outstanding <= 0:
        return False
    if not due_date or due_date >= today:
        return "current"
    late = (today - due_date).days
    if late <= 30:
        return "1_30"
    if late <= 60:
        return "31_60"
    return "61_90" if late <= 90 else "90_plus"
