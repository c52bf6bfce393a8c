"""Odoo -> Sage actions of a partner: Export to Sage, Link by hand, Unlink, Delete in Sage.

Who holds the link: a company, or a person without a company (B2C), is bound to a Sage contact
itself. A person of a company (B2B) is bound through its company: exporting the person exports
the company with the person as Sage's main contact person, or, when the company is bound
already, binds the person to an existing contact person of that name or e-mail, or adds it.

Every action checks the user's right on that very partner and that the connection is the one of
the partner's company (``sage.binding._sage_check_may_change``) before anything reaches Sage;
bindings are then written with sudo.
"""

import logging
import uuid

import psycopg2
from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..services import sage_export
from ..services.names import exact_name
from ..services.sage_api import SageService
from ..services.sage_client import SageError, SageNotFoundError
from .sage_binding import sage_user_message

_logger = logging.getLogger(__name__)
PUSH_CRON = "sage_business_cloud.ir_cron_sage_push"


class ResPartner(models.Model):
    _inherit = "res.partner"

    sage_can_export = fields.Boolean(compute="_compute_sage_can_export")
    sage_export_hint = fields.Char(compute="_compute_sage_can_export")

    # ------------------------------------------------------------------
    # computes
    # ------------------------------------------------------------------
    @api.depends_context("uid", "company")
    @api.depends("type", "company_id", "parent_id", "is_company", "sage_binding_ids",
                 "commercial_partner_id.sage_binding_ids")
    def _compute_sage_can_export(self):
        allowed = self.browse().has_access("write")
        connected = {}
        for partner in self:
            company = partner.company_id or self.env.company
            if company.id not in connected:
                connection = self.env["sage.connection"]._get_for_company(company, create=False)
                connected[company.id] = connection if connection.state == "connected" else None
            connection = connected[company.id]
            can = bool(allowed and partner.id and connection and partner._sage_needs_export(connection))
            partner.sage_can_export = can
            partner.sage_export_hint = partner._sage_export_hint() if can else False

    def _sage_needs_export(self, connection):
        self.ensure_one()
        holder, person = self._sage_export_parts()
        holder_binding = holder._sage_binding_in(connection)
        if person:
            return not person._sage_binding_in(connection) and holder_binding.main_person_id != person
        return not holder_binding

    def _sage_export_hint(self):
        """What Export to Sage will create, in words (shown before the click)."""
        self.ensure_one()
        holder, person = self._sage_export_parts()
        if not person:
            return _("Creates %s in Sage as a contact.", holder.name)
        if holder.sage_contact_id:
            return _("Adds %(person)s to %(company)s's Sage contact as a contact person.",
                     person=person.name, company=holder.name)
        return _("Creates %(company)s in Sage, with %(person)s as its contact person and the "
                 "company's e-mail, phones and address.", company=holder.name, person=person.name)

    # ------------------------------------------------------------------
    # Export to Sage
    # ------------------------------------------------------------------
    def action_export_to_sage(self):
        """Create (or find) these partners in Sage now and link them (XML-RPC: any ids).

        A company or a person without a company is exported as itself; a person of a company
        exports the company with the person as Sage's main contact person, or is added as a
        contact person when the company is already linked. An existing, unlinked Sage contact
        with exactly the same name is linked instead of creating a twin. A partner the sync
        flagged as a possible duplicate is not exported unless the context says
        ``sage_export_anyway``: the answer asks first. Returns a ``display_notification``
        client action. Raises ``UserError`` with Sage's own message when one partner is refused;
        with several ids, the refusals are listed and the other partners are exported.
        """
        self.check_access("write")
        if len(self) == 1:
            question = self._sage_duplicate_question()
            if question:
                return question
            return self._sage_notify(self._sage_export_one(), "success")
        done, failed = [], []
        for partner in self:
            try:
                with self.env.cr.savepoint():
                    if partner._sage_duplicate_of() and not self.env.context.get("sage_export_anyway"):
                        raise UserError(_("it may duplicate %s, which is in Sage: link it or export it "
                                          "on its own.", partner._sage_duplicate_of().display_name))
                    done.append(partner._sage_export_one())
            except UserError as error:
                failed.append(f"{partner.display_name}: {error.args[0]}")
        message = "\n".join(done + failed)
        return self._sage_notify(message, "warning" if failed else "success")

    def _sage_duplicate_of(self):
        """A partner imported from Sage that the sync flagged as a possible duplicate of this one
        (exporting this one would make a twin of its Sage contact), if any."""
        self.ensure_one()
        holder, _person = self._sage_export_parts()
        if not holder.id:
            return self.browse()
        flagged = self.sudo().with_context(active_test=False).search([
            ("sage_duplicate_of_id", "=", holder.id), ("sage_review", "!=", False)])
        connection = holder._sage_connection()
        return flagged.filtered(lambda p: p._sage_binding_in(connection))[:1].sudo(False)

    def _sage_duplicate_question(self):
        """A flagged near-duplicate asks first: link it to the other partner, or export anyway."""
        self.ensure_one()
        if self.env.context.get("sage_export_anyway") or not self._sage_duplicate_of():
            return None
        return {
            "type": "ir.actions.act_window", "res_model": "sage.export.confirm", "view_mode": "form",
            "target": "new", "name": _("Possible duplicate in Sage"),
            "context": {"default_partner_id": self.id},
        }

    def _sage_notify(self, message, kind):
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": kind, "title": _("Sage Business Cloud"), "message": message,
                "sticky": kind != "success",
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def _sage_export_one(self):
        """Export one partner; return the message for the user."""
        self.ensure_one()
        holder, person = self._sage_export_parts()
        connection = holder._sage_connection()
        Binding = self.env["sage.binding"]
        Binding._sage_check_may_change(holder | person, connection)
        if connection.state != "connected":
            raise UserError(_("The company of %s is not connected to Sage.", self.display_name))
        (holder | person)._sage_lock()
        holder_binding = holder._sage_binding_in(connection)
        if person and (person._sage_binding_in(connection) or holder_binding.main_person_id == person):
            return _("%s is already a contact person in Sage.", person.display_name)
        if holder_binding and not person:
            return _("%s is already linked to Sage.", holder.display_name)
        service = SageService(connection._get_client())
        if holder_binding:
            return person._sage_add_contact_person(service, holder_binding)
        twin = holder._sage_find_twin(service, connection)
        if twin:
            binding = holder._sage_bind(connection, twin, "name_match", snapshot={})
            message = _(
                "Sage already had a contact named “%(name)s”: %(partner)s is now linked to it instead "
                "of creating a twin; Odoo's details will be sent to it shortly.",
                name=twin.get("name"), partner=holder.display_name,
            )
            if person:
                message += " " + person._sage_add_contact_person(service, binding)
            return message
        values = holder._sage_contact_values(main_person=person)
        contact = self._sage_call(lambda: service.create_contact(
            sage_export.creation_body(values, holder._sage_contact_type()),
            holder._sage_idempotency_id("contact", connection)))
        binding = holder._sage_bind(connection, contact, "exported",
                                    snapshot=sage_export.confirmed(values, contact), main_person=person)
        binding.sudo().pushed_at = fields.Datetime.now()
        holder._sage_note(_("Exported to Sage by %s.", self.env.user.name))
        if person:
            person._sage_bind_person(binding, (contact.get("main_contact_person") or {}).get("id"), main=True)
            person._sage_note(_("Exported to Sage as the main contact person of %s.", holder.name))
            return _("%(company)s was created in Sage with %(person)s as its contact person.",
                     company=holder.display_name, person=person.name)
        return _("%s was created in Sage and is now linked to it.", holder.display_name)

    def _sage_idempotency_id(self, kind, connection):
        """A Sage ``idempotency_id`` that is the same for every retry of one export.

        Derived from the database, the partner, the Sage business and the link generation, so a
        retry after a lost answer (even from a rolled-back transaction) reuses it and Sage returns
        the record it already created; a new export after an unlink gets a new one.
        """
        self.ensure_one()
        dbuuid = self.env["ir.config_parameter"].sudo().get_param("database.uuid", "")
        seed = f"{dbuuid}:{self.id}:{connection.business_id or ''}:{self.sage_export_generation}:{kind}"
        return uuid.uuid5(uuid.NAMESPACE_URL, seed).hex

    def _sage_lock(self):
        """Lock these partner rows for the rest of the transaction, or refuse at once."""
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    "SELECT id FROM res_partner WHERE id IN %s FOR NO KEY UPDATE NOWAIT",
                    [tuple(self.ids)],
                )
        except psycopg2.errors.LockNotAvailable:
            raise UserError(_(
                "%s is being exported or changed by someone else right now. Try again in a moment.",
                ", ".join(self.mapped("display_name")),
            )) from None
        # Another transaction may have linked them before the lock: read them again.
        self.invalidate_recordset()
        self.env["sage.binding"].invalidate_model()

    def _sage_find_twin(self, service, connection):
        """The unlinked Sage contact with exactly this partner's name, if there is one."""
        self.ensure_one()
        name = exact_name(self.name)
        if not name:
            return None
        found = [item for item in self._sage_call(lambda: service.search_contacts(
            name, attributes="name,updated_at,links,main_address,main_contact_person"))
            if exact_name(item.get("name")) == name]
        if not found:
            return None
        taken = set(self.env["sage.binding"].sudo().search([
            ("connection_id", "=", connection.id), ("sage_contact_id", "in", [item["id"] for item in found]),
        ]).mapped("sage_contact_id"))
        free = [item for item in found if item["id"] not in taken]
        if len(free) > 1:
            raise UserError(_(
                "Sage already has %(count)s contacts named “%(name)s”. A Sage manager can link "
                "%(partner)s to the right one by hand (Sage tab, Link by hand).",
                count=len(free), name=name, partner=self.display_name,
            ))
        return free[0] if free else None

    def _sage_bind(self, connection, contact, method, snapshot, main_person=None):
        """Bind this partner to the Sage ``contact``; pending when Odoo's values differ from
        ``snapshot``. Returns the binding."""
        self.ensure_one()
        Binding = self.env["sage.binding"].sudo()
        binding = Binding.create(Binding._sage_bind_values(
            connection, self.id, contact, method, snapshot=snapshot,
            main_person_id=main_person.id if main_person else False))
        binding._sage_queue_push()
        return binding

    def _sage_bind_person(self, holder_binding, person_id, main=False, snapshot=None):
        """Bind this B2B person to the Sage contact person ``person_id`` of ``holder_binding``."""
        self.ensure_one()
        if not person_id:
            return self.env["sage.binding"]
        Binding = self.env["sage.binding"].sudo()
        binding = Binding.create({
            "connection_id": holder_binding.connection_id.id, "partner_id": self.id,
            "kind": "main_person" if main else "person", "sage_contact_person_id": person_id,
            "link_method": holder_binding.link_method, "push_state": "synced",
            "push_snapshot": snapshot or {}, "pushed_at": fields.Datetime.now(),
        })
        if main and holder_binding.main_person_id != self:
            holder_binding.sudo().main_person_id = self
        binding._sage_queue_push()
        return binding

    def _sage_add_contact_person(self, service, holder_binding):
        """Bind this B2B person to its company's Sage contact: to an existing contact person with
        the same name or e-mail (one request looks), else to a new one (POST /contact_persons)."""
        self.ensure_one()
        contact = self._sage_call(lambda: service.get_contact(holder_binding.sage_contact_id))
        existing = self._sage_matching_person(contact, service, holder_binding.connection_id)
        if existing:
            main = bool(existing.get("is_main_contact")) or existing.get("id") == (
                contact.get("main_contact_person") or {}).get("id")
            self._sage_bind_person(holder_binding, existing["id"], main=main)
            self._sage_note(_("Linked to the existing Sage contact person “%(name)s” of %(company)s.",
                              name=existing.get("name"), company=holder_binding.partner_id.name))
            return _("%(person)s was already a contact person of %(company)s in Sage: it is now linked "
                     "to it, nothing was added.", person=self.name, company=holder_binding.partner_id.display_name)
        address_id = (contact.get("main_address") or {}).get("id")
        holder = holder_binding.partner_id
        if not address_id:
            address_id = self._sage_call(lambda: service.add_main_address(
                holder_binding.sage_contact_id, holder._sage_address_of(holder._sage_child("invoice") or holder),
                self._sage_idempotency_id("address", holder_binding.connection_id)))["id"]
        values = self._sage_person_values()
        created = self._sage_call(lambda: service.add_contact_person(
            address_id, values, self._sage_idempotency_id("person", holder_binding.connection_id)))
        snapshot = sage_export.confirmed(
            {"main_contact_person": values}, {"main_contact_person": created})["main_contact_person"]
        self._sage_bind_person(holder_binding, created["id"], snapshot=snapshot)
        self._sage_note(_("Added to Sage as a contact person of %s.", holder.name))
        return _("%(person)s was added as a contact person of %(company)s in Sage.",
                 person=self.name, company=holder.display_name)

    def _sage_matching_person(self, contact, service, connection):
        """The Sage contact person of ``contact`` with this person's name or e-mail that no other
        partner is bound to, if any."""
        name = exact_name(self.name).casefold()
        email = (sage_export.first_email(self.email) or "").casefold()
        candidates = [contact.get("main_contact_person") or {}]
        candidates += self._sage_call(lambda: service.contact_persons_of(contact))
        taken = set(self.env["sage.binding"].sudo().search([
            ("connection_id", "=", connection.id),
            ("sage_contact_person_id", "in", [p.get("id") for p in candidates if p.get("id")]),
        ]).mapped("sage_contact_person_id"))
        for person in candidates:
            if not person.get("id") or person["id"] in taken:
                continue
            if (name and exact_name(person.get("name")).casefold() == name) or (
                    email and (person.get("email") or "").casefold() == email):
                return person
        return None

    @api.model
    def _sage_call(self, call, gone_ok=False):
        """Run a Sage call; turn Sage's failures into messages a user can act on.

        ``gone_ok``: a 404 raises ``_SageGone`` for the caller to handle instead."""
        try:
            return call()
        except SageNotFoundError:
            if gone_ok:
                raise _SageGone() from None
            raise UserError(sage_user_message(SageNotFoundError("not found"))) from None
        except SageError as error:
            raise UserError(sage_user_message(error)) from None

    # ------------------------------------------------------------------
    # pushing edits: what users and the cron call
    # ------------------------------------------------------------------
    @api.model
    def _cron_sage_push(self, limit=50):
        """The ``ir_cron_sage_push`` job: see ``sage.binding._cron_sage_push``."""
        return self.env["sage.binding"].sudo()._cron_sage_push(limit=limit)

    def action_sage_push_retry(self):
        """Send these partners' changes to Sage again at once (after a refusal or an outage)."""
        self.check_access("write")
        bindings = self.env["sage.binding"].sudo().search([
            ("partner_id", "in", self.ids), ("push_state", "in", ("pending", "error")),
            ("company_id", "in", self.env.companies.ids)])
        bindings.write({"push_state": "pending", "push_next_at": False, "push_attempts": 0})
        self.env.ref(PUSH_CRON).sudo()._trigger()
        return True

    # ------------------------------------------------------------------
    # manual link / unlink, Delete in Sage (Sage managers)
    # ------------------------------------------------------------------
    def _sage_check_manager(self, connection=None):
        """Sage managers only, with write access to these partners, in their own company's book."""
        connection = connection or (self[:1]._sage_connection() if self else self.env["sage.connection"])
        self.env["sage.binding"]._sage_check_may_change(self, connection, manager=True)

    def _sage_confirm_link_action(self, operation):
        """The action menu's Unlink / Delete in Sage: a confirmation first (managers only)."""
        self.ensure_one()
        connection = self._sage_connection()
        self._sage_check_manager(connection)
        binding = self._sage_binding_in(connection)
        if not binding or (operation != "unlink" and binding.kind != "contact"):
            raise UserError(_("%s is not linked to a Sage contact.", self.display_name))
        return {
            "type": "ir.actions.act_window", "res_model": "sage.link.action", "view_mode": "form",
            "target": "new", "name": dict(self.env["sage.link.action"]._fields["operation"].selection)[operation],
            "context": {"default_partner_id": self.id, "default_operation": operation},
        }

    def action_sage_link_wizard(self):
        """Open the wizard that searches Sage by name and links this partner by hand."""
        self.ensure_one()
        self._sage_check_manager()
        return {
            "type": "ir.actions.act_window", "res_model": "sage.link.wizard", "view_mode": "form",
            "target": "new", "name": _("Link to a Sage contact"),
            "context": {"default_partner_id": self.id, "default_search_text": self.name},
        }

    def _sage_link_by_hand(self, connection, contact):
        """Link this partner to the Sage ``contact`` (a dict from Sage); managers only."""
        self.ensure_one()
        self._sage_check_manager(connection)
        if self._sage_binding_in(connection):
            raise UserError(_("%s is already linked to Sage: unlink it first.", self.display_name))
        other = self.env["sage.binding"].sudo().search([
            ("connection_id", "=", connection.id), ("sage_contact_id", "=", contact["id"])], limit=1)
        if other:
            raise UserError(_("The Sage contact “%(name)s” is already linked to %(partner)s.",
                              name=contact.get("name"), partner=other.partner_id.display_name))
        self._sage_lock()
        self._sage_bind(connection, contact, "manual", snapshot={})
        self._sage_note(_("Linked by hand to the Sage contact “%(name)s” by %(user)s.",
                          name=contact.get("name"), user=self.env.user.name))

    def action_sage_unlink(self):
        """Remove the Sage link of these partners in the current company's Sage business
        (XML-RPC; Sage managers only, with write access to each partner).

        The partners and the Sage contacts both stay; persons linked through a company are
        unlinked with it. The partners' Sage invoices of that business are removed from Odoo
        and their figures cleared. A chatter note records it.
        """
        for partner in self:
            connection = partner._sage_connection()
            partner._sage_check_manager(connection)
            binding = partner._sage_binding_in(connection)
            if binding:
                binding._sage_end(note=_("Unlinked from Sage (Sage id %(id)s) by %(user)s.",
                                         id=binding.sage_contact_id or binding.sage_contact_person_id,
                                         user=self.env.user.name))
        return True

    def action_sage_delete(self):
        """Delete this partner's contact in Sage when Sage allows it (Sage managers only).

        Sage refuses when the contact has transactions (its ``deletable`` flag): nothing changes
        and the reason is explained. Otherwise the Sage contact is deleted and the partner
        unlinked; with context ``sage_delete_partner=True`` the Odoo partner is deleted too.
        """
        self.ensure_one()
        connection = self._sage_connection()
        self._sage_check_manager(connection)
        binding = self._sage_binding_in(connection)
        if not binding or binding.kind != "contact":
            raise UserError(_("%s is not linked to a Sage contact.", self.display_name))
        self._sage_lock()
        service = SageService(connection._get_client())
        try:
            contact = self._sage_call(lambda: service.get_contact(binding.sage_contact_id), gone_ok=True)
        except _SageGone:
            # Deleted already (by an earlier click whose answer was lost, or in Sage itself).
            return self._sage_deleted_already(binding)
        if not contact.get("deletable", True):
            raise UserError(_(
                "Sage does not allow deleting “%s”: it has transactions (invoices, credit notes or "
                "payments). Nothing was changed. You can archive the partner in Odoo instead.",
                contact.get("name") or self.display_name,
            ))
        name = self.display_name
        sage_id = binding.sage_contact_id
        if self.env.context.get("sage_delete_partner"):
            # Delete in Odoo first (inside this transaction) so that Sage is only touched when
            # Odoo can delete the partner too. Its persons stay: they lose their Sage link.
            binding._sage_end()
            self.with_context(sage_deleted_in_sage=True).unlink()
            self.env.flush_all()
            self._sage_delete_contact(service, sage_id)
            return {
                "type": "ir.actions.client", "tag": "display_notification",
                "params": {"type": "success", "title": _("Sage Business Cloud"),
                           "message": _("%s was deleted in Sage and in Odoo.", name),
                           "next": {"type": "ir.actions.act_window_close"}},
            }
        self._sage_delete_contact(service, sage_id)
        binding._sage_end(note=_("Deleted in Sage (Sage id %(id)s) by %(user)s; the partner is kept in Odoo.",
                                 id=sage_id, user=self.env.user.name))
        return self._sage_notify(_("%s was deleted in Sage. The partner stays in Odoo, unlinked; "
                                   "archive or delete it if you no longer need it.", name), "success")

    def _sage_delete_contact(self, service, sage_id):
        """DELETE the Sage contact; a 404 means a retry of a DELETE Sage carried out already."""
        try:
            self._sage_call(lambda: service.delete_contact(sage_id), gone_ok=True)
        except _SageGone:
            _logger.info("Sage contact %s was already deleted in Sage (a retried DELETE)", sage_id)

    def _sage_deleted_already(self, binding):
        """The Sage contact of ``binding`` no longer exists: end the link, keep the partner."""
        sage_id = binding.sage_contact_id
        binding._sage_end(note=_("The Sage contact (Sage id %(id)s) no longer exists in Sage; the partner is "
                                 "kept in Odoo, unlinked (%(user)s).", id=sage_id, user=self.env.user.name))
        if self.env.context.get("sage_delete_partner"):
            name = self.display_name
            self.with_context(sage_deleted_in_sage=True).unlink()
            return {
                "type": "ir.actions.client", "tag": "display_notification",
                "params": {"type": "success", "title": _("Sage Business Cloud"),
                           "message": _("%s was already deleted in Sage; it is now deleted in Odoo.", name),
                           "next": {"type": "ir.actions.act_window_close"}},
            }
        return self._sage_notify(_("%s was already deleted in Sage. The partner stays in Odoo, unlinked.",
                                   self.display_name), "success")


class _SageGone(Exception):
    """Sage answered 404: the record is not (or no longer) there."""
