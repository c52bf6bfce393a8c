"""List endpoints: filters, stable ordering, paging envelope and ``attributes`` selection.

Filtered id lists are cached per (business, resource, filter set) and invalidated by the store's
change counter, so walking 250 pages of a 50,000-record result costs one scan plus O(page) per page.
"""

from collections import OrderedDict
from urllib.parse import urlencode

from .clock import parse_timestamp
from .errors import invalid
from .artefacts import ARTEFACT_RESOURCES

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
BASE_ATTRIBUTES = ("id", "displayed_as", "$path")
FILTER_PARAMS = ("updated_or_created_since", "deleted_since", "contact_id", "status_id", "from_date", "to_date",
                 "search", "contact_type_id", "email", "address_id", "sort")
SORT_FIELDS = {"created_at": "_created", "updated_at": "_updated", "date": "date", "due_date": "due_date",
               "expiry_date": "expiry_date"}
SEARCHED = ("invoice_number", "credit_note_number", "quote_number", "estimate_number", "vendor_reference", "reference",
            "contact_name")
CACHE_SIZE = 64


def _int_param(query, name, default):
    raw = query.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer", name) from None


def _since(query, name):
    try:
        return parse_timestamp(query[name])
    except ValueError:
        raise invalid(f"{name} is not a valid date or date-time", name) from None


def _predicates(store, biz, resource, query):
    """Yield ``record -> bool`` tests for the filters present in ``query``."""
    if query.get("updated_or_created_since"):
        since = _since(query, "updated_or_created_since")
        yield lambda r: r["_updated"] >= since or r["_created"] >= since
    if query.get("contact_id"):
        contact_id = query["contact_id"]
        yield lambda r: r.get("_contact") == contact_id
    if query.get("address_id") and resource == "contact_persons":
        address_id = query["address_id"]
        yield lambda r: r["_address"] == address_id
    if query.get("contact_type_id") and resource == "contacts":
        type_id = query["contact_type_id"].upper()
        yield lambda r: r["_type"] == type_id
    if query.get("email") and resource == "contacts":
        email = query["email"].strip().casefold()
        owners = {p["_contact"] for p in biz.collections["contact_persons"].items.values()
                  if (p.get("email") or "").casefold() == email}
        yield lambda r: r["id"] in owners
    if query.get("search"):
        needle = query["search"].casefold()
        if resource == "contacts":
            yield lambda r: needle in r["name"].casefold() or needle in (r.get("reference") or "").casefold()
        elif resource in ARTEFACT_RESOURCES:
            yield lambda r: any(needle in (r.get(f) or "").casefold() for f in SEARCHED)
    if resource in ARTEFACT_RESOURCES:
        if query.get("status_id"):
            statuses = {s.strip().upper() for s in query["status_id"].split(",")}
            yield lambda r: r["_status"] in statuses
        if query.get("from_date"):
            start = query["from_date"]
            yield lambda r: r["date"] >= start
        if query.get("to_date"):
            end = query["to_date"]
            yield lambda r: r["date"] <= end


def _matching_ids(store, biz, resource, query):
    coll = biz.collections[resource]
    if query.get("deleted_since"):
        since = _since(query, "deleted_since")
        candidates = [r for r in coll.deleted.values() if r["_deleted"] > since]
    else:
        candidates = coll.items.values()
    tests = list(_predicates(store, biz, resource, query))
    matched = [r for r in candidates if all(test(r) for test in tests)] if tests else list(candidates)
    sort = query.get("sort")
    if sort and resource in ARTEFACT_RESOURCES:
        field, _, direction = sort.partition(":")
        if field not in SORT_FIELDS:
            raise invalid("sort field is not supported", "sort")
        key = SORT_FIELDS[field]
        matched.sort(key=lambda r: (r.get(key) or "", r["_seq"]), reverse=direction.lower() == "desc")
    return [r["id"] for r in matched]


class Lister:
    """Answers list requests for one store, caching filtered id lists."""

    def __init__(self, store):
        self.store = store
        self._cache = OrderedDict()

    def ids(self, biz, resource, query):
        """Ids matching the filters in ``query`` (stable creation order unless ``sort`` is given)."""
        if not any(query.get(p) for p in FILTER_PARAMS):
            return None  # unfiltered: page straight from the live collection
        key = (biz.id, resource, tuple(sorted((p, query[p]) for p in FILTER_PARAMS if query.get(p))))
        hit = self._cache.get(key)
        if hit and hit[0] == self.store.version:
            self._cache.move_to_end(key)
            return hit[1]
        ids = _matching_ids(self.store, biz, resource, query)
        self._cache[key] = (self.store.version, ids)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return ids

    def envelope(self, biz, resource, query):
        """Build the ``$total``/``$page``/``$next``/``$back``/``$itemsPerPage``/``$items`` answer."""
        per_page = _int_param(query, "items_per_page", DEFAULT_PAGE_SIZE)
        if per_page < 1:
            raise invalid("items_per_page must be at least 1", "items_per_page")
        per_page = min(per_page, MAX_PAGE_SIZE)
        page = max(1, _int_param(query, "page", 1))
        ids = self.ids(biz, resource, query)
        coll = biz.collections[resource]
        total = len(coll.items) if ids is None else len(ids)
        last_page = max(1, -(-total // per_page))
        page = min(page, last_page)
        start = (page - 1) * per_page
        if ids is None:
            records = list(coll.items.values())[start:start + per_page]
        else:
            records = [coll.items.get(i) or coll.deleted[i] for i in ids[start:start + per_page]]
        fields = self._attributes(query)
        if resource == "contacts" and fields != "all" and (query.get("show_balance") or "").lower() == "true":
            fields = [*fields, "balance"]
        items = [self._select(self.store.render(biz, resource, rec), fields) for rec in records]

        def link(target):
            params = {k: v for k, v in query.items() if k not in ("page", "items_per_page")}
            params.update(page=target, items_per_page=per_page)
            return f"/{resource}?{urlencode(params)}"

        return {"$total": total, "$page": page, "$next": link(page + 1) if page < last_page else None,
                "$back": link(page - 1) if page > 1 else None, "$itemsPerPage": per_page, "$items": items}

    @staticmethod
    def _attributes(query):
        raw = (query.get("attributes") or "").strip()
        if raw.lower() == "all":
            return "all"
        return [a.strip() for a in raw.split(",") if a.strip()]

    @staticmethod
    def _select(full, fields):
        if fields == "all":
            return full
        out = {k: full[k] for k in BASE_ATTRIBUTES}
        out.update({k: full[k] for k in fields if k in full})
        return out
