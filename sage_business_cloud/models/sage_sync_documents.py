"""The rest of a contact's account in the sync engine: credit notes, quotes, estimates, balances.

Credit notes, quotes and estimates are ``sage.invoice`` rows of their own kinds: they go through
the invoice importer (``_sync_invoices``: a listing changed since the kind's watermark, the retry
list, the deletions since) at the same cost per page. Sage keeps no deleted listing for quotes and
estimates: once a day the ids of those Sage still has are listed (one request per 200) and the
rows of the others are removed.

Balance and credit position come from the contact (``balance`` with ``show_balance``,
``credit_limit``, ``credit_days``, ``credit_terms``) and are stored on its binding whenever the
sync reads the contact, linked or not. Sage does not say whether a new invoice, credit note or
payment changes the contact's ``updated_at``, so the contacts whose documents or payments were
listed by this run and that the contacts listing did not bring are read again: one GET each
when they are few (``CREDIT_READ_LIMIT``), else one listing of every contact's credit position
(one request per 200 contacts). Payments are listed (contact ids only) for that purpose alone:
a payment on account moves the balance and touches no invoice. Once a day, every contact's
credit position is read again (one request per 200 contacts), which also catches what no
listing shows (a payment deleted, a limit changed without a new ``updated_at``).

Cost of an incremental run with nothing new: one request per listing, 13 in all (contacts,
deleted contacts, and for each of sales invoices, sales credit notes, purchase invoices and
purchase credit notes the changed and the deleted ones, then quotes, estimates and payments);
9 when supplier invoices are excluded. The first run of a day adds the daily check.
"""

from odoo import fields, models

from ..services.sage_client import SageNotFoundError
from ..services.sage_mapping import MappingError, credit_values
from .sage_invoice import QUOTE_TYPES, SUPPLIER_TYPES
from .sage_sync import OVERLAP
from .sage_sync_invoices import INVOICE_RETRY, WATERMARKS

#: Contacts whose credit position a run reads one by one at most; more: one listing of all.
CREDIT_READ_LIMIT = 25
DOCUMENT_KINDS = ("sale_credit", "purchase_credit", "quote", "estimate")


class SageSync(models.AbstractModel):
    _inherit = "sage.sync"

    def _document_kinds(self, connection):
        """The document kinds beyond invoices that this connection syncs."""
        return [kind for kind in DOCUMENT_KINDS
                if kind not in SUPPLIER_TYPES or not connection.exclude_supplier_invoices]

    def _listed_since(self, connection):
        since = super()._listed_since(connection)
        for kind in self._document_kinds(connection):
            since[kind] = connection[WATERMARKS[kind]]
        if connection.payments_synced_until:
            since["payments"] = connection.payments_synced_until
        return since

    def _sync_documents(self, state):
        """Credit notes, quotes and estimates, then the payments and credit positions."""
        connection = state.connection
        for kind in DOCUMENT_KINDS:
            if kind in self._document_kinds(connection):
                self._sync_invoices(state, kind)
            else:
                self._remove_documents(state, kind)
            self._commit()
        self._sync_payments(state)
        self._sync_credit_positions(state)

    # ------------------------------------------------------------------
    # documents
    # ------------------------------------------------------------------
    def _invoices_page(self, state, invoice_type, invoices):
        result = super()._invoices_page(state, invoice_type, invoices)
        if invoice_type not in QUOTE_TYPES:
            state.credit_touched.update(
                i["contact"]["id"] for i in invoices if isinstance(i.get("contact"), dict) and i["contact"].get("id"))
        return result

    def _remove_documents(self, state, kind):
        """Rows of a kind no longer synced (supplier credit notes excluded): dropped; switching
        back reads them all again."""
        connection = state.connection
        rows = self.env["sage.invoice"].search([("connection_id", "=", connection.id), ("invoice_type", "=", kind)])
        if rows:
            partners = rows.partner_id
            state.counts["invoices_removed"] += len(rows)
            rows.unlink()
            partners._sage_recompute_invoice_figures(connection)
        self.env["sage.sync.backlog"]._clear(connection, INVOICE_RETRY[kind])
        watermark = self.env["sage.connection"]._document_watermark(kind)
        if connection[watermark]:
            connection._write_sync_state({watermark: False})

    def _sweep_quotes(self, state, kind):
        """Remove the rows of quotes (or estimates) Sage no longer has: it lists no deletions."""
        connection = state.connection
        listed = set()
        for sage_ids in state.client.document_ids(kind, self._page_size()):
            listed.update(sage_ids)
        rows = self.env["sage.invoice"].search([
            ("connection_id", "=", connection.id), ("invoice_type", "=", kind), ("sage_id", "not in", list(listed)),
        ])
        if rows:
            partners = rows.partner_id
            state.counts["invoices_removed"] += len(rows)
            rows.unlink()
            partners._sage_recompute_invoice_figures(connection)
        self._commit()

    # ------------------------------------------------------------------
    # payments and credit positions
    # ------------------------------------------------------------------
    def _sync_payments(self, state):
        """Note the contacts whose payments changed (a payment on account moves the balance)."""
        connection = state.connection
        since = connection.payments_synced_until
        if since:
            for contact_ids in state.client.payments_changed_since(since, self._page_size()):
                state.credit_touched.update(contact_ids)
        connection._write_sync_state({"payments_synced_until": state.started - OVERLAP})

    def _sync_credit_positions(self, state):
        connection = state.connection
        today = fields.Date.context_today(self)
        if state.run.full_import:
            # Every contact and every quote were just listed.
            connection._write_sync_state({"credit_checked_on": today})
            return
        if connection.credit_checked_on != today:
            self._read_all_credit_positions(state)
            for kind in QUOTE_TYPES:
                self._sweep_quotes(state, kind)
            connection._write_sync_state({"credit_checked_on": today})
            return
        todo = sorted(state.credit_touched - state.contacts_seen)
        todo = sorted(self._partners_by_sage_id(connection, todo))
        if len(todo) > (self.env.context.get("sage_credit_read_limit") or CREDIT_READ_LIMIT):
            self._read_all_credit_positions(state)
            return
        contacts = []
        for contact_id in todo:
            try:
                contacts.append({"id": contact_id, **state.client.credit_position(contact_id)})
            except SageNotFoundError:
                continue  # deleted in Sage: the deleted contacts listing ends the link
        if contacts:
            self._in_savepoint(self._store_credit_positions, state, contacts)

    def _read_all_credit_positions(self, state):
        for page in state.client.credit_positions(self._page_size()):
            self._in_savepoint(self._store_credit_positions, state, page)

    def _contacts_page(self, state, contacts):
        result = super()._contacts_page(state, contacts)
        self._store_credit_positions(state, contacts)
        return result

    def _store_credit_positions(self, state, contacts):
        """Store the balance and credit terms of the bound ones among ``contacts`` (one lookup,
        one UPDATE). A contact whose figures do not map keeps its last ones (logged)."""
        connection = state.connection
        Binding = self.env["sage.binding"].sudo()
        by_id = {contact["id"]: contact for contact in contacts if contact.get("id")}
        bindings = Binding.search([
            ("connection_id", "=", connection.id), ("kind", "=", "contact"),
            ("sage_contact_id", "in", list(by_id)),
        ])
        now = fields.Datetime.now()
        records, values_list = Binding, []
        for binding in bindings:
            contact = by_id[binding.sage_contact_id]
            try:
                values = credit_values(contact)
            except MappingError as error:
                state.error("contacts", binding.sage_contact_id, contact.get("name"), error)
                continue
            records |= binding
            values_list.append({**values, "credit_read_at": now})
        self._bulk_write(records, values_list)

    def _refresh_stale_figures(self, connection):
        """Also recompute, once a day, the partners whose open quotes expired since (no Sage call)."""
        result = super()._refresh_stale_figures(connection)
        today = fields.Date.context_today(self)
        company = str(connection.company_id.id)
        self.env.cr.execute(
            """SELECT DISTINCT i.partner_id FROM sage_invoice i JOIN res_partner p ON p.id = i.partner_id
                WHERE i.connection_id = %s AND i.invoice_type = ANY(%s) AND i.expiry_date < %s
                  AND ((p.sage_figures_date->>%s)::date IS NULL OR (p.sage_figures_date->>%s)::date < %s)""",
            [connection.id, list(QUOTE_TYPES), today, company, company, today],
        )
        partner_ids = [row[0] for row in self.env.cr.fetchall()]
        self.env["res.partner"].browse(partner_ids)._sage_recompute_invoice_figures(connection)
        return result
