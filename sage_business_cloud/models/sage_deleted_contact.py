"""Sage contacts whose linked partner was deleted in Odoo: the sync must not bring them back."""

from odoo import _, fields, models


class SageDeletedContact(models.Model):
    _name = "sage.deleted.contact"
    _description = "Sage contact deleted on the Odoo side"
    _order = "deleted_at desc, id desc"

    connection_id = fields.Many2one("sage.connection", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True)
    sage_contact_id = fields.Char("Sage contact id", required=True, index=True)
    name = fields.Char("Partner name")
    deleted_at = fields.Datetime(default=fields.Datetime.now, required=True)
    deleted_by_id = fields.Many2one("res.users", default=lambda self: self.env.user)

    _sql_constraints = [
        ("contact_uniq", "unique(connection_id, sage_contact_id)",
         "This Sage contact is already remembered as deleted."),
    ]

    def action_restore(self):
        """Forget these deletions: the next sync imports the Sage contacts again."""
        names = ", ".join(self.mapped("name"))
        self.unlink()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": "success", "sticky": False,
                       "message": _("The next sync will import again: %s", names),
                       "next": {"type": "ir.actions.act_window_close"}},
        }
