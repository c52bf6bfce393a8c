"""What Sage holds for a partner, and noticing the edits that Sage must receive.

A write to a pushed field marks the bindings whose Sage values it changes as pending (in every
Sage business the partner is bound to) and triggers the push cron, which runs after the commit
(``sage_binding_push.py``). Only a change of what Sage would receive counts. The value mapping
itself lives in ``services/sage_export.py``.
"""

from odoo import api, models

from ..services import sage_export

#: Partner fields whose change can change what Sage holds.
PUSHED_FIELDS = frozenset({
    "name", "email", "phone", "mobile", "street", "street2", "city", "zip", "state_id",
    "country_id", "type", "parent_id", "active",
})


class ResPartner(models.Model):
    _inherit = "res.partner"

    # ------------------------------------------------------------------
    # CRUD: notice changes that Sage must receive
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        """Create partners; a new invoice or delivery address of a linked company is sent to Sage."""
        partners = super().create(vals_list)
        if not self.env.context.get("sage_no_push"):
            children = partners.filtered(lambda p: p.parent_id and p.type in ("invoice", "delivery"))
            if children:
                children._sage_push_units()._sage_queue_push()
        return partners

    def write(self, vals):
        """Write partners; bindings whose Sage values change are queued for the push cron.

        Only a change of what Sage would receive counts: writing the same values again, or a field
        Sage does not hold, marks nothing and costs no request.
        """
        if self.env.context.get("sage_no_push") or not PUSHED_FIELDS.intersection(vals):
            return super().write(vals)
        before = self._sage_push_units() if {"parent_id", "type"}.intersection(vals) else None
        result = super().write(vals)
        units = self._sage_push_units()
        if before is not None:
            units |= before.exists()
        units._sage_queue_push()
        return result

    def unlink(self):
        """Delete partners; bindings whose Sage values depended on them are queued for a push."""
        units = None
        if not self.env.context.get("sage_no_push"):
            units = self._sage_push_units().filtered(lambda b: b.partner_id not in self)
        result = super().unlink()
        if units:
            units.exists()._sage_queue_push()
        return result

    # ------------------------------------------------------------------
    # what Sage holds for a partner
    # ------------------------------------------------------------------
    def _sage_export_parts(self):
        """``(holder, person)``: the partner that holds the Sage link, and the B2B person (or empty)."""
        self.ensure_one()
        holder = self.commercial_partner_id
        if holder != self and self.type == "contact" and not self.is_company:
            return holder, self
        return holder, self.browse()

    def _sage_contact_type(self):
        """CUSTOMER, or VENDOR for a supplier that is not also a customer.

        The partner's "Sage contact type" decides; when it is empty and ``account`` is installed,
        its customer/supplier ranks do.
        """
        self.ensure_one()
        if self.sage_contact_type:
            return "VENDOR" if self.sage_contact_type == "vendor" else "CUSTOMER"
        if "supplier_rank" in self._fields and self.supplier_rank and not self.customer_rank:
            return "VENDOR"
        return "CUSTOMER"

    def _sage_child(self, address_type):
        children = self.child_ids.filtered(lambda c: c.type == address_type)
        return children.sorted("id")[:1]

    @staticmethod
    def _sage_address_of(partner):
        return sage_export.address_values(
            street=partner.street, street2=partner.street2, city=partner.city, zip_code=partner.zip,
            state=partner.state_id.name, country_code=partner.country_id.code,
        )

    def _sage_contact_values(self, main_person=None):
        """The Sage contact body (snapshot shape) of a link holder.

        One rule for the contact person: Sage keeps a contact's e-mail and phones on its main
        contact person. For an organisation, that person carries the name of the B2B person
        exported with it (if any) and the **organisation's** e-mail, phone and mobile; where the
        organisation has none, the person's. A person without a company (B2C) is its own.
        """
        self.ensure_one()
        person = main_person or self.browse()
        if not person and not self.is_company:
            person = self
        invoice = self._sage_child("invoice")
        delivery = self._sage_child("delivery")
        return sage_export.contact_values(
            self.name,
            sage_export.person_values(
                name=person.name if person else None,
                email=self.email or person.email, phone=self.phone or person.phone,
                mobile=self.mobile or person.mobile,
            ),
            main_address=self._sage_address_of(invoice or self),
            delivery_address=self._sage_address_of(delivery) if delivery else None,
        )

    def _sage_person_values(self):
        """The Sage contact person body of a B2B person added to its company's Sage contact."""
        self.ensure_one()
        return sage_export.person_values(self.name, self.email, self.phone, self.mobile)

    def _sage_push_units(self):
        """Bindings whose Sage values may depend on ``self``, in every connection.

        The partners' own bindings; the contact bindings of the companies whose invoice or
        delivery address they are; and those whose main contact person they are.
        """
        Binding = self.env["sage.binding"].sudo()
        ids = [pid for pid in self.ids if pid]
        if not ids:
            return Binding
        partners = self.browse(ids).with_context(active_test=False)
        holders = partners.filtered(lambda p: p.parent_id and p.type in ("invoice", "delivery")).parent_id
        return Binding.search([
            "|", "|", ("partner_id", "in", ids),
            "&", ("partner_id", "in", holders.ids), ("kind", "=", "contact"),
            "&", ("main_person_id", "in", ids), ("kind", "=", "contact"),
        ])
