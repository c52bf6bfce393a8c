"""Watermarks of the document streams beyond invoices: credit notes, quotes, estimates, payments.

Each stream moves its own watermark once it completed (see ``sage_sync_documents``); a full
re-import of the contacts (the contacts watermark cleared, e.g. on connecting another business)
starts them all again from nothing, like the invoice streams.
"""

from odoo import api, fields, models

#: per document kind (``sage.invoice.invoice_type``), the connection field of its watermark
DOCUMENT_WATERMARKS = {
    "sale_credit": "credit_notes_synced_until",
    "purchase_credit": "purchase_credits_synced_until",
    "quote": "quotes_synced_until",
    "estimate": "estimates_synced_until",
}


class SageConnection(models.Model):
    _inherit = "sage.connection"

    credit_notes_synced_until = fields.Datetime(copy=False)
    purchase_credits_synced_until = fields.Datetime(copy=False)
    quotes_synced_until = fields.Datetime(copy=False)
    estimates_synced_until = fields.Datetime(copy=False)
    payments_synced_until = fields.Datetime(copy=False)
    credit_checked_on = fields.Date(
        "Credit positions checked on", copy=False,
        help="Day of the last full read of every contact's balance and of the quotes Sage still has.")

    @api.model
    def _document_stream_fields(self):
        return [*DOCUMENT_WATERMARKS.values(), "payments_synced_until", "credit_checked_on"]

    def write(self, vals):
        if "contacts_synced_until" in vals and not vals["contacts_synced_until"]:
            vals = {**dict.fromkeys(self._document_stream_fields(), False), **vals}
        return super().write(vals)

    @api.model
    def _document_watermark(self, kind):
        return DOCUMENT_WATERMARKS[kind]
