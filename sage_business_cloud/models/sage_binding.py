"""The link between one Odoo partner and one Sage record of one connection (a *binding*).

In the spirit of the OCA connector's bindings: one ``sage.binding`` per (Sage connection,
partner). A company, or a person without a company, is bound to a Sage **contact**
(``kind = "contact"``). A person of a bound company is bound to a Sage **contact person** of
that contact: the main contact person (``main_person``, pushed with the contact itself) or a
person added later (``person``, pushed on its own).

Only the addon writes bindings: users (even administrators) may read them through the record
rules of their companies, and every change goes through the methods below, which run with sudo
once the caller's rights were checked. Ending a link is deleting its binding, always through
:meth:`_sage_end`, whatever the path (unlink, deletion in Sage, Delete in Sage, merge).
"""

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from ..services.sage_format import alternate_link, parse_datetime
from ..services.sage_client import (
    SageAuthError,
    SageNotFoundError,
    SageRateLimitError,
    SageTransientError,
    SageValidationError,
)

LINK_METHODS = [
    ("name_match", "Matched by name"),
    ("imported", "Created by the sync"),
    ("exported", "Exported from Odoo"),
    ("manual", "Linked by hand"),
]
PUSH_STATES = [
    ("synced", "Up to date in Sage"),
    ("pending", "Waiting to be sent to Sage"),
    ("error", "Refused by Sage"),
]
KINDS = [
    ("contact", "Sage contact"),
    ("main_person", "Main contact person of its company's Sage contact"),
    ("person", "Contact person of its company's Sage contact"),
]
MANAGER_GROUP = "sage_business_cloud.group_sage_manager"


def sage_user_message(error):
    """Words a user can act on for a Sage failure: the one place that phrases them."""
    if isinstance(error, SageValidationError):
        return _("Sage refused it: %s", error.user_message)
    if isinstance(error, (SageTransientError, SageRateLimitError)):
        return _("Sage is not answering right now. Nothing was duplicated: try again in a moment.")
    if isinstance(error, SageAuthError):
        return _("Sage no longer accepts this company's connection: an administrator must "
                 "reconnect it in Settings > Sage Business Cloud.")
    if isinstance(error, SageNotFoundError):
        return _("This record no longer exists in Sage.")
    return _("Sage answered with an error: %s", getattr(error, "message", None) or str(error))


class SageBinding(models.Model):
    _name = "sage.binding"
    _description = "Link between an Odoo partner and a Sage record"
    _rec_name = "partner_id"
    _order = "id"

    connection_id = fields.Many2one("sage.connection", required=True, ondelete="cascade", index=True,
                                    readonly=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True, index=True)
    partner_id = fields.Many2one("res.partner", required=True, ondelete="cascade", index=True,
                                 readonly=True)
    kind = fields.Selection(KINDS, required=True, default="contact", readonly=True)
    sage_contact_id = fields.Char(
        "Sage contact id", index="btree_not_null", readonly=True,
        help="The Sage contact (kind contact only).")
    sage_contact_person_id = fields.Char(
        "Sage contact person id", index="btree_not_null", readonly=True,
        help="The Sage contact person (kinds main_person and person).")
    link_method = fields.Selection(LINK_METHODS, string="Linked", readonly=True)
    linked_at = fields.Datetime("Linked on", readonly=True, default=fields.Datetime.now)
    contact_url = fields.Char("Sage URL", readonly=True)
    sage_updated_at = fields.Datetime("Sage last change seen", readonly=True)
    main_person_id = fields.Many2one(
        "res.partner", string="Main contact person", ondelete="set null", index="btree_not_null",
        readonly=True, help="The person of this company sent as the Sage contact's main contact person.")
    push_state = fields.Selection(PUSH_STATES, readonly=True, index="btree_not_null")
    push_error = fields.Text(readonly=True)
    push_attempts = fields.Integer(readonly=True)
    push_next_at = fields.Datetime("Next attempt", readonly=True)
    pushed_at = fields.Datetime("Last sent to Sage", readonly=True)
    push_snapshot = fields.Json(readonly=True, help="The values Odoo last sent to (or found in) Sage.")

    def init(self):
        # One Sage record, one binding: partial unique indexes (a binding holds one of the two ids).
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS sage_binding_contact_uniq "
            "ON sage_binding (connection_id, sage_contact_id) WHERE sage_contact_id IS NOT NULL")
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS sage_binding_person_uniq "
            "ON sage_binding (connection_id, sage_contact_person_id) WHERE sage_contact_person_id IS NOT NULL")

    _sql_constraints = [
        ("partner_uniq", "unique(connection_id, partner_id)",
         "This partner is already linked to this Sage business."),
    ]

    # ------------------------------------------------------------------
    # only the addon writes bindings
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        self._sage_check_internal()
        return super().create(vals_list)

    def write(self, vals):
        self._sage_check_internal()
        return super().write(vals)

    def unlink(self):
        self._sage_check_internal()
        return super().unlink()

    def _sage_check_internal(self):
        if not self.env.su:
            raise AccessError(_("Sage links are written by the Sage Business Cloud addon only: "
                                "use Export to Sage, Link by hand or Unlink."))

    # ------------------------------------------------------------------
    # rights: who may change the link of a partner in a connection
    # ------------------------------------------------------------------
    @api.model
    def _sage_check_may_change(self, partners, connection, manager=False):
        """Refuse unless the user may write ``partners`` and act in ``connection``'s company.

        The connection must be the one of each partner's company (of the current company for a
        partner shared by all companies), and the company one of the user's.
        """
        if self.env.su:
            return
        if manager and not self.env.user.has_group(MANAGER_GROUP):
            raise AccessError(_("Only Sage managers (group “Sage: manage links”) can do this."))
        partners.check_access("write")
        company = connection.company_id
        if company not in self.env.user.company_ids:
            raise AccessError(_("You cannot act on the Sage business of %s.", company.name))
        for partner in partners:
            owner = partner.company_id or self.env.company
            if owner != company:
                raise AccessError(_(
                    "%(partner)s belongs to %(owner)s: it cannot be linked to the Sage business of "
                    "%(company)s.", partner=partner.display_name, owner=owner.name, company=company.name))

    # ------------------------------------------------------------------
    # life cycle
    # ------------------------------------------------------------------
    @api.model
    def _sage_bind_values(self, connection, partner_id, contact, method, snapshot=None, **extra):
        """Values of the binding of ``partner_id`` to the Sage ``contact`` (a dict from Sage)."""
        return {
            "connection_id": connection.id,
            "partner_id": partner_id,
            "kind": "contact",
            "sage_contact_id": contact["id"],
            "link_method": method,
            "linked_at": fields.Datetime.now(),
            "contact_url": alternate_link(contact),
            "sage_updated_at": parse_datetime(contact.get("updated_at")),
            "push_state": "synced",
            "push_snapshot": snapshot if snapshot is not None else {},
            **extra,
        }

    def _sage_end(self, note=None):
        """End these links: the one way every path (unlink, Sage deletion, merge, Delete in
        Sage) removes a binding.

        The persons bound through an ended contact binding go with it, the partners' Sage invoice
        rows of that connection are removed and their figures cleared, and the export generation
        of every partner involved is bumped, so that a new export is a new Sage request.
        ``note``, when given, is logged on each partner whose link ended.
        """
        bindings = self.sudo().exists()
        if not bindings:
            return self.browse()
        contacts = bindings.filtered(lambda b: b.kind == "contact")
        ended = {(b.connection_id.id, b.partner_id.id) for b in contacts}
        persons = self.sudo().with_context(active_test=False).search([
            ("kind", "!=", "contact"), ("id", "not in", bindings.ids),
            ("connection_id", "in", contacts.connection_id.ids),
            ("partner_id.commercial_partner_id", "in", contacts.partner_id.ids),
        ]).filtered(lambda b: (b.connection_id.id, b.partner_id.commercial_partner_id.id) in ended)
        bindings |= persons
        partners = bindings.partner_id.with_context(active_test=False)
        noted = (contacts | persons).partner_id
        invoices = self.env["sage.invoice"].sudo().search([
            ("connection_id", "in", contacts.connection_id.ids), ("partner_id", "in", contacts.partner_id.ids)])
        cleared = [(b.connection_id, b.partner_id) for b in contacts]
        invoices.unlink()
        generation = max(partners.mapped("sage_export_generation") or [0]) + 1
        partners.sudo().with_context(sage_no_push=True).write({"sage_export_generation": generation})
        bindings.unlink()
        for connection, partner in cleared:
            partner._sage_recompute_invoice_figures(connection)
        if note:
            noted._sage_note(note)
        return bindings

    # ------------------------------------------------------------------
    # what the partner shows
    # ------------------------------------------------------------------
    def _sage_holder(self):
        """The partner whose Sage contact this binding belongs to."""
        self.ensure_one()
        return self.partner_id if self.kind == "contact" else self.partner_id.commercial_partner_id

    def action_open_partner(self):
        self.ensure_one()
        return {"type": "ir.actions.act_window", "res_model": "res.partner", "res_id": self.partner_id.id,
                "view_mode": "form", "target": "current"}

    @api.model
    def _sage_user_error(self, error):
        return UserError(sage_user_message(error))
