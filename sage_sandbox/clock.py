"""A wall clock that can be shifted forward, shared by every sandbox component."""

import time
from datetime import UTC, datetime


class Clock:
    """Current time in epoch seconds plus an adjustable offset (see ``/_sandbox/time_shift``)."""

    def __init__(self, offset=0.0):
        self.offset = float(offset)

    def now(self):
        """Return the shifted current time as epoch seconds."""
        return time.time() + self.offset

    def today(self):
        """The shifted current date as ``YYYY-MM-DD`` (UTC)."""
        return iso_date(self.now())

    def shift(self, seconds):
        """Move the sandbox clock by ``seconds`` (may be negative)."""
        self.offset += float(seconds)


def iso(ts):
    """Format epoch seconds as an ISO-8601 UTC timestamp with second precision (``...Z``)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def iso_date(ts):
    """Format epoch seconds as ``YYYY-MM-DD`` (UTC)."""
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def parse_timestamp(value):
    """Parse a filter value (``YYYY-MM-DD`` or ISO date-time, ``Z`` or offset) to epoch seconds.

    Naive date-times are taken as UTC. Raises ``ValueError`` on bad input.
    """
    text = value.strip().replace(" ", "+")  # '+' in an unencoded query string arrives as a space
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
