"""Small helpers to read Sage's JSON: links, timestamps, nested references. No ORM here."""

from datetime import datetime, timezone


class MappingError(ValueError):
    """A Sage record this addon cannot turn into Odoo values; the reason is user-facing.

    The sync records it as an error of the run (with the Sage id) and carries on with the other
    records; ``sage_mapping`` re-exports it.
    """


def alternate_link(record):
    """The web-app address Sage gives in ``links`` (``rel="alternate"``), or False."""
    for link in (record or {}).get("links") or []:
        if link.get("rel") == "alternate" and link.get("href"):
            return link["href"]
    return False


def parse_datetime(value):
    """Sage ISO 8601 timestamp ('2024-05-01T10:00:00Z', or with an offset) -> naive UTC, or False.

    Raises :class:`MappingError` (a ``ValueError``) when ``value`` is not such a timestamp.
    """
    if not value:
        return False
    if not isinstance(value, str):
        raise MappingError("updated_at is not a timestamp: %r" % (value,))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MappingError("updated_at is not a timestamp: %r" % (value,)) from None
    if parsed.tzinfo:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def ref_id(value):
    """Id of a nested Sage reference such as ``{"id": "GBP", "displayed_as": ...}``, or None."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None
