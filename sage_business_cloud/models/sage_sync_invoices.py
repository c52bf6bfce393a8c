"""The invoice importer of the sync engine: Sage sales and purchase invoices to summaries.

One listing per invoice type changed since its own watermark, then the retry list, then the
invoices deleted since; rows are upserted by Sage id, page by page, and the figures of the
partners they touch are recomputed once for all the listings (``_settle_listings``), before
their watermarks move.
Invoices whose contact is not bound yet wait in the retry list.
"""

from odoo import _, fields, models
from odoo.tools import split_every

from ..services.sage_client import SageNotFoundError
from ..services.sage_mapping import MappingError, invoice_values
from ..services.sage_api import INVOICE_RESOURCES
from .sage_connection_documents import DOCUMENT_WATERMARKS
from .sage_invoice import COUNTED_STATUSES, QUOTE_STATUSES
from .sage_sync import OVERLAP

#: Per document kind (invoices here; credit notes, quotes, estimates: ``sage_sync_documents``).
RESOURCES = INVOICE_RESOURCES
WATERMARKS = {"sale": "invoices_synced_until", "purchase": "purchases_synced_until", **DOCUMENT_WATERMARKS}
#: Partners whose figures are recomputed (and dropped from the cache) together.
FIGURES_CHUNK = 1000
#: Retry-list kind of the invoices of each type that failed to map.
INVOICE_RETRY = {"sale": "sale_invoice", "purchase": "purchase_invoice", "sale_credit": "sale_credit_note",
                 "purchase_credit": "purchase_credit_note", "quote": "quote", "estimate": "estimate"}


#: Sage's invoice statuses. Another one is not guessed at (stored, it would count in no figure
#: and stay wrong until the invoice changes again in Sage): the invoice is read again by id.
KNOWN_STATUSES = frozenset(COUNTED_STATUSES + ("DRAFT", "PRO_FORMA", "VOID") + QUOTE_STATUSES)


def _check_invoice(values):
    """Refuse what would store a wrong row: an unknown status, no contact to hang it on."""
    if values["status"] not in KNOWN_STATUSES:
        raise MappingError("unknown invoice status %s" % values["status"])
    if not values["sage_contact_id"]:
        raise MappingError("the invoice has no contact")


class SageSync(models.AbstractModel):
    _inherit = "sage.sync"

    # ------------------------------------------------------------------
    # invoices
    # ------------------------------------------------------------------
    def _sync_invoices(self, state, invoice_type, contact_id=None):
        connection = state.connection
        since = False if contact_id else connection[WATERMARKS[invoice_type]]
        if not contact_id:
            state.invoice_retry[invoice_type] = set(
                self.env["sage.sync.backlog"]._pending_ids(connection, INVOICE_RETRY[invoice_type]))
        pages = state.client.invoices_changed_since(invoice_type, since, self._page_size(), contact_id=contact_id)
        for page in pages:
            self._in_savepoint(self._invoices_page, state, invoice_type, page)
        if contact_id:
            return
        self._retry_invoices(state, invoice_type)
        if since:
            for sage_ids in state.client.invoices_deleted_since(invoice_type, since, self._page_size()):
                self._in_savepoint(self._deleted_invoices_page, state, invoice_type, sage_ids)
        # The listing is complete; its watermark moves once the figures are recomputed.
        state.watermarks_due[WATERMARKS[invoice_type]] = state.started - OVERLAP

    def _settle_listings(self, state):
        """Recompute, in one go, the figures of the partners whose rows changed in the listings
        read so far (not once per page, nor per listing), then move the watermarks of those
        that completed. Should the recomputation fail, no watermark moves: the next run lists
        those pages again."""
        with self.env.cr.savepoint():
            self._recompute_due_figures(state)
            self.env.flush_all()
        self._commit()
        if state.watermarks_due:
            state.connection._write_sync_state(dict(state.watermarks_due))
            state.watermarks_due.clear()

    def _recompute_due_figures(self, state):
        """Recompute the figures of the partners whose rows changed since the last call.

        By chunks of ``FIGURES_CHUNK`` partners, each dropped from the cache once written: after
        a first import that is every partner, and all of them at once would grow the process by
        well over a hundred megabytes for a moment (10,000 partners)."""
        due = sorted(state.figures_due)
        for chunk in split_every(FIGURES_CHUNK, due):
            self.env["res.partner"].browse(chunk)._sage_recompute_invoice_figures(state.connection)
            self.env.flush_all()
            self.env.invalidate_all()
        state.figures_due.difference_update(due)

    def _listed_since(self, connection):
        since = super()._listed_since(connection)
        for invoice_type in ("sale", "purchase"):
            if invoice_type == "sale" or not connection.exclude_supplier_invoices:
                since[invoice_type] = connection[WATERMARKS[invoice_type]]
        return since

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
                invoices.append(state.client.get_invoice(invoice_type, sage_id))
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
                _check_invoice(values)
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
            Invoice._sage_create_computed(to_create, connection)
        Backlog._add(connection, "invoices", waiting)
        # Failed invoices are read again by id at the next runs (the watermark moves past them).
        Backlog._add(connection, INVOICE_RETRY[invoice_type], failed)
        Backlog._remove(connection, INVOICE_RETRY[invoice_type], done & state.invoice_retry[invoice_type])
        state.figures_due.update(touched)

    def _deleted_invoices_page(self, state, invoice_type, sage_ids):
        invoices = self.env["sage.invoice"].search([
            ("connection_id", "=", state.connection.id), ("invoice_type", "=", invoice_type),
            ("sage_id", "in", sage_ids),
        ])
        partners = invoices.partner_id
        state.counts["invoices_removed"] += len(invoices)
        invoices.unlink()
        state.figures_due.update(partners.ids)
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
            partners._sage_recompute_invoice_figures(connection)
        self.env["sage.sync.backlog"]._clear(connection, INVOICE_RETRY["purchase"])
        if connection.purchases_synced_until:
            connection._write_sync_state({"purchases_synced_until": False})

    def _sync_waiting_invoices(self, state):
        """Read the invoices of contacts that were not linked when their invoices came by.

        This is the one step that costs requests per contact: one listing per kind of document
        (invoices, credit notes, quotes, estimates; the supplier ones when supplier invoices are
        synced) for each contact of the "invoices" retry list that is linked now.
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
            for kind in self._document_kinds(connection):
                self._sync_invoices(state, kind, contact_id=contact_id)
            self._recompute_due_figures(state)
            Backlog._remove(connection, "invoices", [contact_id])
            self._commit()

    def _refresh_stale_figures(self, connection):
        """Overdue depends on today: recompute partners whose figures date from an earlier day.

        Run at the end of the first run of each day (``figures_refreshed_on``), whatever its
        outcome (no Sage call); later runs that day have nothing to find.
        Returns the day it brought up to date, or None when there was nothing to do.
        """
        today = fields.Date.context_today(self)
        if connection.figures_refreshed_on == today:
            return None
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT DISTINCT i.partner_id FROM sage_invoice i JOIN res_partner p ON p.id = i.partner_id
                WHERE i.connection_id = %s AND i.outstanding_amount > 0 AND i.due_date < %s
                  AND ((p.sage_figures_date->>%s)::date IS NULL OR (p.sage_figures_date->>%s)::date < %s)""",
            [connection.id, today, str(connection.company_id.id), str(connection.company_id.id), today],
        )
        partner_ids = [row[0] for row in self.env.cr.fetchall()]
        self.env["res.partner"].browse(partner_ids)._sage_recompute_invoice_figures(connection)
        self.env["sage.invoice"]._sage_refresh_aged_buckets(connection)
        return today
