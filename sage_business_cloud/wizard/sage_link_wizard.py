"""Link a partner by hand to an existing Sage contact, found by searching Sage by name."""

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..services.sage_api import SageService

MAX_RESULTS = 50


class SageLinkWizard(models.TransientModel):
    _name = "sage.link.wizard"
    _description = "Link a partner to a Sage contact by hand"

    partner_id = fields.Many2one("res.partner", required=True, ondelete="cascade")
    search_text = fields.Char("Search Sage for", help="Part of the name or the reference of the Sage contact.")
    line_ids = fields.One2many("sage.link.wizard.line", "wizard_id", string="Sage contacts")
    searched = fields.Boolean()

    @api.model
    def _connection(self, partner):
        connection = partner._sage_connection()
        if connection.state != "connected":
            raise UserError(_("The company of %s is not connected to Sage.", partner.display_name))
        return connection

    def action_search(self):
        """Search Sage (GET /contacts?search=) and list the contacts found."""
        self.ensure_one()
        self.partner_id._sage_check_manager(self._connection(self.partner_id))
        if not (self.search_text or "").strip():
            raise UserError(_("Type a name (or part of one) to search Sage for."))
        connection = self._connection(self.partner_id)
        service = SageService(connection._get_client())
        Partner = self.env["res.partner"]
        found = Partner._sage_call(lambda: service.search_contacts(self.search_text.strip(), limit=MAX_RESULTS))
        linked = {
            b.sage_contact_id: b.partner_id for b in self.env["sage.binding"].sudo().search([
                ("connection_id", "=", connection.id),
                ("sage_contact_id", "in", [item["id"] for item in found])])
        }
        self.line_ids = [fields.Command.clear()] + [fields.Command.create({
            "sage_id": item["id"],
            "name": item.get("name"),
            "reference": item.get("reference"),
            "email": item.get("email"),
            "postal_code": (item.get("main_address") or {}).get("postal_code"),
            "contact_type": ", ".join(t.get("id", "") for t in item.get("contact_types") or []),
            "linked_partner_id": linked[item["id"]].id if item["id"] in linked else False,
        }) for item in found]
        self.searched = True
        return self._reopen()

    def _reopen(self):
        return {
            "type": "ir.actions.act_window", "res_model": self._name, "res_id": self.id,
            "view_mode": "form", "target": "new", "name": _("Link to a Sage contact"),
        }


class SageLinkWizardLine(models.TransientModel):
    _name = "sage.link.wizard.line"
    _description = "Sage contact found by the link wizard"

    wizard_id = fields.Many2one("sage.link.wizard", required=True, ondelete="cascade")
    sage_id = fields.Char("Sage id", required=True)
    name = fields.Char()
    reference = fields.Char()
    email = fields.Char()
    postal_code = fields.Char()
    contact_type = fields.Char("Type")
    linked_partner_id = fields.Many2one("res.partner", string="Already linked to")

    def action_link(self):
        """Link the wizard's partner to this Sage contact (refused when already linked)."""
        self.ensure_one()
        partner = self.wizard_id.partner_id
        partner._sage_check_manager()
        connection = self.wizard_id._connection(partner)
        contact = partner._sage_call(lambda: SageService(connection._get_client()).get_contact(self.sage_id))
        partner._sage_link_by_hand(connection, contact)
        return partner._sage_notify(
            _("%(partner)s is now linked to the Sage contact “%(name)s”; Odoo's details will be "
              "sent to it shortly.", partner=partner.display_name, name=contact.get("name")),
            "success",
        )
