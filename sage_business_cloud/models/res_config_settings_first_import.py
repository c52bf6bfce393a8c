"""Settings > Sage Business Cloud: the first import (scope, preview first), its preview and the
run in progress."""

from odoo import api, fields, models

from .sage_connection_first_import import FIRST_IMPORT_MODES, IMPORT_SCOPES


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    sage_import_scope = fields.Selection(
        IMPORT_SCOPES, string="Contacts the import creates", compute="_compute_sage_first_import",
        readonly=False)
    sage_first_import_mode = fields.Selection(
        FIRST_IMPORT_MODES, string="Start the first import", compute="_compute_sage_first_import",
        readonly=False)
    sage_first_import_pending = fields.Boolean(related="sage_connection_id.first_import_pending")
    sage_preview_run_id = fields.Many2one("sage.sync.run", compute="_compute_sage_runs")
    sage_preview_state = fields.Selection(related="sage_preview_run_id.state", string="Preview state")
    sage_preview_linked = fields.Integer(related="sage_preview_run_id.contacts_linked")
    sage_preview_created = fields.Integer(related="sage_preview_run_id.contacts_created")
    sage_preview_ambiguous = fields.Integer(related="sage_preview_run_id.preview_ambiguous")
    sage_preview_near_match = fields.Integer(related="sage_preview_run_id.preview_near_match")
    sage_preview_skipped = fields.Integer(related="sage_preview_run_id.contacts_skipped")
    sage_running_run_id = fields.Many2one("sage.sync.run", compute="_compute_sage_runs")
    sage_running_progress = fields.Float(related="sage_running_run_id.progress")
    sage_running_estimated_end = fields.Datetime(related="sage_running_run_id.estimated_end")

    @api.depends("company_id")
    def _compute_sage_first_import(self):
        for settings in self:
            connection = self.env["sage.connection"]._get_for_company(settings.company_id, create=False)
            settings.sage_import_scope = connection.import_scope or "all"
            settings.sage_first_import_mode = connection.first_import_mode or "preview"

    @api.depends("company_id")
    def _compute_sage_runs(self):
        Run = self.env["sage.sync.run"]
        for settings in self:
            connection = self.env["sage.connection"]._get_for_company(settings.company_id, create=False)
            domain = [("connection_id", "=", connection.id)]
            settings.sage_preview_run_id = Run.search(domain + [("trigger", "=", "preview")], limit=1) \
                if connection else Run
            settings.sage_running_run_id = Run.search(domain + [("state", "=", "running")], limit=1) \
                if connection else Run

    def set_values(self):
        super().set_values()
        if not self.env.user.has_group("base.group_system"):
            return
        connection = self.env["sage.connection"]._get_for_company(self.company_id)
        values = {}
        if self.sage_import_scope and connection.import_scope != self.sage_import_scope:
            values["import_scope"] = self.sage_import_scope
        if self.sage_first_import_mode and connection.first_import_mode != self.sage_first_import_mode:
            values["first_import_mode"] = self.sage_first_import_mode
        if values:
            connection.write(values)

    def action_sage_preview(self):
        """Button: save the settings, then preview the first import."""
        self.execute()
        return self._sage_connection().action_preview_first_import()

    def action_sage_import_now(self):
        """Button: save the settings, then start the first import."""
        self.execute()
        return self._sage_connection().action_import_now()

    def action_sage_open_preview(self):
        """Button: the lines of the latest preview, as a list."""
        action = self.env["ir.actions.act_window"]._for_xml_id("sage_business_cloud.sage_sync_preview_line_action")
        action["domain"] = [("run_id", "=", self.sage_preview_run_id.id)]
        return action

    def action_sage_open_running(self):
        """Button: the run in progress."""
        return {"type": "ir.actions.act_window", "res_model": "sage.sync.run",
                "res_id": self.sage_running_run_id.id, "view_mode": "form", "target": "current"}
