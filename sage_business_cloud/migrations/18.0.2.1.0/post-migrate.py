"""18.0.2.1.0: credit notes, quotes and estimates join the invoice rows.

The record rule that gives every internal user the sales rows is a ``noupdate`` record: its
domain is brought in step here (sales credit notes, quotes and estimates are sales documents;
purchase credit notes stay with the supplier group like purchase invoices).

The first import of a new connection now waits for a preview by default (``first_import_mode``).
Connections that existed before were set up when the first sync imported at once: they keep
that (an administrator can choose the preview in the settings).
"""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    rule = env.ref("sage_business_cloud.sage_invoice_sales_only_rule", raise_if_not_found=False)
    if rule:
        rule.domain_force = "[('invoice_type', 'not in', ('purchase', 'purchase_credit'))]"
    cr.execute("UPDATE sage_connection SET first_import_mode = 'auto'")
