"""Upgrade to 18.0.2.x on a database written by the old layout (links as res.partner columns).

The old addon is taken from this repository's own history (the last commit of the 18.0.1 layout),
installed into a fresh database, given linked partners, an added contact person, a pending push
and an invoice; then the current addon upgrades it and the links must be bindings.
"""

import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from .test_install import REPO, _odoo, _pg_env, _psql, locate

#: The last commit whose addon kept the Sage link in res.partner columns (version 18.0.1.0.0).
OLD_LAYOUT_COMMIT = "336af09"

OLD_DATA = """
company = env.company
connection = env['sage.connection'].create({'company_id': company.id})
env.cr.execute("UPDATE sage_connection SET state='connected', business_id='biz-1', business_name='Old Book' "
               "WHERE id = %s", [connection.id])
Partner = env['res.partner'].with_context(sage_no_push=True)
acme = Partner.create({'name': 'Acme Old Ltd', 'is_company': True})
acme.write({'sage_connection_id': connection.id, 'sage_contact_id': 'c' * 32, 'sage_link_method': 'name_match',
            'sage_push_state': 'pending', 'sage_push_snapshot': {'name': 'Acme Old Ltd'},
            'sage_contact_url': 'https://accounts.example/contacts/1'})
carol = Partner.create({'name': 'Carol Old', 'parent_id': acme.id})
carol.write({'sage_contact_person_id': 'p' * 32, 'sage_push_state': 'synced'})
Partner.create({'name': 'Not Linked Ltd', 'is_company': True})
env['sage.invoice'].create({'partner_id': acme.id, 'connection_id': connection.id, 'sage_id': 'i' * 32,
                            'invoice_type': 'sale', 'number': 'SI-1', 'due_date': '2020-01-01',
                            'currency_id': company.currency_id.id, 'total_amount': 120.0,
                            'outstanding_amount': 120.0, 'status': 'UNPAID'})
env.cr.commit()
"""


def _old_addon(target):
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD_LAYOUT_COMMIT, "sage_business_cloud"],
                             capture_output=True, check=False)
    if archive.returncode:
        pytest.skip(f"this clone has no commit {OLD_LAYOUT_COMMIT} (shallow clone?): {archive.stderr[-200:]!r}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        try:
            tar.extractall(target, filter="data")
        except TypeError:  # Python before 3.11.4: no extraction filters (our own archive)
            tar.extractall(target)  # noqa: S202


def test_upgrade_moves_links_into_bindings():
    db = f"sage_bc_migration_check_{os.getpid()}"
    subprocess.run(["dropdb", "--if-exists", "--force", db], check=False, env=_pg_env())
    _root, _command, addons = locate()
    with tempfile.TemporaryDirectory() as old:
        _old_addon(old)
        # the repository's own entry (this addon) becomes the old one; the others stay
        old_addons = ",".join(old if path == str(REPO) else path for path in addons.split(","))
        assert (Path(old) / "sage_business_cloud" / "__manifest__.py").is_file()
        try:
            _odoo(db, "-i", "sage_business_cloud", "--stop-after-init", addons_path=old_addons)
            _odoo(db, stdin=OLD_DATA, subcommand=("shell",), addons_path=old_addons)
            assert _psql(db, "SELECT count(*) FROM res_partner WHERE sage_contact_id IS NOT NULL") == "1"

            _odoo(db, "-u", "sage_business_cloud", "--stop-after-init")

            assert _psql(db, "SELECT latest_version FROM ir_module_module WHERE name='sage_business_cloud'") \
                == "18.0.2.1.0"
            # 18.0.2.1.0: the noupdate rule of the sales rows lets credit notes and quotes through
            rule = _psql(db, "SELECT r.domain_force FROM ir_rule r JOIN ir_model_data d ON d.res_id = r.id "
                             "AND d.model = 'ir.rule' WHERE d.name = 'sage_invoice_sales_only_rule'")
            assert rule == "[('invoice_type', 'not in', ('purchase', 'purchase_credit'))]", rule
            # a connection made before the preview existed keeps importing at once
            assert _psql(db, "SELECT string_agg(DISTINCT first_import_mode, ',') FROM sage_connection") == "auto"
            rows = _psql(db, "SELECT p.name, b.kind, coalesce(b.sage_contact_id, b.sage_contact_person_id), "
                             "b.link_method, b.push_state, b.push_snapshot->>'name', b.company_id IS NOT NULL "
                             "FROM sage_binding b JOIN res_partner p ON p.id = b.partner_id ORDER BY p.name")
            assert rows.splitlines() == [
                f"Acme Old Ltd|contact|{'c' * 32}|name_match|pending|Acme Old Ltd|t",
                f"Carol Old|person|{'p' * 32}|name_match|synced||t",
            ]
            assert _psql(db, "SELECT count(*) FROM information_schema.columns WHERE table_name='res_partner' "
                             "AND column_name IN ('sage_contact_id', 'sage_connection_id', 'sage_push_state')") == "0"
            # the figures were computed again, as the connection's company's values
            overdue = _psql(db, "SELECT sage_overdue_amount FROM res_partner WHERE name = 'Acme Old Ltd'")
            assert "120" in overdue, overdue
        finally:
            subprocess.run(["dropdb", "--if-exists", "--force", db], check=False, env=_pg_env())
