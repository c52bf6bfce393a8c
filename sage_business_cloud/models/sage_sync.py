"""The sync engine (Sage -> Odoo): contacts, deletions, then invoices. Filled in by issue 5/6."""

from odoo import models


class SageSync(models.AbstractModel):
    _name = "sage.sync"
    _description = "Sage Business Cloud sync engine"

    def _sync_connection(self, connection, trigger="manual"):
        return self.env["sage.sync.run"]
