"""A linked contact's balance and credit position, as Sage last gave them (read-only copy).

Stored on the contact's binding at every read of the contact by the sync (linked contacts
included: these are Sage's own facts, not the partner's fields, so storing them overwrites
nothing Odoo owns), and refreshed by the incremental sync for the contacts whose documents or
payments changed. Like every binding field, they are written by the addon only.
"""

import logging

from odoo import api, fields, models

from ..services.sage_mapping import MappingError, credit_values

_logger = logging.getLogger(__name__)

CREDIT_TERMS = [
    ("date_from_invoice", "Days from the invoice date"),
    ("month_end_invoice", "Days after the end of the invoice month"),
    ("immediate_invoice", "Due on the invoice date"),
    ("date_from_payment", "Days from payment"),
    ("month_end_payment", "Days after the end of the payment month"),
    ("immediate_payment", "Due on payment"),
]


class SageBinding(models.Model):
    _inherit = "sage.binding"

    balance = fields.Float(
        digits=(16, 2), readonly=True,
        help="The contact's balance in Sage (business currency): what a customer owes, what is owed "
        "to a supplier, after credit notes and payments on account.")
    balance_known = fields.Boolean(readonly=True, help="Sage gave the balance at the last read.")
    credit_limit = fields.Float(digits=(16, 2), readonly=True, help="Sage's credit limit; 0: none.")
    credit_days = fields.Integer(readonly=True)
    credit_terms = fields.Selection(CREDIT_TERMS, readonly=True)
    is_customer = fields.Boolean(readonly=True, default=True, help="The Sage contact is a customer.")
    credit_read_at = fields.Datetime("Credit position read on", readonly=True)
    over_credit_limit = fields.Boolean(
        compute="_compute_over_credit_limit", store=True, index="btree_not_null",
        help="A customer whose balance is above its credit limit.")

    @api.model
    def _sage_bind_values(self, connection, partner_id, contact, method, snapshot=None, **extra):
        """A new link (by the sync, by hand, by an export) starts with the credit position the
        Sage contact it was made from carries, when it was read with its balance."""
        values = super()._sage_bind_values(connection, partner_id, contact, method, snapshot=snapshot, **extra)
        if "balance" in contact:
            try:
                values.update(credit_values(contact), credit_read_at=fields.Datetime.now())
            except MappingError as error:
                # left unknown; read again (and reported) by the next sync that reads the contact
                _logger.info("Sage contact %s: credit position not stored (%s)", contact.get("id"), error)
        return values

    @api.depends("balance", "balance_known", "credit_limit", "is_customer")
    def _compute_over_credit_limit(self):
        for binding in self:
            binding.over_credit_limit = bool(
                binding.is_customer and binding.balance_known and binding.credit_limit > 0
                and binding.balance > binding.credit_limit)
