"""The Sage link of a partner, its sales team, and its near-match key.

Other files extend ``res.partner`` by concern: ``res_partner_invoice.py`` (invoice figures) and
``res_partner_export.py`` (Export to Sage, pushing edits, deletion).
"""

from odoo import _, api, fields, models

from ..services.names import name_key
from ..services.sage_format import alternate_link, parse_datetime

LINK_METHODS = [
    ("name_match", "Matched by name"),
    ("imported", "Created by the sync"),
    ("exported", "Exported from Odoo"),
    ("manual", "Linked by hand"),
]


class ResPartner(models.Model):
    _inherit = "res.partner"

    # Odoo 18 removed res.partner.team_id (17.3); scripts written for 17 still use this name.
    team_id = fields.Many2one(
        "crm.team", string="Sales Team", index="btree_not_null", tracking=True,
        help="Sales team responsible for this contact. Contacts imported from Sage get the "
        "connection's default team.",
    )
    sage_connection_id = fields.Many2one(
        "sage.connection", string="Sage connection", copy=False, index="btree_not_null",
        ondelete="set null",
    )
    sage_contact_id = fields.Char(
        "Sage contact id", copy=False, index="btree_not_null", tracking=True,
        help="Id of the Sage contact this partner is linked to; empty when not linked.",
    )
    sage_business_id = fields.Char("Sage business id", copy=False)
    sage_link_method = fields.Selection(LINK_METHODS, string="Sage link", copy=False)
    sage_linked_at = fields.Datetime("Linked to Sage on", copy=False)
    sage_url = fields.Char(
        "Sage URL", copy=False, compute="_compute_sage_url", store=True, readonly=False,
        help="Web address of the Sage contact (from Sage's links; for a person, its company's).",
    )
    sage_contact_url = fields.Char(copy=False, help="Sage's own link for this partner's contact.")
    sage_updated_at = fields.Datetime(
        "Sage last change seen", copy=False,
        help="updated_at of the Sage contact when Odoo last read or wrote it.",
    )
    sage_name_key = fields.Char(
        compute="_compute_sage_name_key", store=True, index="btree_not_null", copy=False,
    )
    sage_review = fields.Selection(
        [("ambiguous", "Several partners have this exact name"),
         ("near_match", "Possible duplicate of an existing partner")],
        string="Sage review", copy=False, index="btree_not_null",
    )
    sage_duplicate_of_id = fields.Many2one(
        "res.partner", string="Possible duplicate of", copy=False, index="btree_not_null",
        ondelete="set null",
    )
    sage_commercial_linked = fields.Boolean(
        "Linked to Sage (through its company)", compute="_compute_sage_commercial_linked",
    )

    _sql_constraints = [
        ("sage_contact_uniq", "unique(sage_connection_id, sage_contact_id)",
         "This Sage contact is already linked to another partner."),
    ]

    @api.depends("name")
    def _compute_sage_name_key(self):
        for partner in self:
            partner.sage_name_key = name_key(partner.name) or False

    @api.depends("sage_contact_url", "commercial_partner_id.sage_contact_url")
    def _compute_sage_url(self):
        for partner in self:
            partner.sage_url = (
                partner.sage_contact_url or partner.commercial_partner_id.sage_contact_url or False
            )

    @api.depends("sage_contact_id", "commercial_partner_id.sage_contact_id")
    def _compute_sage_commercial_linked(self):
        for partner in self:
            partner.sage_commercial_linked = bool(
                partner.sage_contact_id or partner.commercial_partner_id.sage_contact_id
            )

    def _sage_link_values(self, connection, contact, method):
        """Values that link a partner to the Sage ``contact`` (a dict as Sage returns it)."""
        return {
            "sage_connection_id": connection.id,
            "sage_business_id": connection.business_id,
            "sage_contact_id": contact["id"],
            "sage_link_method": method,
            "sage_linked_at": fields.Datetime.now(),
            "sage_contact_url": alternate_link(contact),
            "sage_updated_at": parse_datetime(contact.get("updated_at")),
        }

    def _sage_unlink_values(self):
        return {
            "sage_connection_id": False,
            "sage_business_id": False,
            "sage_contact_id": False,
            "sage_link_method": False,
            "sage_linked_at": False,
            "sage_contact_url": False,
            "sage_updated_at": False,
        }

    def action_sage_open(self):
        """Open the partner's Sage contact (for a person, its company's) in Sage."""
        self.ensure_one()
        if not self.sage_url:
            return False
        return {"type": "ir.actions.act_url", "url": self.sage_url, "target": "new"}

    def _sage_note(self, body):
        """Post a quiet chatter note (no notification) on each partner."""
        for partner in self:
            partner._message_log(body=body)

    @api.model
    def _sage_link_method_label(self, method):
        return dict(LINK_METHODS).get(method, _("Not linked"))

