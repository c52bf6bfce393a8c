"""Sage JSON -> Odoo values, without the ORM.

``contact_values`` turns a Sage contact into the values of a new partner (plus its child
addresses); ``invoice_values`` turns a Sage sales or purchase invoice into the values of a
``sage.invoice`` row. Anything that cannot be mapped raises :class:`MappingError`, whose message
is shown to the administrator in the run's error list.

Lookups the ORM owns (countries, currencies) are passed in as plain dicts, so that a whole page is
mapped with no query at all.
"""

from datetime import date

from .names import exact_name
from .sage_format import MappingError, alternate_link, parse_datetime, ref_id

__all__ = ["MappingError", "address_values", "contact_values", "credit_values", "invoice_values", "is_person"]

CONTACT_TYPES = ("CUSTOMER", "VENDOR")
#: The key of Sage's own number, per kind of sales document (purchase ones use vendor_reference).
NUMBER_KEYS = {"sale": "invoice_number", "sale_credit": "credit_note_number", "quote": "quote_number",
               "estimate": "estimate_number"}
#: Sage's credit terms (``Contact.credit_terms`` enum of the Swagger file).
CREDIT_TERMS = ("month_end_invoice", "date_from_invoice", "immediate_invoice", "month_end_payment",
                "date_from_payment", "immediate_payment")


def _text(value):
    return (value or "").strip() if isinstance(value, str) else ""


def _check_dict(record, key):
    value = record.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError("%s is not an object" % key)
    return value


def address_values(address, countries):
    """Partner address fields of a Sage address (``countries``: ISO code -> res.country id)."""
    if not address:
        return {}
    code = ref_id(address.get("country"))
    if code and not isinstance(code, str):
        raise MappingError("the address country is not a code")
    country_id = False
    if code:
        country_id = countries.get(code.upper())
        if not country_id:
            raise MappingError("unknown country %r in the address" % code)
    return {
        "street": _text(address.get("address_line_1")) or False,
        "street2": _text(address.get("address_line_2")) or False,
        "city": _text(address.get("city")) or False,
        "zip": _text(address.get("postal_code")) or False,
        "country_id": country_id,
    }


def is_person(contact):
    """True when the Sage contact is clearly a person rather than an organisation.

    Sage has no organisation/person flag. When the main contact person carries exactly the
    contact's own name, the contact is that person (Sage's own forms fill it that way for
    individuals); anything else is treated as a company.
    """
    person = contact.get("main_contact_person") or {}
    person_name = _text(person.get("name")) if isinstance(person, dict) else ""
    return bool(person_name) and person_name.casefold() == _text(contact.get("name")).casefold()


def contact_values(contact, countries):
    """Return ``(partner_values, children_values)`` for a new partner made from ``contact``.

    ``children_values`` are the values of child partners (without ``parent_id``): the delivery
    address, and the main contact person when it names someone other than the contact.
    """
    if not contact.get("id"):
        raise MappingError("the contact has no id")
    # Checked here so that a bad timestamp fails this contact alone, before it is linked.
    parse_datetime(contact.get("updated_at"))
    name = exact_name(contact.get("name") if isinstance(contact.get("name"), str) else "")
    if not name:
        raise MappingError("the contact has no name")
    types = contact.get("contact_types")
    if not isinstance(types, list):
        raise MappingError("contact_types is missing")
    type_ids = {ref_id(t) for t in types}
    unknown = type_ids - set(CONTACT_TYPES)
    if not type_ids or unknown:
        raise MappingError("unexpected contact type %s" % ", ".join(sorted(map(str, unknown or {"(none)"}))))
    main_address = _check_dict(contact, "main_address")
    delivery = _check_dict(contact, "delivery_address")
    person = _check_dict(contact, "main_contact_person")
    person_name = _text(person.get("name"))
    own_person = is_person(contact)
    values = {
        "name": name,
        "is_company": not own_person,
        "ref": _text(contact.get("reference")) or False,
        "email": _text(contact.get("email")) or _text(person.get("email")) or False,
        "phone": _text(person.get("telephone")) or False,
        "mobile": _text(person.get("mobile")) or False,
        "sage_contact_type": "customer" if "CUSTOMER" in type_ids else "vendor",
        # Only meaningful (and only present) when Invoicing/Accounting is installed.
        "customer_rank": 1 if "CUSTOMER" in type_ids else 0,
        "supplier_rank": 1 if "VENDOR" in type_ids else 0,
        **address_values(main_address, countries),
    }
    children = []
    if delivery and any(address_values(delivery, countries).values()):
        children.append({"type": "delivery", **address_values(delivery, countries)})
    if person_name and not own_person:
        children.append({
            "type": "contact",
            "name": person_name,
            "function": _text(person.get("job_title")) or False,
            "email": _text(person.get("email")) or False,
            "phone": _text(person.get("telephone")) or False,
            "mobile": _text(person.get("mobile")) or False,
        })
    return values, children


def _amount(invoice, key):
    value = invoice.get(key)
    if value in (None, ""):
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MappingError("%s is not a number: %r" % (key, value)) from None


def _optional_amount(invoice, key):
    """An amount Sage may leave out (None then, never 0: a missing figure is not a zero)."""
    if invoice.get(key) in (None, ""):
        return None
    return _amount(invoice, key)


def _date(invoice, key, required=False):
    value = invoice.get(key)
    if not value:
        if required:
            raise MappingError("%s is missing" % key)
        return False
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise MappingError("%s is not a date: %r" % (key, value)) from None


def _base_key(invoice_type):
    """The base-currency amount that says Sage gave them: quotes have no outstanding amount."""
    if invoice_type in ("quote", "estimate"):
        return "base_currency_total_amount"
    return "base_currency_outstanding_amount"


def invoice_values(invoice, invoice_type, currencies):
    """Values of a ``sage.invoice`` row (without partner/connection) for a Sage invoice dict.

    ``currencies``: ISO code -> res.currency id.
    """
    if not invoice.get("id"):
        raise MappingError("the invoice has no id")
    status = ref_id(invoice.get("status"))
    if not status or not isinstance(status, str):
        raise MappingError("the invoice has no status")
    code = ref_id(invoice.get("currency")) or "GBP"
    currency_id = currencies.get(str(code).upper())
    if not currency_id:
        raise MappingError("unknown currency %r" % code)
    number = invoice.get(NUMBER_KEYS[invoice_type]) if invoice_type in NUMBER_KEYS else (
        invoice.get("vendor_reference") or invoice.get("reference"))
    status_label = invoice.get("status", {}).get("displayed_as") if isinstance(invoice.get("status"), dict) else None
    return {
        "sage_id": invoice["id"],
        "invoice_type": invoice_type,
        "sage_contact_id": ref_id(invoice.get("contact")) or False,
        "number": number or invoice.get("displayed_as") or False,
        "date": _date(invoice, "date"),
        "due_date": _date(invoice, "due_date"),
        "expiry_date": _date(invoice, "expiry_date"),
        "currency_id": currency_id,
        "total_amount": _amount(invoice, "total_amount"),
        "outstanding_amount": _amount(invoice, "outstanding_amount"),
        # In the business's base currency, at Sage's rate: what the figures add up.
        "base_total_amount": _optional_amount(invoice, "base_currency_total_amount") or 0.0,
        "base_outstanding_amount": _optional_amount(invoice, "base_currency_outstanding_amount") or 0.0,
        "base_amounts_known": _optional_amount(invoice, _base_key(invoice_type)) is not None,
        "status": status.upper(),
        "status_label": status_label or status.replace("_", " ").title(),
        "sage_url": alternate_link(invoice) or False,
        "sage_updated_at": parse_datetime(invoice.get("updated_at")),
    }


def credit_values(contact):
    """Values of a binding's credit position for a Sage contact read with ``show_balance``.

    ``balance`` is what the contact's account stands at in Sage (what a customer owes us, what we
    owe a supplier), in the business's currency; a contact read without it leaves it unknown
    (None), never 0. A ``credit_limit`` of 0 or none means no limit. Raises ``MappingError``.
    """
    balance = _optional_amount(contact, "balance")
    limit = _optional_amount(contact, "credit_limit")
    days = contact.get("credit_days")
    if days not in (None, ""):
        try:
            days = int(days)
        except (TypeError, ValueError):
            raise MappingError("credit_days is not a number: %r" % days) from None
    terms = contact.get("credit_terms") or False
    if terms and terms not in CREDIT_TERMS:
        terms = False  # a new Sage option: shown as days only, never guessed at
    types = {ref_id(t) for t in contact.get("contact_types") or [] if isinstance(t, dict)}
    return {
        "balance": balance or 0.0,
        "balance_known": balance is not None,
        "credit_limit": limit or 0.0,
        "credit_days": days if days not in (None, "") else False,
        "credit_terms": terms,
        "is_customer": "CUSTOMER" in types or not types,
    }
