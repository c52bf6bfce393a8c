"""The sync engine (Sage -> Odoo): contacts, deletions, then sales and purchase invoices.

One run of one connection, in this order:

1. contacts changed since the contacts watermark (everything on the first import), page by page;
2. contacts in the retry list (records that failed to map, contacts restored from the
   "deleted in Odoo" list), one GET each: there are few (at most ``BACKLOG_LIMIT`` per run);
3. contacts deleted in Sage since the watermark: their partners are unlinked;
4. sales invoices, then purchase invoices (or, when excluded, the stored purchase rows are
   removed), each changed since its own watermark, then the invoices of that type in the retry
   list (failed to map), one GET each, then those deleted since;
5. invoices waiting for their contact: for every contact in the retry list that is now linked,
   its invoices are listed with ``contact_id`` (one listing per contact, only for those, at
   most ``BACKLOG_LIMIT`` contacts per run).

Whatever the outcome, the run then recomputes the figures that date from an earlier day (overdue
depends on today; no Sage call) and records its result.

Matching by name: an unlinked Sage contact is linked to the one unlinked Odoo partner (company,
or person without a company) with exactly its name. It is created and flagged for review instead
when the match is not certain: several Odoo partners with that name, several Sage contacts with
that name in the same page, or an Odoo partner with that name already linked to another Sage
contact (flagged as a possible duplicate of it). Linked and created partners get the Sage values
they were linked to as their push snapshot, so that a later edit in Odoo sends only what changed.

Cost: every step costs SQL queries per page, never per record (lookups by Sage id and by name
are one query each per page; partners and invoice rows are created with one ``create`` and the
per-record writes are flushed together). An incremental run with nothing new makes one request
per listing (six) whatever the size of the book.

Connection row: every write the sync makes to ``sage.connection`` (watermarks, Sync now flag,
last sync and last error) goes through ``_write_sync_state``, a short transaction of its own, so
that the run never holds that row while an administrator saves the settings or clicks Sync now.

Safety: one run per company at a time (a transaction-level advisory lock taken on a separate
database session, held for the whole run); every page is processed in a savepoint and committed
(outside tests), so a run that stops midway keeps the pages it finished, and the next run reads
again from the old watermark: links and rows are keyed by Sage id, so nothing is duplicated.
A watermark moves only when its whole stream completed, to the run's start minus an overlap.
A record that cannot be mapped (contact or invoice, malformed timestamp included) is recorded as
an error of the run with its Sage id, put in the retry list and read again (by id) at the next runs
until it maps or disappears; the watermark moves past it meanwhile. A run never raises: a failure
is recorded on the run (``failed``), even when recording the result itself fails.
"""

import logging
import threading
import time
from collections import Counter
from datetime import timedelta

from markupsafe import Markup

import odoo
from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..services import sage_export
from ..services.names import name_key
from ..services.sage_client import (
    SageAuthError,
    SageError,
    SageNotFoundError,
    SageRateLimitError,
    SageTransientError,
)
from ..services.sage_format import parse_datetime
from ..services.sage_mapping import MappingError, contact_values, invoice_values

_logger = logging.getLogger(__name__)

#: Watermarks are set to the run start minus this, so nothing falls between two runs.
OVERLAP = timedelta(minutes=5)
PAGE_SIZE = 200
#: Namespace of the advisory lock (first key); the second key is the connection id.
LOCK_NAMESPACE = 0x5A6E
#: Retry-list entries handled per run and kind (contacts read by id, contacts whose invoices wait).
BACKLOG_LIMIT = 100
CONTACT_ATTRIBUTES = [
    "name", "reference", "email", "contact_types", "main_address", "delivery_address",
    "main_contact_person", "updated_at", "links",
]
INVOICE_ATTRIBUTES = [
    "invoice_number", "vendor_reference", "reference", "contact", "date", "due_date", "total_amount",
    "outstanding_amount", "currency", "status", "links", "updated_at",
]
RESOURCES = {"sale": "sales_invoices", "purchase": "purchase_invoices"}
WATERMARKS = {"sale": "invoices_synced_until", "purchase": "purchases_synced_until"}
#: Retry-list kind of the invoices of each type that failed to map.
INVOICE_RETRY = {"sale": "sale_invoice", "purchase": "purchase_invoice"}
SYNC_CONTEXT = {"sage_no_push": True, "tracking_disable": True, "mail_create_nolog": True,
                "mail_create_nosubscribe": True, "mail_notrack": True, "active_test": False}


def _auto_commit():
    return not getattr(threading.current_thread(), "testing", False)


class SageSyncBacklog(models.Model):
    """Retry list of a connection: Sage ids to read again at the next runs."""

    _name = "sage.sync.backlog"
    _description = "Sage Business Cloud records to read again"
    _log_access = False

    connection_id = fields.Many2one("sage.connection", required=True, ondelete="cascade", index=True)
    kind = fields.Selection(
        [("contact", "Contact to read again"), ("invoices", "Invoices waiting for their contact"),
         ("sale_invoice", "Sales invoice to read again"),
         ("purchase_invoice", "Purchase invoice to read again")],
        required=True,
    )
    sage_id = fields.Char(
        "Sage id", required=True,
        help="Id of the Sage contact (kinds contact and invoices) or invoice (other kinds).",
    )
    reason = fields.Char()
    since = fields.Datetime(default=fields.Datetime.now)

    _sql_constraints = [
        ("backlog_uniq", "unique(connection_id, kind, sage_id)", "Already in the retry list."),
    ]

    @api.model
    def _add(self, connection, kind, entries):
        """Insert ``{sage_id: reason}`` entries (one query; existing ones are kept)."""
        if not entries:
            return
        self.flush_model()
        now = fields.Datetime.now()
        rows = [(connection.id, kind, sage_id, (reason or "")[:250], now) for sage_id, reason in entries.items()]
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
        self.env.cr.execute(
            "INSERT INTO sage_sync_backlog (connection_id, kind, sage_id, reason, since) VALUES "
            + values + " ON CONFLICT (connection_id, kind, sage_id) DO NOTHING",
            [value for row in rows for value in row],
        )
        self.invalidate_model()

    @api.model
    def _remove(self, connection, kind, sage_ids):
        if not sage_ids:
            return
        self.flush_model()
        self.env.cr.execute(
            "DELETE FROM sage_sync_backlog WHERE connection_id = %s AND kind = %s AND sage_id = ANY(%s)",
            [connection.id, kind, list(sage_ids)],
        )
        self.invalidate_model()

    @api.model
    def _clear(self, connection, kind):
        """Forget every entry of ``kind`` (one query)."""
        self.flush_model()
        self.env.cr.execute(
            "DELETE FROM sage_sync_backlog WHERE connection_id = %s AND kind = %s", [connection.id, kind])
        self.invalidate_model()

    @api.model
    def _pending_ids(self, connection, kind, limit=BACKLOG_LIMIT):
        self.flush_model()
        self.env.cr.execute(
            "SELECT sage_id FROM sage_sync_backlog WHERE connection_id = %s AND kind = %s "
            "ORDER BY id LIMIT %s",
            [connection.id, kind, limit],
        )
        return [row[0] for row in self.env.cr.fetchall()]


class _RunState:
    """What one run knows and counts; written to its ``sage.sync.run`` record."""

    def __init__(self, connection, run, client, started):
        self.connection = connection
        self.run = run
        self.client = client
        self.started = started
        self.counts = dict.fromkeys([
            "contacts_read", "contacts_linked", "contacts_created", "contacts_unlinked",
            "contacts_ignored", "contacts_flagged", "invoices_read", "invoices_stored",
            "invoices_removed", "invoices_waiting",
        ], 0)
        self.errors = []
        self.notes = []
        self.countries = None
        self.currencies = None
        self.contacts_seen = set()
        #: per invoice type: ids listed in this run, and ids in the retry list at its start
        self.invoices_seen = {"sale": set(), "purchase": set()}
        self.invoice_retry = {"sale": set(), "purchase": set()}

    def error(self, resource, sage_id, name, reason):
        self.errors.append({"resource": resource, "sage_id": sage_id, "name": name, "reason": str(reason)})


class SageSync(models.AbstractModel):
    _name = "sage.sync"
    _description = "Sage Business Cloud sync engine"

    # ------------------------------------------------------------------
    # entry point
    # ------------------------------------------------------------------
    def _sync_connection(self, connection, trigger="manual"):
        """Run one sync of ``connection``; return its ``sage.sync.run`` record.

        Never raises (the cron goes on with the other companies): a failure is recorded on the
        run, or logged when not even the run could be created.
        """
        connection = connection.sudo().ensure_one()
        self = self.sudo()
        Run = self.env["sage.sync.run"]
        # A separate session holds the lock: it stays taken whatever this cursor commits or
        # rolls back, and goes away with that session's transaction, even after a crash.
        try:
            lock_cr = odoo.sql_db.db_connect(self.env.cr.dbname).cursor()
        except Exception:
            _logger.exception("Sage sync of connection %s could not start", connection.id)
            return Run
        try:
            lock_cr.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, connection.id])
            if not lock_cr.fetchone()[0]:
                run = Run.create({
                    "connection_id": connection.id, "trigger": trigger, "state": "skipped",
                    "finished_at": fields.Datetime.now(),
                    "message": _("Another sync of this company is still running; this one was skipped."),
                })
                if _auto_commit():
                    # The skipped run is the answer to this call: keep it.
                    self.env.cr.commit()  # pylint: disable=invalid-commit
                return run
            return self._run_locked(connection, trigger)
        except Exception:
            # Only reachable before a run record exists (a run records its own failures).
            _logger.exception("Sage sync of connection %s could not start", connection.id)
            self._rollback()
            return Run
        finally:
            lock_cr.close()

    def _run_locked(self, connection, trigger):
        started = fields.Datetime.now()
        clock = time.monotonic()
        run = self.env["sage.sync.run"].create({
            "connection_id": connection.id, "trigger": trigger, "started_at": started,
            "full_import": not connection.contacts_synced_until,
        })
        self._commit()
        state = _RunState(connection, run, None, started)
        failure = None
        try:
            connection._write_sync_state({"sync_requested": False})
            state.client = connection._get_client()
            self._sync_contacts(state)
            self._sync_deleted_contacts(state)
            connection._write_sync_state({"contacts_synced_until": started - OVERLAP})
            for invoice_type in ("sale", "purchase"):
                if invoice_type == "purchase" and connection.exclude_supplier_invoices:
                    self._remove_purchase_invoices(state)
                else:
                    self._sync_invoices(state, invoice_type)
                self._commit()
            self._sync_waiting_invoices(state)
        except SageAuthError as error:
            failure = str(error)
            self._rollback()
            self._mark_needs_reconnect_once(connection, failure)
        except (SageRateLimitError, SageTransientError) as error:
            failure = _("Sage did not answer in time (%s). The next run carries on from here.", error)
            self._rollback()
        except (SageError, UserError) as error:
            failure = str(error)
            self._rollback()
        except Exception as error:  # a bug must not leave the run "running" forever
            _logger.exception("Sage sync of connection %s failed", connection.id)
            failure = _("Unexpected error: %s", error)
            self._rollback()
        # Whatever the outcome: overdue depends on today, and this needs no Sage call.
        self._refresh_stale_figures_safely(connection)
        return self._finish_safely(state, failure, clock)

    def _mark_needs_reconnect_once(self, connection, reason):
        """Mark the connection for reconnection unless the token refresh did it already.

        The refresh marks it (and schedules the administrators' activities) in its own
        transaction before raising; marking again would schedule every activity twice.
        """
        try:
            connection.invalidate_recordset(["state"])
            if connection.state != "needs_reconnect":
                connection._mark_needs_reconnect(reason)
                self._commit()
        except Exception:
            _logger.exception("Sage connection %s could not be marked for reconnection", connection.id)
            self._rollback()

    def _refresh_stale_figures_safely(self, connection):
        try:
            with self.env.cr.savepoint():
                self._refresh_stale_figures(connection)
            self._commit()
        except Exception:
            _logger.exception("Sage figures of connection %s could not be refreshed", connection.id)
            self._rollback()

    def _finish_safely(self, state, failure, clock):
        """``_finish``; when recording the result fails, the run is still closed as failed."""
        try:
            return self._finish(state, failure, clock)
        except Exception as error:
            _logger.exception("Sage sync of connection %s could not record its result", state.connection.id)
            self._rollback()
            message = _("The sync could not record its result: %s", error)
            if failure:
                message = "%s\n%s" % (failure, message)
            self._close_failed_run(state.run, message)
            return state.run

    def _close_failed_run(self, run, message):
        """Mark ``run`` failed in a transaction of its own (outside tests)."""
        values = {"state": "failed", "finished_at": fields.Datetime.now(), "message": message}
        try:
            if _auto_commit():
                with self.env.registry.cursor() as cr:  # committed when the block ends
                    run.with_env(run.env(cr=cr)).write(values)
                run.invalidate_recordset()
            else:
                with self.env.cr.savepoint():
                    run.write(values)
        except Exception:
            _logger.exception("Sage sync run %s could not be closed", run.id)

    def _finish(self, state, failure, clock):
        connection, run = state.connection, state.run
        if failure:
            run_state = "failed"
        elif state.errors:
            run_state = "partial"
        else:
            run_state = "done"
        message = list(state.notes)
        if failure:
            message.insert(0, failure)
        counts = state.counts
        if counts["contacts_ignored"]:
            message.append(_(
                "%s contacts changed in Sage were already linked: Odoo keeps its own values.",
                counts["contacts_ignored"],
            ))
        if counts["invoices_waiting"]:
            message.append(_(
                "%s invoices wait for their contact to be linked; they are read again at the next runs.",
                counts["invoices_waiting"],
            ))
        self.env["sage.sync.error"].create([{"run_id": run.id, **error} for error in state.errors])
        run.write({
            **counts,
            "state": run_state,
            "finished_at": fields.Datetime.now(),
            "duration": time.monotonic() - clock,
            "http_requests": state.client.request_count if state.client else 0,
            "message": "\n".join(message) or False,
        })
        self._commit()
        values = {"last_error": failure or False}
        if failure:
            values["last_error_at"] = fields.Datetime.now()
        else:
            values["last_sync_at"] = run.finished_at
        connection._write_sync_state(values)
        return run

    # ------------------------------------------------------------------
    # transactions
    # ------------------------------------------------------------------
    def _commit(self):
        self.env.flush_all()
        if _auto_commit():
            # A page is done: keep it even if a later page fails (cron-style unit of work).
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _rollback(self):
        """Forget the unfinished page (outside tests); finished pages are committed already."""
        if _auto_commit():
            self.env.cr.rollback()
        else:
            self.env.invalidate_all()

    def _in_savepoint(self, method, *args):
        """Run ``method`` for one page in a savepoint, then commit it (outside tests)."""
        with self.env.cr.savepoint():
            method(*args)
            self.env.flush_all()
        self._commit()

    @api.model
    def _bulk_write(self, records, vals_list):
        """Write different values to each record in one UPDATE (plain stored fields only).

        ``write`` per record would run its side effects (dependency lookups, overrides such as the
        push to Sage) once per record; this costs one query per batch and marks the dependent
        computed fields (e.g. ``sage_url`` of the partners' contacts) in one go.
        """
        if not records:
            return
        fnames = sorted(vals_list[0])
        fields_ = records._fields
        records.flush_recordset(fnames)
        records._write_multi([
            {fname: _column_value(fields_[fname], vals[fname], record) for fname in fnames}
            for record, vals in zip(records, vals_list, strict=True)
        ])
        records.invalidate_recordset(fnames)
        records.modified(fnames)

    # ------------------------------------------------------------------
    # lookups
    # ------------------------------------------------------------------
    def _countries(self, state):
        if state.countries is None:
            self.env.cr.execute("SELECT upper(code), id FROM res_country WHERE code IS NOT NULL")
            state.countries = dict(self.env.cr.fetchall())
        return state.countries

    def _currencies(self, state):
        if state.currencies is None:
            self.env.cr.execute("SELECT upper(name), id FROM res_currency")
            state.currencies = dict(self.env.cr.fetchall())
        return state.currencies

    def _partners_by_sage_id(self, connection, sage_ids):
        """``{sage_id: (partner_id, sage_updated_at)}`` of linked partners, archived ones included."""
        self.env["res.partner"].flush_model(["sage_connection_id", "sage_contact_id", "sage_updated_at"])
        self.env.cr.execute(
            "SELECT sage_contact_id, id, sage_updated_at FROM res_partner "
            "WHERE sage_connection_id = %s AND sage_contact_id = ANY(%s)",
            [connection.id, list(sage_ids)],
        )
        return {row[0]: (row[1], row[2]) for row in self.env.cr.fetchall()}

    def _deleted_in_odoo(self, connection, sage_ids):
        self.env["sage.deleted.contact"].flush_model()
        self.env.cr.execute(
            "SELECT sage_contact_id FROM sage_deleted_contact "
            "WHERE connection_id = %s AND sage_contact_id = ANY(%s)",
            [connection.id, list(sage_ids)],
        )
        return {row[0] for row in self.env.cr.fetchall()}

    def _candidate_condition(self):
        # Unlinked partners that may be the contact: companies, and individuals without a company.
        return (
            "p.sage_contact_id IS NULL AND p.active AND (p.is_company OR p.parent_id IS NULL) "
            "AND (p.company_id IS NULL OR p.company_id = %s)"
        )

    def _exact_candidates(self, connection, names):
        """``{trimmed name: {"free": [ids], "linked": [ids]}}`` of the partners with exactly these
        names that could be the contact: unlinked candidates, and partners that existed in Odoo
        and are already linked to another contact of this connection (a Sage contact of the same
        name is then a possible duplicate). Partners the sync itself created from another Sage
        contact do not count: they mirror Sage's own same-named contacts, nothing to review.
        Uses the ``trim(name)`` index (see ``res_partner_sync.init``)."""
        if not names:
            return {}
        self.env["res.partner"].flush_model()
        self.env.cr.execute(
            "SELECT trim(p.name), p.id, p.sage_contact_id IS NOT NULL FROM res_partner p "
            "WHERE trim(p.name) = ANY(%s) AND p.active AND (p.is_company OR p.parent_id IS NULL) "
            "AND (p.company_id IS NULL OR p.company_id = %s) "
            "AND (p.sage_contact_id IS NULL OR (p.sage_connection_id = %s "
            "AND p.sage_link_method IS DISTINCT FROM 'imported')) ORDER BY p.id",
            [list(names), connection.company_id.id, connection.id],
        )
        found = {}
        for name, partner_id, linked in self.env.cr.fetchall():
            found.setdefault(name, {"free": [], "linked": []})["linked" if linked else "free"].append(partner_id)
        return found

    def _near_candidates(self, connection, keys):
        """``{name key: [(partner id, trimmed name)]}`` of unlinked candidates with these keys."""
        if not keys:
            return {}
        self.env.cr.execute(
            "SELECT p.sage_name_key, p.id, trim(p.name) FROM res_partner p WHERE p.sage_name_key = ANY(%s) AND "
            + self._candidate_condition() + " ORDER BY p.id",
            [list(keys), connection.company_id.id],
        )
        found = {}
        for key, partner_id, name in self.env.cr.fetchall():
            found.setdefault(key, []).append((partner_id, name))
        return found

    # ------------------------------------------------------------------
    # contacts
    # ------------------------------------------------------------------
    def _sync_contacts(self, state):
        connection = state.connection
        since = connection.contacts_synced_until
        pages = state.client.iter_pages(
            "contacts", attributes=CONTACT_ATTRIBUTES, items_per_page=self._page_size(),
            updated_or_created_since=since or None,
        )
        for page in pages:
            self._in_savepoint(self._contacts_page, state, page)
        # Contacts to read again one by one (failed to map, or restored from the deleted list).
        Backlog = self.env["sage.sync.backlog"]
        retry = [
            sage_id for sage_id in Backlog._pending_ids(connection, "contact")
            if sage_id not in state.contacts_seen
        ]
        if retry:
            contacts, gone = [], []
            for sage_id in retry:
                try:
                    contacts.append(state.client.get("contacts", sage_id))
                except SageNotFoundError:
                    gone.append(sage_id)
            Backlog._remove(connection, "contact", gone)
            if contacts:
                self._in_savepoint(self._contacts_page, state, contacts)

    def _page_size(self):
        return self.env.context.get("sage_page_size") or PAGE_SIZE

    def _contacts_page(self, state, contacts):
        connection = state.connection
        Partner = self.env["res.partner"].with_context(**SYNC_CONTEXT)
        Backlog = self.env["sage.sync.backlog"]
        state.counts["contacts_read"] += len(contacts)
        ids = [c.get("id") for c in contacts if c.get("id")]
        state.contacts_seen.update(ids)
        linked = self._partners_by_sage_id(connection, ids)
        deleted = self._deleted_in_odoo(connection, ids)
        countries = self._countries(state)
        todo, failed, handled = [], {}, set()
        for contact in contacts:
            sage_id = contact.get("id")
            if sage_id in linked:
                # Odoo is the source of truth: note a real change, overwrite nothing.
                seen = linked[sage_id][1]
                handled.add(sage_id)
                try:
                    updated = parse_datetime(contact.get("updated_at"))
                except MappingError as error:
                    state.error("contacts", sage_id, contact.get("name"), error)
                    continue
                if updated and (not seen or updated > seen):
                    state.counts["contacts_ignored"] += 1
                continue
            if sage_id in deleted:
                handled.add(sage_id)
                continue
            if sage_id in handled:
                continue  # listed twice (a page shifted under us)
            try:
                values, children = contact_values(contact, countries)
            except MappingError as error:
                state.error("contacts", sage_id, contact.get("name"), error)
                if sage_id:
                    failed[sage_id] = str(error)
                continue
            handled.add(sage_id)
            todo.append((contact, values, children))
        Backlog._add(connection, "contact", failed)
        Backlog._remove(connection, "contact", handled)
        if todo:
            self._link_or_create(state, Partner, todo)

    def _link_or_create(self, state, Partner, todo):
        connection = state.connection
        exact = self._exact_candidates(connection, {values["name"] for _c, values, _ch in todo})
        keys = {name_key(values["name"]) for _c, values, _ch in todo} - {""}
        near = self._near_candidates(connection, keys)
        in_page = Counter(values["name"] for _c, values, _ch in todo)
        to_link, to_create = [], []
        for contact, values, children in todo:
            name = values["name"]
            found = exact.get(name, {"free": [], "linked": []})
            free, twins = found["free"], found["linked"]
            if len(free) == 1 and in_page[name] == 1 and not twins:
                to_link.append((contact, free[0]))
                continue
            review = duplicate = False
            if (free or twins) and (in_page[name] > 1 or len(free) + len(twins) > 1):
                # Several Sage contacts or several partners with this name: never guess. (Several
                # Sage contacts and no Odoo partner of that name: Odoo mirrors them, unflagged.)
                review = "ambiguous"
                duplicate = (free or twins)[0]
            elif twins:
                # Its exact name is already linked to another Sage contact.
                review, duplicate = "near_match", twins[0]
            else:
                key = name_key(name)
                others = [pid for pid, other in near.get(key, []) if other != name]
                if others:
                    review, duplicate = "near_match", others[0]
            to_create.append((contact, values, children, review, duplicate))

        bodies = {}
        values_by_id = {contact["id"]: values for contact, values, _ch in todo}
        if to_link:
            partners = Partner.browse([pid for _c, pid in to_link])
            snapshots = self._sage_snapshots(partners, [contact for contact, _pid in to_link])
            self._bulk_write(partners, [
                {**Partner._sage_link_values(connection, contact, "name_match"),
                 "sage_contact_type": values_by_id[contact["id"]].get("sage_contact_type"),
                 "sage_push_snapshot": snapshot}
                for (contact, _pid), snapshot in zip(to_link, snapshots, strict=True)
            ])
            for contact, partner_id in to_link:
                bodies[partner_id] = Markup("<p>%s</p>") % _(
                    "Linked to the Sage contact %s (same name) by the Sage sync.", contact.get("name"))
            state.counts["contacts_linked"] += len(to_link)

        if to_create:
            team = connection.default_team_id.id or False
            vals_list = []
            for contact, values, _children, review, duplicate in to_create:
                vals_list.append({
                    **values,
                    **Partner._sage_link_values(connection, contact, "imported"),
                    "team_id": team,
                    "sage_review": review or False,
                    "sage_duplicate_of_id": duplicate or False,
                })
            known = Partner._fields
            vals_list = [{k: v for k, v in vals.items() if k in known} for vals in vals_list]
            created = Partner.create(vals_list)
            child_vals = []
            for partner, (contact, _values, children, review, _dup) in zip(created, to_create, strict=True):
                child_vals.extend({**child, "parent_id": partner.id} for child in children)
                body = _("Created from the Sage contact %s by the Sage sync.", contact.get("name"))
                if review == "ambiguous":
                    body += " " + _("Several partners or Sage contacts have this exact name: review it.")
                elif review == "near_match":
                    body += " " + _("It may duplicate an existing partner: review it.")
                bodies[partner.id] = Markup("<p>%s</p>") % body
            if child_vals:
                # Odoo copies the company's commercial fields to each new child, reading the
                # company one at a time unless they are in the cache already: load them at once.
                created.sudo().fetch(created._commercial_fields())
                Partner.create(child_vals)
            # What Sage holds, as if Odoo had pushed it: the next edit sends only what changes.
            self._bulk_write(created, [
                {"sage_push_snapshot": snapshot}
                for snapshot in self._sage_snapshots(created, [item[0] for item in to_create])
            ])
            state.counts["contacts_created"] += len(created)
            state.counts["contacts_flagged"] += sum(1 for item in to_create if item[3])
        if bodies:
            Partner.browse(list(bodies))._message_log_batch(bodies)

    @api.model
    def _sage_snapshots(self, partners, contacts):
        """The push snapshot of each partner just linked to (or created from) a Sage contact.

        Sage's values as read (``sage_export.sage_side``, the shape Odoo pushes), except where Odoo
        holds nothing: that value is recorded as empty, so that an empty Odoo field is never
        pushed over what Sage holds (a partner matched by name without e-mail keeps Sage's
        e-mail). Reads the partners together (prefetch): no query per partner.
        """
        snapshots = []
        # the push reads active children only
        for partner, contact in zip(partners.with_context(active_test=True), contacts, strict=True):
            values = partner._sage_contact_values()
            sage_now = sage_export.sage_side(contact, values)
            snapshot = {}
            for key, value in values.items():
                if isinstance(value, dict):
                    theirs = sage_now.get(key) or {}
                    snapshot[key] = {sub: (theirs.get(sub) if mine is not None else None)
                                     for sub, mine in value.items()}
                else:
                    snapshot[key] = sage_now.get(key) if value is not None else None
            snapshots.append(snapshot)
        return snapshots

    # ------------------------------------------------------------------
    # deletions in Sage
    # ------------------------------------------------------------------
    def _sync_deleted_contacts(self, state):
        since = state.connection.contacts_synced_until
        if not since:
            return  # a first import reads only live contacts
        pages = state.client.iter_pages(
            "contacts", attributes=None, items_per_page=self._page_size(), deleted_since=since,
        )
        for page in pages:
            self._in_savepoint(self._deleted_contacts_page, state, [item["id"] for item in page if item.get("id")])

    def _deleted_contacts_page(self, state, sage_ids):
        connection = state.connection
        Partner = self.env["res.partner"].with_context(**SYNC_CONTEXT)
        linked = self._partners_by_sage_id(connection, sage_ids)
        partners = Partner.browse([partner_id for partner_id, _seen in linked.values()])
        if partners:
            invoices = self.env["sage.invoice"].search([("partner_id", "in", partners.ids)])
            state.counts["invoices_removed"] += len(invoices)
            invoices.unlink()
            bodies = {
                partner.id: Markup("<p>%s</p>") % _(
                    "The Sage contact %s was deleted in Sage: this partner is no longer linked "
                    "and its Sage invoices were removed.", partner.sage_contact_id)
                for partner in partners
            }
            partners.write(partners._sage_unlink_values())
            partners._sage_recompute_invoice_figures()
            partners._message_log_batch(bodies)
            state.counts["contacts_unlinked"] += len(partners)
        # Nothing left to remember or retry about contacts that no longer exist.
        self.env["sage.deleted.contact"].search([
            ("connection_id", "=", connection.id), ("sage_contact_id", "in", sage_ids),
        ]).unlink()
        self.env["sage.sync.backlog"]._remove(connection, "contact", sage_ids)
        self.env["sage.sync.backlog"]._remove(connection, "invoices", sage_ids)

    # ------------------------------------------------------------------
    # invoices
    # ------------------------------------------------------------------
    def _sync_invoices(self, state, invoice_type, contact_id=None):
        connection = state.connection
        resource = RESOURCES[invoice_type]
        since = False if contact_id else connection[WATERMARKS[invoice_type]]
        if not contact_id:
            state.invoice_retry[invoice_type] = set(
                self.env["sage.sync.backlog"]._pending_ids(connection, INVOICE_RETRY[invoice_type]))
        pages = state.client.iter_pages(
            resource, attributes=INVOICE_ATTRIBUTES, items_per_page=self._page_size(),
            updated_or_created_since=since or None, contact_id=contact_id,
        )
        for page in pages:
            self._in_savepoint(self._invoices_page, state, invoice_type, page)
        if contact_id:
            return
        self._retry_invoices(state, invoice_type)
        if since:
            pages = state.client.iter_pages(
                resource, attributes=None, items_per_page=self._page_size(), deleted_since=since,
            )
            for page in pages:
                self._in_savepoint(
                    self._deleted_invoices_page, state, invoice_type, [i["id"] for i in page if i.get("id")])
        connection._write_sync_state({WATERMARKS[invoice_type]: state.started - OVERLAP})

    def _retry_invoices(self, state, invoice_type):
        """Read again, one GET each, the invoices of the retry list that this run did not list.

        They failed to map at an earlier run, and the watermark has moved past them since.
        """
        connection = state.connection
        kind = INVOICE_RETRY[invoice_type]
        retry = sorted(state.invoice_retry[invoice_type] - state.invoices_seen[invoice_type])
        if not retry:
            return
        invoices, gone = [], []
        for sage_id in retry:
            try:
                invoices.append(state.client.get(RESOURCES[invoice_type], sage_id))
            except SageNotFoundError:
                gone.append(sage_id)
        self.env["sage.sync.backlog"]._remove(connection, kind, gone)
        if invoices:
            self._in_savepoint(self._invoices_page, state, invoice_type, invoices)

    def _invoices_page(self, state, invoice_type, invoices):
        connection = state.connection
        Invoice = self.env["sage.invoice"].with_context(active_test=False)
        Backlog = self.env["sage.sync.backlog"]
        state.counts["invoices_read"] += len(invoices)
        currencies = self._currencies(state)
        contact_ids = {
            i["contact"]["id"] for i in invoices if isinstance(i.get("contact"), dict) and i["contact"].get("id")
        }
        partners = self._partners_by_sage_id(connection, contact_ids)
        deleted = self._deleted_in_odoo(connection, contact_ids)
        listed = [i.get("id") for i in invoices if i.get("id")]
        state.invoices_seen[invoice_type].update(listed)
        Invoice.flush_model()
        self.env.cr.execute(
            "SELECT sage_id, id, partner_id FROM sage_invoice WHERE connection_id = %s AND invoice_type = %s "
            "AND sage_id = ANY(%s)",
            [connection.id, invoice_type, listed],
        )
        existing = {row[0]: (row[1], row[2]) for row in self.env.cr.fetchall()}
        waiting, touched, to_create, done, failed = {}, set(), [], set(), {}
        for invoice in invoices:
            try:
                values = invoice_values(invoice, invoice_type, currencies)
            except MappingError as error:
                state.error(RESOURCES[invoice_type], invoice.get("id"), invoice.get("displayed_as"), error)
                if invoice.get("id"):
                    failed[invoice["id"]] = str(error)
                continue
            if values["sage_id"] in done:
                continue
            done.add(values["sage_id"])
            contact_id = values["sage_contact_id"]
            if contact_id not in partners:
                if contact_id and contact_id not in deleted:
                    waiting[contact_id] = _("invoice %s", values["number"] or values["sage_id"])
                    state.counts["invoices_waiting"] += 1
                continue
            partner_id = partners[contact_id][0]
            values.update(partner_id=partner_id, connection_id=connection.id)
            touched.add(partner_id)
            if values["sage_id"] in existing:
                row_id, old_partner = existing[values["sage_id"]]
                touched.add(old_partner)
                Invoice.browse(row_id).write(values)
            else:
                to_create.append(values)
            state.counts["invoices_stored"] += 1
        if to_create:
            Invoice.create(to_create)
        Backlog._add(connection, "invoices", waiting)
        # Failed invoices are read again by id at the next runs (the watermark moves past them).
        Backlog._add(connection, INVOICE_RETRY[invoice_type], failed)
        Backlog._remove(connection, INVOICE_RETRY[invoice_type], done & state.invoice_retry[invoice_type])
        self.env["res.partner"].browse(touched)._sage_recompute_invoice_figures()

    def _deleted_invoices_page(self, state, invoice_type, sage_ids):
        invoices = self.env["sage.invoice"].search([
            ("connection_id", "=", state.connection.id), ("invoice_type", "=", invoice_type),
            ("sage_id", "in", sage_ids),
        ])
        partners = invoices.partner_id
        state.counts["invoices_removed"] += len(invoices)
        invoices.unlink()
        partners._sage_recompute_invoice_figures()
        self.env["sage.sync.backlog"]._remove(state.connection, INVOICE_RETRY[invoice_type], sage_ids)

    def _remove_purchase_invoices(self, state):
        """Supplier invoices excluded: drop the stored rows; switching back re-reads them all."""
        connection = state.connection
        invoices = self.env["sage.invoice"].search([
            ("connection_id", "=", connection.id), ("invoice_type", "=", "purchase"),
        ])
        if invoices:
            partners = invoices.partner_id
            state.counts["invoices_removed"] += len(invoices)
            invoices.unlink()
            partners._sage_recompute_invoice_figures()
        self.env["sage.sync.backlog"]._clear(connection, INVOICE_RETRY["purchase"])
        if connection.purchases_synced_until:
            connection._write_sync_state({"purchases_synced_until": False})

    def _sync_waiting_invoices(self, state):
        """Read the invoices of contacts that were not linked when their invoices came by.

        This is the one step that costs requests per contact: one listing (two when supplier
        invoices are synced) for each contact of the "invoices" retry list that is linked now.
        It happens only for contacts that failed to map when their invoices were listed, and for
        contacts restored from the "deleted in Odoo" list, which are rare; and it is bounded:
        at most ``BACKLOG_LIMIT`` contacts per run, the oldest first (the rest wait for the next
        runs). Contacts still unlinked stay in the list without costing a request.
        """
        connection = state.connection
        Backlog = self.env["sage.sync.backlog"]
        waiting = Backlog._pending_ids(connection, "invoices")
        if not waiting:
            return
        linked = self._partners_by_sage_id(connection, waiting)
        for contact_id in [sage_id for sage_id in waiting if sage_id in linked]:
            self._sync_invoices(state, "sale", contact_id=contact_id)
            if not connection.exclude_supplier_invoices:
                self._sync_invoices(state, "purchase", contact_id=contact_id)
            Backlog._remove(connection, "invoices", [contact_id])
            self._commit()

    def _refresh_stale_figures(self, connection):
        """Overdue depends on today: recompute partners whose figures date from an earlier day.

        Run at the end of every run, whatever its outcome (no Sage call).
        """
        today = fields.Date.context_today(self)
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT DISTINCT i.partner_id FROM sage_invoice i JOIN res_partner p ON p.id = i.partner_id
                WHERE i.connection_id = %s AND i.outstanding_amount > 0 AND i.due_date < %s
                  AND (p.sage_figures_date IS NULL OR p.sage_figures_date < %s)""",
            [connection.id, today, today],
        )
        partner_ids = [row[0] for row in self.env.cr.fetchall()]
        self.env["res.partner"].browse(partner_ids)._sage_recompute_invoice_figures()


def _column_value(field, value, record):
    """Database value of ``value`` for ``field``. Amounts are written as they come from Sage's
    sums: converting a Monetary field would read each record's currency (a compute per record)."""
    if field.type == "monetary":
        return float(value or 0.0)
    return field.convert_to_column_update(value, record)
