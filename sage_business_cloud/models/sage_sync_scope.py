"""The import's scope: which Sage contacts the sync creates (``sage.connection.import_scope``).

A contact outside the scope is not created: it is kept in ``sage.sync.skipped`` (its Sage values
included, as read), listed in the run, and created later, from those values, once it comes into
scope: a supplier made a customer is listed again by Sage (it changed), a contact's first invoice
puts it in the "invoices waiting for their contact" retry list, and a wider scope chosen later
takes in every skipped contact it covers. Links by exact name are made whatever the scope.

"Contacts with at least one invoice" needs to know, while reading contacts, which ones have
invoices: on a first import the invoice listings are read first with only their contact (pages,
no record read one by one); afterwards the retry list of waiting invoices tells.
"""

from psycopg2.extras import Json as PsycopgJson

from odoo import api, fields, models

SKIP_REASONS = [
    ("not_customer", "Not a customer"),
    ("no_invoice", "No invoice yet"),
    ("link_only", "No partner of that name (link only)"),
]


class SageSyncSkipped(models.Model):
    _name = "sage.sync.skipped"
    _description = "Sage contact the import's scope left out"
    _order = "id"
    _log_access = False

    connection_id = fields.Many2one("sage.connection", required=True, ondelete="cascade", index=True,
                                    readonly=True)
    company_id = fields.Many2one(related="connection_id.company_id", store=True, index=True)
    run_id = fields.Many2one("sage.sync.run", string="Last skipped by", ondelete="set null", index=True,
                             readonly=True)
    sage_contact_id = fields.Char("Sage contact id", required=True, readonly=True)
    name = fields.Char("Sage name", readonly=True)
    reason = fields.Selection(SKIP_REASONS, required=True, readonly=True)
    is_customer = fields.Boolean(readonly=True)
    contact = fields.Json(readonly=True, help="The Sage contact as last read.")

    _sql_constraints = [
        ("contact_uniq", "unique(connection_id, sage_contact_id)", "This Sage contact is listed already."),
    ]


class SageSync(models.AbstractModel):
    _inherit = "sage.sync"

    # ------------------------------------------------------------------
    # the decision's lookup
    # ------------------------------------------------------------------
    def _sage_out_of_scope(self, state, todo):
        """``{sage id: reason}`` of the contacts of ``todo`` the scope would not create."""
        scope = state.connection.import_scope or "all"
        if scope == "all":
            return {}
        if scope == "link_only":
            return {contact["id"]: "link_only" for contact, _v, _ch in todo}
        if scope == "customers":
            return {contact["id"]: "not_customer" for contact, values, _ch in todo
                    if values.get("sage_contact_type") != "customer"}
        invoiced = self._sage_invoiced_among(state, [contact["id"] for contact, _v, _ch in todo])
        return {contact["id"]: "no_invoice" for contact, _v, _ch in todo if contact["id"] not in invoiced}

    def _sage_invoiced_among(self, state, sage_ids):
        """Which of these contacts have an invoice: from the first import's invoice read-ahead,
        else from the retry list of invoices waiting for their contact (one query)."""
        known = getattr(state, "invoiced_contacts", None) or set()
        self.env["sage.sync.backlog"].flush_model()
        self.env.cr.execute(
            "SELECT sage_id FROM sage_sync_backlog WHERE connection_id = %s AND kind = 'invoices' "
            "AND sage_id = ANY(%s)", [state.connection.id, list(sage_ids)])
        return {row[0] for row in self.env.cr.fetchall()} | (known & set(sage_ids))

    def _sage_read_invoiced_contacts(self, state):
        """The ids of the contacts with at least one invoice, from the invoice listings (pages)."""
        found = set()
        kinds = ["sale"] if state.connection.exclude_supplier_invoices else ["sale", "purchase"]
        for invoice_type in kinds:
            for page in state.client.invoice_contacts(invoice_type, self._page_size()):
                found.update(page)
        return found

    def _sync_contacts(self, state):
        connection = state.connection
        if (connection.import_scope == "invoiced" and not connection.contacts_synced_until
                and getattr(state, "invoiced_contacts", None) is None):
            state.invoiced_contacts = self._sage_read_invoiced_contacts(state)
        return super()._sync_contacts(state)

    # ------------------------------------------------------------------
    # skipped contacts
    # ------------------------------------------------------------------
    def _sage_skip(self, state, todo, skipped):
        """Record the contacts of ``todo`` the scope left out; forget the others (a query each,
        and none when no contact was ever skipped)."""
        connection = state.connection
        state.counts["contacts_skipped"] = state.counts.get("contacts_skipped", 0) + len(skipped)
        Skipped = self.env["sage.sync.skipped"]
        Skipped.flush_model()
        left_out = {contact["id"] for contact, _v, _r in skipped}
        taken = [contact["id"] for contact, _v, _ch in todo if contact["id"] not in left_out]
        if getattr(state, "has_skipped", None) is None:
            # Once a run: with no skipped contact at all (the usual case), a page costs no query here.
            self.env.cr.execute("SELECT 1 FROM sage_sync_skipped WHERE connection_id = %s LIMIT 1",
                                [connection.id])
            state.has_skipped = bool(self.env.cr.fetchone())
        if taken and state.has_skipped:
            self.env.cr.execute(
                "DELETE FROM sage_sync_skipped WHERE connection_id = %s AND sage_contact_id = ANY(%s)",
                [connection.id, taken])
        if skipped:
            state.has_skipped = True
            rows = [(connection.id, connection.company_id.id, state.run.id, contact["id"], values["name"],
                     reason, values.get("sage_contact_type") == "customer", PsycopgJson(contact))
                    for contact, values, reason in skipped]
            self.env.cr.execute(
                "INSERT INTO sage_sync_skipped (connection_id, company_id, run_id, sage_contact_id, name, "
                "reason, is_customer, contact) VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
                + " ON CONFLICT (connection_id, sage_contact_id) DO UPDATE SET run_id = EXCLUDED.run_id, "
                "name = EXCLUDED.name, reason = EXCLUDED.reason, is_customer = EXCLUDED.is_customer, "
                "contact = EXCLUDED.contact",
                [value for row in rows for value in row])
        Skipped.invalidate_model()

    def _deleted_contacts_page(self, state, sage_ids):
        """A contact deleted in Sage is no longer waiting to come into scope."""
        result = super()._deleted_contacts_page(state, sage_ids)
        self.env["sage.sync.skipped"].sudo().search([
            ("connection_id", "=", state.connection.id), ("sage_contact_id", "in", sage_ids)]).unlink()
        return result

    def _sync_waiting_invoices(self, state):
        """Skipped contacts that came into scope are created first (from the values Sage gave),
        so that their waiting invoices are read with the others."""
        self._sage_scope_arrivals(state)
        return super()._sync_waiting_invoices(state)

    def _sage_scope_arrivals(self, state):
        """Create the skipped contacts the scope now covers, a page at a time (no Sage request)."""
        connection = state.connection
        scope = connection.import_scope or "all"
        if scope == "link_only":
            return
        condition = {
            "all": "TRUE",
            "customers": "s.is_customer",
            "invoiced": "EXISTS (SELECT 1 FROM sage_sync_backlog w WHERE w.connection_id = s.connection_id "
                        "AND w.kind = 'invoices' AND w.sage_id = s.sage_contact_id)",
        }[scope]
        self.env["sage.sync.skipped"].flush_model()
        self.env["sage.sync.backlog"].flush_model()
        self.env.cr.execute(
            "SELECT s.id, s.contact FROM sage_sync_skipped s WHERE s.connection_id = %s AND " + condition
            + " ORDER BY s.id", [connection.id])
        rows = self.env.cr.fetchall()
        size = self._page_size()
        for start in range(0, len(rows), size):
            chunk = rows[start:start + size]
            self._in_savepoint(self._sage_arrivals_page, state, [row[0] for row in chunk],
                               [row[1] for row in chunk])

    def _sage_arrivals_page(self, state, skipped_ids, contacts):
        self.env["sage.sync.skipped"].sudo().browse(skipped_ids).unlink()
        self._contacts_page(state, [contact for contact in contacts if isinstance(contact, dict)])

    @api.model
    def _sage_forget_skipped(self, connection):
        self.env["sage.sync.skipped"].sudo().search([("connection_id", "=", connection.id)]).unlink()
