"""18.0.2.0.0: the Sage links, push states and snapshots move from res.partner to sage.binding.

The old layout kept one link per partner in columns of ``res_partner``. Each becomes a binding of
its connection: a contact binding for a partner holding a Sage contact id, a person binding for
a person added as a contact person of its company's Sage contact. The old columns are dropped
afterwards and the figures computed again, per company.
"""

from odoo import SUPERUSER_ID, api

OLD_COLUMNS = (
    "sage_connection_id", "sage_contact_id", "sage_business_id", "sage_link_method", "sage_linked_at",
    "sage_contact_url", "sage_updated_at", "sage_push_state", "sage_push_error", "sage_push_attempts",
    "sage_push_next_at", "sage_pushed_at", "sage_push_snapshot", "sage_main_person_id",
    "sage_contact_person_id", "sage_url",
)


def _columns(cr):
    cr.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'res_partner'")
    return {row[0] for row in cr.fetchall()}


def migrate(cr, version):
    if not version or "sage_contact_id" not in _columns(cr):
        return
    cr.execute("""
        INSERT INTO sage_binding (connection_id, company_id, partner_id, kind, sage_contact_id, link_method,
                                  linked_at, contact_url, sage_updated_at, main_person_id, push_state,
                                  push_error, push_attempts, push_next_at, pushed_at, push_snapshot,
                                  create_uid, create_date, write_uid, write_date)
        SELECT p.sage_connection_id, c.company_id, p.id, 'contact', p.sage_contact_id, p.sage_link_method,
               p.sage_linked_at, p.sage_contact_url, p.sage_updated_at, p.sage_main_person_id,
               COALESCE(p.sage_push_state, 'synced'), p.sage_push_error, COALESCE(p.sage_push_attempts, 0),
               p.sage_push_next_at, p.sage_pushed_at, p.sage_push_snapshot, 1, now(), 1, now()
          FROM res_partner p JOIN sage_connection c ON c.id = p.sage_connection_id
         WHERE p.sage_contact_id IS NOT NULL
        ON CONFLICT DO NOTHING""")
    cr.execute("""
        INSERT INTO sage_binding (connection_id, company_id, partner_id, kind, sage_contact_person_id,
                                  link_method, linked_at, push_state, push_error, push_attempts, push_next_at,
                                  pushed_at, push_snapshot, create_uid, create_date, write_uid, write_date)
        SELECT holder.sage_connection_id, c.company_id, p.id, 'person', p.sage_contact_person_id,
               holder.sage_link_method, now(), COALESCE(p.sage_push_state, 'synced'), p.sage_push_error,
               COALESCE(p.sage_push_attempts, 0), p.sage_push_next_at, p.sage_pushed_at, p.sage_push_snapshot,
               1, now(), 1, now()
          FROM res_partner p
          JOIN res_partner holder ON holder.id = p.commercial_partner_id
          JOIN sage_connection c ON c.id = holder.sage_connection_id
         WHERE p.sage_contact_person_id IS NOT NULL AND p.id != holder.id
        ON CONFLICT DO NOTHING""")
    for column in OLD_COLUMNS:
        cr.execute(f'ALTER TABLE res_partner DROP COLUMN IF EXISTS "{column}"')  # noqa: S608 - constant names
    env = api.Environment(cr, SUPERUSER_ID, {})
    cr.execute("SELECT DISTINCT partner_id FROM sage_invoice")
    env["res.partner"].browse([row[0] for row in cr.fetchall()])._sage_recompute_invoice_figures()
