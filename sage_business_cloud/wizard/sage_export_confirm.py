"""Export to Sage of a partner that may duplicate a Sage contact: link to it, or export anyway."""

from odoo import _, api, fields, models
from odoo.exceptions import UserError


class SageExportConfirm(models.TransientModel):
    _name = "sage.export.confirm"
    _description = "Confirm the export of a possible duplicate to Sage"

    partner_id = fields.Many2one("res.partner", required=True, ondelete="cascade")
    duplicate_id = fields.Many2one("res.partner", string="Already in Sage as", compute="_compute_duplicate")
    message = fields.Text(compute="_compute_duplicate")

    @api.depends("partner_id")
    def _compute_duplicate(self):
        for wizard in self:
            duplicate = wizard.partner_id._sage_duplicate_of()
            wizard.duplicate_id = duplicate
            wizard.message = _(
                "The Sage sync imported “%(other)s”, which may be the same as “%(partner)s”. Exporting "
                "would create a second Sage contact. Link “%(partner)s” to it instead (Odoo merges the "
                "two partners and keeps its Sage link), or export anyway if they are different.",
                other=duplicate.display_name, partner=wizard.partner_id.commercial_partner_id.display_name,
            ) if duplicate else False

    def action_link(self):
        """Merge the imported duplicate into this partner, which takes over its Sage link."""
        self.ensure_one()
        if not self.duplicate_id:
            raise UserError(_("There is nothing to link to any more: export again."))
        return self.duplicate_id.action_sage_link_existing()

    def action_export_anyway(self):
        self.ensure_one()
        return self.partner_id.with_context(sage_export_anyway=True).action_export_to_sage()
