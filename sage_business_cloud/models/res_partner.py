"""A partner's Sage link as the current company sees it, its sales team, and the field guard.

The link itself lives in ``sage.binding`` (one per connection and partner). The partner fields
below keep the public names that scripts use (``sage_contact_id``, ``sage_link_method``,
``sage_url``, ``sage_push_state``...) and mean "in the Sage business of the current company"
(``env.company``), the way Odoo's company-dependent fields do: they are computed from the
binding of that company's connection and searchable.

No one but the addon writes a Sage field: :data:`PROTECTED_FIELDS` are refused to any
``create``/``write`` that does not run as superuser (the addon's own code, after its checks),
with an ``AccessError``, whatever the client (form, import, XML-RPC).

Other files extend ``res.partner`` by concern: ``res_partner_invoice.py`` (invoice figures),
``res_partner_export.py`` (Export to Sage and the link actions), ``res_partner_sync.py``
(review of imported contacts, remembering deletions), ``res_partner_push.py`` (noticing
edits that Sage must receive).
"""

import contextvars

from odoo import _, api, fields, models
from odoo.exceptions import AccessError

from ..services.names import name_key
from .sage_binding import LINK_METHODS, PUSH_STATES

#: partner field -> binding field, for the fields mirrored from the current company's binding
MIRRORED = {
    "sage_connection_id": "connection_id",
    "sage_contact_id": "sage_contact_id",
    "sage_contact_person_id": "sage_contact_person_id",
    "sage_link_method": "link_method",
    "sage_linked_at": "linked_at",
    "sage_contact_url": "contact_url",
    "sage_updated_at": "sage_updated_at",
    "sage_main_person_id": "main_person_id",
    "sage_push_state": "push_state",
    "sage_push_error": "push_error",
    "sage_push_attempts": "push_attempts",
    "sage_push_next_at": "push_next_at",
    "sage_pushed_at": "pushed_at",
    "sage_push_snapshot": "push_snapshot",
}
#: Set while Odoo's merge wizard copies field values between the partners it merges: the Sage
#: fields are then left out of its writes (the bindings move with the merge, see the wizard).
MERGING = contextvars.ContextVar("sage_merging", default=False)


class ResPartner(models.Model):
    _inherit = "res.partner"

    # Odoo 18 removed res.partner.team_id (17.3); scripts written for 17 still use this name.
    team_id = fields.Many2one(
        "crm.team", string="Sales Team", index="btree_not_null", tracking=True,
        help="Sales team responsible for this contact. Contacts imported from Sage get the "
        "connection's default team.",
    )
    sage_binding_ids = fields.One2many("sage.binding", "partner_id", string="Sage links", readonly=True)
    sage_binding_id = fields.Many2one(
        "sage.binding", string="Sage link", compute="_compute_sage_binding",
        help="The link of this partner in the Sage business of the current company.",
    )
    sage_connection_id = fields.Many2one(
        "sage.connection", string="Sage connection", compute="_compute_sage_binding",
        search="_search_sage_connection_id")
    sage_contact_id = fields.Char(
        "Sage contact id", compute="_compute_sage_binding", search="_search_sage_contact_id",
        help="Id of the Sage contact this partner is linked to in the current company's Sage "
        "business; empty when not linked.")
    sage_contact_person_id = fields.Char(
        "Sage contact person id", compute="_compute_sage_binding", search="_search_sage_contact_person_id",
        help="Id of the Sage contact person this person is, on its company's Sage contact.")
    sage_link_method = fields.Selection(
        LINK_METHODS, string="Sage link method", compute="_compute_sage_binding",
        search="_search_sage_link_method")
    sage_linked_at = fields.Datetime("Linked to Sage on", compute="_compute_sage_binding")
    sage_contact_url = fields.Char(compute="_compute_sage_binding")
    sage_updated_at = fields.Datetime("Sage last change seen", compute="_compute_sage_binding")
    sage_main_person_id = fields.Many2one(
        "res.partner", string="Sage main contact person", compute="_compute_sage_binding")
    sage_push_state = fields.Selection(
        PUSH_STATES, string="Sage push", compute="_compute_sage_binding", search="_search_sage_push_state",
        help="Whether Odoo's latest changes to this linked contact have reached Sage.")
    sage_push_error = fields.Text("Sage push error", compute="_compute_sage_binding",
                                  search="_search_sage_push_error")
    sage_push_attempts = fields.Integer(compute="_compute_sage_binding")
    sage_push_next_at = fields.Datetime("Next attempt", compute="_compute_sage_binding")
    sage_pushed_at = fields.Datetime("Last sent to Sage", compute="_compute_sage_binding")
    sage_push_snapshot = fields.Json(compute="_compute_sage_binding")
    sage_business_id = fields.Char("Sage business id", compute="_compute_sage_binding")
    sage_url = fields.Char(
        "Sage URL", compute="_compute_sage_url",
        help="Web address of the Sage contact (from Sage's links; for a person, its company's).")
    sage_export_generation = fields.Integer(
        copy=False, readonly=True,
        help="Bumped when a link of this partner ends, so that a new export is a new Sage request.")
    sage_name_key = fields.Char(
        compute="_compute_sage_name_key", store=True, index="btree_not_null", copy=False,
    )
    sage_review = fields.Selection(
        [("ambiguous", "Several partners have this exact name"),
         ("near_match", "Possible duplicate of an existing partner")],
        string="Sage review", copy=False, index="btree_not_null", readonly=True,
    )
    sage_duplicate_of_id = fields.Many2one(
        "res.partner", string="Possible duplicate of", copy=False, index="btree_not_null",
        ondelete="set null", readonly=True,
    )
    sage_commercial_linked = fields.Boolean(
        "Linked to Sage (through its company)", compute="_compute_sage_commercial_linked",
    )

    # ------------------------------------------------------------------
    # the guard: only the addon writes Sage fields
    # ------------------------------------------------------------------
    @api.model
    def _sage_protected_fields(self):
        """Fields only the addon may write (figures included, see ``res_partner_invoice``)."""
        return {
            name for name, field in self._fields.items()
            if name.startswith("sage_") and name not in self._sage_user_fields()
        }

    @api.model
    def _sage_user_fields(self):
        """Sage fields a user may set: what kind of Sage contact an export creates."""
        return {"sage_contact_type"}

    def _sage_guard(self, vals):
        """Refuse (or, during a merge, leave out) Sage fields written by anyone but the addon."""
        if self.env.su:
            return vals
        protected = self._sage_protected_fields().intersection(vals)
        if not protected:
            return vals
        if MERGING.get():
            return {key: value for key, value in vals.items() if key not in protected}
        raise AccessError(_(
            "Sage fields are written by the Sage Business Cloud addon only (%(fields)s): use Export "
            "to Sage, Link by hand or Unlink instead.", fields=", ".join(sorted(protected))))

    @api.model_create_multi
    def create(self, vals_list):
        return super().create([self._sage_guard(vals) for vals in vals_list])

    def write(self, vals):
        return super().write(self._sage_guard(vals))

    # ------------------------------------------------------------------
    # computes
    # ------------------------------------------------------------------
    def _sage_current_bindings(self, company=None):
        """``{partner id: binding}`` in the connection of ``company`` (default: current)."""
        company = company or self.env.company
        ids = [pid for pid in self.ids if pid]
        if not ids:
            return {}
        bindings = self.env["sage.binding"].sudo().search(
            [("partner_id", "in", ids), ("company_id", "=", company.id)])
        return {binding.partner_id.id: binding for binding in bindings}

    @api.depends_context("company")
    @api.depends("sage_binding_ids", *("sage_binding_ids." + name for name in MIRRORED.values()))
    def _compute_sage_binding(self):
        current = self._sage_current_bindings()
        empty = self.env["sage.binding"]
        for partner in self:
            binding = current.get(partner._origin.id or partner.id, empty)
            partner.sage_binding_id = binding
            for mine, theirs in MIRRORED.items():
                value = binding[theirs] if binding else False
                if mine == "sage_contact_id" and binding.kind != "contact":
                    value = False
                partner[mine] = value
            partner.sage_business_id = binding.connection_id.business_id if binding else False

    def _sage_search_binding(self, fname, operator, value):
        """Domain on the current company's binding; partners without one match an empty value."""
        condition = [(fname, operator, value)]
        if fname == "sage_contact_id":
            condition.append(("kind", "=", "contact"))
        matching = [("sage_binding_ids", "any", [("company_id", "=", self.env.company.id), *condition])]
        values = value if isinstance(value, (list, tuple)) else [value]
        empty_matches = (
            (operator in ("=", "in") and any(v in (False, None) for v in values))
            or (operator in ("!=", "not in") and not any(v in (False, None) for v in values))
        )
        if not empty_matches:
            return matching
        unbound = [("sage_binding_ids", "not any", [("company_id", "=", self.env.company.id), *(
            [("kind", "=", "contact")] if fname == "sage_contact_id" else [])])]
        return ["|", *unbound, *matching]

    def _search_sage_connection_id(self, operator, value):
        return self._sage_search_binding("connection_id", operator, value)

    def _search_sage_contact_id(self, operator, value):
        return self._sage_search_binding("sage_contact_id", operator, value)

    def _search_sage_contact_person_id(self, operator, value):
        return self._sage_search_binding("sage_contact_person_id", operator, value)

    def _search_sage_link_method(self, operator, value):
        return self._sage_search_binding("link_method", operator, value)

    def _search_sage_push_state(self, operator, value):
        return self._sage_search_binding("push_state", operator, value)

    def _search_sage_push_error(self, operator, value):
        return self._sage_search_binding("push_error", operator, value)

    @api.depends("name")
    def _compute_sage_name_key(self):
        for partner in self:
            partner.sage_name_key = name_key(partner.name) or False

    @api.depends_context("company")
    @api.depends("sage_contact_url", "commercial_partner_id.sage_contact_url")
    def _compute_sage_url(self):
        for partner in self:
            partner.sage_url = partner.sage_contact_url or partner.commercial_partner_id.sage_contact_url or False

    @api.depends_context("company")
    @api.depends("sage_contact_id", "commercial_partner_id.sage_contact_id")
    def _compute_sage_commercial_linked(self):
        for partner in self:
            partner.sage_commercial_linked = bool(
                partner.sage_contact_id or partner.commercial_partner_id.sage_contact_id
            )

    # ------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------
    def _sage_connection(self):
        """The Sage connection of the partner's company (of the current company when shared)."""
        self.ensure_one()
        company = self.company_id or self.env.company
        return self.env["sage.connection"]._get_for_company(company, create=False)

    def _sage_binding_in(self, connection):
        """This partner's binding in ``connection`` (empty when not bound there)."""
        self.ensure_one()
        return self.env["sage.binding"].sudo().search(
            [("partner_id", "=", self.id), ("connection_id", "=", connection.id)], limit=1)

    def action_sage_open(self):
        """Open the partner's Sage contact (for a person, its company's) in Sage."""
        self.ensure_one()
        if not self.sage_url:
            return False
        return {"type": "ir.actions.act_url", "url": self.sage_url, "target": "new"}

    def _sage_note(self, body):
        """Post a quiet chatter note (no notification) on each partner."""
        for partner in self:
            partner.sudo()._message_log(body=body)

    @api.model
    def _sage_link_method_label(self, method):
        return dict(LINK_METHODS).get(method, _("Not linked"))
