"""What the Sage -> Odoo sync adds to partners: remembering deletions, and the review actions."""

from odoo import _, fields, models
from odoo.exceptions import UserError
from odoo.tools.sql import create_index


class ResPartner(models.Model):
    _inherit = "res.partner"

    sage_contact_type = fields.Selection(
        [("customer", "Customer"), ("vendor", "Supplier")], string="Sage contact type", copy=False,
        help="Type of the Sage contact this partner was created from (customer or supplier).",
    )

    def init(self):
        result = super().init()
        # The sync looks partners up by exact trimmed name once per page
        # (``sage.sync._exact_candidates``: ``trim(name) = ANY(...)``): no sequential scan.
        create_index(self.env.cr, "res_partner_sage_trim_name_index", "res_partner", ["trim(name)"])
        return result

    def unlink(self):
        """Remember deleted linked partners, so that the next sync does not bring them back.

        "Delete in Sage" passes ``sage_deleted_in_sage``: the Sage contact is gone too, so
        there is nothing to remember. Their bindings go with them (``ondelete="cascade"``).
        """
        if not self.env.context.get("sage_deleted_in_sage"):
            bindings = self.env["sage.binding"].sudo().search(
                [("partner_id", "in", self.ids), ("kind", "=", "contact")])
            if bindings:
                Deleted = self.env["sage.deleted.contact"].sudo()
                known = {
                    (row.connection_id.id, row.sage_contact_id)
                    for row in Deleted.search([("sage_contact_id", "in", bindings.mapped("sage_contact_id"))])
                }
                Deleted.create([
                    {"connection_id": binding.connection_id.id,
                     "sage_contact_id": binding.sage_contact_id,
                     "name": binding.partner_id.display_name}
                    for binding in bindings
                    if (binding.connection_id.id, binding.sage_contact_id) not in known
                ])
        return super().unlink()

    def _check_sage_reviewer(self):
        if not self.env.user.has_group("sage_business_cloud.group_sage_manager"):
            raise UserError(_("Only members of 'Sage: manage links' can review Sage contacts."))

    def action_sage_link_existing(self):
        """Keep the existing partner: merge the one the sync created into it.

        The existing partner survives and takes over the Sage link, invoices, children and
        chatter of the created one (the merge wizard moves the link). Only partners the sync
        created and flagged for review can be merged this way, and the caller must be allowed
        to edit both partners (the merge itself runs as superuser).
        """
        self._check_sage_reviewer()
        survivors = self.browse()
        for created in self:
            if not created.sage_review or created.sage_link_method != "imported" or not created.sage_contact_id:
                raise UserError(_(
                    "%s was not created by the Sage sync for review: it cannot be merged this way.",
                    created.display_name))
            existing = created.sage_duplicate_of_id
            if not existing:
                raise UserError(_("%s has no partner to be linked to: set 'Possible duplicate of' first.",
                                  created.display_name))
            connection = created.sage_connection_id
            if existing._sage_binding_in(connection):
                raise UserError(_("%(existing)s is already linked to another Sage contact.",
                                  existing=existing.display_name))
            self.env["sage.binding"]._sage_check_may_change(created | existing, connection, manager=True)
            self.env["base.partner.merge.automatic.wizard"].sudo()._merge(
                [existing.id, created.id], existing, extra_checks=False,
            )
            survivors |= existing
        survivors.exists().sudo().write({"sage_review": False, "sage_duplicate_of_id": False})
        if len(survivors) == 1:
            return {"type": "ir.actions.act_window", "res_model": "res.partner", "res_id": survivors.id,
                    "view_mode": "form", "target": "current"}
        return True

    def action_sage_clear_review(self):
        """Not a duplicate: keep both partners and drop the review flag."""
        self._check_sage_reviewer()
        self.check_access("write")
        self.sudo().write({"sage_review": False, "sage_duplicate_of_id": False})
        return True


class SageDeletedContact(models.Model):
    _inherit = "sage.deleted.contact"

    def action_restore(self):
        """Forget the deletions and queue the contacts (and their invoices) for the next sync."""
        Backlog = self.env["sage.sync.backlog"].sudo()
        for connection in self.connection_id:
            rows = self.filtered(lambda r, c=connection: r.connection_id == c)
            entries = dict.fromkeys(rows.mapped("sage_contact_id"), _("restored after a deletion in Odoo"))
            Backlog._add(connection, "contact", entries)
            Backlog._add(connection, "invoices", entries)
        return super().action_restore()
