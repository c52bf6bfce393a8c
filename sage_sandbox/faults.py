"""Fault injection rules and the request log behind ``/_sandbox/faults`` and ``/_sandbox/requests``."""

import copy
import threading
from collections import Counter, deque
from dataclasses import dataclass

FAULT_STATUSES = (429, 500, 502, 503)
LOG_SIZE = 1000


SPEC_FIELDS = ("status", "retry_after", "delay", "drop", "lose_answer", "malformed", "mutate", "remove", "items",
               "item_ratio", "ids", "count", "after", "ratio", "path", "method", "query")


@dataclass
class FaultRule:
    """One fault: which calls it matches and what happens to them.

    What happens (at least one): ``status`` (an error answer instead of the work), ``drop`` (the
    connection is closed before the work), ``delay`` (seconds to wait first; alone, the call is then
    answered normally), ``lose_answer`` (the work is done, then the connection is closed without an
    answer), ``malformed`` (the work is done, the answer is a 200 cut short: not valid JSON),
    ``mutate`` / ``remove`` (the work is done and the JSON answer is altered, not the stored data).

    ``mutate`` maps field paths to new values and ``remove`` lists field paths to delete; a path is
    dotted (``status.id``, ``contact_types.0.id``). They apply to every item of a listing's
    ``$items`` (or to the object answered by a single-record call), narrowed by ``items`` (positions
    in the page, negative from the end), ``item_ratio`` (a deterministic share of the page's items,
    same rule as ``ratio``) and ``ids`` (record ids).

    Which calls: ``path`` (prefix), ``method``, ``query`` (parameters that must all be equal, e.g.
    ``{"page": "2"}``). ``after`` lets the first N matching calls through untouched (e.g. "fail
    from page 2 on"). ``count`` limits the rule to the next N matching calls; ``ratio`` hits a
    deterministic share of matching calls (the k-th call is hit when ``floor(k * ratio)`` grows).
    Without either, every matching call is hit until the rules are cleared.
    """

    status: int = None
    retry_after: float = None
    delay: float = 0.0
    drop: bool = False
    lose_answer: bool = False
    malformed: bool = False
    mutate: dict = None
    remove: list = None
    items: list = None
    item_ratio: float = None
    ids: list = None
    count: int = None
    after: int = 0
    ratio: float = None
    path: str = None
    method: str = None
    query: dict = None
    seen: int = 0

    @classmethod
    def from_json(cls, spec):
        """Validate a JSON spec; raises ``ValueError``/``TypeError`` with a readable message."""
        if not isinstance(spec, dict):
            raise TypeError("fault spec must be a JSON object")
        unknown = set(spec) - set(SPEC_FIELDS)
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        rule = cls(**spec)
        if rule.status is not None and rule.status not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {FAULT_STATUSES}")
        if rule.status is None and not (rule.drop or rule.delay or rule.lose_answer or rule.malformed
                                        or rule.mutate or rule.remove):
            raise ValueError("a fault needs status, drop, delay, lose_answer, malformed, mutate or remove")
        if sum(bool(x) for x in (rule.status is not None, rule.drop, rule.lose_answer, rule.malformed)) > 1:
            raise ValueError("status, drop, lose_answer and malformed exclude each other")
        for name in ("ratio", "item_ratio"):
            value = getattr(rule, name)
            if value is not None and not 0 <= float(value) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if rule.count is not None and int(rule.count) < 1:
            raise ValueError("count must be at least 1")
        if int(rule.after) < 0:
            raise ValueError("after must not be negative")
        if rule.mutate is not None and not isinstance(rule.mutate, dict):
            raise TypeError("mutate must be an object of field path -> value")
        for name in ("remove", "items", "ids"):
            if getattr(rule, name) is not None and not isinstance(getattr(rule, name), list):
                raise TypeError(f"{name} must be a list")
        if rule.items is not None and not all(isinstance(i, int) and not isinstance(i, bool) for i in rule.items):
            raise TypeError("items must be a list of integer positions")
        if rule.query is not None:
            if not isinstance(rule.query, dict):
                raise TypeError("query must be an object of parameter -> value")
            rule.query = {str(k): str(v) for k, v in rule.query.items()}
        if rule.method:
            rule.method = rule.method.upper()
        return rule

    def matches(self, method, path, query=None):
        """True when the rule applies to this call (before count/ratio are considered)."""
        if self.path and not path.startswith(self.path):
            return False
        if self.method and self.method != method:
            return False
        return not self.query or all((query or {}).get(k) == v for k, v in self.query.items())

    def fires(self):
        """Advance the rule's counters for one matching call and say whether it is hit."""
        self.seen += 1
        if self.seen <= int(self.after):
            return False
        if self.ratio is not None:
            return int(self.seen * self.ratio) > int((self.seen - 1) * self.ratio)
        return True

    @property
    def alters(self):
        """True when the rule rewrites the JSON answer (``mutate`` / ``remove``)."""
        return bool(self.mutate or self.remove)

    def alter(self, payload):
        """Apply ``mutate``/``remove`` to a decoded answer in place and return it."""
        if isinstance(payload, dict) and isinstance(payload.get("$items"), list):
            targets = self._chosen(payload["$items"])
        elif isinstance(payload, dict):
            targets = [payload] if self.ids is None or payload.get("id") in self.ids else []
        else:
            targets = []
        for record in targets:
            for field_path, value in (self.mutate or {}).items():
                _set_path(record, field_path, copy.deepcopy(value))
            for field_path in self.remove or ():
                _remove_path(record, field_path)
        return payload

    def _chosen(self, items):
        chosen = list(items)
        if self.items is not None:
            size = len(items)
            chosen = [items[i] for i in sorted({i % size for i in self.items if -size <= i < size})]
        if self.ids is not None:
            chosen = [item for item in chosen if isinstance(item, dict) and item.get("id") in self.ids]
        if self.item_ratio is not None:
            ratio = float(self.item_ratio)
            chosen = [item for k, item in enumerate(chosen, 1) if int(k * ratio) > int((k - 1) * ratio)]
        return [item for item in chosen if isinstance(item, dict)]

    def as_json(self):
        """Current rule state for ``GET /_sandbox/faults``."""
        return {k: getattr(self, k) for k in (*SPEC_FIELDS, "seen")}


def _walk(record, field_path):
    """Return (container, last key) for a dotted path, or (None, None) when a step is missing."""
    node, keys = record, field_path.split(".")
    for key in keys[:-1]:
        if isinstance(node, list) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, dict) and isinstance(node.get(key), (dict, list)):
            node = node[key]
        else:
            return None, None
    return node, keys[-1]


def _set_path(record, field_path, value):
    node, key = _walk(record, field_path)
    if isinstance(node, dict):
        node[key] = value
    elif isinstance(node, list) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
        node[int(key)] = value


def _remove_path(record, field_path):
    node, key = _walk(record, field_path)
    if isinstance(node, dict):
        node.pop(key, None)
    elif isinstance(node, list) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
        del node[int(key)]


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

    def pick(self, method, path, query=None):
        """Return the rule hitting this call, or ``None``; exhausted ``count`` rules are removed."""
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path, query) and rule.fires():
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

    def record(self, method, path, query, status, answer_lost=False):
        """Record one call; ``status`` is ``None`` for dropped connections.

        ``answer_lost`` marks a call that was carried out (``status`` is what the sandbox would have
        answered) but whose answer never reached the client (fault ``lose_answer``).
        """
        entry = {"method": method, "path": path, "query": query, "status": status}
        if answer_lost:
            entry["answer_lost"] = True
        with self.lock:
            self.total += 1
            self.by_path[f"{method} {path}"] += 1
            self.entries.append(entry)

    def snapshot(self):
        """JSON view for ``GET /_sandbox/requests``."""
        with self.lock:
            return {"total": self.total, "by_path": dict(self.by_path), "log": list(self.entries)}
