"""The record of every sync run: what triggered it, what it did, and what it could not map."""

from odoo import api, fields, models


class SageSyncRun(models.Model):
    _name = "sage.sync.run"
    _description = "Sage Business Cloud sync run"
    _order = "started_at desc, id desc"
    _rec_name = "started_at"

    connection_id = fields.Many2one("sage.connection", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True, index=True)
    trigger = fields.Selection(
        [("cron", "Every 2 hours"), ("manual", "Sync now"), ("script", "Started by a script")],
        required=True, default="cron",
    )
    state = fields.Selection(
        [("running", "Running"), ("done", "Done"), ("partial", "Done with errors"),
         ("failed", "Failed"), ("skipped", "Skipped")],
        required=True, default="running", index=True,
    )
    started_at = fields.Datetime(required=True, default=fields.Datetime.now)
    finished_at = fields.Datetime()
    duration = fields.Float("Duration (s)", digits=(16, 2))
    full_import = fields.Boolean(help="A first import: every Sage contact was read.")
    contacts_read = fields.Integer()
    contacts_linked = fields.Integer(help="Linked to an existing partner by exact name.")
    contacts_created = fields.Integer()
    contacts_unlinked = fields.Integer(help="Deleted in Sage; the partner stays, unlinked.")
    contacts_ignored = fields.Integer(
        help="Changed in Sage but already linked: Odoo is the source of truth, nothing was overwritten.")
    contacts_flagged = fields.Integer(help="Created and flagged for review (ambiguous or near match).")
    invoices_read = fields.Integer()
    invoices_stored = fields.Integer()
    invoices_removed = fields.Integer()
    invoices_waiting = fields.Integer(help="Invoices of contacts not linked yet; read again later.")
    http_requests = fields.Integer("HTTP requests")
    wait_seconds = fields.Float(
        "Waited for Sage (s)", digits=(16, 2),
        help="Time the run spent waiting for Sage's answers; pages read ahead while Odoo was busy "
             "writing the previous ones are not counted. The rest of the duration is Odoo's own work.")
    message = fields.Text()
    error_ids = fields.One2many("sage.sync.error", "run_id", string="Errors")
    error_count = fields.Integer(compute="_compute_error_count", store=True)

    @api.depends("error_ids")
    def _compute_error_count(self):
        counts = dict(self.env["sage.sync.error"]._read_group(
            [("run_id", "in", self.ids)], ["run_id"], ["__count"]))
        for run in self:
            run.error_count = counts.get(run, 0)


class SageSyncError(models.Model):
    _name = "sage.sync.error"
    _description = "Sage Business Cloud record that a sync could not map"
    _order = "id"

    run_id = fields.Many2one("sage.sync.run", required=True, ondelete="cascade", index=True)
    resource = fields.Char(help="Sage resource, e.g. contacts or sales_invoices.")
    sage_id = fields.Char("Sage id", index=True)
    name = fields.Char("Sage name")
    reason = fields.Text(required=True)
