"""The partner form's action (gear) menu: Unlink, Delete in Sage, Delete in Sage and Odoo,
each behind a confirmation that says exactly what will happen."""

from odoo import _, api, fields, models
from odoo.exceptions import UserError

OPERATIONS = [
    ("unlink", "Unlink from Sage"),
    ("delete", "Delete in Sage"),
    ("delete_both", "Delete in Sage and Odoo"),
]


class SageLinkAction(models.TransientModel):
    _name = "sage.link.action"
    _description = "Confirm a Sage link action"

    partner_id = fields.Many2one("res.partner", required=True, ondelete="cascade")
    operation = fields.Selection(OPERATIONS, required=True)
    message = fields.Text(compute="_compute_message")

    @api.depends("partner_id", "operation")
    def _compute_message(self):
        for wizard in self:
            partner = wizard.partner_id
            invoices = len(partner.sage_display_invoice_ids)
            wizard.message = {
                "unlink": _("%(partner)s stays in Odoo and its contact stays in Sage; the link between them "
                            "is removed, with the %(count)s Sage invoices shown on it.",
                            partner=partner.display_name, count=invoices),
                "delete": _("The Sage contact of %(partner)s is deleted in Sage (Sage refuses when it has "
                            "transactions). The partner stays in Odoo, unlinked.", partner=partner.display_name),
                "delete_both": _("The Sage contact of %(partner)s is deleted in Sage and the partner is deleted "
                                 "in Odoo. This cannot be undone.", partner=partner.display_name),
            }.get(wizard.operation, False)

    def action_confirm(self):
        self.ensure_one()
        partner = self.partner_id
        if self.operation == "unlink":
            partner.action_sage_unlink()
            return partner._sage_notify(_("%s is no longer linked to Sage.", partner.display_name), "success")
        if self.operation == "delete":
            return partner.action_sage_delete()
        if self.operation == "delete_both":
            return partner.with_context(sage_delete_partner=True).action_sage_delete()
        raise UserError(_("Unknown action."))
