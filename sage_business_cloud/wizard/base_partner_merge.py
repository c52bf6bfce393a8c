"""Partner merge wizard: the Sage link survives a merge, and two different links refuse it."""

from odoo import _, models
from odoo.exceptions import UserError

#: Fields that travel with the Sage link (the unique pair is connection + contact id).
LINK_FIELDS = (
    "sage_connection_id", "sage_business_id", "sage_contact_id", "sage_link_method",
    "sage_linked_at", "sage_contact_url", "sage_updated_at", "sage_push_state", "sage_push_error",
    "sage_push_attempts", "sage_push_next_at", "sage_pushed_at", "sage_push_snapshot",
    "sage_main_person_id",
)


class BasePartnerMergeAutomaticWizard(models.TransientModel):
    _inherit = "base.partner.merge.automatic.wizard"

    def _merge(self, partner_ids, dst_partner=None, extra_checks=True):
        partners = self.env["res.partner"].browse(partner_ids).exists()
        linked = partners.filtered("sage_contact_id")
        if len({(p.sage_connection_id.id, p.sage_contact_id) for p in linked}) > 1:
            raise UserError(_(
                "These contacts are linked to different Sage contacts and cannot be merged: %s. "
                "Unlink all but one of them first (Sage tab, Unlink), or merge the contacts in "
                "Sage first.",
                "; ".join(f"{p.display_name} (Sage id {p.sage_contact_id})" for p in linked),
            ))
        return super()._merge(partner_ids, dst_partner=dst_partner, extra_checks=extra_checks)

    def _update_foreign_keys(self, src_partners, dst_partner):
        # sage.invoice rows move to dst_partner by raw SQL: its stored figures are stale after it.
        result = super()._update_foreign_keys(src_partners, dst_partner)
        if hasattr(dst_partner, "_sage_recompute_invoice_figures"):
            self.env.invalidate_all()
            dst_partner._sage_recompute_invoice_figures()
        return result

    def _update_values(self, src_partners, dst_partner):
        """Move the Sage link onto ``dst_partner`` without breaking the unique link constraint.

        Base copies every source value onto the destination while the sources still exist, which
        would put one Sage id on two rows; so the link is taken off the sources first and written
        on the destination afterwards. Then the destination's values are sent to Sage.
        """
        holder = dst_partner if dst_partner.sage_contact_id else src_partners.filtered("sage_contact_id")[:1]
        kept = {}
        if holder:
            kept = holder._convert_to_write({name: holder[name] for name in LINK_FIELDS})
            note = holder != dst_partner and _("Sage link taken over from %(partner)s (merged), Sage id %(id)s.",
                                               partner=holder.display_name, id=holder.sage_contact_id)
        quiet_src = src_partners.with_context(sage_no_push=True)
        quiet_src.filtered("sage_contact_id").write(quiet_src._sage_unlink_values())
        quiet_src.write({"sage_push_snapshot": False, "sage_main_person_id": False,
                         "sage_push_state": False, "sage_push_error": False})
        result = super()._update_values(quiet_src, dst_partner.with_context(sage_no_push=True))
        if holder:
            dst_partner.with_context(sage_no_push=True).write(kept)
            if note:
                dst_partner._sage_note(note)
            # After the merge the surviving values (name first) are what Sage must show.
            dst_partner._sage_queue_push(units=dst_partner)
        # Base copied the sources' stored figures over the destination's: compute them again.
        if hasattr(dst_partner, "_sage_recompute_invoice_figures"):
            dst_partner._sage_recompute_invoice_figures()
        return result
