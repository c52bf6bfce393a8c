"""Partner merge wizard: Sage links survive a merge, and two different links refuse it.

The bindings of the merged partners move to the survivor with Odoo's own foreign-key update
(``sage_binding.partner_id``); a merge that would leave the survivor with two links in one Sage
business is refused first. The figures are computed again and the surviving values are pushed.
"""

from odoo import _, models
from odoo.exceptions import UserError

from ..models.res_partner import MERGING


class BasePartnerMergeAutomaticWizard(models.TransientModel):
    _inherit = "base.partner.merge.automatic.wizard"

    def _merge(self, partner_ids, dst_partner=None, extra_checks=True):
        partners = self.env["res.partner"].browse(partner_ids).exists()
        bindings = self.env["sage.binding"].sudo().search(
            [("partner_id", "in", partners.ids), ("kind", "=", "contact")])
        for connection in bindings.connection_id:
            clash = bindings.filtered(lambda b, c=connection: b.connection_id == c)
            if len(clash) > 1:
                raise UserError(_(
                    "These contacts are linked to different Sage contacts and cannot be merged: %s. "
                    "Unlink all but one of them first (Sage tab, Unlink), or merge the contacts in "
                    "Sage first.",
                    "; ".join(f"{b.partner_id.display_name} (Sage id {b.sage_contact_id})" for b in clash),
                ))
        return super()._merge(partner_ids, dst_partner=dst_partner, extra_checks=extra_checks)

    def _update_foreign_keys(self, src_partners, dst_partner):
        # Moves sage.binding and sage.invoice rows to dst_partner by raw SQL.
        moved = self.env["sage.binding"].sudo().search(
            [("partner_id", "in", src_partners.ids), ("kind", "=", "contact")])
        notes = [(b.partner_id.display_name, b.sage_contact_id) for b in moved]
        result = super()._update_foreign_keys(src_partners, dst_partner)
        self.env.invalidate_all()
        dst_partner._sage_recompute_invoice_figures()
        for name, sage_id in notes:
            dst_partner._sage_note(_("Sage link taken over from %(partner)s (merged), Sage id %(id)s.",
                                     partner=name, id=sage_id))
        return result

    def _update_values(self, src_partners, dst_partner):
        """Copy the merged partners' values, leaving out the Sage fields (the links move with the
        bindings); then send the surviving values (name first) to every Sage business."""
        token = MERGING.set(True)
        try:
            result = super()._update_values(
                src_partners.with_context(sage_no_push=True), dst_partner.with_context(sage_no_push=True))
        finally:
            MERGING.reset(token)
        dst_partner._sage_recompute_invoice_figures()
        dst_partner._sage_push_units()._sage_queue_push()
        return result
