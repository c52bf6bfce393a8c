"""Each company's sync as a job of its own (channel ``root.sage``), from the cron and Sync now."""

import logging

import odoo
from odoo import _, models

from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.sage_business_cloud.models.sage_sync import LOCK_NAMESPACE

from .. import jobs

_logger = logging.getLogger(__name__)

#: What PostgreSQL says when a REPEATABLE READ transaction writes a row another one changed since.
CONFLICT = "could not serialize access due to concurrent update"


class SageConnection(models.Model):
    _inherit = "sage.connection"

    def _sage_dispatch_syncs(self, trigger):
        """One job per connection instead of one cron run for all: the companies sync side by
        side, as many at once as the ``root.sage`` channel allows. A job already waiting for a
        connection (same identity key) is not doubled: Sync now while the cron's job waits, or
        two quick clicks, make one run."""
        if jobs.runs_at_once(self.env):
            return super()._sage_dispatch_syncs(trigger)
        for connection in self.sudo():
            connection.with_company(connection.company_id).with_delay(
                channel=jobs.CHANNEL, identity_key=jobs.sync_key(connection),
                max_retries=jobs.SYNC_RETRIES,
                description=_("Sage sync of %s", connection.company_id.name),
            )._sage_sync_job(trigger)
        return None

    def _sage_sync_job(self, trigger="cron"):
        """The job: one sync of this connection (see ``sage.sync``); returns what it did."""
        self.ensure_one()
        connection = self.sudo().exists()
        if not connection or connection.state != "connected":
            return "not connected: nothing to sync"
        if connection._sage_sync_running():
            # A job started earlier still runs: this one comes back once it is over, so a Sync
            # now clicked during a run still gets a run of its own (the lock would skip it).
            raise RetryableJobError("another sync of this company is running",
                                    seconds=jobs.BUSY_RETRY_SECONDS, ignore_retry=True)
        run_trigger = "manual" if connection.sync_requested else trigger
        run = connection.with_company(connection.company_id)._run_sync(trigger=run_trigger)
        if not run:
            return "the sync could not start (see the server log)"
        if run.state == "failed" and CONFLICT in (run.message or ""):
            # Another company's sync wrote a partner both share (one without a company) at the
            # same moment: what this run committed is kept and the retry carries on from there.
            raise RetryableJobError(f"sync run {run.id} met a concurrent update; trying again",
                                    seconds=jobs.CONFLICT_RETRY_SECONDS)
        return f"sync run {run.id}: {run.state}"

    def _sage_sync_running(self):
        """Whether a sync of this connection holds its advisory lock right now (peeked at from a
        session of its own, and let go at once)."""
        self.ensure_one()
        with odoo.sql_db.db_connect(self.env.cr.dbname).cursor() as cr:
            cr.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, self.id])
            free = cr.fetchone()[0]
            cr.rollback()
        return not free
