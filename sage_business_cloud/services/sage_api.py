"""What the addon asks of Sage, in Sage's own terms: the one place that knows paths and bodies.

Plain Python (no ORM), in the manner of Odoo's ``GoogleCalendarService``: models call these
methods with Python values and get Sage's records back; they never build a Sage path, resource
name, query parameter or request body themselves (``sage_export`` shapes the bodies). Sage
failures are put into words in one place, ``models/sage_binding.sage_user_message``.
"""

from .sage_format import ref_id

CONTACT_ATTRIBUTES = (
    "name", "reference", "email", "contact_types", "main_address", "delivery_address",
    "main_contact_person", "updated_at", "links", "balance", "credit_limit", "credit_days", "credit_terms",
)
#: What a contact's credit position is read from (with ``show_balance``).
CREDIT_ATTRIBUTES = ("contact_types", "balance", "credit_limit", "credit_days", "credit_terms")
INVOICE_ATTRIBUTES = (
    "invoice_number", "vendor_reference", "reference", "contact", "date", "due_date", "total_amount",
    "outstanding_amount", "base_currency_outstanding_amount", "base_currency_total_amount",
    "currency", "status", "links", "updated_at",
)
INVOICE_RESOURCES = {"sale": "sales_invoices", "purchase": "purchase_invoices",
                     "sale_credit": "sales_credit_notes", "purchase_credit": "purchase_credit_notes",
                     "quote": "sales_quotes", "estimate": "sales_estimates"}
#: Attributes asked for, per document kind (each asks only for fields its Sage resource has).
DOCUMENT_ATTRIBUTES = {
    "sale": INVOICE_ATTRIBUTES,
    "purchase": INVOICE_ATTRIBUTES,
    "sale_credit": (
        "credit_note_number", "reference", "contact", "date", "total_amount", "outstanding_amount",
        "base_currency_outstanding_amount", "base_currency_total_amount", "currency", "status", "links",
        "updated_at"),
    "purchase_credit": (
        "vendor_reference", "reference", "contact", "date", "total_amount", "outstanding_amount",
        "base_currency_outstanding_amount", "base_currency_total_amount", "currency", "status", "links",
        "updated_at"),
    "quote": ("quote_number", "reference", "contact", "date", "expiry_date", "total_amount",
              "base_currency_total_amount", "currency", "status", "links", "updated_at"),
    "estimate": ("estimate_number", "reference", "contact", "date", "expiry_date", "total_amount",
                 "base_currency_total_amount", "currency", "status", "links", "updated_at"),
}
#: Sage lists no deletions of quotes and estimates (no ``deleted_since`` on their listings).
NO_DELETED_LISTING = ("quote", "estimate")
SEARCH_ATTRIBUTES = "name,reference,email,main_address,contact_types,updated_at,links"
#: The contact person type Sage gives the people Odoo adds.
PERSON_TYPE = "ACCOUNTS"


class SageService:
    """Sage operations of one connection, over a ``SageClient``."""

    def __init__(self, client):
        self.client = client

    @property
    def request_count(self):
        return self.client.request_count

    # ---------------------------------------------------------------- contacts (read)
    # Each listing as ``(resource, attributes, items_per_page, filters)``: read by the methods
    # below, and asked for ahead by ``warm_listings``.
    @staticmethod
    def _changed(resource, attributes, since, page_size, **filters):
        return (resource, ",".join(attributes), page_size, {"updated_or_created_since": since or None, **filters})

    @staticmethod
    def _deleted(resource, since, page_size):
        return (resource, None, page_size, {"deleted_since": since})

    def _read(self, listing):
        resource, attributes, page_size, filters = listing
        return self.client.iter_pages(resource, attributes=attributes, items_per_page=page_size, **filters)

    def _read_ids(self, listing):
        for page in self._read(listing):
            yield [item["id"] for item in page if item.get("id")]

    @classmethod
    def _contacts_changed(cls, since, page_size):
        return cls._changed("contacts", CONTACT_ATTRIBUTES, since, page_size, show_balance=True)

    @classmethod
    def _documents_changed(cls, kind, since, page_size, contact_id=None):
        return cls._changed(INVOICE_RESOURCES[kind], DOCUMENT_ATTRIBUTES[kind], since, page_size,
                            contact_id=contact_id)

    @staticmethod
    def _payments_changed(since, page_size):
        return ("contact_payments", "contact", page_size, {"updated_or_created_since": since})

    def warm_listings(self, since, page_size, kinds):
        """Ask Sage at once for the first page of every listing an incremental run reads.

        ``since`` maps ``"contacts"``, each document kind of ``kinds`` and ``"payments"`` (when
        payments are listed) to its watermark. The pages are then read in the usual order; only
        the waiting for their first pages overlaps.
        """
        self.client.warm_first_pages(self._run_listings(since, page_size, kinds))

    def chain_listings(self, since, page_size, kinds):
        """The same listings, for a first import: each one's first page is asked for once the
        previous listing's pages all have been (``SageClient.chain_first_pages``)."""
        self.client.chain_first_pages(self._run_listings(since, page_size, kinds))

    def _run_listings(self, since, page_size, kinds):
        """The listings of a run, in the order the engine reads them."""
        listings = [self._contacts_changed(since["contacts"], page_size)]
        if since["contacts"]:  # deletions are listed only after a first import
            listings.append(self._deleted("contacts", since["contacts"], page_size))
        for kind in kinds:
            listings.append(self._documents_changed(kind, since[kind], page_size))
            if since[kind] and kind not in NO_DELETED_LISTING:
                listings.append(self._deleted(INVOICE_RESOURCES[kind], since[kind], page_size))
        if "payments" in since:
            listings.append(self._payments_changed(since["payments"], page_size))
        return listings

    def contacts_changed_since(self, since, page_size):
        """Pages of contacts created or changed since ``since`` (every contact when empty)."""
        return self._read(self._contacts_changed(since, page_size))

    def credit_positions(self, page_size):
        """Pages of every contact's balance and credit terms (nothing else)."""
        return self.client.iter_pages("contacts", attributes=list(CREDIT_ATTRIBUTES), items_per_page=page_size,
                                      show_balance=True)

    def credit_position(self, contact_id):
        """One contact's balance and credit terms."""
        return self.client.get("contacts", contact_id, attributes=",".join(CREDIT_ATTRIBUTES), show_balance=True)

    def payments_changed_since(self, since, page_size):
        """Pages of the contact ids of payments and receipts created or changed since ``since``."""
        for page in self._read(self._payments_changed(since, page_size)):
            yield [ref_id(item.get("contact")) for item in page if ref_id(item.get("contact"))]

    def contacts_deleted_since(self, since, page_size):
        """Pages of the ids of contacts deleted since ``since``."""
        return self._read_ids(self._deleted("contacts", since, page_size))

    def get_contact(self, contact_id):
        return self.client.get("contacts", contact_id, show_balance=True)

    def search_contacts(self, text, limit=None, attributes=SEARCH_ATTRIBUTES):
        """Contacts whose name or reference contains ``text`` (at most ``limit``)."""
        found = []
        for item in self.client.iter_items("contacts", search=text, attributes=attributes,
                                           items_per_page=min(limit or 200, 200)):
            found.append(item)
            if limit and len(found) >= limit:
                break
        return found

    def get_contact_person(self, person_id):
        return self.client.get("contact_persons", person_id)

    def contact_persons_of(self, contact):
        """The contact persons of a Sage contact (one listing, on its main address)."""
        address_id = (contact.get("main_address") or {}).get("id")
        if not address_id:
            return []
        return list(self.client.iter_items("contact_persons", address_id=address_id, attributes="all"))

    # ---------------------------------------------------------------- contacts (write)
    def create_contact(self, body, idempotency_id):
        """Create a contact from a ``POST /contacts`` body (``sage_export.creation_body``)."""
        return self.client.create("contacts", body, idempotency_id=idempotency_id)

    def update_contact(self, contact_id, values):
        return self.client.update("contacts", contact_id, values)

    def delete_contact(self, contact_id):
        return self.client.delete("contacts", contact_id)

    def add_main_address(self, contact_id, address, idempotency_id):
        body = dict(address or {}, contact_id=contact_id, address_type_id="ACCOUNTS",
                    name="Main Address", is_main_address=True)
        return self.client.create("addresses", body, idempotency_id=idempotency_id)

    def add_contact_person(self, address_id, values, idempotency_id):
        body = dict(values, address_id=address_id, contact_person_type_ids=[PERSON_TYPE])
        return self.client.create("contact_persons", body, idempotency_id=idempotency_id)

    def update_contact_person(self, person_id, values):
        return self.client.update("contact_persons", person_id, values)

    # ---------------------------------------------------------------- invoices
    def invoices_changed_since(self, invoice_type, since, page_size, contact_id=None):
        return self._read(self._documents_changed(invoice_type, since, page_size, contact_id=contact_id))

    def invoices_deleted_since(self, invoice_type, since, page_size):
        """Pages of the ids of documents deleted since ``since`` (none for quotes: see the
        daily sweep, ``document_ids``)."""
        if invoice_type in NO_DELETED_LISTING:
            return iter(())
        return self._read_ids(self._deleted(INVOICE_RESOURCES[invoice_type], since, page_size))

    def invoice_contacts(self, invoice_type, page_size):
        """Pages of the contact ids of every invoice of this type (the contact attribute only)."""
        for page in self.client.iter_pages(INVOICE_RESOURCES[invoice_type], attributes="contact",
                                           items_per_page=page_size):
            yield [item["contact"]["id"] for item in page
                   if isinstance(item.get("contact"), dict) and item["contact"].get("id")]

    def document_ids(self, invoice_type, page_size):
        """Pages of the ids of every document of this kind that Sage still has."""
        for page in self.client.iter_pages(INVOICE_RESOURCES[invoice_type], attributes=None,
                                           items_per_page=page_size):
            yield [item["id"] for item in page if item.get("id")]

    def get_invoice(self, invoice_type, invoice_id):
        return self.client.get(INVOICE_RESOURCES[invoice_type], invoice_id)

    def invoice_pdf(self, invoice_type, invoice_id):
        """Sage's own PDF of an invoice (bytes)."""
        return self.client.request("GET", f"/{INVOICE_RESOURCES[invoice_type]}/{invoice_id}",
                                   accept="application/pdf")

    # ---------------------------------------------------------------- business
    def base_currency(self):
        """ISO code of the business's base currency, or None when Sage does not say."""
        settings = self.client.request("GET", "/financial_settings") or {}
        currency = settings.get("base_currency") or {}
        return currency.get("id") or currency.get("iso_code") or None
