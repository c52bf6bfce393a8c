"""The sync's retry list: Sage ids to read again at the next runs."""

from odoo import api, fields, models

#: Retry-list entries handled per run and kind (contacts read by id, contacts whose invoices wait).
BACKLOG_LIMIT = 100


class SageSyncBacklog(models.Model):
    """Retry list of a connection: Sage ids to read again at the next runs."""

    _name = "sage.sync.backlog"
    _description = "Sage Business Cloud records to read again"
    _log_access = False

    connection_id = fields.Many2one("sage.connection", required=True, ondelete="cascade", index=True)
    kind = fields.Selection(
        [("contact", "Contact to read again"), ("invoices", "Invoices waiting for their contact"),
         ("sale_invoice", "Sales invoice to read again"),
         ("purchase_invoice", "Purchase invoice to read again"),
         ("sale_credit_note", "Sales credit note to read again"),
         ("purchase_credit_note", "Purchase credit note to read again"),
         ("quote", "Sales quote to read again"), ("estimate", "Sales estimate to read again")],
        required=True,
    )
    sage_id = fields.Char(
        "Sage id", required=True,
        help="Id of the Sage contact (kinds contact and invoices) or document (other kinds).",
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
