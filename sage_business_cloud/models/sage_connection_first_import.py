"""The first import of a connection: what it creates (scope), and when it starts (preview first).

An administrator chooses what the import creates (``import_scope``) and whether the first import
waits for a preview (``first_import_mode``). A preview reads Sage as the import does and writes
nothing but its own ``sage.sync.run`` (trigger ``preview``); "Import now" then starts the import.
Until then, the 2-hourly cron leaves a connection waiting for its preview alone.
"""

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

IMPORT_SCOPES = [
    ("all", "All contacts"),
    ("customers", "Customers only"),
    ("invoiced", "Contacts with at least one invoice"),
    ("link_only", "Link existing partners only, create nothing"),
]
FIRST_IMPORT_MODES = [
    ("preview", "After a preview, when an administrator clicks Import now"),
    ("auto", "At the first sync after Connect"),
]
#: Written by the addon only (through sudo), never by a user's write.
INTERNAL_FIELDS = frozenset({"first_import_approved", "preview_requested"})


class SageConnection(models.Model):
    _inherit = "sage.connection"

    import_scope = fields.Selection(
        IMPORT_SCOPES, string="Contacts the import creates", default="all", required=True,
        help="Contacts outside this scope are not created: they are listed in the run and arrive "
        "later if they come into scope (a first invoice, say). Links by exact name are always made.")
    first_import_mode = fields.Selection(
        FIRST_IMPORT_MODES, string="First import", default="preview", required=True,
        help="With a preview first, the sync cron never starts the first import by itself.")
    first_import_approved = fields.Boolean(
        readonly=True, copy=False, help="Import now was clicked: the first import may run.")
    preview_requested = fields.Boolean(
        readonly=True, copy=False, help="Set by Preview the first import; cleared when the preview runs.")
    first_import_pending = fields.Boolean(
        compute="_compute_first_import_pending", help="Connected, and the first import has not completed.")

    @api.depends("state", "contacts_synced_until")
    def _compute_first_import_pending(self):
        for connection in self:
            connection.first_import_pending = connection.state == "connected" and not connection.contacts_synced_until

    def write(self, vals):
        if INTERNAL_FIELDS & set(vals) and not self.env.su:
            raise AccessError(_("These Sage fields are written by the Sage Business Cloud addon only."))
        return super().write(vals)

    def _select_business(self, business_id):
        """Another business: the contacts skipped in the old one mean nothing any more."""
        changed = self.business_id and self.business_id != business_id
        result = super()._select_business(business_id)
        if changed:
            self.env["sage.sync"]._sage_forget_skipped(self)
        return result

    def _sage_waits_for_preview(self):
        """Whether the first import of this connection waits for an administrator's Import now."""
        self.ensure_one()
        return (self.first_import_mode == "preview" and not self.contacts_synced_until
                and not self.first_import_approved)

    # ------------------------------------------------------------------
    # buttons (XML-RPC: administrators)
    # ------------------------------------------------------------------
    def action_preview_first_import(self):
        """Have the first import previewed: nothing is created or linked.

        Hands the work over as Sync now does (the sync cron, or a queue job), which runs the preview
        (a ``sage.sync.run`` of trigger ``preview``) instead of a sync, and returns at once. The
        preview's lines are the ``sage.sync.preview.line`` records of that run.
        """
        self._check_admin()
        if any(c.state != "connected" for c in self):
            raise UserError(_("Connect to Sage before previewing the first import."))
        if any(c.contacts_synced_until for c in self):
            raise UserError(_("The first import of this company is done: there is nothing to preview."))
        self.sudo().write({"preview_requested": True})
        # handed over as Sync now is (the cron, or a queue job): the run sees the request
        self._sage_dispatch_syncs("manual")
        return self._sage_notify(_("The preview has started; it appears in the sync runs when done."))

    def action_import_now(self):
        """Start the first import (after its preview), as Sync now does."""
        self._check_admin()
        self.sudo().write({"first_import_approved": True})
        return self.action_sync_now()

    def _sage_notify(self, message):
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": {"type": "info", "message": message, "sticky": False}}

    # ------------------------------------------------------------------
    # the cron's decision
    # ------------------------------------------------------------------
    def _run_sync(self, trigger="manual"):
        """A requested preview runs instead of a sync; the cron does not start a first import
        that waits for its preview (the run is not even recorded: nothing happened)."""
        self.ensure_one()
        if self.preview_requested:
            # its own short transaction, like the rest of the sync's bookkeeping on this row
            self._write_sync_state({"preview_requested": False})
            return self.env["sage.sync"]._sync_connection(self, trigger="preview")
        if trigger == "cron" and self._sage_waits_for_preview():
            return self.env["sage.sync.run"]
        return super()._run_sync(trigger=trigger)
