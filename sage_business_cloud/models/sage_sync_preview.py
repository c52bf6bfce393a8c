"""The preview of a first import: the import's own decisions, recorded instead of carried out.

It reads Sage's contacts page by page as the first import does and, per page, asks the very
decision the importer takes (``_decision_lookups`` then ``_decide_links``), with one difference:
the partners it would have linked on earlier pages count as linked (the import would have
linked them), so that each page is decided as the import will decide it. It records one line
per contact and the counts on its ``sage.sync.run`` (trigger ``preview``); it creates, links or
writes no partner. Costs: the import's listings (the contacts, plus the invoices' contacts for
the scope "with at least one invoice") and its three or four queries per page.
"""

import logging
import time

from odoo import _, fields, models
from odoo.exceptions import UserError

from ..services.sage_api import SageService
from ..services.sage_client import SageError
from ..services.sage_mapping import MappingError, contact_values
from .sage_binding import sage_user_message
from .sage_sync import _RunState

_logger = logging.getLogger(__name__)

class SageSync(models.AbstractModel):
    _inherit = "sage.sync"

    def _run_locked(self, connection, trigger):
        if trigger == "preview":
            run = self._sage_preview_locked(connection)
        else:
            run = super()._run_locked(connection, trigger)
        self._sage_progress_over(run)
        return run

    def _sage_preview_locked(self, connection):
        clock = time.monotonic()
        run = self.env["sage.sync.run"].create({
            "connection_id": connection.id, "trigger": "preview", "started_at": fields.Datetime.now(),
            "full_import": True,
        })
        self._commit()
        state = _RunState(connection, run, None, run.started_at)
        state.preview_linked = set()
        failure = None
        try:
            state.client = SageService(connection._get_client())
            if connection.import_scope == "invoiced":
                state.invoiced_contacts = self._sage_read_invoiced_contacts(state)
            for page in state.client.contacts_changed_since(False, self._page_size()):
                self._in_savepoint(self._sage_preview_page, state, page)
        except (SageError, UserError) as error:
            self._rollback()
            failure = sage_user_message(error) if isinstance(error, SageError) else str(error)
        except Exception as error:  # a bug must not leave the preview "running"
            _logger.exception("Sage preview of connection %s failed", connection.id)
            self._rollback()
            failure = _("Unexpected error: %s", error)
        self.env["sage.sync.error"].create([{"run_id": run.id, **error} for error in state.errors])
        run.write({
            **{key: value for key, value in state.counts.items() if key in run._fields},
            "state": "failed" if failure else ("partial" if state.errors else "done"),
            "finished_at": fields.Datetime.now(), "duration": time.monotonic() - clock,
            "http_requests": state.client.request_count if state.client else 0,
            "wait_seconds": state.client.client.wait_seconds if state.client else 0.0,
            "message": failure or False,
        })
        self._commit()
        return run

    def _sage_preview_page(self, state, contacts):
        """One page of the preview: the import's decisions, recorded as lines."""
        connection = state.connection
        state.counts["contacts_read"] += len(contacts)
        ids = [c.get("id") for c in contacts if c.get("id")]
        bound = self._partners_by_sage_id(connection, ids)
        deleted = self._deleted_in_odoo(connection, ids)
        countries = self._countries(state)
        todo = []
        for contact in contacts:
            sage_id = contact.get("id")
            if sage_id in bound or sage_id in deleted or sage_id in state.contacts_seen:
                continue  # linked already, deleted in Odoo, or listed twice: the import leaves it
            try:
                values, children = contact_values(contact, countries)
            except MappingError as error:
                state.error("contacts", sage_id, contact.get("name"), error)
                continue
            state.contacts_seen.add(sage_id)
            todo.append((contact, values, children))
        if not todo:
            return
        lookups = self._decision_lookups(state, todo)
        self._sage_as_if_linked(lookups, state.preview_linked)
        to_link, to_create, skipped = self._decide_links(todo, lookups)
        lines = [{"sage_contact_id": contact["id"], "name": contact.get("name"), "decision": "link",
                  "partner_id": partner_id} for contact, partner_id in to_link]
        lines += [{"sage_contact_id": contact["id"], "name": values["name"], "decision": review or "create",
                   "partner_id": duplicate or False} for contact, values, _ch, review, duplicate in to_create]
        lines += [{"sage_contact_id": contact["id"], "name": values["name"], "decision": "skipped",
                   "reason": reason} for contact, values, reason in skipped]
        self.env["sage.sync.preview.line"].create([dict(line, run_id=state.run.id) for line in lines])
        state.preview_linked.update(partner_id for _c, partner_id in to_link)
        counts = state.counts
        counts["contacts_linked"] += len(to_link)
        counts["contacts_created"] += len(to_create)
        counts["contacts_flagged"] += sum(1 for item in to_create if item[3])
        counts["preview_ambiguous"] = counts.get("preview_ambiguous", 0) + sum(
            1 for item in to_create if item[3] == "ambiguous")
        counts["preview_near_match"] = counts.get("preview_near_match", 0) + sum(
            1 for item in to_create if item[3] == "near_match")
        counts["contacts_skipped"] = counts.get("contacts_skipped", 0) + len(skipped)

    @staticmethod
    def _sage_as_if_linked(lookups, linked):
        """The partners linked on earlier pages are linked, as the import would have left them:
        no longer free for their exact name, no longer near candidates."""
        if not linked:
            return
        for found in lookups["exact"].values():
            moved = [pid for pid in found["free"] if pid in linked]
            if moved:
                found["free"] = [pid for pid in found["free"] if pid not in linked]
                found["linked"] = sorted(found["linked"] + moved)
        for key, candidates in lookups["near"].items():
            lookups["near"][key] = [(pid, name) for pid, name in candidates if pid not in linked]
