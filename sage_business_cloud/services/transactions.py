"""Transaction helpers written once: "commit unless testing", and retry on serialization failure.

Plain Python over a database cursor (no ORM): the sync and the push commit their units of work
outside tests, and the short bookkeeping transactions retry when another worker's commit made
their snapshot stale.
"""

import threading

import psycopg2.errors

ATTEMPTS = 3


def auto_commit():
    """True outside Odoo's test threads: code that commits may commit."""
    return not getattr(threading.current_thread(), "testing", False)


def commit(cr):
    """Commit ``cr`` unless testing (a finished unit of work is kept even if a later one fails)."""
    if auto_commit():
        cr.commit()  # pylint: disable=invalid-commit


def retry_serialization(cr, work, attempts=ATTEMPTS):
    """Run ``work()`` in ``cr``; on a serialization failure roll back and run it again.

    Returns what ``work`` returns; the last failure is raised.
    """
    for attempt in range(attempts):
        try:
            return work()
        except psycopg2.errors.SerializationFailure:
            cr.rollback()
            if attempt == attempts - 1:
                raise
    return None
