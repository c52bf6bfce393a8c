"""Turn internal records into the API shapes of the Swagger ``definitions``.

Every renderer receives the store, the business and the internal record and returns a new dict.
References to other records (``contact``, ``address``) are rendered live, so renaming a contact
shows in its invoices' ``contact.displayed_as`` while ``contact_name`` keeps the value at issue time.
"""

from functools import partial

from .artefacts import KINDS, QUOTE_STATUSES, document_label
from .clock import iso
from .lookups import (
    ADDRESS_TYPES,
    CONTACT_PERSON_TYPES,
    CONTACT_TYPES,
    COUNTRIES,
    CURRENCIES,
    STATUSES,
    TAX_RATES,
    base,
    country_group,
)

LABELS = {"contacts": "Contact", "contact_persons": "Contact Person", "addresses": "Address",
          "contact_payments": "Contact Payment", "contact_allocations": "Contact Allocation",
          **{resource: kind.transaction_type[1] for resource, kind in KINDS.items()}}
WEB_PATHS = {resource: f"invoicing/{resource}" for resource in KINDS}


def ref(resource, record_id, displayed_as):
    """A ``Base`` reference to another record."""
    return {"id": record_id, "displayed_as": displayed_as, "$path": f"/{resource}/{record_id}"}


def _meta(rec, resource, displayed_as):
    return {"id": rec["id"], "displayed_as": displayed_as, "$path": f"/{resource}/{rec['id']}",
            "created_at": iso(rec["_created"]), "updated_at": iso(rec["_updated"]),
            "deleted_at": iso(rec.get("_deleted"))}


def _alternate(store, web_path):
    return [{"href": f"{store.base_url}/app/{web_path}", "rel": "alternate", "type": "text/html"}]


def contact_label(rec):
    """``Name (REF)`` like Sage, or just the name without a reference."""
    return f"{rec['name']} ({rec['reference']})" if rec.get("reference") else rec["name"]


def contact_ref(biz, contact_id):
    """Base reference to a (possibly deleted) contact."""
    rec = biz.find("contacts", contact_id)
    return ref("contacts", contact_id, contact_label(rec) if rec else "")


def contact_web_path(rec):
    """Path of a contact inside the sandbox web app (legacy number, as Sage does)."""
    kind = "customers" if rec["_type"] == "CUSTOMER" else "suppliers"
    return f"contacts/{kind}/{rec['_legacy']}"


def address_label(rec):
    """Multi-line label of an address (non-empty parts joined by newlines)."""
    parts = (rec.get("address_line_1"), rec.get("address_line_2"), rec.get("city"), rec.get("region"),
             rec.get("postal_code"))
    return "\n".join(p for p in parts if p)


def render_address(store, biz, rec):
    """API shape of an ``Address``."""
    out = _meta(rec, "addresses", address_label(rec))
    out.update({field: rec.get(field) for field in ("address_line_1", "address_line_2", "city", "postal_code",
                                                    "region", "name")})
    country = rec["_country"]
    group = country_group(country) if country else None
    out.update({
        "country": base("countries", country, COUNTRIES[country]) if country else None,
        "country_group": base("country_groups", group, group) if group else None,
        "address_type": base("address_types", rec["_type"], ADDRESS_TYPES[rec["_type"]]),
        "is_main_address": rec["is_main_address"], "bank_account": None,
        "contact": contact_ref(biz, rec["_contact"]),
    })
    return out


def render_person(store, biz, rec):
    """API shape of a ``ContactPerson``."""
    out = _meta(rec, "contact_persons", rec.get("name") or "")
    out["contact_person_types"] = [base("contact_person_types", t, CONTACT_PERSON_TYPES[t]) for t in rec["_types"]]
    out.update({field: rec.get(field) for field in ("name", "job_title", "telephone", "mobile", "email", "fax",
                                                    "is_main_contact", "is_preferred_contact")})
    address = biz.find("addresses", rec["_address"])
    out["address"] = ref("addresses", rec["_address"], address_label(address) if address else "")
    return out


def _nested(store, biz, resource, record_id, renderer):
    rec = biz.find(resource, record_id) if record_id else None
    return renderer(store, biz, rec) if rec else None


def render_contact(store, biz, rec):
    """API shape of a ``Contact`` incl. nested main/delivery address and main contact person."""
    out = _meta(rec, "contacts", contact_label(rec))
    person = _nested(store, biz, "contact_persons", rec["_main_person"], render_person)
    out.update({
        "links": _alternate(store, contact_web_path(rec)),
        "contact_types": [base("contact_types", rec["_type"], CONTACT_TYPES[rec["_type"]])],
        "name": rec["name"], "reference": rec.get("reference"),
        "default_sales_ledger_account": None, "default_sales_tax_rate": None, "default_purchase_ledger_account": None,
        "tax_number": rec.get("tax_number"), "notes": rec.get("notes"), "locale": rec.get("locale"),
        "main_address": _nested(store, biz, "addresses", rec["_main_address"], render_address),
        "delivery_address": _nested(store, biz, "addresses", rec["_delivery_address"], render_address),
        "main_contact_person": person,
        "bank_account_details": {k: rec["bank_account_details"].get(k)
                                 for k in ("account_name", "account_number", "sort_code", "bic", "iban")},
        "credit_limit": rec.get("credit_limit"), "credit_days": rec.get("credit_days"),
        "credit_terms": rec.get("credit_terms"), "credit_terms_and_conditions": rec.get("credit_terms_and_conditions"),
        "product_sales_price_type": None, "source_guid": rec.get("source_guid"),
        "currency": base("currencies", rec["_currency"], CURRENCIES[rec["_currency"]][0]),
        "aux_reference": rec.get("aux_reference"), "registered_number": rec.get("registered_number"),
        "deletable": rec.get("_deleted") is None and not store.has_transactions(biz, rec["id"]),
        "tax_treatment": {k: rec["tax_treatment"].get(k, k == "home_tax") for k in (
            "home_tax", "eu_tax_registered", "eu_not_tax_registered", "rest_of_world_tax", "is_importer")},
        "email": person["email"] if person else None, "tax_calculation": rec.get("tax_calculation"),
        "auxiliary_account": rec.get("auxiliary_account"), "gdpr_obfuscated": False, "system": False,
        "has_unfinished_recurring_invoices": False, "cis_registered": False, "ni_based": False,
        "is_active": rec["is_active"], "gb_based": True, "cis_settings": None,
        "destination_vat_blocking": bool(rec.get("destination_vat_blocking")),
        "balance": store.contact_balance(biz, rec["id"]),
    })
    return out


def _line(line, rate):
    tax_label = TAX_RATES[line["tax_rate_id"]][0]
    return {
        "id": line["id"], "displayed_as": line["description"], "description": line["description"],
        "ledger_account": ref("ledger_accounts", line["ledger_account_id"], line["ledger_account_id"]),
        "quantity": line["quantity"], "unit_price": line["unit_price"], "net_amount": line["net_amount"],
        "tax_rate": base("tax_rates", line["tax_rate_id"], tax_label), "tax_amount": line["tax_amount"],
        "total_amount": line["total_amount"], "unit_price_includes_tax": False,
        "base_currency_unit_price": round(line["unit_price"] / rate, 2),
        "base_currency_net_amount": round(line["net_amount"] / rate, 2),
        "base_currency_tax_amount": round(line["tax_amount"] / rate, 2),
        "base_currency_total_amount": round(line["total_amount"] / rate, 2),
    }


def _artefact(store, biz, rec, resource):
    """API shape of any artefact (``SalesInvoice``, ``SalesCreditNote``, ``SalesQuote``...)."""
    kind = KINDS[resource]
    out = _meta(rec, resource, document_label(rec, kind))
    rate = store.rate(rec)
    status = rec["_status"]
    out.update({
        "links": _alternate(store, f"{WEB_PATHS[resource]}/{rec['id']}"),
        "editable": status not in ("VOID", "PAID", "PART_PAID", "INVOICED"),
        "contact": contact_ref(biz, rec["_contact"]),
        "contact_name": rec["contact_name"], "contact_reference": rec.get("contact_reference"),
        "date": rec["date"], "reference": rec.get("reference"), "notes": rec.get("notes"),
        "net_amount": rec["net_amount"], "tax_amount": rec["tax_amount"], "total_amount": rec["total_amount"],
        "payments_allocations_total_amount": rec["total_paid"], "payments_allocations_total_discount": 0.0,
        "total_paid": rec["total_paid"],
        "currency": base("currencies", rec["_currency"], CURRENCIES[rec["_currency"]][0]),
        "exchange_rate": rate, "inverse_exchange_rate": round(1 / rate, 6),
        "base_currency_net_amount": round(rec["net_amount"] / rate, 2),
        "base_currency_tax_amount": round(rec["tax_amount"] / rate, 2),
        "base_currency_total_amount": round(rec["total_amount"] / rate, 2),
        "total_quantity": sum(line["quantity"] for line in rec["_lines"]),
        kind.lines: [_line(line, rate) for line in rec["_lines"]],
        "vat_reverse_charge": False, "tax_reconciled": False,
    })
    if kind.number:
        out.update({kind.number: rec[kind.number], f"{kind.number}_prefix": kind.prefix})
    if kind.is_quote:
        del out["deleted_at"]  # not part of SalesQuote / SalesEstimate
        out.update({"expiry_date": rec["expiry_date"], "status": {"id": status, "displayed_as": QUOTE_STATUSES[status]},
                    "sent": rec.get("sent", False), "sent_by_email": False, "invoice": None})
        return out
    out.update({
        "transaction": None, "transaction_type": base("transaction_types", *kind.transaction_type),
        "outstanding_amount": rec["outstanding_amount"],
        "base_currency_outstanding_amount": round(rec["outstanding_amount"] / rate, 2),
        "status": base("artefact_statuses", status, STATUSES[status]),
        "void_reason": rec.get("void_reason"), "last_paid": rec.get("last_paid"), "migrated": False,
    })
    if kind.due_date:
        out["due_date"] = rec["due_date"]
    if kind.is_credit_note:
        out["original_invoice_date"] = rec.get("original_invoice_date")
    if resource == "purchase_credit_notes":  # the Swagger file types this one field as a string
        out["inverse_exchange_rate"] = str(out["inverse_exchange_rate"])
    if kind.contact_type == "CUSTOMER":
        out.update({"sent": rec.get("sent", False), "sent_by_email": False})
    else:
        out["vendor_reference"] = rec.get("vendor_reference")
    return out


def render_allocation(store, biz, rec):
    """API shape of a ``ContactAllocation``."""
    out = _meta(rec, "contact_allocations", rec["date"])
    allocated = []
    for index, alloc in enumerate(rec["_allocations"]):
        target = biz.find(alloc["resource"], alloc["artefact"])
        label = document_label(target, KINDS[alloc["resource"]]) if target else alloc["artefact"]
        allocated.append({"id": f"{rec['id'][:24]}{index:08x}", "amount": alloc["amount"],
                          "artefact": ref(alloc["resource"], alloc["artefact"], label)})
    out.update({
        "links": [], "transaction": None,
        "transaction_type": base("transaction_types", rec["_type"], rec["_type"].replace("_", " ").title()),
        "date": rec["date"], "contact": contact_ref(biz, rec["_contact"]), "allocated_artefacts": allocated,
    })
    return out


def render_payment(store, biz, rec):
    """API shape of a ``ContactPayment``."""
    out = _meta(rec, "contact_payments", rec.get("reference") or rec["date"])
    allocations = []
    for alloc in rec["_allocations"]:
        inv = biz.find("sales_invoices", alloc["artefact"]) or biz.find("purchase_invoices", alloc["artefact"])
        resource = "sales_invoices" if "invoice_number" in inv else "purchase_invoices"
        label = inv.get("invoice_number") or inv.get("vendor_reference") or inv["id"]
        allocations.append({"id": f"{rec['id'][:16]}{inv['id'][:16]}", "amount": alloc["amount"], "discount": 0.0,
                            "artefact": ref(resource, inv["id"], label)})
    out.update({
        "links": [], "transaction": None,
        "transaction_type": base("transaction_types", rec["_type"], rec["_type"].replace("_", " ").title()),
        "contact": contact_ref(biz, rec["_contact"]), "date": rec["date"],
        "total_amount": rec["total_amount"], "net_amount": rec["total_amount"], "tax_amount": 0.0,
        "currency": base("currencies", rec["_currency"], CURRENCIES[rec["_currency"]][0]),
        "reference": rec.get("reference"), "allocated_artefacts": allocations, "editable": True,
    })
    return out


RENDERERS = {"contacts": render_contact, "contact_persons": render_person, "addresses": render_address,
             "contact_payments": render_payment, "contact_allocations": render_allocation,
             **{resource: partial(_artefact, resource=resource) for resource in KINDS}}
