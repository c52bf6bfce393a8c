"""Fault injection rules and the request log behind ``/_sandbox/faults`` and ``/_sandbox/requests``."""

import threading
from collections import Counter, deque
from dataclasses import dataclass

FAULT_STATUSES = (429, 500, 502, 503)
LOG_SIZE = 1000


@dataclass
class FaultRule:
    """One fault: which calls it matches and what happens to them.

    ``after`` lets the first N matching calls through untouched (e.g. "fail from page 2 on").
    ``count`` limits the rule to the next N matching calls; ``ratio`` hits a deterministic share
    of matching calls (the k-th call is hit when ``floor(k * ratio)`` grows). Without either, every
    matching call is hit until the rules are cleared.
    """

    status: int = None
    retry_after: float = None
    delay: float = 0.0
    drop: bool = False
    count: int = None
    after: int = 0
    ratio: float = None
    path: str = None
    method: str = None
    seen: int = 0

    @classmethod
    def from_json(cls, spec):
        """Validate a JSON spec; raises ``ValueError``/``TypeError`` with a readable message."""
        if not isinstance(spec, dict):
            raise TypeError("fault spec must be a JSON object")
        unknown = set(spec) - {"status", "retry_after", "delay", "drop", "count", "after", "ratio", "path", "method"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        rule = cls(**spec)
        if rule.status is not None and rule.status not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {FAULT_STATUSES}")
        if rule.status is None and not rule.drop and not rule.delay:
            raise ValueError("a fault needs status, drop or delay")
        if rule.ratio is not None and not 0 <= float(rule.ratio) <= 1:
            raise ValueError("ratio must be between 0 and 1")
        if rule.count is not None and int(rule.count) < 1:
            raise ValueError("count must be at least 1")
        if int(rule.after) < 0:
            raise ValueError("after must not be negative")
        if rule.method:
            rule.method = rule.method.upper()
        return rule

    def matches(self, method, path):
        """True when the rule applies to this call (before count/ratio are considered)."""
        return (not self.path or path.startswith(self.path)) and (not self.method or self.method == method)

    def fires(self):
        """Advance the rule's counters for one matching call and say whether it is hit."""
        self.seen += 1
        if self.seen <= int(self.after):
            return False
        if self.ratio is not None:
            return int(self.seen * self.ratio) > int((self.seen - 1) * self.ratio)
        return True

    def as_json(self):
        """Current rule state for ``GET /_sandbox/faults``."""
        return {k: getattr(self, k) for k in ("status", "retry_after", "delay", "drop", "count", "after", "ratio",
                                              "path", "method", "seen")}


class FaultInjector:
    """Ordered list of fault rules; the first rule that fires decides the call's fate."""

    def __init__(self):
        self.rules = []
        self.lock = threading.Lock()

    def add(self, spec):
        """Add a rule from its JSON spec and return it."""
        rule = FaultRule.from_json(spec)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self):
        """Remove every rule."""
        with self.lock:
            self.rules = []

    def pick(self, method, path):
        """Return the rule hitting this call, or ``None``; exhausted ``count`` rules are removed."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path) and rule.fires():
                    if rule.count is not None:
                        rule.count -= 1
                        if rule.count <= 0:
                            self.rules.remove(rule)
                    return rule
        return None

    def snapshot(self):
        """JSON view of the active rules."""
        with self.lock:
            return [rule.as_json() for rule in self.rules]


class RequestLog:
    """Counts of calls per ``METHOD path`` and the last 1000 calls."""

    def __init__(self):
        self.lock = threading.Lock()
        self.clear()

    def clear(self):
        """Forget all recorded calls."""
        with self.lock:
            self.total = 0
            self.by_path = Counter()
            self.entries = deque(maxlen=LOG_SIZE)

    def record(self, method, path, query, status):
        """Record one call; ``status`` is ``None`` for dropped connections."""
        with self.lock:
            self.total += 1
            self.by_path[f"{method} {path}"] += 1
            self.entries.append({"method": method, "path": path, "query": query, "status": status})

    def snapshot(self):
        """JSON view for ``GET /_sandbox/requests``."""
        with self.lock:
            return {"total": self.total, "by_path": dict(self.by_path), "log": list(self.entries)}
