"""Each push as a job of its own: one per binding, retried on queue_job's retry pattern.

What a push does stays ``_sage_push_one``'s (read Sage, note what Odoo overwrites, send the
changes); the job only decides when it runs. Sage unreachable: the binding keeps the core's
bookkeeping (attempts, next try, message) and the job is retried after 1, 2, 5, 10, 30, then
60 minutes. Refused by Sage, or a failure of the push itself: the binding turns to *error*,
the list of pushes that failed, as without jobs.
"""

import logging

from odoo import _, api, fields, models

from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.sage_business_cloud.models.sage_binding_push import PUSH_BATCH
from odoo.addons.sage_business_cloud.services.transactions import auto_commit

from .. import jobs

_logger = logging.getLogger(__name__)

#: States of a job that has not started yet (what queue_job's identity key looks at).
WAITING = ("wait_dependencies", "pending", "enqueued")


class SageBinding(models.Model):
    _inherit = "sage.binding"

    def _sage_schedule_pushes(self, at=None):
        """A job per binding (identity key per binding), due at ``at`` or at once.

        A binding whose job waits already keeps that job: when it was postponed after a failure
        and the binding was queued afresh since (a new edit), it is brought forward, as the
        push cron sends a re-queued binding at once.
        """
        if jobs.runs_at_once(self.env):
            return super()._sage_schedule_pushes(at=at)
        bindings = self.sudo()
        if not bindings:
            return None  # the cron's "maybe more": every pending binding has its own job
        waiting = {job.identity_key: job for job in self.env["queue.job"].sudo().search([
            ("identity_key", "in", [jobs.push_key(b) for b in bindings]), ("state", "in", WAITING)])}
        for binding in bindings:
            job = waiting.get(jobs.push_key(binding))
            if job:
                if at is None and job.state == "pending" and job.eta and not binding.push_next_at:
                    job.write({"eta": False, "retry": binding.push_attempts})
                continue
            binding.with_company(binding.company_id).with_delay(
                channel=jobs.CHANNEL, identity_key=jobs.push_key(binding), eta=at, max_retries=0,
                description=_("Send %s to Sage", binding.partner_id.display_name),
            )._sage_push_job()
        return None

    @api.model
    def _cron_sage_push(self, limit=PUSH_BATCH):
        """With jobs the cron only catches up: a job for every pending binding that is due and has
        none waiting (queued before this addon, or left by a job that failed)."""
        if jobs.runs_at_once(self.env):
            return super()._cron_sage_push(limit=limit)
        due = self.sudo().search([
            ("push_state", "=", "pending"), ("connection_id.state", "=", "connected"),
            "|", ("push_next_at", "=", False), ("push_next_at", "<=", fields.Datetime.now()),
        ])
        due._sage_schedule_pushes()
        return len(due)

    def _sage_push_job(self):
        """The job: push this binding once; returns what it did."""
        self.ensure_one()
        binding = self.sudo().exists()
        if not binding or binding.push_state != "pending":
            return "nothing to send"
        if binding.connection_id.state != "connected":
            return "not connected: the push cron queues it again once reconnected"
        try:
            handled = binding._sage_push_one({})
        except Exception as error:
            binding._sage_push_job_failed(error)
            raise
        if not handled:
            raise RetryableJobError("the partner is being edited", seconds=jobs.BUSY_RETRY_SECONDS,
                                    ignore_retry=True)
        binding.invalidate_recordset()
        if binding.exists() and binding.push_state == "pending" and binding.push_next_at:
            # Sage could not be reached: keep the binding's attempts and message (the retry
            # rolls the job's transaction back), then let the retry pattern decide when.
            if auto_commit():
                self.env.cr.commit()  # pylint: disable=invalid-commit
            raise RetryableJobError(binding.push_error or "Sage could not be reached")
        return f"binding {binding.id}: {binding.exists().push_state or 'gone'}"

    def _sage_push_job_failed(self, error):
        """An unexpected failure: the binding goes to the pushes that failed, with the reason,
        committed although the job's own transaction is rolled back."""
        _logger.exception("Sage push of binding %s failed", self.id)
        if auto_commit():
            self.env.cr.rollback()
        self.env.invalidate_all()
        binding = self.exists()
        if binding:
            binding.write({"push_state": "error", "push_next_at": False, "push_error": _(
                "The push failed unexpectedly (%s). Retry it once the cause is fixed.", error)})
            if auto_commit():
                self.env.cr.commit()  # pylint: disable=invalid-commit
