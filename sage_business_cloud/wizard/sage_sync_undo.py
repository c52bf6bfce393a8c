"""The confirmation of the undo of a first import: what it deletes, keeps and unlinks, first."""

from odoo import _, api, fields, models


class SageSyncUndo(models.TransientModel):
    _name = "sage.sync.undo"
    _description = "Confirm the undo of a first Sage import"

    run_id = fields.Many2one("sage.sync.run", required=True, ondelete="cascade")
    delete_count = fields.Integer("Partners deleted", readonly=True)
    unlink_count = fields.Integer("Links by name removed", readonly=True)
    kept_partner_ids = fields.Many2many("res.partner", string="Kept (changed since the import)", readonly=True)
    keep_count = fields.Integer("Partners kept", compute="_compute_summary")
    summary = fields.Text(compute="_compute_summary")

    @api.depends("delete_count", "unlink_count", "kept_partner_ids")
    def _compute_summary(self):
        for wizard in self:
            wizard.keep_count = len(wizard.kept_partner_ids)
            wizard.summary = _(
                "%(deleted)s partners the import created will be deleted, %(kept)s it created are kept "
                "because they were changed or used since, and %(unlinked)s links it made by name will be "
                "removed (those partners stay). The company then returns to “not yet imported”.",
                deleted=wizard.delete_count, kept=wizard.keep_count, unlinked=wizard.unlink_count)

    def action_confirm(self):
        """Undo the import (counted again: what changed since the dialog opened is kept)."""
        self.ensure_one()
        self.run_id._sage_undo()
        return {"type": "ir.actions.act_window", "res_model": "sage.sync.run", "res_id": self.run_id.id,
                "view_mode": "form", "target": "current"}
