"""In-memory data of the sandbox: businesses, their records, tombstones and indexes.

Records are plain dicts holding the writable API fields plus private keys that start with
``_`` (sequence number, timestamps as epoch floats, links to related records). The API shape
is produced by :mod:`sage_sandbox.render`. Every mutation goes through this module so that
indexes, ``updated_at`` stamps and the change counter stay consistent.
"""

import os
import threading
import uuid
from datetime import date, timedelta

from . import render
from .artefacts import (
    ALLOCATION_TYPES,
    ARTEFACT_RESOURCES,
    CREDIT_NOTE_RESOURCES,
    INVOICE_RESOURCES,
    KINDS,
    QUOTE_WRITABLE_STATUSES,
)
from .clock import Clock
from .errors import ApiError, invalid, not_found
from .lookups import (
    ADDRESS_TYPES,
    BASE_CURRENCY,
    CONTACT_PERSON_TYPES,
    CONTACT_TYPES,
    COUNTRIES,
    CURRENCIES,
    TAX_RATES,
)

RESOURCES = ("contacts", "contact_persons", "addresses", *ARTEFACT_RESOURCES, "contact_payments",
             "contact_allocations")
STATE_VERSION = 1
# child resource -> (contact slot holding the main record, flag on the child)
MAIN_SLOTS = {"addresses": ("_main_address", "is_main_address"), "contact_persons": ("_main_person", "is_main_contact")}

# Writable scalar fields: name -> (python types, max length or None). Taken from the Swagger
# post/put definitions and the read definitions' maxLength.
NUMBER = (int, float)
CONTACT_FIELDS = {
    "name": (str, 100), "reference": (str, 10), "tax_number": (str, 255), "notes": (str, 4000),
    "locale": (str, 10), "credit_limit": (NUMBER, None), "credit_days": (int, None),
    "credit_terms": (str, None), "credit_terms_and_conditions": (str, 2000), "source_guid": (str, 255),
    "aux_reference": (str, 4), "registered_number": (str, 25), "tax_calculation": (str, None),
    "auxiliary_account": (str, 25), "destination_vat_blocking": (bool, None),
}
CREDIT_TERMS = ("month_end_invoice", "date_from_invoice", "immediate_invoice", "month_end_payment",
                "date_from_payment", "immediate_payment")
ADDRESS_FIELDS = {
    "address_line_1": (str, 50), "address_line_2": (str, 50), "city": (str, 50), "postal_code": (str, 10),
    "region": (str, 50), "name": (str, 50), "is_main_address": (bool, None),
}
PERSON_FIELDS = {
    "name": (str, 50), "job_title": (str, 50), "telephone": (str, 50), "mobile": (str, 50),
    "email": (str, 100), "fax": (str, 50), "is_main_contact": (bool, None), "is_preferred_contact": (bool, None),
}
INVOICE_FIELDS = {"reference": (str, 25), "notes": (str, 2000), "vendor_reference": (str, 31)}
LINE_FIELDS = {"description": (str, None), "ledger_account_id": (str, None), "quantity": (NUMBER, None),
               "unit_price": (NUMBER, None), "tax_amount": (NUMBER, None), "discount_amount": (NUMBER, None)}


def new_id():
    """Return a fresh 32-character lowercase hex id like Sage's GUIDs."""
    return uuid.uuid4().hex


def money(value):
    """Round an amount to pennies (amounts are JSON numbers, as typed in the Swagger file)."""
    return round(float(value) + 0.0, 2)


def _check_date(value, field):
    if not isinstance(value, str) or len(value) != 10:
        raise invalid(f"{field} must be a date (YYYY-MM-DD)", field)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise invalid(f"{field} must be a date (YYYY-MM-DD)", field) from None
    return value


def require(data, fields):
    """422 ``<field> can't be blank`` for the first of ``fields`` missing or empty in ``data``."""
    for field in fields:
        if not data.get(field):
            raise invalid(f"{field} can't be blank", field)


def live(biz, resource, record_id, field):
    """The live internal record ``record_id`` of ``resource``, or 422 ``<field> is invalid``."""
    rec = biz.collections[resource].items.get(record_id or "")
    if rec is None:
        raise invalid(f"{field} is invalid", field)
    return rec


def assign_fields(record, data, spec):
    """Copy the writable scalar ``spec`` fields present in ``data`` into ``record`` after validation."""
    for field, (types, max_len) in spec.items():
        if field not in data:
            continue
        value = data[field]
        if value is not None:
            if not isinstance(value, types) or (types is NUMBER and isinstance(value, bool)):
                raise invalid(f"{field} has an invalid type", field)
            if max_len and len(value) > max_len:
                raise invalid(f"{field} is too long (maximum is {max_len} characters)", field)
        record[field] = value


class Collection:
    """Live records of one resource in creation order, plus deleted ones (tombstones)."""

    def __init__(self):
        self.items = {}
        self.deleted = {}


class Business:
    """One Sage business owned by the sandbox user."""

    def __init__(self, business_id, name, created):
        self.id = business_id
        self.name = name
        self.created = created
        self.collections = {name_: Collection() for name_ in RESOURCES}
        self.next_invoice_number = 1
        self.next_numbers = {}  # resource -> next number of credit notes, quotes, estimates
        self.idempotency = {}
        # derived indexes, rebuilt by Store.reindex()
        self.references = {}
        self.transactions = {}
        self.persons_by_contact = {}

    def get(self, resource, record_id, include_deleted=False):
        """Return the internal record or raise 404."""
        coll = self.collections[resource]
        rec = coll.items.get(record_id)
        if rec is None and include_deleted:
            rec = coll.deleted.get(record_id)
        if rec is None:
            raise not_found(render.LABELS[resource])
        return rec

    def find(self, resource, record_id):
        """Return a live or deleted record, or ``None``."""
        coll = self.collections[resource]
        return coll.items.get(record_id) or coll.deleted.get(record_id)


class Store:
    """All sandbox data, guarded by one re-entrant lock."""

    def __init__(self, clock=None):
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.base_url = ""
        self.version = 0
        self.on_change = None
        self.user_id = "5a4f0c2a1b7e4d6f8c9e0a1b2c3d4e5f"
        self.businesses = {}
        self.seq = 0
        self.next_legacy = 1000
        self.legacy_index = {}
        self.nested_put = "merge"
        self.balance_changes_contact = "no"

    # ------------------------------------------------------------------ bookkeeping
    def touch(self):
        """Record that data changed (invalidates list caches, schedules a state save)."""
        self.version += 1
        if self.on_change:
            self.on_change()

    def balance_moved(self, biz, contact_id, ts=None):
        """A document or payment of the contact changed: with ``balance_changes_contact="yes"``
        the contact's own ``updated_at`` moves too (Sage does not say whether it does)."""
        if self.balance_changes_contact == "yes":
            self._touch_parent(biz, contact_id, ts)

    def next_seq(self):
        """Return the next creation sequence number (defines list order)."""
        self.seq += 1
        return self.seq

    def stamp(self, record, ts=None, created=False):
        """Set ``updated_at`` (and ``created_at`` when ``created``) of an internal record."""
        ts = self.clock.now() if ts is None else ts
        record["_updated"] = ts
        if created:
            record["_created"] = ts
            record["_seq"] = self.next_seq()

    def reset(self, businesses=1):
        """Drop all data and create ``businesses`` empty businesses (the first is the lead one)."""
        with self.lock:
            self.businesses = {}
            self.seq = 0
            self.next_legacy = 1000
            self.legacy_index = {}
            now = self.clock.now()
            for index in range(max(1, businesses)):
                bid = uuid.uuid5(uuid.NAMESPACE_URL, f"sage-sandbox-business-{index}").hex
                name = "Sandbox Trading Ltd" if index == 0 else f"Sandbox Subsidiary {index} Ltd"
                self.businesses[bid] = Business(bid, name, now)
            self.touch()

    def business_ids(self):
        """Ids of the user's businesses, lead business first."""
        with self.lock:
            return list(self.businesses)

    def business(self, business_id=None):
        """Return a business by id (lead business when ``None``), raising 403 when unknown."""
        if business_id is None:
            return next(iter(self.businesses.values()))
        biz = self.businesses.get(business_id)
        if biz is None:
            raise ApiError(403, "AuthorizationFailure", "You do not have access to this business", "X-Business")
        return biz

    def reindex(self):
        """Rebuild the derived indexes of every business (after seeding or loading state)."""
        self.legacy_index = {}
        for biz in self.businesses.values():
            biz.references, biz.transactions, biz.persons_by_contact = {}, {}, {}
            for coll_name in ("contacts",):
                for rec in biz.collections[coll_name].items.values():
                    if rec.get("reference"):
                        biz.references[rec["reference"].upper()] = rec["id"]
                    self.legacy_index[rec["_legacy"]] = (biz.id, rec["id"])
            for rec in biz.collections["contact_persons"].items.values():
                biz.persons_by_contact.setdefault(rec["_contact"], []).append(rec["id"])
            for resource in ARTEFACT_RESOURCES + ("contact_payments", "contact_allocations"):
                for rec in biz.collections[resource].items.values():
                    biz.transactions.setdefault(rec["_contact"], []).append((resource, rec["id"]))

    # ------------------------------------------------------------------ read helpers
    def render(self, biz, resource, rec):
        """Return the full API representation of an internal record."""
        return render.RENDERERS[resource](self, biz, rec)

    def contacts(self, business_id=None):
        """All live contacts of a business in API shape (creation order)."""
        with self.lock:
            biz = self.business(business_id)
            return [self.render(biz, "contacts", rec) for rec in biz.collections["contacts"].items.values()]

    def records(self, resource, business_id=None):
        """All live records of ``resource`` in API shape (creation order)."""
        with self.lock:
            biz = self.business(business_id)
            return [self.render(biz, resource, rec) for rec in biz.collections[resource].items.values()]

    def find_contacts(self, business_id=None, name=None, reference=None, email=None):
        """Contacts whose name / reference / main-person email equal the given values (case-insensitive)."""
        wanted = {k: v.casefold() for k, v in (("name", name), ("reference", reference), ("email", email)) if v}
        return [c for c in self.contacts(business_id)
                if all((c.get(k) or "").casefold() == v for k, v in wanted.items())]

    def get(self, resource, record_id, business_id=None):
        """One live record in API shape (raises :class:`ApiError` 404 when unknown)."""
        with self.lock:
            biz = self.business(business_id)
            return self.render(biz, resource, biz.get(resource, record_id))

    def has_transactions(self, biz, contact_id):
        """True when invoices or payments refer to the contact (it cannot be deleted then)."""
        return bool(biz.transactions.get(contact_id))

    def contact_balance(self, biz, contact_id):
        """What the contact owes in GBP: posted invoices outstanding, less credit notes not yet
        allocated, less payments on account (the part of payments allocated to no invoice)."""
        total = 0.0
        for resource, rid in biz.transactions.get(contact_id, ()):
            rec = biz.collections[resource].items.get(rid)
            if rec is None:
                continue
            if resource == "contact_payments":
                unallocated = rec["total_amount"] - sum(a["amount"] for a in rec["_allocations"])
                total -= unallocated / self.rate(rec)
            elif resource in INVOICE_RESOURCES + CREDIT_NOTE_RESOURCES and rec["_status"] not in ("DRAFT", "VOID"):
                sign = -1 if resource in CREDIT_NOTE_RESOURCES else 1
                total += sign * rec["outstanding_amount"] / self.rate(rec)
        return money(total)

    # ------------------------------------------------------------------ idempotency
    def _idempotent(self, biz, resource, data, create):
        key = data.get("idempotency_id")
        if key:
            existing = biz.idempotency.get(f"{resource}:{key}")
            if existing and biz.find(resource, existing):
                return biz.find(resource, existing)
        rec = create()
        if key:
            biz.idempotency[f"{resource}:{key}"] = rec["id"]
        return rec

    # ------------------------------------------------------------------ contacts
    def create_contact(self, biz, data, record_id=None, ts=None):
        """Create a contact (with nested addresses / main person) from a ``postContacts`` body."""
        return self._idempotent(biz, "contacts", data, lambda: self._create_contact(biz, data, record_id, ts))

    def _create_contact(self, biz, data, record_id, ts):
        if not data.get("name"):
            raise invalid("name can't be blank", "name")
        type_ids = data.get("contact_type_ids")
        if not type_ids:
            raise invalid("contact_type_ids can't be blank", "contact_type_ids")
        rec = {"id": record_id or new_id(), "is_active": True, "bank_account_details": {}, "tax_treatment": {},
               "_currency": "GBP", "_main_address": None, "_delivery_address": None, "_main_person": None}
        self._apply_contact(biz, rec, data, creating=True)
        rec["_legacy"] = self.next_legacy
        self.next_legacy += 1
        self.stamp(rec, ts, created=True)
        biz.collections["contacts"].items[rec["id"]] = rec
        self.legacy_index[rec["_legacy"]] = (biz.id, rec["id"])
        if rec.get("reference"):
            biz.references[rec["reference"].upper()] = rec["id"]
        self._apply_nested(biz, rec, data, ts)
        self.touch()
        return rec

    def _apply_contact(self, biz, rec, data, creating=False):
        assign_fields(rec, data, CONTACT_FIELDS)
        if not creating and "name" in data and not data["name"]:
            raise invalid("name can't be blank", "name")
        if rec.get("credit_terms") not in (None,) + CREDIT_TERMS:
            raise invalid("credit_terms is not included in the list", "credit_terms")
        ref = data.get("reference")
        if ref:
            owner = biz.references.get(ref.upper())
            if owner and owner != rec["id"]:
                raise invalid("reference has already been taken", "reference")
        if "contact_type_ids" in data:
            types = data["contact_type_ids"]
            if not isinstance(types, list) or len(types) != 1 or types[0] not in CONTACT_TYPES:
                raise invalid("contact_type_ids must hold exactly one of CUSTOMER or VENDOR", "contact_type_ids")
            rec["_type"] = types[0]
        if data.get("currency_id"):
            if data["currency_id"] not in CURRENCIES:
                raise invalid("currency_id is invalid", "currency_id")
            rec["_currency"] = data["currency_id"]
        for nested in ("bank_account_details", "tax_treatment"):
            if isinstance(data.get(nested), dict):
                rec[nested] = {**rec.get(nested, {}), **data[nested]}

    def _apply_nested(self, biz, contact, data, ts):
        """Create or update (in place) the contact's main/delivery address and main contact person."""
        email = data.get("email")
        person_data = dict(data.get("main_contact_person") or {})
        if email is not None and "email" not in person_data:
            person_data["email"] = email
        for key, slot, default_type in (("main_address", "_main_address", None),
                                        ("delivery_address", "_delivery_address", "DELIVERY")):
            addr = data.get(key)
            if not isinstance(addr, dict):
                continue
            if contact[slot]:
                existing = biz.get("addresses", contact[slot])
                if self.nested_put == "replace":
                    addr = self._replaced(addr, ADDRESS_FIELDS, ("is_main_address",))
                    if not addr.get("country_id"):
                        existing["_country"] = None
                self._apply_child(biz, "addresses", existing, addr, ts)
            else:
                addr = {"address_type_id": default_type or self._default_address_type(contact), "name": (
                    "Delivery Address" if default_type else "Main Address"), **addr,
                    "is_main_address": key == "main_address"}
                contact[slot] = self.insert_address(biz, contact, addr, ts)["id"]
        if person_data:
            if contact["_main_person"]:
                if self.nested_put == "replace" and isinstance(data.get("main_contact_person"), dict):
                    person_data = self._replaced(person_data, PERSON_FIELDS,
                                                 ("is_main_contact", "is_preferred_contact"))
                self._apply_child(biz, "contact_persons", biz.get("contact_persons", contact["_main_person"]),
                                  person_data, ts)
            else:
                if not contact["_main_address"]:
                    contact["_main_address"] = self.insert_address(biz, contact, {
                        "address_type_id": self._default_address_type(contact), "name": "Main Address",
                        "is_main_address": True}, ts)["id"]
                person_data = {"name": contact.get("name", "")[:50],
                               "contact_person_type_ids": ["ACCOUNTS"], **person_data, "is_main_contact": True}
                contact["_main_person"] = self.insert_person(
                    biz, contact, contact["_main_address"], person_data, ts)["id"]

    @staticmethod
    def _replaced(data, spec, kept):
        """``data`` with every writable field it omits set to ``None`` (``nested_put="replace"``)."""
        return {**{name: None for name in spec if name not in kept}, **data}

    @staticmethod
    def _default_address_type(contact):
        return "SALES" if contact.get("_type") == "CUSTOMER" else "PURCHASING"

    def update_contact(self, biz, contact_id, data):
        """Apply a ``putContacts`` body; nested objects update the existing records in place."""
        rec = biz.get("contacts", contact_id)
        old_ref = rec.get("reference")
        self._apply_contact(biz, rec, data)
        if old_ref != rec.get("reference"):
            biz.references.pop((old_ref or "").upper(), None)
            if rec.get("reference"):
                biz.references[rec["reference"].upper()] = rec["id"]
        self._apply_nested(biz, rec, data, None)
        self.stamp(rec)
        self.touch()
        return rec

    def delete_contact(self, biz, contact_id):
        """Delete a contact and its addresses/persons, unless transactions refer to it (422)."""
        rec = biz.get("contacts", contact_id)
        if self.has_transactions(biz, contact_id):
            raise invalid("Contact cannot be deleted because it has transactions")
        now = self.clock.now()
        for person_id in list(biz.persons_by_contact.get(contact_id, ())):
            self._bury(biz, "contact_persons", person_id, now)
        biz.persons_by_contact.pop(contact_id, None)
        for addr in [a for a in biz.collections["addresses"].items.values() if a["_contact"] == contact_id]:
            self._bury(biz, "addresses", addr["id"], now)
        biz.references.pop((rec.get("reference") or "").upper(), None)
        self._bury(biz, "contacts", contact_id, now)
        self.touch()

    def _bury(self, biz, resource, record_id, ts=None):
        coll = biz.collections[resource]
        rec = coll.items.pop(record_id)
        rec["_deleted"] = self.clock.now() if ts is None else ts
        coll.deleted[record_id] = rec
        return rec

    def _touch_parent(self, biz, contact_id, ts=None):
        """Bump the contact's ``updated_at`` after a change to one of its addresses/persons."""
        parent = biz.collections["contacts"].items.get(contact_id)
        if parent:
            self.stamp(parent, ts)

    # ------------------------------------------------------------------ addresses
    def create_address(self, biz, data):
        """Create an address from a ``postAddresses`` body (``contact_id`` required here)."""
        def create():
            for field in ("address_type_id", "name", "is_main_address"):
                if data.get(field) is None:
                    raise invalid(f"{field} can't be blank", field)
            contact = live(biz, "contacts", data.get("contact_id"), "contact_id")
            rec = self.insert_address(biz, contact, data, None)
            if rec["is_main_address"]:
                self._promote(biz, contact, "addresses", rec)
            elif rec["_type"] == "DELIVERY" and not contact["_delivery_address"]:
                contact["_delivery_address"] = rec["id"]
            self._touch_parent(biz, contact["id"])
            self.touch()
            return rec
        return self._idempotent(biz, "addresses", data, create)

    def insert_address(self, biz, contact, data, ts, record_id=None):
        """Low-level address creation (no idempotency, no parent bump); used by seeding too."""
        rec = {"id": record_id or new_id(), "_contact": contact["id"], "_type": "ACCOUNTS", "_country": "GB",
               "is_main_address": False}
        self._apply_address(rec, data)
        self.stamp(rec, ts, created=True)
        biz.collections["addresses"].items[rec["id"]] = rec
        return rec

    @staticmethod
    def _apply_address(rec, data):
        assign_fields(rec, data, ADDRESS_FIELDS)
        if data.get("address_type_id"):
            if data["address_type_id"] not in ADDRESS_TYPES:
                raise invalid("address_type_id is invalid", "address_type_id")
            rec["_type"] = data["address_type_id"]
        if data.get("country_id"):
            if data["country_id"] not in COUNTRIES:
                raise invalid("country_id is invalid", "country_id")
            rec["_country"] = data["country_id"]

    def update_address(self, biz, address_id, data):
        """PUT an address; also bumps the owning contact's ``updated_at``."""
        return self._update_child(biz, "addresses", address_id, data)

    def delete_address(self, biz, address_id):
        """Delete an address that is not the contact's main address and carries no contact persons."""
        rec = biz.get("addresses", address_id)
        contact = biz.collections["contacts"].items.get(rec["_contact"], {})
        if contact.get("_main_address") == address_id:
            raise invalid("The main address cannot be deleted")
        if any(p["_address"] == address_id for p in self._persons_of(biz, rec["_contact"])):
            raise invalid("Address cannot be deleted while contact persons use it")
        if contact.get("_delivery_address") == address_id:
            contact["_delivery_address"] = None
        self._bury(biz, "addresses", address_id)
        self._touch_parent(biz, rec["_contact"])
        self.touch()

    # ------------------------------------------------------------------ contact persons
    def _persons_of(self, biz, contact_id):
        items = biz.collections["contact_persons"].items
        return [items[pid] for pid in biz.persons_by_contact.get(contact_id, ()) if pid in items]

    def create_person(self, biz, data):
        """Create a contact person from a ``postContactPersons`` body."""
        def create():
            require(data, ("address_id", "name", "contact_person_type_ids"))
            address = live(biz, "addresses", data["address_id"], "address_id")
            contact = biz.get("contacts", address["_contact"])
            rec = self.insert_person(biz, contact, address["id"], data, None)
            if rec["is_main_contact"]:
                self._promote(biz, contact, "contact_persons", rec)
            self._touch_parent(biz, contact["id"])
            self.touch()
            return rec
        return self._idempotent(biz, "contact_persons", data, create)

    def insert_person(self, biz, contact, address_id, data, ts, record_id=None):
        """Low-level contact-person creation (no idempotency, no parent bump); used by seeding too."""
        rec = {"id": record_id or new_id(), "_contact": contact["id"], "_address": address_id,
               "_types": ["ACCOUNTS"], "is_main_contact": False, "is_preferred_contact": False}
        self._apply_person(biz, rec, data)
        self.stamp(rec, ts, created=True)
        biz.collections["contact_persons"].items[rec["id"]] = rec
        biz.persons_by_contact.setdefault(contact["id"], []).append(rec["id"])
        return rec

    @staticmethod
    def _apply_person(biz, rec, data):
        assign_fields(rec, data, PERSON_FIELDS)
        types = data.get("contact_person_type_ids")
        if types is not None:
            if not isinstance(types, list) or any(t not in CONTACT_PERSON_TYPES for t in types):
                raise invalid("contact_person_type_ids is invalid", "contact_person_type_ids")
            rec["_types"] = list(types)
        if data.get("address_id"):
            address = biz.collections["addresses"].items.get(data["address_id"])
            if address is None or address["_contact"] != rec["_contact"]:
                raise invalid("address_id is invalid", "address_id")
            rec["_address"] = address["id"]

    def update_person(self, biz, person_id, data):
        """PUT a contact person; also bumps the owning contact's ``updated_at``."""
        return self._update_child(biz, "contact_persons", person_id, data)

    # ------------------------------------------------------------------ shared child helpers
    def _apply_child(self, biz, resource, rec, data, ts):
        if resource == "addresses":
            self._apply_address(rec, data)
        else:
            self._apply_person(biz, rec, data)
        self.stamp(rec, ts)

    def _promote(self, biz, contact, resource, rec):
        """Make ``rec`` the contact's main address / main contact person, demoting the previous one."""
        slot, flag = MAIN_SLOTS[resource]
        old = biz.collections[resource].items.get(contact[slot] or "")
        if old and old is not rec:
            old[flag] = False
            self.stamp(old)
        rec[flag] = True
        contact[slot] = rec["id"]

    def _update_child(self, biz, resource, record_id, data):
        rec = biz.get(resource, record_id)
        self._apply_child(biz, resource, rec, data, None)
        contact = biz.collections["contacts"].items.get(rec["_contact"])
        if contact and data.get(MAIN_SLOTS[resource][1]):
            self._promote(biz, contact, resource, rec)
        self._touch_parent(biz, rec["_contact"])
        self.touch()
        return rec

    def delete_person(self, biz, person_id):
        """Delete a contact person other than the main one."""
        rec = biz.get("contact_persons", person_id)
        contact = biz.collections["contacts"].items.get(rec["_contact"], {})
        if contact.get("_main_person") == person_id:
            raise invalid("The main contact person cannot be deleted")
        self._bury(biz, "contact_persons", person_id)
        biz.persons_by_contact[rec["_contact"]].remove(person_id)
        self._touch_parent(biz, rec["_contact"])
        self.touch()

    # ------------------------------------------------------------------ invoices, credit notes, quotes, estimates
    def create_invoice(self, biz, resource, data, record_id=None, ts=None):
        """Create an artefact (any of ``ARTEFACT_RESOURCES``); totals are computed from its lines."""
        return self._idempotent(biz, resource, data,
                                lambda: self._create_invoice(biz, resource, data, record_id, ts))

    create_artefact = create_invoice

    def _create_invoice(self, biz, resource, data, record_id, ts):
        kind = KINDS[resource]
        require(data, kind.required)
        contact = biz.collections["contacts"].items.get(data["contact_id"])
        if contact is None or contact["_type"] != kind.contact_type:
            raise invalid(kind.not_found_message, "contact_id")
        if kind.is_quote:
            status = data.get("status_id") or "PENDING"
            if status not in QUOTE_WRITABLE_STATUSES:
                raise invalid(f"status_id must be one of {', '.join(QUOTE_WRITABLE_STATUSES)}", "status_id")
        else:
            status = data.get("status_id") or "UNPAID"
            if status not in ("DRAFT", "UNPAID"):
                raise invalid("status_id must be DRAFT or UNPAID on creation", "status_id")
        rec = {"id": record_id or new_id(), "_contact": contact["id"], "_status": status,
               "_currency": contact["_currency"], "contact_name": contact["name"],
               "contact_reference": contact.get("reference"), "total_paid": 0.0, "void_reason": None,
               "last_paid": None, "sent": False, "_allocations": []}
        if resource == "sales_invoices":
            rec["invoice_number"] = f"SI-{biz.next_invoice_number}"
            biz.next_invoice_number += 1
        elif kind.number:
            number = biz.next_numbers.get(resource, 1)
            rec[kind.number] = f"{kind.prefix}{number}"
            biz.next_numbers[resource] = number + 1
        self._apply_invoice(rec, data, kind)
        if kind.due_date and not rec.get("due_date"):
            rec["due_date"] = (date.fromisoformat(rec["date"]) + timedelta(days=30)).isoformat()
        self.stamp(rec, ts, created=True)
        biz.collections[resource].items[rec["id"]] = rec
        biz.transactions.setdefault(contact["id"], []).append((resource, rec["id"]))
        if not kind.is_quote:
            self.balance_moved(biz, contact["id"], ts)
        self.touch()
        return rec

    def _apply_invoice(self, rec, data, kind):
        assign_fields(rec, data, INVOICE_FIELDS)
        dates = ["date"] + (["due_date"] if kind.due_date else []) + (["expiry_date"] if kind.expiry_date else [])
        if kind.is_credit_note:
            dates.append("original_invoice_date")
        for field in dates:
            if data.get(field) is not None:
                rec[field] = _check_date(data[field], field)
        if kind.is_quote and data.get("status_id"):
            if data["status_id"] not in QUOTE_WRITABLE_STATUSES:
                raise invalid(f"status_id must be one of {', '.join(QUOTE_WRITABLE_STATUSES)}", "status_id")
            rec["_status"] = data["status_id"]
        if data.get("currency_id"):
            if data["currency_id"] not in CURRENCIES:
                raise invalid("currency_id is invalid", "currency_id")
            rec["_currency"] = data["currency_id"]
        self._apply_rate(rec, data)
        if kind.lines in data:
            lines = data[kind.lines]
            if not isinstance(lines, list) or not lines:
                raise invalid(f"{kind.lines} can't be blank", kind.lines)
            rec["_lines"] = [self._line(rec["id"], index, line, kind.lines) for index, line in enumerate(lines)]
            self.recompute(rec)

    @staticmethod
    def _apply_rate(rec, data):
        """``exchange_rate`` (units of the document's currency per 1 GBP) or ``inverse_exchange_rate``."""
        rate = data.get("exchange_rate")
        field = "exchange_rate"
        if rate is None and data.get("inverse_exchange_rate") is not None:
            field, inverse = "inverse_exchange_rate", data["inverse_exchange_rate"]
            rate = 1 / inverse if isinstance(inverse, NUMBER) and not isinstance(inverse, bool) and inverse > 0 else 0
        if rate is None:
            if rec["_currency"] == BASE_CURRENCY:
                rec.pop("_rate", None)
            return
        if not isinstance(rate, NUMBER) or isinstance(rate, bool) or rate <= 0:
            raise invalid(f"{field} must be a positive number", field)
        if rec["_currency"] == BASE_CURRENCY and round(rate, 6) != 1:
            raise invalid(f"{field} must be 1 for the base currency", field)
        rec["_rate"] = round(float(rate), 6)

    @staticmethod
    def _line(invoice_id, index, data, key="invoice_lines"):
        if not isinstance(data, dict):
            raise invalid("line must be an object", f"{key}[{index}]")
        for field in ("description", "ledger_account_id", "quantity", "unit_price"):
            if data.get(field) is None:
                raise invalid(f"{field} can't be blank", f"{key}[{index}].{field}")
        line = {}
        assign_fields(line, data, LINE_FIELDS)
        rate_id = data.get("tax_rate_id") or "GB_STANDARD"
        if rate_id not in TAX_RATES:
            raise invalid("tax_rate_id is invalid", f"{key}[{index}].tax_rate_id")
        net = money(line["quantity"] * line["unit_price"] - (line.get("discount_amount") or 0))
        tax = line.get("tax_amount")
        tax = money(net * TAX_RATES[rate_id][1]) if tax is None else money(tax)
        return {"id": f"{invoice_id[:24]}{index:08x}", "description": line["description"],
                "ledger_account_id": line["ledger_account_id"],
                "quantity": float(line["quantity"]), "unit_price": money(line["unit_price"]),
                "discount_amount": money(line.get("discount_amount") or 0), "tax_rate_id": rate_id,
                "net_amount": net, "tax_amount": tax, "total_amount": money(net + tax)}

    @staticmethod
    def recompute(rec):
        """Recompute the totals from the lines and what was paid or allocated."""
        rec["net_amount"] = money(sum(line["net_amount"] for line in rec["_lines"]))
        rec["tax_amount"] = money(sum(line["tax_amount"] for line in rec["_lines"]))
        rec["total_amount"] = money(rec["net_amount"] + rec["tax_amount"])
        outstanding = 0.0 if rec["_status"] == "VOID" else rec["total_amount"] - rec["total_paid"]
        rec["outstanding_amount"] = money(outstanding)

    @staticmethod
    def rate(rec):
        """Units of the record's currency per 1 GBP (its own ``exchange_rate`` or the sandbox's table)."""
        return rec.get("_rate") or CURRENCIES[rec["_currency"]][1]

    def update_invoice(self, biz, resource, invoice_id, data):
        """PUT an artefact; refused once it is void or has payments/allocations (quotes: once invoiced)."""
        rec = biz.get(resource, invoice_id)
        if rec["_status"] in ("VOID", "INVOICED") or rec["total_paid"]:
            raise invalid(f"{render.LABELS[resource]} cannot be edited once it is void or has payments")
        self._apply_invoice(rec, data, KINDS[resource])
        self.stamp(rec)
        if not KINDS[resource].is_quote:
            self.balance_moved(biz, rec["_contact"])
        self.touch()
        return rec

    def release_invoice(self, biz, resource, invoice_id):
        """Turn a DRAFT invoice or credit note into an UNPAID one."""
        rec = biz.get(resource, invoice_id)
        if rec["_status"] != "DRAFT":
            raise invalid("Only drafts can be released")
        rec["_status"] = "UNPAID"
        self.stamp(rec)
        self.balance_moved(biz, rec["_contact"])
        self.touch()
        return rec

    def delete_invoice(self, biz, resource, invoice_id, void_reason=None):
        """DELETE: sales invoices and credit notes are voided (drafts deleted); the others deleted.

        Returns the voided record, or ``None`` when the record was deleted.
        """
        rec = biz.get(resource, invoice_id)
        if rec["total_paid"]:
            raise invalid(f"{render.LABELS[resource]} has payments or allocations; remove them first")
        if not KINDS[resource].void_on_delete or rec["_status"] == "DRAFT":
            self._bury(biz, resource, invoice_id)
            biz.transactions[rec["_contact"]].remove((resource, invoice_id))
            if not KINDS[resource].is_quote:
                self.balance_moved(biz, rec["_contact"])
            self.touch()
            return None
        if rec["_status"] == "VOID":
            raise invalid(f"{render.LABELS[resource]} is already void")
        if not void_reason:
            raise invalid("void_reason can't be blank", "void_reason")
        rec["_status"] = "VOID"
        rec["void_reason"] = str(void_reason)[:200]
        self.recompute(rec)
        self.stamp(rec)
        self.balance_moved(biz, rec["_contact"])
        self.touch()
        return rec

    # ------------------------------------------------------------------ payments
    def create_payment(self, biz, data):
        """Record a contact payment and allocate it to invoices (``allocated_artefacts``)."""
        return self._idempotent(biz, "contact_payments", data, lambda: self._create_payment(biz, data))

    def _create_payment(self, biz, data):
        for field in ("contact_id", "date", "total_amount"):
            if data.get(field) in (None, ""):
                raise invalid(f"{field} can't be blank", field)
        contact = live(biz, "contacts", data["contact_id"], "contact_id")
        _check_date(data["date"], "date")
        total = data["total_amount"]
        if not isinstance(total, NUMBER) or total <= 0:
            raise invalid("total_amount must be positive", "total_amount")
        allocations = data.get("allocated_artefacts") or []
        targets = []
        for index, alloc in enumerate(allocations):
            source = f"allocated_artefacts[{index}]"
            inv = None
            for resource in INVOICE_RESOURCES:
                inv = inv or biz.collections[resource].items.get((alloc or {}).get("artefact_id") or "")
            if inv is None or inv["_contact"] != contact["id"]:
                raise invalid("artefact_id is invalid", f"{source}.artefact_id")
            amount = alloc.get("amount")
            if not isinstance(amount, NUMBER) or amount <= 0:
                raise invalid("amount must be positive", f"{source}.amount")
            if inv["_status"] in ("DRAFT", "VOID"):
                raise invalid("Draft or void invoices cannot take payments", f"{source}.artefact_id")
            if money(amount) > inv["outstanding_amount"]:
                raise invalid("amount exceeds the outstanding amount", f"{source}.amount")
            targets.append((inv, money(amount)))
        if money(sum(a for _, a in targets)) > money(total):
            raise invalid("allocations exceed total_amount", "allocated_artefacts")
        currency = data.get("currency_id") or contact["_currency"]
        if currency not in CURRENCIES:
            raise invalid("currency_id is invalid", "currency_id")
        rec = {"id": new_id(), "_contact": contact["id"], "date": data["date"], "total_amount": money(total),
               "reference": data.get("reference"), "_currency": currency,
               "_type": data.get("transaction_type_id") or (
                   "CUSTOMER_RECEIPT" if contact["_type"] == "CUSTOMER" else "VENDOR_PAYMENT"),
               "_allocations": []}
        self._apply_rate(rec, data)
        self.stamp(rec, created=True)
        for inv, amount in targets:
            self._settle(inv, amount, data["date"], {"payment": rec["id"]})
            rec["_allocations"].append({"artefact": inv["id"], "amount": amount})
            self.stamp(inv)
        biz.collections["contact_payments"].items[rec["id"]] = rec
        biz.transactions.setdefault(contact["id"], []).append(("contact_payments", rec["id"]))
        self.balance_moved(biz, contact["id"])
        self.touch()
        return rec

    def delete_payment(self, biz, payment_id):
        """Delete a payment: the invoices it paid are outstanding again, and its part on account goes."""
        rec = biz.get("contact_payments", payment_id)
        for alloc in rec["_allocations"]:
            target = biz.find("sales_invoices", alloc["artefact"]) or biz.find("purchase_invoices", alloc["artefact"])
            if target:
                self._settle(target, -alloc["amount"], rec["date"], {"payment": rec["id"]})
                self.stamp(target)
        self._bury(biz, "contact_payments", payment_id)
        biz.transactions[rec["_contact"]].remove(("contact_payments", payment_id))
        self.balance_moved(biz, rec["_contact"])
        self.touch()

    def _settle(self, target, amount, on_date, link):
        """Count ``amount`` as paid/allocated on an invoice or credit note (negative: undo)."""
        target["total_paid"] = money(target["total_paid"] + amount)
        self.recompute(target)
        if target["total_paid"] <= 0:
            target["_status"] = "UNPAID"
        else:
            target["_status"] = "PAID" if target["outstanding_amount"] <= 0 else "PART_PAID"
        if amount > 0:
            target["last_paid"] = on_date
        target["_allocations"].append({**link, "amount": amount, "date": on_date})

    # ------------------------------------------------------------------ allocations
    def create_allocation(self, biz, data, ts=None):
        """Allocate credit notes against invoices of one contact (``contact_allocations``).

        ``allocated_artefacts`` lists ``{artefact_id, amount}``: invoices with positive amounts,
        credit notes with negative ones, summing to zero; each within what is outstanding.
        """
        return self._idempotent(biz, "contact_allocations", data, lambda: self._create_allocation(biz, data, ts))

    def _create_allocation(self, biz, data, ts):
        require(data, ("transaction_type_id", "contact_id", "allocated_artefacts"))
        contact = live(biz, "contacts", data["contact_id"], "contact_id")
        if ALLOCATION_TYPES.get(data["transaction_type_id"]) != contact["_type"]:
            raise invalid("transaction_type_id is invalid", "transaction_type_id")
        on_date = _check_date(data["date"], "date") if data.get("date") else self.clock.today()
        if not isinstance(data["allocated_artefacts"], list):
            raise invalid("allocated_artefacts must be a list", "allocated_artefacts")
        targets = []
        for index, alloc in enumerate(data["allocated_artefacts"]):
            source = f"allocated_artefacts[{index}]"
            target_id = (alloc or {}).get("artefact_id") if isinstance(alloc, dict) else None
            found = [(r, biz.collections[r].items[target_id]) for r in INVOICE_RESOURCES + CREDIT_NOTE_RESOURCES
                     if target_id in biz.collections[r].items]
            if not found or found[0][1]["_contact"] != contact["id"]:
                raise invalid("artefact_id is invalid", f"{source}.artefact_id")
            resource, target = found[0]
            amount = alloc.get("amount")
            if not isinstance(amount, NUMBER) or isinstance(amount, bool) or not amount:
                raise invalid("amount must be a non-zero number", f"{source}.amount")
            if (amount < 0) != (resource in CREDIT_NOTE_RESOURCES):
                raise invalid("amount must be positive for invoices and negative for credit notes", f"{source}.amount")
            if target["_status"] in ("DRAFT", "VOID"):
                raise invalid("Draft or void artefacts cannot be allocated", f"{source}.artefact_id")
            if money(abs(amount)) > target["outstanding_amount"]:
                raise invalid("amount exceeds the outstanding amount", f"{source}.amount")
            targets.append((resource, target, money(amount)))
        if len(targets) < 2 or money(sum(a for _, _, a in targets)) != 0:
            raise invalid("allocated amounts must balance to zero", "allocated_artefacts")
        rec = {"id": new_id(), "_contact": contact["id"], "date": on_date, "_type": data["transaction_type_id"],
               "_allocations": [{"artefact": t["id"], "resource": r, "amount": a} for r, t, a in targets]}
        self.stamp(rec, ts, created=True)
        for _, target, amount in targets:
            self._settle(target, abs(amount), on_date, {"allocation": rec["id"]})
            if ts is None:
                self.stamp(target)
        biz.collections["contact_allocations"].items[rec["id"]] = rec
        biz.transactions.setdefault(contact["id"], []).append(("contact_allocations", rec["id"]))
        self.touch()
        return rec

    def delete_allocation(self, biz, allocation_id):
        """Undo an allocation: the invoices and credit notes it touched are outstanding again."""
        rec = biz.get("contact_allocations", allocation_id)
        for alloc in rec["_allocations"]:
            target = biz.collections[alloc["resource"]].items.get(alloc["artefact"])
            if target:
                self._settle(target, -abs(alloc["amount"]), rec["date"], {"allocation": rec["id"]})
                self.stamp(target)
        self._bury(biz, "contact_allocations", allocation_id)
        biz.transactions[rec["_contact"]].remove(("contact_allocations", allocation_id))
        self.touch()

    # ------------------------------------------------------------------ persistence
    def dump(self):
        """Return the whole state as a JSON-serialisable dict."""
        with self.lock:
            return {
                "version": STATE_VERSION, "seq": self.seq, "next_legacy": self.next_legacy,
                "clock_offset": self.clock.offset,
                "businesses": [{
                    "id": b.id, "name": b.name, "created": b.created, "next_invoice_number": b.next_invoice_number,
                    "next_numbers": b.next_numbers,
                    "idempotency": b.idempotency,
                    "collections": {n: {"items": list(c.items.values()), "deleted": list(c.deleted.values())}
                                    for n, c in b.collections.items()},
                } for b in self.businesses.values()],
            }

    def load(self, state):
        """Replace all data with a previously dumped state."""
        if state.get("version") != STATE_VERSION:
            raise ValueError("unsupported sandbox state version")
        with self.lock:
            self.seq, self.next_legacy = state["seq"], state["next_legacy"]
            self.clock.offset = state.get("clock_offset", 0.0)
            self.businesses = {}
            for raw in state["businesses"]:
                biz = Business(raw["id"], raw["name"], raw["created"])
                biz.next_invoice_number = raw["next_invoice_number"]
                biz.next_numbers = raw.get("next_numbers", {})
                biz.idempotency = raw["idempotency"]
                for name_, coll in raw["collections"].items():
                    biz.collections[name_].items = {r["id"]: r for r in coll["items"]}
                    biz.collections[name_].deleted = {r["id"]: r for r in coll["deleted"]}
                self.businesses[biz.id] = biz
            self.reindex()
            self.version += 1


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` via a temporary file so a crash never leaves half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)

