"""Deterministic generation of a realistic UK book of contacts and invoices.

The same seed always yields the same ids, names, amounts and dates. Dates and timestamps are
relative to *anchor* (UTC midnight of the current sandbox day), so a seed gives identical data
throughout one day and every seeded timestamp lies in the past.
"""

import random
import re
from datetime import UTC, date, datetime, timedelta

from .store import money

DAY = 86400.0
# Names that exercise accents, punctuation and near-duplicates; they lead every seeded book.
SPECIAL_NAMES = (
    ("Café Rouge Ltd", True), ("Zoë Brontë", False), ("O'Brien & Co.", True), ("Acme Ltd", True),
    ("ACME Limited", True), ("Acme  Ltd.", True), ("Müller & Søn Ltd", True), ("Siobhán Ní Bhriain", False),
    ("Smith & Sons PLC", True), ("Jones-Williams Ltd", True), ("Noël Lefèvre", False), ("D'Arcy Holdings PLC", True),
)
FIRST_NAMES = ("Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia", "Noah", "Emily", "Charlie",
               "Sophie", "Thomas", "Grace", "Arthur", "Freya", "James", "Chloé", "William", "Niamh", "Rhys",
               "Eilidh", "Seán", "Zoë", "Mohammed", "Priya", "Aarav", "Olivia", "Ffion", "Callum")
SURNAMES = ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
            "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Wood", "Jackson",
            "O'Connor", "McDonald", "Ní Dhuibhir", "Brontë", "Fitzgerald", "Khan", "Hughes", "Clarke", "Lloyd", "Ward")
TRADES = ("Plumbing", "Joinery", "Catering", "Logistics", "Consulting", "Electrical", "Printing", "Bakery",
          "Engineering", "Design", "Roofing", "Landscaping", "Software", "Textiles", "Brewing", "Motors")
COMPANY_SUFFIXES = ("Ltd", "Limited", "& Sons", "PLC", "& Co.", "LLP", "Ltd.")
STREETS = ("High Street", "Station Road", "Church Lane", "Victoria Road", "Mill Lane", "King Street",
           "Queen's Road", "Park Avenue", "London Road", "The Green", "Market Place", "St John's Close")
# (town, postcode area, lowest district, highest district)
TOWNS = (("London", "EC", 1, 4), ("London", "SW", 1, 20), ("Manchester", "M", 1, 60), ("Birmingham", "B", 1, 99),
         ("Leeds", "LS", 1, 29), ("Glasgow", "G", 1, 84), ("Bristol", "BS", 1, 49), ("Edinburgh", "EH", 1, 55),
         ("Cardiff", "CF", 10, 99), ("Belfast", "BT", 1, 99), ("Liverpool", "L", 1, 38), ("Sheffield", "S", 1, 99),
         ("Nottingham", "NG", 1, 34), ("Brighton", "BN", 1, 45), ("Oxford", "OX", 1, 49), ("York", "YO", 1, 62))
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
JOB_TITLES = ("Director", "Accounts Manager", "Finance Director", "Office Manager", "Owner", "Bookkeeper", None)
PRODUCTS = (("Consultancy (day rate)", 650.0), ("Website maintenance", 120.0), ("Boiler service", 95.0),
            ("Pallet delivery", 48.5), ("Printed brochures (box)", 210.0), ("Catering for 20", 340.0),
            ("Software licence", 1200.0), ("Plumbing call-out", 85.0), ("Timber (m3)", 410.25))
# status -> weight; "OVERDUE" is UNPAID with a due date in the past.
STATUS_WEIGHTS = (("PAID", 36), ("PART_PAID", 10), ("UNPAID", 20), ("OVERDUE", 16), ("VOID", 8), ("DRAFT", 10))


def _hex(rng):
    return f"{rng.getrandbits(128):032x}"


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "", name.lower().encode("ascii", "ignore").decode()) or "contact"


def _reference(name, used):
    stem = re.sub(r"[^A-Z0-9]", "", name.upper().encode("ascii", "ignore").decode())[:6] or "CONT"
    number = used.get(stem, 0) + 1
    used[stem] = number
    return f"{stem}{number:03d}"[:10]


def _address(rng, delivery=False):
    town, area, low, high = rng.choice(TOWNS)
    inward = f"{rng.randint(1, 9)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"
    return {"address_line_1": f"{rng.randint(1, 240)} {rng.choice(STREETS)}",
            "address_line_2": rng.choice((None, None, "Unit 4", "Suite 2", "Riverside House")),
            "city": town, "postal_code": f"{area}{rng.randint(low, high)} {inward}", "country_id": "GB",
            "name": "Delivery Address" if delivery else "Main Address"}


def _phone(rng, mobile):
    if mobile:
        return f"07700 900{rng.randint(0, 999):03d}"
    return f"020 7946 0{rng.randint(0, 999):03d}"


def _contact_name(rng, index):
    if index < len(SPECIAL_NAMES):
        return SPECIAL_NAMES[index]
    if rng.random() < 0.7:
        stem = rng.choice((rng.choice(SURNAMES), rng.choice(TRADES), f"{rng.choice(SURNAMES)} {rng.choice(TRADES)}"))
        return f"{stem} {rng.choice(COMPANY_SUFFIXES)}", True
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}", False


def seed_business(store, biz, contacts, invoices, seed, anchor):
    """Fill an (empty) business with ``contacts`` contacts and ``invoices`` invoices."""
    rng = random.Random(seed)
    refs = {}
    customers, suppliers = [], []
    for index in range(contacts):
        name, company = _contact_name(rng, index)
        created = anchor - rng.uniform(60, 730) * DAY
        kind = "CUSTOMER" if rng.random() < 0.75 else "VENDOR"
        contact = store.create_contact(biz, {
            "name": name, "contact_type_ids": [kind], "reference": _reference(name, refs),
            "currency_id": rng.choices(("GBP", "EUR", "USD"), (90, 8, 2))[0],
            "tax_number": f"GB{rng.randint(100000000, 999999999)}" if company and rng.random() < 0.6 else None,
            "credit_days": rng.choice((None, 14, 30, 60)),
        }, record_id=_hex(rng), ts=created)
        main = store.insert_address(biz, contact, {**_address(rng), "address_type_id": (
            "SALES" if kind == "CUSTOMER" else "PURCHASING"), "is_main_address": True}, created, _hex(rng))
        contact["_main_address"] = main["id"]
        if kind == "CUSTOMER" and rng.random() < 0.2:
            contact["_delivery_address"] = store.insert_address(biz, contact, {
                **_address(rng, True), "address_type_id": "DELIVERY"}, created, _hex(rng))["id"]
        person_name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}" if company else name
        first, _, last = person_name.partition(" ")
        domain = f"{_slug(name)}.example"
        person = store.insert_person(biz, contact, main["id"], {
            "name": person_name, "job_title": rng.choice(JOB_TITLES) if company else None,
            "email": f"{_slug(first)}.{_slug(last)}@{domain}" if rng.random() < 0.9 else None,
            "telephone": _phone(rng, False) if rng.random() < 0.8 else None,
            "mobile": _phone(rng, True) if rng.random() < 0.6 else None,
            "contact_person_type_ids": ["ACCOUNTS"], "is_main_contact": True}, created, _hex(rng))
        contact["_main_person"] = person["id"]
        if company and rng.random() < 0.15:
            store.insert_person(biz, contact, main["id"], {
                "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}", "job_title": "Sales",
                "email": f"sales@{domain}", "telephone": _phone(rng, False),
                "contact_person_type_ids": ["SALES"]}, created, _hex(rng))
        updated = created + rng.random() * (anchor - created)
        for rec in (contact, main, person):
            rec["_updated"] = updated
        (customers if kind == "CUSTOMER" else suppliers).append(contact)
    if invoices and (customers or suppliers):
        _seed_invoices(store, biz, rng, customers, suppliers, invoices, anchor)
        _seed_credit_and_quotes(store, biz, seed, customers, suppliers, anchor)


def _seed_invoices(store, biz, rng, customers, suppliers, count, anchor):
    today = datetime.fromtimestamp(anchor, UTC).date()
    statuses, weights = zip(*STATUS_WEIGHTS, strict=True)
    for _ in range(count):
        purchase = not customers or (suppliers and rng.random() < 0.25)
        contact = rng.choice(suppliers if purchase else customers)
        status = rng.choices(statuses, weights)[0]
        age = rng.randint(0, 25) if status in ("UNPAID", "DRAFT") else rng.randint(31, 700)
        issued = today - timedelta(days=age)
        lines = [{"description": desc, "ledger_account_id": "5000" if purchase else "4000",
                  "quantity": float(rng.randint(1, 5)), "unit_price": price,
                  "tax_rate_id": rng.choices(("GB_STANDARD", "GB_ZERO", "GB_LOWER"), (85, 10, 5))[0]}
                 for desc, price in rng.sample(PRODUCTS, rng.randint(1, 3))]
        data = {"contact_id": contact["id"], "date": issued.isoformat(),
                "due_date": (issued + timedelta(days=30)).isoformat(), "invoice_lines": lines,
                "reference": f"PO{rng.randint(1000, 99999)}" if rng.random() < 0.5 else None,
                "status_id": "DRAFT" if status == "DRAFT" else "UNPAID"}
        if purchase:
            data["vendor_reference"] = f"INV-{rng.randint(10000, 999999)}"
        # never after the anchor: an invoice "created" later today would be listed as new by
        # every incremental run until then (Sage lists what was created since, too)
        created = min(anchor, anchor - (age - rng.random()) * DAY)
        rec = store.create_invoice(biz, "purchase_invoices" if purchase else "sales_invoices", data,
                                   record_id=_hex(rng), ts=created)
        if status in ("PAID", "PART_PAID"):
            paid = rec["total_amount"] if status == "PAID" else money(rec["total_amount"] * rng.uniform(0.1, 0.9))
            rec["total_paid"] = paid
            rec["last_paid"] = (issued + timedelta(days=rng.randint(1, 30))).isoformat()
        if status == "VOID":
            rec["void_reason"] = rng.choice(("Raised in error", "Duplicate", "Customer cancelled order"))
        rec["_status"] = "UNPAID" if status == "OVERDUE" else status
        store.recompute(rec)
        rec["_updated"] = min(anchor, created + rng.random() * 20 * DAY)


# Shares of the contacts that have invoices: credit notes (part-allocated ones among them), quotes, estimates.
CREDIT_NOTE_SHARES = (("sales_credit_notes", "sales_invoices", 0.25),
                      ("purchase_credit_notes", "purchase_invoices", 0.15))
ALLOCATED_SHARE = 0.4
QUOTE_SHARES = (("sales_quotes", 0.2), ("sales_estimates", 0.1))


def _share(pool, share):
    """How many of ``pool`` get something: ``share`` of it, at least one when it is not empty."""
    return min(len(pool), max(1, round(len(pool) * share))) if pool else 0


def _documents(biz, contact, resource):
    items = biz.collections[resource].items
    return [items[rid] for res, rid in biz.transactions.get(contact["id"], ()) if res == resource and rid in items]


def _seed_credit_and_quotes(store, biz, seed, customers, suppliers, anchor):
    """Credit notes (some part-allocated), quotes, estimates and credit limits, after the invoices.

    A generator of its own keeps the contacts and invoices of a seed exactly as they were before
    these existed. A seeded allocation takes its share out of what the invoice already shows as
    paid, so no invoice changes; only the credit note and the contact's balance show it.
    """
    rng = random.Random(f"sage-sandbox-credit-{seed}")
    today = datetime.fromtimestamp(anchor, UTC).date()

    def stamp(day):
        return anchor - ((today - day).days - rng.random()) * DAY

    for resource, invoice_resource, share in CREDIT_NOTE_SHARES:
        pool = [c for c in (customers if resource.startswith("sales") else suppliers)
                if _documents(biz, c, invoice_resource)]
        for contact in rng.sample(pool, _share(pool, share)):
            invoices = _documents(biz, contact, invoice_resource)
            posted = [i for i in invoices if i["_status"] not in ("DRAFT", "VOID")]
            origin = rng.choice(posted or invoices)
            issued = min(date.fromisoformat(origin["date"]) + timedelta(days=rng.randint(3, 40)),
                         today - timedelta(days=1))
            net = money(rng.uniform(10, max(15, min(origin["net_amount"], 400))))
            first = origin["_lines"][0]
            data = {"contact_id": contact["id"], "date": issued.isoformat(), "original_invoice_date": origin["date"],
                    "reference": origin.get("invoice_number") or origin.get("vendor_reference"),
                    "credit_note_lines": [{"description": f"Credit: {first['description']}",
                                           "ledger_account_id": first["ledger_account_id"], "quantity": 1.0,
                                           "unit_price": net, "tax_rate_id": first["tax_rate_id"]}]}
            if resource == "purchase_credit_notes":
                data["vendor_reference"] = f"CN-{rng.randint(10000, 999999)}"
            note = store.create_invoice(biz, resource, data, record_id=_hex(rng), ts=stamp(issued))
            paid = [i for i in posted if i["total_paid"] >= 1]
            if paid and rng.random() < ALLOCATED_SHARE:
                target = rng.choice(paid)
                amount = money(min(target["total_paid"], note["total_amount"]) * rng.uniform(0.3, 0.8))
                _seed_allocation(store, biz, contact, target, invoice_resource, note, resource, amount,
                                 _hex(rng), note["_created"])
    buyers = [c for c in customers if _documents(biz, c, "sales_invoices")]
    for resource, share in QUOTE_SHARES:
        for contact in rng.sample(buyers, _share(buyers, share)):
            issued = today - timedelta(days=rng.randint(1, 60))
            expiry = issued + timedelta(days=30)
            if expiry < today:
                status = rng.choice(("ACCEPTED", "DECLINED", "PENDING"))
            else:
                status = rng.choices(("DRAFT", "PENDING", "ACCEPTED"), (2, 6, 2))[0]
            lines = [{"description": desc, "ledger_account_id": "4000", "quantity": float(rng.randint(1, 4)),
                      "unit_price": price, "tax_rate_id": "GB_STANDARD"}
                     for desc, price in rng.sample(PRODUCTS, rng.randint(1, 3))]
            store.create_invoice(biz, resource, {
                "contact_id": contact["id"], "date": issued.isoformat(), "expiry_date": expiry.isoformat(),
                "status_id": status, resource.replace("sales_", "")[:-1] + "_lines": lines,
                "reference": f"RFQ{rng.randint(100, 9999)}" if rng.random() < 0.4 else None,
            }, record_id=_hex(rng), ts=stamp(issued))
    _seed_credit_limits(store, biz, rng, customers)


def _seed_allocation(store, biz, contact, invoice, invoice_resource, note, note_resource, amount, record_id, ts):
    rec = {"id": record_id, "_contact": contact["id"], "date": note["date"],
           "_type": "CUSTOMER_ALLOCATION" if contact["_type"] == "CUSTOMER" else "VENDOR_ALLOCATION",
           "_allocations": [{"artefact": invoice["id"], "resource": invoice_resource, "amount": amount},
                            {"artefact": note["id"], "resource": note_resource, "amount": -amount}]}
    store.stamp(rec, ts, created=True)
    biz.collections["contact_allocations"].items[rec["id"]] = rec
    biz.transactions.setdefault(contact["id"], []).append(("contact_allocations", rec["id"]))
    store._settle(note, amount, note["date"], {"allocation": rec["id"]})
    invoice["_allocations"].append({"allocation": rec["id"], "amount": amount, "date": note["date"]})


def _seed_credit_limits(store, biz, rng, customers):
    """40 % of customers get a credit limit (and credit terms); a quarter of those who owe get one below
    what they owe (over their limit), the others one with room to spare."""
    limited = rng.sample(customers, round(len(customers) * 0.4))
    owing = [c for c in limited if store.contact_balance(biz, c["id"]) >= 200]
    over = {c["id"] for c in rng.sample(owing, _share(owing, 0.25))}
    for contact in limited:
        balance = max(0.0, store.contact_balance(biz, contact["id"]))
        if contact["id"] in over:
            limit = max(100, int(balance * rng.uniform(0.4, 0.9)) // 100 * 100)
        else:
            limit = max(500, -(-int(balance * rng.uniform(1.3, 3.0)) // 500) * 500)
        contact["credit_limit"] = float(limit)
        if not contact.get("credit_terms"):
            contact["credit_terms"] = "date_from_invoice"
