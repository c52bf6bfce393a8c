"""Never two syncs of one company at once: a run that finds another one running skips."""

import odoo

from ..models.sage_sync import LOCK_NAMESPACE
from .sync_common import SageSyncCase


class TestConcurrentRuns(SageSyncCase):

    def test_second_run_skips_while_another_holds_the_company(self):
        self.sage_contact("Dunlin Ltd")
        # Another worker's run: it holds the company's lock from its own database session.
        other = odoo.sql_db.db_connect(self.env.cr.dbname).cursor()
        try:
            other.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, self.connection.id])
            self.assertTrue(other.fetchone()[0])
            before = self.requests_total()
            run = self.sync()
            self.assertEqual(run.state, "skipped")
            self.assertIn("still running", run.message)
            self.assertEqual(self.requests_total(), before, "a skipped run does not call Sage")
            self.assertFalse(self.Partner.search([("sage_contact_id", "!=", False)]))
            self.assertFalse(self.connection.contacts_synced_until)
        finally:
            other.close()
        # once the other run is over, the next one does the work
        run = self.sync()
        self.assertEqual(run.state, "done", run.message)
        self.assertEqual(run.contacts_created, 1)

    def test_lock_is_per_company(self):
        other = odoo.sql_db.db_connect(self.env.cr.dbname).cursor()
        try:
            other.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, self.connection.id + 1])
            run = self.sync()
            self.assertEqual(run.state, "done", run.message)
        finally:
            other.close()
