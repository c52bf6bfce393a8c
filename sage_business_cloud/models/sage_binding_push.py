"""Pushing Odoo's edits to Sage: one binding at a time, by the push cron, after the commit.

A binding is marked pending when what Odoo would send differs from its snapshot (what Odoo last
sent to, or found in, Sage). The cron (``ir_cron_sage_push``) reads the Sage record, notes the
values Odoo overwrites, and sends each nested object whole (Odoo's values for what Odoo holds,
Sage's current values for the parts Odoo never had), so the push is right whether Sage's PUT
merges nested objects or replaces them. Sage down: the binding stays pending and is retried
after 1, 2, 5, 10, 30, then 60 minutes; refused by Sage: it turns to *error*.
"""

import logging
from datetime import timedelta

import psycopg2
from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..services import sage_export
from ..services.sage_api import SageService
from ..services.sage_client import SageAuthError, SageError, SageNotFoundError, SageValidationError
from ..services.sage_format import MappingError, parse_datetime
from ..services.transactions import auto_commit
from .sage_binding import sage_user_message

_logger = logging.getLogger(__name__)

#: Minutes to wait before the n-th retry of a push that failed because Sage was unreachable.
RETRY_MINUTES = (1, 2, 5, 10, 30, 60)
PUSH_BATCH = 50
PUSH_CRON = "sage_business_cloud.ir_cron_sage_push"
#: Push fields of a binding with nothing waiting to be sent.
PUSH_IDLE_VALUES = {"push_state": "synced", "push_error": False, "push_attempts": 0, "push_next_at": False}


class SageBinding(models.Model):
    _inherit = "sage.binding"

    # ------------------------------------------------------------------
    # what this binding sends
    # ------------------------------------------------------------------
    def _sage_push_resource(self):
        """``"contact"`` or ``"person"``: the Sage record this binding's pushes update."""
        self.ensure_one()
        return {"contact": "contact", "person": "person"}.get(self.kind)

    def _sage_push_values(self):
        """What Odoo would send now (snapshot shape), or None for a binding that pushes nothing
        itself (a main contact person travels with its company's contact)."""
        self.ensure_one()
        partner = self.partner_id.with_context(active_test=True)
        if self.kind == "contact":
            return partner._sage_contact_values(main_person=self.main_person_id)
        if self.kind == "person":
            return partner._sage_person_values()
        return None

    def _sage_queue_push(self):
        """Mark the bindings whose Sage values changed as pending and wake the push cron.

        The cron trigger is part of this transaction: it fires only once the change commits.
        """
        changed = self.sudo().filtered(
            lambda b: (values := b._sage_push_values()) is not None
            and sage_export.changes(values, b.push_snapshot)
        )
        if changed:
            changed.write({"push_state": "pending", "push_error": False,
                           "push_attempts": 0, "push_next_at": False})
            changed._sage_schedule_pushes()
        return changed

    def _sage_schedule_pushes(self, at=None):
        """Have these pending bindings pushed, once this transaction commits, or at ``at``.

        The one place pushes are handed over: by default the push cron is triggered (it pushes
        whatever is pending and due); an addon may push each binding in a worker of its own.
        The cron also calls it with no binding when a full batch may hide more work.
        """
        self.env.ref(PUSH_CRON).sudo()._trigger(at=at)

    # ------------------------------------------------------------------
    # the cron
    # ------------------------------------------------------------------
    @api.model
    def _cron_sage_push(self, limit=PUSH_BATCH):
        """Send pending changes to Sage, one binding per transaction."""
        now = fields.Datetime.now()
        Binding = self.sudo()
        bindings = Binding.search([
            ("push_state", "=", "pending"), ("connection_id.state", "=", "connected"),
            "|", ("push_next_at", "=", False), ("push_next_at", "<=", now),
        ], limit=limit, order="push_next_at asc nulls first, id")
        services = {}
        handled = 0
        for binding in bindings:
            handled += bool(binding._sage_push_one(services))
            if auto_commit():
                # One binding per transaction: a push that reached Sage is never rolled back.
                self.env.cr.commit()  # pylint: disable=invalid-commit
        # A full batch may hide more work; a batch of rows locked by editors does not (their
        # commits trigger the cron again), so it must not make the cron spin.
        if len(bindings) == limit and handled:
            Binding.browse()._sage_schedule_pushes()
        later = Binding.search([("push_state", "=", "pending"), ("push_next_at", ">", now)],
                               order="push_next_at", limit=1)
        if later:
            later._sage_schedule_pushes(at=later.push_next_at)
        return len(bindings)

    def _sage_lock_row(self):
        """Lock this binding's row (and its partner's) or return False when an editor holds it."""
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    "SELECT b.id FROM sage_binding b JOIN res_partner p ON p.id = b.partner_id "
                    "WHERE b.id = %s FOR NO KEY UPDATE SKIP LOCKED", [self.id])
                return bool(self.env.cr.fetchone())
        except psycopg2.Error:
            return False

    def _sage_push_one(self, services):
        """Push one pending binding: read it in Sage, note overwritten values, send the changes.

        Returns False when skipped (locked by an editor), True once dealt with: pushed, found
        unchanged, refused or postponed.
        """
        self.ensure_one()
        if not self.exists():
            return True  # the link ended since it was queued: nothing to send, ever
        if not self._sage_lock_row():
            return False  # being edited right now; the editor's commit triggers the cron again
        self.invalidate_recordset()
        if not self.exists() or self.push_state != "pending":
            return True
        values = self._sage_push_values()
        diff = sage_export.changes(values, self.push_snapshot) if values is not None else {}
        if not diff:
            self.write(PUSH_IDLE_VALUES)
            return True
        connection = self.connection_id
        try:
            service = services.get(connection.id)
            if service is None:
                client = connection._get_client()
                # the cron has its own backoff: do not sleep long inside one run
                client.settings.max_retries = 1
                service = services[connection.id] = SageService(client)
            answer, lost = self._sage_send(service, diff)
        except SageValidationError as error:
            self.write({"push_state": "error", "push_error": error.user_message, "push_next_at": False})
            return True
        except SageNotFoundError:
            self.write({"push_state": "error", "push_next_at": False, "push_error": _(
                "The Sage record no longer exists (deleted in Sage?). Unlink or export again.")})
            return True
        except (SageError, UserError) as error:
            attempts = self.push_attempts + 1
            delay = RETRY_MINUTES[min(attempts, len(RETRY_MINUTES)) - 1]
            message = error.args[0] if isinstance(error, UserError) else error.message
            if isinstance(error, SageAuthError):  # not an outage: it waits for a reconnection
                reason = _("%(words)s The change is sent once it is done.", words=sage_user_message(error))
            else:
                reason = _("Sage could not be reached (%(error)s); retrying in %(minutes)s min.",
                           error=message, minutes=delay)
            self.write({
                "push_attempts": attempts,
                "push_next_at": fields.Datetime.now() + timedelta(minutes=delay),
                "push_error": reason,
            })
            _logger.info("Sage push of binding %s postponed: %s", self.id, message)
            return True
        update = dict(PUSH_IDLE_VALUES, push_snapshot=sage_export.merged(self.push_snapshot, diff),
                      pushed_at=fields.Datetime.now())
        if self.kind == "contact":
            update["sage_updated_at"] = _sage_time((answer or {}).get("updated_at")) or fields.Datetime.now()
        self.write(update)
        if lost:
            self._sage_note_overwritten(lost)
        return True

    def _sage_send(self, service, diff):
        """Read the Sage record, then send ``diff`` with each nested object made whole.

        Returns ``(Sage's answer, [(path, Sage value, Odoo value)] overwritten)``.
        """
        if self.kind == "person":
            current = {"main_contact_person": service.get_contact_person(self.sage_contact_person_id)}
            sent = {"main_contact_person": diff}
            snapshot = {"main_contact_person": self.push_snapshot or {}}
            lost = sage_export.overwritten(sage_export.sage_side(current, sent), sent, snapshot)
            body = sage_export.whole(sent, current)["main_contact_person"]
            return service.update_contact_person(self.sage_contact_person_id, body), lost
        current = service.get_contact(self.sage_contact_id)
        lost = []
        seen = _sage_time(current.get("updated_at"))
        if not self.push_snapshot or not self.sage_updated_at or (seen and seen > self.sage_updated_at):
            lost = sage_export.overwritten(sage_export.sage_side(current, diff), diff, self.push_snapshot)
        return service.update_contact(self.sage_contact_id, sage_export.whole(diff, current)), lost

    def _sage_note_overwritten(self, lost):
        rows = Markup("").join(
            Markup("<li>%s: <s>%s</s> → %s</li>") % (path, theirs or "", ours or "")
            for path, theirs, ours in lost
        )
        self.partner_id._sage_note(Markup("<p>%s</p><ul>%s</ul>") % (
            _("Odoo's values replaced values changed in Sage (%s):", self.connection_id.business_name or ""),
            rows))


def _sage_time(value):
    """Sage's ``updated_at`` as a datetime, or False when it is missing or malformed: a bad
    timestamp from Sage must not block a push (it only decides whether to note overwritten values)."""
    try:
        return parse_datetime(value)
    except MappingError:
        return False
