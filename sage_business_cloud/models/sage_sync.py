"""The sync engine (Sage -> Odoo): contacts, deletions, then sales and purchase invoices.

One run of one connection, in this order:

1. contacts changed since the contacts watermark (everything on the first import), page by page;
2. contacts in the retry list (records that failed to map, contacts restored from the
   "deleted in Odoo" list), one GET each: there are few (at most ``BACKLOG_LIMIT`` per run);
3. contacts deleted in Sage since the watermark: their partners are unlinked;
4. sales invoices, then purchase invoices (or, when excluded, the stored purchase rows are
   removed), each changed since its own watermark, then the invoices of that type in the retry
   list (failed to map), one GET each, then those deleted since;
   then sales and purchase credit notes, quotes and estimates the same way, the payments changed
   since the last run, and the balances and credit positions (``sage_sync_documents``);
5. invoices waiting for their contact: for every contact in the retry list that is now linked,
   its invoices are listed with ``contact_id`` (one listing per contact, only for those, at
   most ``BACKLOG_LIMIT`` contacts per run).

The figures of the partners whose invoice rows changed are recomputed once, after all the
document listings, and only then do their watermarks move. Whatever the outcome, the run then
does the same for what a run that stopped midway read and, at the first run of a day,
recomputes the figures that date from an earlier day (overdue depends on today; no Sage call),
and records its result.

Matching by name: an unlinked Sage contact is linked to the one unlinked Odoo partner (company,
or person without a company) with exactly its name. It is created and flagged for review instead
when the match is not certain: several Odoo partners with that name, several Sage contacts with
that name in the same page, or an Odoo partner with that name already linked to another Sage
contact (flagged as a possible duplicate of it). Linked and created partners get the Sage values
they were linked to as their push snapshot, so that a later edit in Odoo sends only what changed.

Cost: every step costs SQL queries per page, never per record (lookups by Sage id and by name
are one query each per page; partners and invoice rows are created with one ``create`` and the
per-record writes are flushed together). An incremental run with nothing new makes one request
per listing (13, see ``sage_sync_documents``) whatever the size of the book.

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
import time
from collections import defaultdict
from datetime import date, datetime, timedelta

from psycopg2.extras import Json as PsycopgJson

import odoo
from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, split_every

from ..services.sage_client import (
    SageAuthError,
    SageError,
    SageRateLimitError,
    SageTransientError,
)
from ..services.sage_api import SageService
from ..services.transactions import auto_commit
from .sage_binding import sage_user_message

_logger = logging.getLogger(__name__)

#: Watermarks are set to the run start minus this, so nothing falls between two runs.
OVERLAP = timedelta(minutes=5)
PAGE_SIZE = 200
#: Rows of one UPDATE of company-dependent values (``_write_company_values``).
WRITE_CHUNK = 1000
#: Namespace of the advisory lock (first key); the second key is the connection id.
LOCK_NAMESPACE = 0x5A6E
SYNC_CONTEXT = {"sage_no_push": True, "tracking_disable": True, "mail_create_nolog": True,
                "mail_create_nosubscribe": True, "mail_notrack": True, "active_test": False}


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
        self.invoices_seen = defaultdict(set)
        self.invoice_retry = defaultdict(set)
        #: contacts whose documents or payments this run listed (their balance may have moved)
        self.credit_touched = set()
        #: partners whose rows changed since their figures were last recomputed
        self.figures_due = set()
        #: watermarks of the document listings that completed, moved with the figures
        self.watermarks_due = {}

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
                if auto_commit():
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
        self._close_interrupted_runs(connection)
        run = self.env["sage.sync.run"].create({
            "connection_id": connection.id, "trigger": trigger, "started_at": started,
            "full_import": not connection.contacts_synced_until,
        })
        self._commit()
        state = _RunState(connection, run, None, started)
        failure = None
        try:
            connection._write_sync_state({"sync_requested": False})
            state.client = SageService(connection._get_client())
            if not connection.currency_asked:
                connection._sage_read_base_currency(state.client.client, in_sync=True)
            self._warm_listings(state)
            self._sync_contacts(state)
            self._sync_deleted_contacts(state)
            connection._write_sync_state({"contacts_synced_until": started - OVERLAP})
            for invoice_type in ("sale", "purchase"):
                if invoice_type == "purchase" and connection.exclude_supplier_invoices:
                    self._remove_purchase_invoices(state)
                else:
                    self._sync_invoices(state, invoice_type)
                self._commit()
            self._sync_documents(state)
            self._settle_listings(state)
            self._sync_waiting_invoices(state)
        except SageAuthError as error:
            failure = "%s (%s)" % (sage_user_message(error), error)
            self._rollback()
            self._mark_needs_reconnect_once(connection, str(error))
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
        if state.client:
            state.client.client.drop_warm()
        # Whatever the outcome: the figures of what was committed, and overdue depends on today.
        self._refresh_figures_safely(state)
        return self._finish_safely(state, failure, clock)

    def _warm_listings(self, state):
        """An incremental run asks Sage at once for the first page of each of its listings
        (``_listed_since``), instead of one round trip after the other. A first import's pages
        take minutes to write, and its later listings should not start from a page read that
        long before: each listing's first page is asked for once the previous listing's pages
        all have been, while Odoo still writes them."""
        connection = state.connection
        since = self._listed_since(connection)
        kinds = [kind for kind in since if kind not in ("contacts", "payments")]
        if connection.contacts_synced_until:
            state.client.warm_listings(since, self._page_size(), kinds)
        else:
            state.client.chain_listings(since, self._page_size(), kinds)

    def _listed_since(self, connection):
        """``{"contacts" or a document kind or "payments": watermark}`` of the listings a run of
        ``connection`` reads (extended by the importers)."""
        return {"contacts": connection.contacts_synced_until}

    def _close_interrupted_runs(self, connection):
        """Runs of this connection still "running" while we hold its lock died with their process
        (killed, server restarted): say so, so the runs list never shows a ghost import."""
        dead = self.env["sage.sync.run"].search(
            [("connection_id", "=", connection.id), ("state", "=", "running")])
        if dead:
            dead.write({
                "state": "failed", "finished_at": fields.Datetime.now(),
                "message": _("This run was interrupted (its Odoo process stopped before it finished). "
                             "What it had committed is kept; the next run carried on from there."),
            })
            _logger.warning("Sage sync of connection %s: %s interrupted run(s) closed", connection.id, len(dead))

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

    def _refresh_figures_safely(self, state):
        """After a run that stopped midway, settle what it read (``_settle_listings``: the
        figures of its committed pages, the watermarks of the listings it completed); then, once
        a day, recompute the figures that date from an earlier day."""
        connection = state.connection
        try:
            self._settle_listings(state)
            with self.env.cr.savepoint():
                day = self._refresh_stale_figures(connection)
            self._commit()
            if day:
                connection._write_sync_state({"figures_refreshed_on": day})
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
            if auto_commit():
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
            "wait_seconds": state.client.client.wait_seconds if state.client else 0.0,
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
        if auto_commit():
            # A page is done: keep it even if a later page fails (cron-style unit of work).
            self.env.cr.commit()  # pylint: disable=invalid-commit

    def _rollback(self):
        """Forget the unfinished page (outside tests); finished pages are committed already."""
        if auto_commit():
            self.env.cr.rollback()
        else:
            self.env.invalidate_all()

    def _in_savepoint(self, method, *args):
        """Run ``method`` for one page in a savepoint, then commit it (outside tests)."""
        with self.env.cr.savepoint():
            method(*args)
            self.env.flush_all()
        self._commit()
        # The page is in the database: its partners, bindings and rows need not stay cached, or
        # a first import would hold the whole book in memory by its last page.
        self.env.invalidate_all()

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
        if all(fields_[fname].company_dependent for fname in fnames):
            self._write_company_values(records, fnames, vals_list)
        else:
            records._write_multi([
                {fname: _column_value(fields_[fname], vals[fname], record) for fname in fnames}
                for record, vals in zip(records, vals_list, strict=True)
            ])
        records.invalidate_recordset(fnames)
        records.modified(fnames)

    @api.model
    def _write_company_values(self, records, fnames, vals_list):
        """The current company's values of company-dependent columns, merged into each row's JSON
        with one UPDATE per ``WRITE_CHUNK`` rows.

        Odoo's own write of such a column compares every value with the column's fallbacks in
        SQL, and sends each one as a JSON document: for the figures of a first import (sixteen
        columns of some 10,000 partners) that took seconds. Here each value travels as a plain
        SQL value and is put under the company's key; the fields' reads and searches see the
        same thing (a value equal to the fallback is stored rather than left out).
        """
        fields_ = records._fields
        company = str(records.env.company.id)
        table = SQL.identifier(records._table)
        assignments = SQL(", ").join(
            SQL("%s = COALESCE(%s.%s, '{}'::jsonb) || jsonb_build_object(%s, v.%s)",
                SQL.identifier(fname), table, SQL.identifier(fname), company, SQL.identifier(fname))
            for fname in fnames)
        columns = SQL(", ").join(SQL.identifier(fname) for fname in fnames)
        for chunk in split_every(WRITE_CHUNK, list(zip(records, vals_list, strict=True))):
            rows = SQL(", ").join(
                SQL("%s", (record.id, *(_column_scalar(fields_[fname], vals[fname], record) for fname in fnames)))
                for record, vals in chunk)
            self.env.cr.execute(SQL(
                "UPDATE %s SET %s, write_uid = %s, write_date = %s FROM (VALUES %s) AS v(id, %s) WHERE %s.id = v.id",
                table, assignments, self.env.uid, self.env.cr.now(), rows, columns, table))

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

def _column_value(field, value, record):
    """Database value of ``value`` for ``field``. Amounts are written as they come from Sage's
    sums: converting a Monetary field would read each record's currency (a compute per record).
    A company-dependent value is written for the record's current company (``with_company``)."""
    if field.company_dependent:
        return PsycopgJson({str(record.env.company.id): _column_scalar(field, value, record)})
    if field.type == "monetary":
        return float(value or 0.0)
    return field.convert_to_column_update(value, record)


def _column_scalar(field, value, record):
    """The plain value a company-dependent ``field`` keeps under a company's key (JSON-ready)."""
    if field.type == "monetary":
        return float(value or 0.0)
    column = field.convert_to_column(value, record)
    if isinstance(column, (date, datetime)):
        column = column.isoformat()
    return column
