"""Where a run is: pages done and expected, counts so far, an estimated end.

Every page the engine commits (``_in_savepoint``) also writes the run's progress, in that same
savepoint: one UPDATE a page. The pages expected grow by each listing's number of pages, read
from ``$total`` and ``$itemsPerPage`` of its first page (a listing that gives none counts the
pages as they come). Under the sync cron, ``ir.cron``'s progress (``_notify_progress``) follows
too; outside a cron that call does nothing. A run reports nothing left once it is over, so the
cron never runs again at once for pages a failed run left behind (the next run carries on).
"""

from datetime import timedelta

from odoo import fields, models

from .sage_sync import _RunState


class _Progress:
    def __init__(self):
        self.done = 0
        self.expected = 0
        self.envelope = None


class SageSync(models.AbstractModel):
    _inherit = "sage.sync"

    def _in_savepoint(self, method, *args):
        state = args[0] if args and isinstance(args[0], _RunState) else None
        if state is None or not state.run:
            return super()._in_savepoint(method, *args)

        def page_then_progress(*page_args):
            method(*page_args)
            self._sage_page_progress(state)

        return super()._in_savepoint(page_then_progress, *args)

    def _sage_page_progress(self, state):
        progress = getattr(state, "progress", None)
        if progress is None:
            progress = state.progress = _Progress()
        progress.done += 1
        envelope = getattr(getattr(state.client, "client", None), "last_page", None)
        if envelope is not progress.envelope and isinstance(envelope, dict):
            progress.envelope = envelope
            if envelope.get("page") in (1, None):
                try:
                    per_page = int(envelope.get("items_per_page") or 0)
                    pages = -(-int(envelope.get("total") or 0) // per_page) if per_page else 1
                except (TypeError, ValueError):
                    pages = 1
                progress.expected += max(pages, 1)
        progress.expected = max(progress.expected, progress.done)
        values = {key: value for key, value in state.counts.items() if key in state.run._fields}
        values.update(pages_done=progress.done, pages_expected=progress.expected)
        # the pace so far, since the run started (its set-up included), for the pages left
        now = fields.Datetime.now()
        elapsed = max((now - state.started).total_seconds(), 0.0)
        values["estimated_end"] = now + timedelta(seconds=elapsed / progress.done * (progress.expected - progress.done))
        state.run.write(values)
        self.env["ir.cron"]._notify_progress(done=progress.done, remaining=progress.expected - progress.done)

    def _sage_progress_over(self, run):
        """The run is over: nothing remains for the cron (see the module's docstring)."""
        if run:
            self.env["ir.cron"]._notify_progress(done=run.pages_done, remaining=0)
