"""Odoo -> Sage value mapping for Export to Sage and pushed edits. Plain Python, no ORM.

The Odoo side gathers plain dicts (:func:`address_values`, :func:`person_values`) and this module
turns them into Sage request bodies, compares them with what was last pushed, and lists the Sage
values a push is about to overwrite.

Shapes (also the shape of the stored snapshot of the last pushed values):

* contact: ``{"name", "main_address": {...}, "delivery_address": {...}, "main_contact_person":
  {...}}`` (the two addresses only when Odoo has one);
* address: ``{"address_line_1", "address_line_2", "city", "postal_code", "region", "country_id"}``;
* contact person: ``{"name", "email", "telephone", "mobile"}`` (``name`` left out when Odoo has no
  person for the contact, so Sage's own contact person name is never overwritten by a company name).
"""

import re

ADDRESS_KEYS = ("address_line_1", "address_line_2", "city", "postal_code", "region", "country_id")
PERSON_KEYS = ("name", "email", "telephone", "mobile")
NESTED_KEYS = ("main_address", "delivery_address", "main_contact_person")
#: Sage limits a contact person's name to 50 characters (the contact's name may have 100).
PERSON_NAME_MAX = 50
#: Contact person type given to the people Odoo creates in Sage.
PERSON_TYPE = "ACCOUNTS"

_EMAIL = re.compile(r"[^\s,;<>\"']+@[^\s,;<>\"']+")
_PHONE_SEPARATORS = re.compile(r"\s*[,;/|]\s*|\s+or\s+", re.IGNORECASE)


def first_email(value):
    """The first e-mail address of an Odoo e-mail field ('a@x.com, b@y.com' -> 'a@x.com')."""
    match = _EMAIL.search(value or "")
    return match.group(0) if match else None


def first_phone(value):
    """The first phone number of an Odoo phone field ('020 7946 0000 / 0161 ...' -> '020 7946 0000')."""
    for part in _PHONE_SEPARATORS.split(value or ""):
        if part.strip():
            return part.strip()
    return None


def address_values(street=None, street2=None, city=None, zip_code=None, state=None, country_code=None):
    """Sage address body from Odoo address parts (empty parts become ``None``)."""
    values = {
        "address_line_1": street or None,
        "address_line_2": street2 or None,
        "city": city or None,
        "postal_code": zip_code or None,
        "region": state or None,
        "country_id": country_code or None,
    }
    return values if any(values.values()) else None


def person_values(name=None, email=None, phone=None, mobile=None):
    """Sage contact person body; ``name=None`` leaves the person's name alone."""
    values = {"email": first_email(email), "telephone": first_phone(phone), "mobile": first_phone(mobile)}
    if name:
        values = {"name": name.strip()[:PERSON_NAME_MAX], **values}
    return values


def contact_values(name, person, main_address=None, delivery_address=None):
    """Sage contact body (snapshot shape) from the parts above."""
    values = {"name": (name or "").strip(), "main_contact_person": person}
    if main_address:
        values["main_address"] = main_address
    if delivery_address:
        values["delivery_address"] = delivery_address
    return values


def creation_body(values, contact_type):
    """The ``POST /contacts`` body: ``values`` plus what Sage needs only on creation."""
    body = dict(values, contact_type_ids=[contact_type])
    person = dict(values.get("main_contact_person") or {})
    person.setdefault("name", body["name"][:PERSON_NAME_MAX])
    person.update(contact_person_type_ids=[PERSON_TYPE], is_main_contact=True)
    body["main_contact_person"] = person
    if body.get("main_address"):
        body["main_address"] = dict(body["main_address"], is_main_address=True)
    if body.get("delivery_address"):
        body["delivery_address"] = dict(body["delivery_address"], address_type_id="DELIVERY")
    return body


def changes(values, snapshot):
    """The part of ``values`` that differs from ``snapshot`` (the last pushed values).

    Scalars are compared one by one, and so are the keys of a nested object (address, contact
    person): only the parts that changed are sent, so a part Odoo never had (a postcode, a phone)
    does not erase Sage's. A nested object with no snapshot yet is sent whole; one Odoo no longer
    has (e.g. a deleted delivery address) is not sent: Sage keeps it. ``{}`` when nothing changed.
    """
    snapshot = snapshot or {}
    diff = {}
    for key, value in values.items():
        if value is None and key in NESTED_KEYS:
            continue
        before = snapshot.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = {sub: sub_value for sub, sub_value in value.items() if before.get(sub) != sub_value}
            if nested:
                diff[key] = nested
        elif before != value:
            diff[key] = value
    return diff


def merged(snapshot, diff):
    """The snapshot after ``diff`` (as returned by :func:`changes`) reached Sage."""
    out = dict(snapshot or {})
    for key, value in diff.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = dict(out[key], **value)
        else:
            out[key] = value
    return out


def sage_side(record, shape):
    """Sage's current values of ``record`` (a contact or contact person as Sage returns it),
    limited to the keys of ``shape`` (a body built by this module)."""
    record = record or {}
    out = {}
    for key, value in shape.items():
        if key in ("main_address", "delivery_address"):
            address = record.get(key) or {}
            country = address.get("country") or {}
            current = {k: address.get(k) for k in ADDRESS_KEYS if k != "country_id"}
            current["country_id"] = country.get("id") if isinstance(country, dict) else None
            out[key] = {k: current.get(k) for k in value}
        elif key == "main_contact_person":
            person = record.get(key) or {}
            out[key] = {k: person.get(k) for k in value}
        else:
            out[key] = record.get(key)
    return out


def confirmed(values, record):
    """What Sage holds after it was sent ``values``, as a snapshot.

    Where Odoo sent a value and Sage shows another one (e.g. Sage answered an idempotent retry
    with the contact an earlier attempt created), Sage's value is kept so the next push sends
    Odoo's again; where Odoo sent nothing, Sage's defaults do not count as a difference.
    """
    sage_now = sage_side(record, values)
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            theirs = sage_now.get(key) or {}
            out[key] = {k: (theirs.get(k) if v is not None and _differs(theirs.get(k), v) else v)
                        for k, v in value.items()}
        else:
            out[key] = sage_now.get(key) if value is not None and _differs(sage_now.get(key), value) else value
    return out


def overwritten(sage_now, sent, snapshot):
    """Flat ``[(field path, Sage value, Odoo value)]`` of what a push replaces in Sage.

    A value counts when Sage holds something other than what is sent *and* other than what Odoo
    pushed last time (so it was changed in Sage, or never came from Odoo).
    """
    snapshot = snapshot or {}
    found = []
    for key, value in sent.items():
        if isinstance(value, dict):
            before = snapshot.get(key) or {}
            current = sage_now.get(key) or {}
            for sub, sub_value in value.items():
                theirs = current.get(sub)
                if _differs(theirs, sub_value) and _differs(theirs, before.get(sub)):
                    found.append((f"{key}.{sub}", theirs, sub_value))
        else:
            theirs = sage_now.get(key)
            if _differs(theirs, value) and _differs(theirs, snapshot.get(key)):
                found.append((key, theirs, value))
    return found


def _differs(left, right):
    return (left or None) != (right or None)


#: Writable parts of a nested object in a PUT, and where a GET shows them (Swagger's shapes).
_PUT_PARTS = {
    "address": {
        "address_line_1": "address_line_1", "address_line_2": "address_line_2", "city": "city",
        "postal_code": "postal_code", "region": "region", "name": "name",
        "is_main_address": "is_main_address", "country_id": ("country", "id"),
        "address_type_id": ("address_type", "id"), "country_group_id": ("country_group", "id"),
    },
    "main_contact_person": {
        "name": "name", "job_title": "job_title", "telephone": "telephone", "mobile": "mobile",
        "email": "email", "fax": "fax", "is_main_contact": "is_main_contact",
        "is_preferred_contact": "is_preferred_contact", "address_id": ("address", "id"),
        "contact_person_type_ids": ("contact_person_types", "ids"),
    },
}


def _put_value(record, where):
    if isinstance(where, str):
        return record.get(where)
    key, part = where
    value = record.get(key)
    if part == "ids":
        return [item.get("id") for item in value if isinstance(item, dict)] if isinstance(value, list) else None
    return value.get(part) if isinstance(value, dict) else None


def whole(diff, current):
    """``diff`` with each nested object made whole from ``current`` (Sage's record as read).

    Sage's documents do not say whether a PUT merges a partial nested object or replaces it.
    Sending the object whole is right either way: Odoo's values for what Odoo pushes, Sage's
    current values for the parts Odoo never had (empty parts are left out).
    """
    current = current or {}
    out = {}
    for key, value in diff.items():
        if key not in NESTED_KEYS or not isinstance(value, dict):
            out[key] = value
            continue
        theirs = current.get(key) if isinstance(current.get(key), dict) else {}
        parts = _PUT_PARTS["main_contact_person" if key == "main_contact_person" else "address"]
        filled = {name: _put_value(theirs, where) for name, where in parts.items()}
        filled = {name: part for name, part in filled.items() if part not in (None, "", [])}
        filled.update(value)
        out[key] = filled
    return out
