"""A linked partner's Sage balance and credit position, read from its binding (never written).

The values are those of the binding of the current company's connection, stored by the sync
(``sage_binding_credit``); a person of a linked company shows its company's. A supplier's
balance (what we owe it) is shown to the group "Sage: supplier invoices" only, like the
purchase invoices. All are ``sage_*`` fields: the partner guard refuses them to every writer.
"""

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from .res_partner_invoice import SUPPLIER_GROUP
from .sage_binding_credit import CREDIT_TERMS


class ResPartner(models.Model):
    _inherit = "res.partner"

    sage_balance = fields.Monetary(
        "Sage balance", currency_field="sage_currency_id", compute="_compute_sage_credit",
        help="The balance of the contact's account in Sage: its invoices' outstanding amounts less "
        "the credit notes not yet allocated and the payments on account, as Sage states it.")
    sage_balance_known = fields.Boolean("Sage balance known", compute="_compute_sage_credit")
    sage_credit_limit = fields.Monetary(
        "Sage credit limit", currency_field="sage_currency_id", compute="_compute_sage_credit",
        help="The credit limit set on the contact in Sage (none when empty).")
    sage_available_credit = fields.Monetary(
        "Sage available credit", currency_field="sage_currency_id", compute="_compute_sage_credit",
        help="Credit limit less balance; negative when over the limit.")
    sage_credit_days = fields.Integer("Sage credit days", compute="_compute_sage_credit")
    sage_credit_terms = fields.Selection(CREDIT_TERMS, string="Sage credit terms", compute="_compute_sage_credit")
    sage_payment_terms = fields.Char(
        "Sage payment terms", compute="_compute_sage_credit",
        help="The contact's payment terms in Sage, in words.")
    sage_over_credit_limit = fields.Boolean(
        "Over credit limit", compute="_compute_sage_credit", search="_search_sage_over_credit_limit",
        help="A Sage customer whose balance is above its credit limit.")

    @api.depends_context("company", "uid")
    @api.depends("sage_binding_ids", "sage_binding_ids.balance", "sage_binding_ids.credit_limit",
                 "sage_binding_ids.credit_days", "sage_binding_ids.credit_terms", "parent_id")
    def _compute_sage_credit(self):
        owners = {partner.id: partner._sage_figures_owner() for partner in self}
        bindings = self.browse({owner.id for owner in owners.values()} - {False})._sage_current_bindings()
        supplier_reader = self.env.user.has_group(SUPPLIER_GROUP)
        for partner in self:
            binding = bindings.get(owners[partner.id].id)
            if binding and binding.kind != "contact":
                binding = None
            shown = bool(binding) and (binding.is_customer or supplier_reader)
            known = shown and binding.balance_known
            partner.sage_balance_known = known
            partner.sage_balance = binding.balance if known else 0.0
            partner.sage_credit_limit = binding.credit_limit if shown else 0.0
            partner.sage_available_credit = (
                binding.credit_limit - binding.balance if known and binding.credit_limit > 0 else 0.0)
            partner.sage_credit_days = binding.credit_days if shown else 0
            partner.sage_credit_terms = binding.credit_terms if shown else False
            partner.sage_payment_terms = shown and _terms_in_words(binding)
            partner.sage_over_credit_limit = bool(shown and binding.over_credit_limit)

    def _search_sage_over_credit_limit(self, operator, value):
        if operator not in ("=", "!="):
            raise UserError(_("Over credit limit can only be searched with = or !=."))
        matching = [("sage_binding_ids", "any", [
            ("company_id", "=", self.env.company.id), ("kind", "=", "contact"), ("over_credit_limit", "=", True)])]
        return matching if bool(value) == (operator == "=") else ["!", *matching]


def _terms_in_words(binding):
    """'30 days from the invoice date', or False when Sage set no terms."""
    terms = binding.credit_terms
    if not terms and not binding.credit_days:
        return False
    days = binding.credit_days
    if not days and terms not in ("immediate_invoice", "immediate_payment"):
        # No days of its own: Sage uses the business's default credit days (invoice settings).
        return _("%s (the business's default credit days)", dict(CREDIT_TERMS)[terms])
    words = {
        "date_from_invoice": lambda: _("%s days from the invoice date", days),
        "month_end_invoice": lambda: _("%s days after the end of the invoice month", days),
        "immediate_invoice": lambda: _("Due on the invoice date"),
        "date_from_payment": lambda: _("%s days from payment", days),
        "month_end_payment": lambda: _("%s days after the end of the payment month", days),
        "immediate_payment": lambda: _("Due on payment"),
    }
    return words[terms]() if terms in words else _("%s days", days)
