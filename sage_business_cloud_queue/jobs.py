"""What the sync and push jobs share: their channel, identity keys and retry pattern.

Jobs of one connection (a sync) or one binding (a push) carry the same identity key, so
queue_job never holds two of them waiting at once; the sync's advisory lock and the push's row
lock still guard the rare overlap of a running job and a new one.
"""

from odoo.addons.queue_job.utils import must_run_without_delay
from odoo.addons.sage_business_cloud.models.sage_binding_push import RETRY_MINUTES

#: Channel of every Sage job (declared in data/queue_job_data.xml; capacity in the server config).
CHANNEL = "root.sage"
#: queue_job retry pattern ({n-th try: seconds}) of a push Sage did not answer: the push cron's
#: backoff, 1, 2, 5, 10, 30 then 60 minutes, retried without end like the cron's.
RETRY_PATTERN = {attempt: minutes * 60 for attempt, minutes in enumerate(RETRY_MINUTES, start=1)}
#: Seconds before a job tries again when another worker holds its company or its partner.
BUSY_RETRY_SECONDS = 30
#: A sync run lost to a concurrent update of a shared partner is tried again this soon, at most
#: this many times (then the job fails and the next cron run carries on, as without jobs).
CONFLICT_RETRY_SECONDS = 5
SYNC_RETRIES = 5


def sync_key(connection):
    """Identity key of the sync jobs of ``connection``."""
    return f"sage_business_cloud_queue.sync.{connection.id}"


def push_key(binding):
    """Identity key of the push jobs of ``binding``."""
    return f"sage_business_cloud_queue.push.{binding.id}"


def runs_at_once(env):
    """queue_job's own switches for "do not delay" (``QUEUE_JOB__NO_DELAY=1`` in the environment,
    ``queue_job__no_delay`` in the context): then the core addon's own way applies unchanged."""
    return must_run_without_delay(env)
