"""The sales and purchase documents the sandbox keeps: invoices, credit notes, quotes, estimates.

They share one internal shape (lines, totals, status, currency, allocations); a :class:`Kind`
says how each one differs in the API: its body wrapper, the key of its lines, the contact type it
needs, its generated number, what DELETE does and which statuses it takes.
"""

from dataclasses import dataclass

# Quote and estimate statuses. The Swagger file types them as ``QuoteStatus`` ({id, displayed_as})
# without listing ids; these follow Sage's web app (``DECLINED`` also appears among artefact statuses).
QUOTE_STATUSES = {"DRAFT": "Draft", "PENDING": "Pending", "ACCEPTED": "Accepted", "DECLINED": "Declined",
                  "INVOICED": "Invoiced"}
QUOTE_WRITABLE_STATUSES = ("DRAFT", "PENDING", "ACCEPTED", "DECLINED")


@dataclass(frozen=True)
class Kind:
    """How one artefact resource looks and behaves in the API."""

    resource: str
    wrapper: str
    lines: str
    contact_type: str
    transaction_type: tuple
    number: str = None  # generated number field (``invoice_number``...), None for purchase documents
    prefix: str = None
    due_date: bool = False  # invoices: due_date (defaults to date + 30 days)
    due_date_required: bool = False
    expiry_date: bool = False  # quotes/estimates: expiry_date (required)
    void_on_delete: bool = False  # sales invoices/credit notes: DELETE voids (drafts are deleted)
    allocatable: bool = True  # takes payments/allocations, has an outstanding amount
    releasable: bool = True  # POST /{resource}/{id}/release (DRAFT -> UNPAID)

    @property
    def is_quote(self):
        """Quotes and estimates: QuoteStatus statuses, no outstanding amount, DELETE deletes."""
        return self.expiry_date

    @property
    def is_credit_note(self):
        """Credit notes: their outstanding amount is owed to the contact."""
        return self.lines == "credit_note_lines"

    @property
    def required(self):
        """Fields a POST must carry."""
        fields = ["contact_id", "date", self.lines]
        if self.due_date_required:
            fields.append("due_date")
        if self.expiry_date:
            fields.append("expiry_date")
        return fields

    @property
    def not_found_message(self):
        """Sage's 422 message when the contact is missing or of the other type."""
        return "Couldn't find customer." if self.contact_type == "CUSTOMER" else "Couldn't find Supplier."


KINDS = {kind.resource: kind for kind in (
    Kind("sales_invoices", "sales_invoice", "invoice_lines", "CUSTOMER", ("SALES_INVOICE", "Sales Invoice"),
         number="invoice_number", prefix="SI-", due_date=True, void_on_delete=True),
    Kind("purchase_invoices", "purchase_invoice", "invoice_lines", "VENDOR", ("PURCHASE_INVOICE", "Purchase Invoice"),
         due_date=True, due_date_required=True),
    Kind("sales_credit_notes", "sales_credit_note", "credit_note_lines", "CUSTOMER",
         ("SALES_CREDIT_NOTE", "Sales Credit Note"), number="credit_note_number", prefix="SCN-", void_on_delete=True),
    Kind("purchase_credit_notes", "purchase_credit_note", "credit_note_lines", "VENDOR",
         ("PURCHASE_CREDIT_NOTE", "Purchase Credit Note")),
    Kind("sales_quotes", "sales_quote", "quote_lines", "CUSTOMER", ("SALES_QUOTE", "Sales Quote"),
         number="quote_number", prefix="SQ-", expiry_date=True, allocatable=False, releasable=False),
    Kind("sales_estimates", "sales_estimate", "estimate_lines", "CUSTOMER", ("SALES_ESTIMATE", "Sales Estimate"),
         number="estimate_number", prefix="SE-", expiry_date=True, allocatable=False, releasable=False),
)}
ARTEFACT_RESOURCES = tuple(KINDS)
INVOICE_RESOURCES = ("sales_invoices", "purchase_invoices")
CREDIT_NOTE_RESOURCES = ("sales_credit_notes", "purchase_credit_notes")
ALLOCATION_TYPES = {"CUSTOMER_ALLOCATION": "CUSTOMER", "VENDOR_ALLOCATION": "VENDOR"}


def document_label(rec, kind):
    """``displayed_as`` of an artefact: its number, else the supplier's or our reference, else the id."""
    number = rec.get(kind.number) if kind.number else None
    return number or rec.get("vendor_reference") or rec.get("reference") or rec["id"]
