"""The bridge installs with queue_job (auto_install), and uninstalls leaving the core addon whole."""

import os
import subprocess

from odoo.addons.sage_business_cloud.tests.test_install import _odoo, _pg_env, _psql

UNINSTALL = """
module = env['ir.module.module'].search([('name', '=', 'sage_business_cloud_queue')])
module.button_immediate_uninstall()
env.cr.commit()
"""
# After the uninstall the core addon does its work itself again: Sync now triggers the cron.
CORE_AGAIN = """
company = env.ref('base.main_company')
connection = env['sage.connection']._get_for_company(company)
connection.write({'state': 'connected'})
connection._sage_dispatch_syncs('manual')
cron = env.ref('sage_business_cloud.ir_cron_sage_sync')
print('TRIGGERS', env['ir.cron.trigger'].search_count([('cron_id', '=', cron.id)]))
env.cr.rollback()
"""


def _module_state(db, name):
    return _psql(db, f"SELECT state FROM ir_module_module WHERE name='{name}'")


def test_installed_with_queue_job_then_uninstalled_cleanly():
    db = f"sage_bc_queue_install_check_{os.getpid()}"
    subprocess.run(["dropdb", "--if-exists", "--force", db], check=False, env=_pg_env())
    try:
        _odoo(db, "-i", "sage_business_cloud,queue_job", "--stop-after-init")
        assert _module_state(db, "sage_business_cloud_queue") == "installed", "auto_install with queue_job"
        assert _psql(db, "SELECT count(*) FROM queue_job_channel WHERE complete_name = 'root.sage'") == "1"
        assert _psql(db, "SELECT count(*) FROM queue_job_function WHERE name LIKE '<sage.%'") == "2"

        _odoo(db, stdin=UNINSTALL, subcommand=("shell",))
        assert _module_state(db, "sage_business_cloud_queue") == "uninstalled"
        assert _module_state(db, "sage_business_cloud") == "installed"
        assert _module_state(db, "queue_job") == "installed"
        assert _psql(db, "SELECT count(*) FROM queue_job_channel WHERE complete_name = 'root.sage'") == "0"
        assert _psql(db, "SELECT count(*) FROM queue_job_function WHERE name LIKE '<sage.%'") == "0"
        assert _psql(db, "SELECT count(*) FROM ir_ui_menu WHERE name->>'en_US' = 'Background jobs'") == "0"
        shell = _odoo(db, stdin=CORE_AGAIN, subcommand=("shell",))
        assert "TRIGGERS 1" in shell.stdout, shell.stdout[-2000:]
    finally:
        subprocess.run(["dropdb", "--if-exists", "--force", db], check=False, env=_pg_env())
