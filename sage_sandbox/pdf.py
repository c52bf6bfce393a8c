"""A small, valid PDF 1.4 rendition of an artefact (``Accept: application/pdf``), standard library only.

One A4 page in Helvetica (WinAnsi encoding): title, number, business, contact, dates, lines and totals.
The text is left uncompressed, so tests can find the number in the bytes.
"""

TITLES = {"sales_invoices": "Sales Invoice", "purchase_invoices": "Purchase Invoice",
          "sales_credit_notes": "Credit Note", "purchase_credit_notes": "Supplier Credit Note",
          "sales_quotes": "Quotation", "sales_estimates": "Estimate"}
PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points


def _text(value):
    """A PDF literal string: WinAnsi bytes with ``\\``, ``(`` and ``)`` escaped."""
    raw = str(value).encode("cp1252", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _lines(biz, doc, kind):
    number = doc.get(kind.number) if kind.number else None
    currency = (doc.get("currency") or {}).get("id") or ""
    rows = [(18, f"{TITLES[kind.resource]} {number or doc.get('vendor_reference') or doc['displayed_as']}"),
            (11, biz.name), (11, ""),
            (11, f"Contact: {doc.get('contact_name') or ''}"),
            (11, f"Date: {doc.get('date') or ''}")]
    for field, label in (("due_date", "Due date"), ("expiry_date", "Expiry date"), ("reference", "Reference")):
        if doc.get(field):
            rows.append((11, f"{label}: {doc[field]}"))
    rows.append((11, ""))
    for line in doc.get(kind.lines) or []:
        rows.append((10, f"{line['quantity']:g} x {line['description']} @ {line['unit_price']:.2f}"
                         f"  =  {line['net_amount']:.2f}"))
    rows += [(11, ""), (11, f"Net: {doc['net_amount']:.2f} {currency}"),
             (11, f"VAT: {doc['tax_amount']:.2f} {currency}"),
             (13, f"Total: {doc['total_amount']:.2f} {currency}")]
    if "outstanding_amount" in doc:
        rows.append((11, f"Outstanding: {doc['outstanding_amount']:.2f} {currency}"))
    return rows


def artefact_pdf(biz, doc, kind):
    """Bytes of a one-page PDF for the rendered artefact ``doc``."""
    stream = bytearray(b"BT\n")
    y = PAGE_HEIGHT - 60
    for size, text in _lines(biz, doc, kind):
        stream += b"/F1 %d Tf 1 0 0 1 56 %d Tm " % (size, y) + _text(text) + b" Tj\n"
        y -= size + 8
    stream += b"ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>" % (PAGE_WIDTH, PAGE_HEIGHT),
        b"<< /Length %d >>\nstream\n" % len(stream) + bytes(stream) + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title " + _text(f"{TITLES[kind.resource]} {doc['displayed_as']}") + b" /Producer (sage_sandbox) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, len(objects), xref)
    return bytes(out)
