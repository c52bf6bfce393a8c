"""18.0.2.0.0, before the models load: the figures become company-dependent (jsonb).

The old numeric columns hold derived values (recomputed from the invoice rows after the update),
so they are dropped rather than converted; the link columns are kept for the post-migration.
"""

FIGURES = (
    "sage_outstanding_amount", "sage_overdue_amount", "sage_next_due_date", "sage_oldest_overdue_date",
    "sage_invoice_count", "sage_payable_amount", "sage_payable_overdue_amount", "sage_figures_date",
)


def migrate(cr, version):
    if not version:
        return
    for column in FIGURES:
        cr.execute(f'ALTER TABLE res_partner DROP COLUMN IF EXISTS "{column}"')  # noqa: S608 - constant names
