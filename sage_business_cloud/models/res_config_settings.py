"""Settings > Sage Business Cloud: the OAuth client (system parameters) and this company's link."""

from odoo import api, fields, models

from ..services import sage_client

SECRET_PARAM = "sage_business_cloud.client_secret"


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    sage_client_id = fields.Char(
        "Sage client id", config_parameter="sage_business_cloud.client_id", groups="base.group_system")
    # Not a ``config_parameter`` field: Odoo's settings read those with sudo for anyone who
    # opens the settings model, whatever the field's groups. This one is read and written
    # through sudo for system administrators only.
    sage_client_secret = fields.Char(
        "Sage client secret", compute="_compute_sage_client_secret", inverse="_inverse_sage_client_secret",
        groups="base.group_system")
    sage_authorize_url = fields.Char(
        "Sage authorize URL", config_parameter="sage_business_cloud.authorize_url",
        default=sage_client.SAGE_AUTHORIZE_URL, groups="base.group_system")
    sage_token_url = fields.Char(
        "Sage token URL", config_parameter="sage_business_cloud.token_url",
        default=sage_client.SAGE_TOKEN_URL, groups="base.group_system")
    sage_api_url = fields.Char(
        "Sage API URL", config_parameter="sage_business_cloud.api_url",
        default=sage_client.SAGE_API_URL, groups="base.group_system")

    sage_callback_url = fields.Char("Callback URL", compute="_compute_sage_callback_url",
                                    help="The redirect URI to register for your app at Sage.")
    sage_connection_id = fields.Many2one(
        "sage.connection", compute="_compute_sage_connection_id")
    sage_state = fields.Selection(related="sage_connection_id.state")
    sage_business_name = fields.Char(related="sage_connection_id.business_name")
    sage_last_sync_at = fields.Datetime(related="sage_connection_id.last_sync_at")
    sage_last_error = fields.Text(related="sage_connection_id.last_error")
    sage_refresh_token_expires_at = fields.Datetime(
        related="sage_connection_id.refresh_token_expires_at")
    sage_refresh_token_expiring = fields.Boolean(
        related="sage_connection_id.refresh_token_expiring")
    sage_default_team_id = fields.Many2one(
        "crm.team", string="Default sales team for Sage contacts",
        compute="_compute_sage_company_values", readonly=False)
    sage_exclude_supplier_invoices = fields.Boolean(
        "Exclude supplier invoices", compute="_compute_sage_company_values", readonly=False)

    def _compute_sage_callback_url(self):
        url = self.env["sage.connection"]._get_redirect_uri()
        for settings in self:
            settings.sage_callback_url = url

    def _compute_sage_client_secret(self):
        secret = False
        if self.env.user.has_group("base.group_system"):
            secret = self.env["ir.config_parameter"].sudo().get_param(SECRET_PARAM) or False
        for settings in self:
            settings.sage_client_secret = secret

    def _inverse_sage_client_secret(self):
        if not self.env.user.has_group("base.group_system"):
            return
        params = self.env["ir.config_parameter"].sudo()
        for settings in self:
            if (settings.sage_client_secret or False) != (params.get_param(SECRET_PARAM) or False):
                params.set_param(SECRET_PARAM, settings.sage_client_secret or False)

    @api.depends("company_id")
    def _compute_sage_connection_id(self):
        for settings in self:
            settings.sage_connection_id = self.env["sage.connection"]._get_for_company(
                settings.company_id, create=False)

    @api.depends("company_id")
    def _compute_sage_company_values(self):
        for settings in self:
            connection = self.env["sage.connection"]._get_for_company(
                settings.company_id, create=False)
            settings.sage_default_team_id = connection.default_team_id
            settings.sage_exclude_supplier_invoices = connection.exclude_supplier_invoices

    def set_values(self):
        """Save the settings; the default team and the supplier option go to this company's
        ``sage.connection`` (created on first save)."""
        super().set_values()
        if not self.env.user.has_group("base.group_system"):
            return
        connection = self.env["sage.connection"]._get_for_company(self.company_id)
        values = {}
        if connection.default_team_id != self.sage_default_team_id:
            values["default_team_id"] = self.sage_default_team_id.id
        if connection.exclude_supplier_invoices != self.sage_exclude_supplier_invoices:
            values["exclude_supplier_invoices"] = self.sage_exclude_supplier_invoices
        if values:
            connection.write(values)

    def _sage_connection(self):
        return self.env["sage.connection"]._get_for_company(self.company_id)

    def action_sage_connect(self):
        """Button: save the settings, then go to Sage's authorize page."""
        self.execute()
        return self._sage_connection().action_connect()

    def action_sage_disconnect(self):
        """Button: disconnect this company from Sage (links are kept), then reload the page."""
        self._sage_connection().action_disconnect()
        return {"type": "ir.actions.client", "tag": "reload"}

    def action_sage_sync_now(self):
        """Button: save the settings, then start a sync of this company at once."""
        self.execute()
        return self._sage_connection().action_sync_now()

    def action_sage_open_runs(self):
        """Button: open the list of sync runs."""
        return self.env["ir.actions.act_window"]._for_xml_id("sage_business_cloud.sage_sync_run_action")
