"""Odoo -> Sage: Export to Sage, pushing edits of linked partners, manual unlink, Delete in Sage.

Who holds the link: a company, or a person without a company (B2C), holds ``sage_contact_id``
itself. A person of a company (B2B) is linked through its company: exporting the person exports
the company with the person as Sage's main contact person (``sage_main_person_id`` on the company),
or, when the company is already linked, adds the person as another contact person of the Sage
contact (``sage_contact_person_id`` on the person).

Pushing: a write to a pushed field marks the partners whose Sage values it changes as pending
and triggers the push cron, which runs after the commit. The cron compares what Odoo would send
with the stored snapshot of what was last pushed, so an unchanged field costs no request.
The value mapping itself lives in ``services/sage_export.py``.
"""

import logging
import threading
import uuid
from datetime import timedelta

import psycopg2
from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError

from ..services import sage_export
from ..services.names import exact_name
from ..services.sage_client import (
    SageAuthError,
    SageError,
    SageNotFoundError,
    SageRateLimitError,
    SageTransientError,
    SageValidationError,
)
from ..services.sage_format import MappingError, parse_datetime

_logger = logging.getLogger(__name__)

#: Partner fields whose change can change what Sage holds.
PUSHED_FIELDS = frozenset({
    "name", "email", "phone", "mobile", "street", "street2", "city", "zip", "state_id",
    "country_id", "type", "parent_id", "active",
})
#: Minutes to wait before the n-th retry of a push that failed because Sage was unreachable.
RETRY_MINUTES = (1, 2, 5, 10, 30, 60)
PUSH_BATCH = 50
#: Link fields cleared together (the sync engineer's fields plus the push state of this file).
PUSH_RESET_VALUES = {
    "sage_push_state": False,
    "sage_push_error": False,
    "sage_push_attempts": 0,
    "sage_push_next_at": False,
    "sage_push_snapshot": False,
    "sage_main_person_id": False,
}
#: Push fields of a partner with nothing waiting to be sent.
PUSH_IDLE_VALUES = {
    "sage_push_state": False,
    "sage_push_error": False,
    "sage_push_attempts": 0,
    "sage_push_next_at": False,
}
#: Partners that hold no Sage record a push could update.
UNLINKED_DOMAIN = [("sage_contact_id", "=", False), ("sage_contact_person_id", "=", False)]
MANAGER_GROUP = "sage_business_cloud.group_sage_manager"
PUSH_CRON = "sage_business_cloud.ir_cron_sage_push"


def _auto_commit():
    return not getattr(threading.current_thread(), "testing", False)


class ResPartner(models.Model):
    _inherit = "res.partner"

    sage_push_state = fields.Selection(
        [("synced", "Up to date in Sage"), ("pending", "Waiting to be sent to Sage"),
         ("error", "Refused by Sage")],
        string="Sage push", copy=False, readonly=True, index="btree_not_null",
        help="Whether Odoo's latest changes to this linked contact have reached Sage.",
    )
    sage_push_error = fields.Text(
        "Sage push error", copy=False, readonly=True,
        help="Why the last attempt to send this contact's changes to Sage failed.",
    )
    sage_push_attempts = fields.Integer(copy=False, readonly=True)
    sage_push_next_at = fields.Datetime("Next attempt", copy=False, readonly=True)
    sage_pushed_at = fields.Datetime("Last sent to Sage", copy=False, readonly=True)
    sage_push_snapshot = fields.Json(
        copy=False, readonly=True, help="The values Odoo last sent to (or found in) Sage.",
    )
    sage_export_generation = fields.Integer(
        copy=False, readonly=True,
        help="Bumped when the link is removed, so that a new export is a new Sage request.",
    )
    sage_main_person_id = fields.Many2one(
        "res.partner", string="Sage main contact person", copy=False, readonly=True,
        ondelete="set null", index="btree_not_null",
        help="The person of this company exported as the Sage contact's main contact person.",
    )
    sage_contact_person_id = fields.Char(
        "Sage contact person id", copy=False, readonly=True, index="btree_not_null",
        help="Id of the Sage contact person this person was added as, on its company's Sage contact.",
    )
    sage_can_export = fields.Boolean(compute="_compute_sage_can_export")

    # ------------------------------------------------------------------
    # computes
    # ------------------------------------------------------------------
    @api.depends_context("uid")
    @api.depends("sage_contact_id", "sage_contact_person_id", "type", "company_id",
                 "commercial_partner_id.sage_contact_id", "commercial_partner_id.sage_main_person_id")
    def _compute_sage_can_export(self):
        allowed = self.browse().has_access("write")
        connected = {}
        for partner in self:
            company = partner.company_id or self.env.company
            if company.id not in connected:
                connection = self.env["sage.connection"]._get_for_company(company, create=False)
                connected[company.id] = connection.state == "connected"
            partner.sage_can_export = bool(
                allowed and partner.id and connected[company.id] and partner._sage_needs_export()
            )

    def _sage_needs_export(self):
        self.ensure_one()
        holder, person = self._sage_export_parts()
        if person:
            return not person.sage_contact_person_id and holder.sage_main_person_id != person
        return not holder.sage_contact_id

    # ------------------------------------------------------------------
    # CRUD: notice changes that Sage must receive
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        """Create partners; a new invoice or delivery address of a linked company is sent to Sage."""
        partners = super().create(vals_list)
        if not self.env.context.get("sage_no_push"):
            children = partners.filtered(lambda p: p.parent_id and p.type in ("invoice", "delivery"))
            children._sage_queue_push()
        return partners

    def write(self, vals):
        """Write partners; linked partners whose Sage values change are queued for the push cron.

        Only a change of what Sage would receive counts: writing the same values again, or a field
        Sage does not hold, marks nothing and costs no request.
        """
        if self.env.context.get("sage_no_push") or not PUSHED_FIELDS.intersection(vals):
            return super().write(vals)
        before = self._sage_push_units() if {"parent_id", "type"}.intersection(vals) else self.browse()
        result = super().write(vals)
        (before | self)._sage_queue_push(units=before | self._sage_push_units())
        return result

    def unlink(self):
        """Delete partners; linked partners whose Sage values depended on them are queued for a push."""
        units = self.browse()
        if not self.env.context.get("sage_no_push"):
            units = (self._sage_push_units() - self).exists()
        result = super().unlink()
        units.exists()._sage_queue_push(units=units.exists())
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

    def _sage_connection(self):
        """The Sage connection of the partner's company (of the current company when shared)."""
        self.ensure_one()
        if self.sage_connection_id:
            return self.sage_connection_id.sudo()
        company = self.company_id or self.env.company
        return self.env["sage.connection"]._get_for_company(company, create=False)

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
        """The Sage contact body (snapshot shape) of a link holder."""
        self.ensure_one()
        person = main_person if main_person is not None else self.sage_main_person_id
        if not person and not self.is_company:
            person = self
        invoice = self._sage_child("invoice")
        delivery = self._sage_child("delivery")
        return sage_export.contact_values(
            self.name,
            sage_export.person_values(
                name=person.name if person else None,
                email=person.email or self.email, phone=person.phone or self.phone,
                mobile=person.mobile or self.mobile,
            ),
            main_address=self._sage_address_of(invoice or self),
            delivery_address=self._sage_address_of(delivery) if delivery else None,
        )

    def _sage_person_values(self):
        """The Sage contact person body of a B2B person added to its company's Sage contact."""
        self.ensure_one()
        return sage_export.person_values(self.name, self.email, self.phone, self.mobile)

    def _sage_push_kind(self):
        """``('contacts', id)`` for a link holder, ``('contact_persons', id)`` for an added person."""
        self.ensure_one()
        if self.sage_contact_id:
            return "contacts", self.sage_contact_id
        if self.sage_contact_person_id:
            return "contact_persons", self.sage_contact_person_id
        return None, None

    def _sage_push_values(self):
        resource, _key = self._sage_push_kind()
        if resource == "contacts":
            return self._sage_contact_values()
        if resource == "contact_persons":
            return self._sage_person_values()
        return None

    def _sage_push_units(self):
        """Partners whose Sage values may depend on ``self``: holders and added persons."""
        units = self.filtered(lambda p: p.sage_contact_id or p.sage_contact_person_id)
        for partner in self.filtered("parent_id"):
            if partner.type in ("invoice", "delivery") and partner.parent_id.sage_contact_id:
                units |= partner.parent_id
        if self.ids:
            units |= self.with_context(active_test=False).search(
                [("sage_main_person_id", "in", self.ids), ("sage_contact_id", "!=", False)])
        return units

    def _sage_queue_push(self, units=None):
        """Mark the partners whose Sage values changed as pending and wake the push cron.

        The cron trigger is part of this transaction: it fires only once the change commits.
        """
        units = self._sage_push_units() if units is None else units
        changed = units.filtered(
            lambda u: (values := u._sage_push_values()) is not None
            and sage_export.changes(values, u.sage_push_snapshot)
        )
        if changed:
            changed.with_context(sage_no_push=True).sudo().write({
                "sage_push_state": "pending", "sage_push_error": False,
                "sage_push_attempts": 0, "sage_push_next_at": False,
            })
            self.env.ref(PUSH_CRON).sudo()._trigger()
        return changed

    def _sage_idempotency_id(self, kind):
        """A Sage ``idempotency_id`` that is the same for every retry of one export.

        Derived from the database, the partner, the Sage business and the link generation, so a
        retry after a lost answer (even from a rolled-back transaction) reuses it and Sage returns
        the record it already created; a new export after an unlink gets a new one.
        """
        self.ensure_one()
        dbuuid = self.env["ir.config_parameter"].sudo().get_param("database.uuid", "")
        business = self._sage_connection().business_id or ""
        seed = f"{dbuuid}:{self.id}:{business}:{self.sage_export_generation}:{kind}"
        return uuid.uuid5(uuid.NAMESPACE_URL, seed).hex

    # ------------------------------------------------------------------
    # Export to Sage
    # ------------------------------------------------------------------
    def action_export_to_sage(self):
        """Create (or find) these partners in Sage now and link them (XML-RPC: any ids).

        A company or a person without a company is exported as itself; a person of a company
        exports the company with the person as Sage's main contact person, or is added as a
        contact person when the company is already linked. An existing, unlinked Sage contact
        with exactly the same name is linked instead of creating a twin. Returns a
        ``display_notification`` client action. Raises ``UserError`` with Sage's own message
        when one partner is refused; with several ids, the refusals are listed in the
        notification and the other partners are exported.
        """
        self.check_access("write")
        if len(self) == 1:
            return self._sage_notify(self._sage_export_one(), "success")
        done, failed = [], []
        for partner in self:
            try:
                with self.env.cr.savepoint():
                    done.append(partner._sage_export_one())
            except UserError as error:
                failed.append(f"{partner.display_name}: {error.args[0]}")
        message = "\n".join(done + failed)
        return self._sage_notify(message, "warning" if failed else "success")

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
        # The link is written on the holder with sudo: the user must be allowed to write it (and
        # the person) before anything reaches Sage.
        (holder | person).check_access("write")
        connection = holder._sage_connection()
        if connection.state != "connected":
            raise UserError(_("The company of %s is not connected to Sage.", self.display_name))
        (holder | person)._sage_lock()
        if person and (person.sage_contact_person_id or holder.sage_main_person_id == person):
            return _("%s is already a contact person in Sage.", person.display_name)
        if holder.sage_contact_id and not person:
            return _("%s is already linked to Sage.", holder.display_name)
        client = connection._get_client()
        if holder.sage_contact_id:
            return person._sage_add_contact_person(client, holder)
        twin = holder._sage_find_twin(client, connection)
        if twin:
            holder._sage_link(connection, twin, "name_match", snapshot={})
            message = _(
                "Sage already had a contact named “%(name)s”: %(partner)s is now linked to it instead "
                "of creating a twin; Odoo's details will be sent to it shortly.",
                name=twin.get("name"), partner=holder.display_name,
            )
            if person:
                message += " " + person._sage_add_contact_person(client, holder)
            return message
        values = holder._sage_contact_values(main_person=person)
        body = sage_export.creation_body(values, holder._sage_contact_type())
        contact = self._sage_call(lambda: client.create(
            "contacts", body, idempotency_id=holder._sage_idempotency_id("contact")))
        holder._sage_link(connection, contact, "exported",
                          snapshot=sage_export.confirmed(values, contact), main_person=person)
        holder._sage_note(_("Exported to Sage by %s.", self.env.user.name))
        if person:
            person._sage_note(_("Exported to Sage as the main contact person of %s.", holder.name))
            return _("%(company)s was created in Sage with %(person)s as its contact person.",
                     company=holder.display_name, person=person.name)
        return _("%s was created in Sage and is now linked to it.", holder.display_name)

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

    def _sage_find_twin(self, client, connection):
        """The unlinked Sage contact with exactly this partner's name, if there is one."""
        self.ensure_one()
        name = exact_name(self.name)
        if not name:
            return None
        found = self._sage_call(lambda: [
            item for item in client.iter_items(
                "contacts", search=name, attributes="name,updated_at,links")
            if exact_name(item.get("name")) == name
        ])
        if not found:
            return None
        taken = set(self.with_context(active_test=False).search([
            ("sage_connection_id", "=", connection.id),
            ("sage_contact_id", "in", [item["id"] for item in found]),
        ]).mapped("sage_contact_id"))
        free = [item for item in found if item["id"] not in taken]
        if len(free) > 1:
            raise UserError(_(
                "Sage already has %(count)s contacts named “%(name)s”. A Sage manager can link "
                "%(partner)s to the right one by hand (Sage tab, Link by hand).",
                count=len(free), name=name, partner=self.display_name,
            ))
        return free[0] if free else None

    def _sage_link(self, connection, contact, method, snapshot, main_person=None):
        """Write the link to ``contact``; pending when Odoo's values differ from ``snapshot``."""
        self.ensure_one()
        values = dict(self._sage_link_values(connection, contact, method),
                      sage_push_snapshot=snapshot, sage_main_person_id=main_person.id if main_person else False,
                      sage_push_state="synced", sage_push_error=False, sage_push_attempts=0,
                      sage_push_next_at=False)
        if method == "exported":
            values["sage_pushed_at"] = fields.Datetime.now()
        self.with_context(sage_no_push=True).sudo().write(values)
        self._sage_queue_push(units=self)

    def _sage_add_contact_person(self, client, holder):
        """Add this B2B person to the Sage contact of its linked company (POST /contact_persons)."""
        self.ensure_one()
        contact = self._sage_call(lambda: client.get("contacts", holder.sage_contact_id))
        address_id = (contact.get("main_address") or {}).get("id")
        if not address_id:
            main = holder._sage_address_of(holder._sage_child("invoice") or holder) or {}
            address = dict(main, contact_id=holder.sage_contact_id, address_type_id="ACCOUNTS",
                           name="Main Address", is_main_address=True)
            address_id = self._sage_call(lambda: client.create(
                "addresses", address, idempotency_id=self._sage_idempotency_id("address")))["id"]
        values = self._sage_person_values()
        body = dict(values, address_id=address_id, contact_person_type_ids=[sage_export.PERSON_TYPE])
        created = self._sage_call(lambda: client.create(
            "contact_persons", body, idempotency_id=self._sage_idempotency_id("person")))
        self.with_context(sage_no_push=True).sudo().write({
            "sage_contact_person_id": created["id"],
            "sage_push_snapshot": sage_export.confirmed(
                {"main_contact_person": values}, {"main_contact_person": created})["main_contact_person"],
            "sage_push_state": "synced", "sage_pushed_at": fields.Datetime.now(),
            "sage_push_error": False,
        })
        self._sage_queue_push(units=self)
        self._sage_note(_("Added to Sage as a contact person of %s.", holder.name))
        return _("%(person)s was added as a contact person of %(company)s in Sage.",
                 person=self.name, company=holder.display_name)

    @api.model
    def _sage_call(self, call):
        """Run a Sage call; turn Sage's failures into messages a user can act on."""
        try:
            return call()
        except SageValidationError as error:
            raise UserError(_("Sage refused it: %s", error.user_message)) from None
        except (SageTransientError, SageRateLimitError):
            raise UserError(_(
                "Sage is not answering right now. Nothing was duplicated: try again in a moment."
            )) from None
        except SageAuthError:
            raise UserError(_(
                "Sage no longer accepts this company's connection: an administrator must "
                "reconnect it in Settings > Sage Business Cloud."
            )) from None
        except SageNotFoundError:
            raise UserError(_("This contact no longer exists in Sage.")) from None
        except SageError as error:
            raise UserError(_("Sage answered with an error: %s", error.message)) from None

    # ------------------------------------------------------------------
    # pushing edits (cron)
    # ------------------------------------------------------------------
    @api.model
    def _cron_sage_push(self, limit=PUSH_BATCH):
        """Send pending partner changes to Sage (the ``ir_cron_sage_push`` job)."""
        now = fields.Datetime.now()
        Partner = self.sudo().with_context(active_test=False)
        # Partners unlinked while pending (e.g. deleted in Sage) have nothing left to send.
        Partner.search([("sage_push_state", "in", ("pending", "error"))] + UNLINKED_DOMAIN).with_context(
            sage_no_push=True).write(PUSH_IDLE_VALUES)
        partners = Partner.search([
            ("sage_push_state", "=", "pending"),
            "|", ("sage_contact_id", "!=", False), ("sage_contact_person_id", "!=", False),
            "|", ("sage_push_next_at", "=", False), ("sage_push_next_at", "<=", now),
        ], limit=limit, order="sage_push_next_at asc nulls first, id")
        clients = {}
        handled = 0
        for partner in partners:
            handled += bool(partner._sage_push_one(clients))
            if _auto_commit():
                # One partner per transaction: a push that reached Sage is never rolled back.
                self.env.cr.commit()  # pylint: disable=invalid-commit
        cron = self.env.ref(PUSH_CRON).sudo()
        # A full batch may hide more work; a batch of rows locked by editors does not (their
        # commits trigger the cron again), so it must not make the cron spin.
        if len(partners) == limit and handled:
            cron._trigger()
        later = self.sudo().with_context(active_test=False).search(
            [("sage_push_state", "=", "pending"), ("sage_push_next_at", ">", now)],
            order="sage_push_next_at", limit=1)
        if later:
            cron._trigger(at=later.sage_push_next_at)
        return len(partners)

    def _sage_push_one(self, clients):
        """Push one pending partner: GET it in Sage, note overwritten values, PUT the changes.

        Returns False when the partner was skipped (locked by an editor), True once it is dealt
        with: pushed, found unchanged or no longer linked (no longer pending), refused or postponed.
        """
        self.ensure_one()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    "SELECT id FROM res_partner WHERE id = %s FOR NO KEY UPDATE SKIP LOCKED", [self.id])
                locked = self.env.cr.fetchone()
        except psycopg2.Error:
            locked = None
        if not locked:
            return False  # being edited right now; the editor's commit triggers the cron again
        self.invalidate_recordset()
        if self.sage_push_state != "pending":
            return True
        resource, key = self._sage_push_kind()
        values = self._sage_push_values()
        quiet = self.with_context(sage_no_push=True)
        if values is None:
            # Unlinked since it was queued: nothing to send, ever; it must not stay pending.
            quiet.write(PUSH_IDLE_VALUES)
            return True
        diff = sage_export.changes(values, self.sage_push_snapshot)
        if not diff:
            quiet.write(dict(PUSH_IDLE_VALUES, sage_push_state="synced"))
            return True
        holder = self if resource == "contacts" else self.commercial_partner_id
        connection = holder._sage_connection()
        try:
            client = clients.get(connection.id)
            if client is None:
                client = clients[connection.id] = connection._get_client()
                # the cron has its own backoff: do not sleep long inside one run
                client.settings.max_retries = 1
            current = client.get(resource, key)
            lost = []
            seen = _sage_time(current.get("updated_at"))
            if resource == "contact_persons" or not self.sage_push_snapshot or not self.sage_updated_at \
                    or (seen and seen > self.sage_updated_at):
                if resource == "contact_persons":
                    current = {"main_contact_person": current}
                    lost = sage_export.overwritten(
                        sage_export.sage_side(current, {"main_contact_person": diff}),
                        {"main_contact_person": diff},
                        {"main_contact_person": self.sage_push_snapshot or {}})
                else:
                    lost = sage_export.overwritten(sage_export.sage_side(current, diff), diff,
                                                   self.sage_push_snapshot)
            answer = client.update(resource, key, diff)
        except SageValidationError as error:
            quiet.write({"sage_push_state": "error", "sage_push_error": error.user_message,
                         "sage_push_next_at": False})
            return True
        except SageNotFoundError:
            quiet.write({"sage_push_state": "error", "sage_push_next_at": False, "sage_push_error": _(
                "The Sage record no longer exists (deleted in Sage?). Unlink or export again.")})
            return True
        except (SageError, UserError) as error:
            attempts = self.sage_push_attempts + 1
            delay = RETRY_MINUTES[min(attempts, len(RETRY_MINUTES)) - 1]
            message = error.args[0] if isinstance(error, UserError) else error.message
            quiet.write({
                "sage_push_attempts": attempts,
                "sage_push_next_at": fields.Datetime.now() + timedelta(minutes=delay),
                "sage_push_error": _("Sage could not be reached (%(error)s); retrying in %(minutes)s min.",
                                     error=message, minutes=delay),
            })
            _logger.info("Sage push of partner %s postponed: %s", self.id, message)
            return True
        snapshot = sage_export.merged(self.sage_push_snapshot, diff)
        update = {"sage_push_snapshot": snapshot, "sage_push_state": "synced", "sage_push_error": False,
                  "sage_push_attempts": 0, "sage_push_next_at": False,
                  "sage_pushed_at": fields.Datetime.now()}
        if resource == "contacts":
            update["sage_updated_at"] = _sage_time((answer or {}).get("updated_at")) or fields.Datetime.now()
        quiet.write(update)
        if lost:
            self._sage_note_overwritten(lost)
        return True

    def _sage_note_overwritten(self, lost):
        rows = Markup("").join(
            Markup("<li>%s: <s>%s</s> → %s</li>") % (path, theirs or "", ours or "")
            for path, theirs, ours in lost
        )
        self._sage_note(Markup("<p>%s</p><ul>%s</ul>") % (
            _("Odoo's values replaced values changed in Sage:"), rows))

    def action_sage_push_retry(self):
        """Send these partners' changes to Sage again at once (after a refusal or an outage)."""
        self.check_access("write")
        units = self.filtered(lambda p: p.sage_push_state in ("pending", "error"))
        units.with_context(sage_no_push=True).sudo().write(
            {"sage_push_state": "pending", "sage_push_next_at": False, "sage_push_attempts": 0})
        self.env.ref(PUSH_CRON).sudo()._trigger()
        return True

    # ------------------------------------------------------------------
    # manual link / unlink, Delete in Sage
    # ------------------------------------------------------------------
    def _sage_check_manager(self):
        if not self.env.su and not self.env.user.has_group(MANAGER_GROUP):
            raise AccessError(_("Only Sage managers (group “Sage: manage links”) can do this."))

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
        self._sage_check_manager()
        if self.sage_contact_id:
            raise UserError(_("%s is already linked to Sage: unlink it first.", self.display_name))
        other = self.with_context(active_test=False).search([
            ("sage_connection_id", "=", connection.id), ("sage_contact_id", "=", contact["id"])], limit=1)
        if other:
            raise UserError(_("The Sage contact “%(name)s” is already linked to %(partner)s.",
                              name=contact.get("name"), partner=other.display_name))
        self._sage_lock()
        self._sage_link(connection, contact, "manual", snapshot={})
        self._sage_note(_("Linked by hand to the Sage contact “%(name)s” by %(user)s.",
                          name=contact.get("name"), user=self.env.user.name))

    def action_sage_unlink(self):
        """Remove the Sage link of these partners (XML-RPC; Sage managers only).

        The partners and the Sage contacts both stay; persons linked through a company are
        detached from its Sage contact persons too. The partners' Sage invoices are removed from
        Odoo (they belong to the Sage contact, not to the partner) and their figures recomputed.
        A chatter note records it.
        """
        self._sage_check_manager()
        linked = self.filtered(lambda p: p.sage_contact_id or p.sage_contact_person_id)
        notes = {partner.id: _("Unlinked from Sage (Sage id %(id)s) by %(user)s.",
                               id=partner.sage_contact_id or partner.sage_contact_person_id,
                               user=self.env.user.name)
                 for partner in linked}
        linked._sage_clear_link()
        for partner in linked:
            partner._sage_note(notes[partner.id])
        return True

    def _sage_clear_link(self):
        """Unlink these partners from Sage in Odoo: link, push state, added persons, invoices."""
        holders = self.filtered("sage_contact_id")
        invoices = self.env["sage.invoice"].sudo().search([("partner_id", "in", self.ids)])
        invoices.unlink()
        if holders:
            holders.with_context(sage_no_push=True).sudo().write(holders._sage_unlink_values())
        self._sage_reset_push_state()
        self._sage_recompute_invoice_figures()

    def _sage_reset_push_state(self):
        """Forget the Odoo -> Sage state of these partners, which no longer hold a Sage link.

        For the unlink paths (manual unlink, Delete in Sage, and the sync when Sage deleted the
        contact): clears the push state, snapshot and main contact person, detaches the persons
        that were added as contact persons of these partners' Sage contacts, and bumps the export
        generation so that a new export is a new Sage request. One write for the whole recordset;
        the Sage link fields themselves (``_sage_unlink_values``) are the caller's. Returns the
        partners reset (``self`` plus those persons).
        """
        if not self:
            return self
        persons = self.with_context(active_test=False).search([
            ("commercial_partner_id", "in", self.ids), ("id", "not in", self.ids),
            ("sage_contact_person_id", "!=", False)])
        partners = (self | persons).with_context(sage_no_push=True).sudo()
        # One value above every current generation: a new idempotency seed for each of them.
        generation = max(partners.mapped("sage_export_generation")) + 1
        partners.write(dict(PUSH_RESET_VALUES, sage_contact_person_id=False,
                            sage_export_generation=generation))
        return (self | persons)

    def action_sage_delete(self):
        """Delete this partner's contact in Sage when Sage allows it (Sage managers only).

        Sage refuses when the contact has transactions (its ``deletable`` flag): nothing changes
        and the reason is explained. Otherwise the Sage contact is deleted and the partner
        unlinked; with context ``sage_delete_partner=True`` the Odoo partner is deleted too.
        """
        self.ensure_one()
        self._sage_check_manager()
        if not self.sage_contact_id:
            raise UserError(_("%s is not linked to a Sage contact.", self.display_name))
        self._sage_lock()
        connection = self._sage_connection()
        client = connection._get_client()
        contact = self._sage_call(lambda: client.get("contacts", self.sage_contact_id))
        if not contact.get("deletable", True):
            raise UserError(_(
                "Sage does not allow deleting “%s”: it has transactions (invoices, credit notes or "
                "payments). Nothing was changed. You can archive the partner in Odoo instead.",
                contact.get("name") or self.display_name,
            ))
        name = self.display_name
        if self.env.context.get("sage_delete_partner"):
            # Delete in Odoo first (inside this transaction) so that Sage is only touched when
            # Odoo can delete the partner too. Its persons stay: they lose their Sage contact person.
            self._sage_reset_push_state()
            self.with_context(sage_deleted_in_sage=True).unlink()
            self.env.flush_all()
            self._sage_call(lambda: client.delete("contacts", contact["id"]))
            return {
                "type": "ir.actions.client", "tag": "display_notification",
                "params": {"type": "success", "title": _("Sage Business Cloud"),
                           "message": _("%s was deleted in Sage and in Odoo.", name),
                           "next": {"type": "ir.actions.act_window_close"}},
            }
        self._sage_call(lambda: client.delete("contacts", contact["id"]))
        sage_id = self.sage_contact_id
        self._sage_clear_link()
        self._sage_note(_("Deleted in Sage (Sage id %(id)s) by %(user)s; the partner is kept in Odoo.",
                          id=sage_id, user=self.env.user.name))
        return self._sage_notify(_("%s was deleted in Sage. The partner stays in Odoo, unlinked; "
                                   "archive or delete it if you no longer need it.", name), "success")


def _sage_time(value):
    """Sage's ``updated_at`` as a datetime, or False when it is missing or malformed: a bad
    timestamp from Sage must not block a push (it only decides whether to note overwritten values)."""
    try:
        return parse_datetime(value)
    except MappingError:
        return False
