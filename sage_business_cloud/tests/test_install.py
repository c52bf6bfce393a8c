"""The addon installs into, and uninstalls from, a fresh Odoo 18 database without errors."""

import os
import subprocess
import sys
from pathlib import Path

import odoo

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tools.odoo_env import locate  # noqa: E402

UNINSTALL = """
module = env['ir.module.module'].search([('name', '=', 'sage_business_cloud')])
module.button_immediate_uninstall()
env.cr.commit()
"""


def _db_args():
    config = odoo.tools.config
    args = []
    for key in ("db_host", "db_port", "db_user", "db_password"):
        if config.get(key):
            args.append(f"--{key}={config[key]}")
    return args


def _pg_env():
    env = dict(os.environ)
    config = odoo.tools.config
    for key, var in (("db_host", "PGHOST"), ("db_port", "PGPORT"), ("db_user", "PGUSER")):
        if config.get(key):
            env[var] = str(config[key])
    return env


def _psql(db, query):
    return subprocess.run(["psql", "-d", db, "-tAc", query], env=_pg_env(), capture_output=True,
                          text=True, check=True).stdout.strip()


def _odoo(db, *args, stdin=None, subcommand=(), addons_path=None):
    _root, command, addons = locate()
    run = subprocess.run(
        [*command, *subcommand, "-d", db, *_db_args(), f"--addons-path={addons_path or addons}", "--no-http",
         "--without-demo=all", "--log-level=warn", *args],
        input=stdin, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " ERROR " not in run.stderr, run.stderr[-3000:]
    return run


def test_install_then_uninstall_leaves_no_trace():
    db = f"sage_bc_install_check_{os.getpid()}"
    subprocess.run(["dropdb", "--if-exists", "--force", db], check=False, env=_pg_env())
    try:
        _odoo(db, "-i", "sage_business_cloud", "--stop-after-init")
        assert _psql(db, "SELECT state FROM ir_module_module WHERE name='sage_business_cloud'") == "installed"
        assert _psql(db, "SELECT to_regclass('sage_connection') IS NOT NULL") == "t"
        assert _psql(db, "SELECT count(*) FROM ir_cron WHERE cron_name LIKE 'Sage Business Cloud%'") != "0"

        _odoo(db, stdin=UNINSTALL, subcommand=("shell",))
        assert _psql(db, "SELECT state FROM ir_module_module WHERE name='sage_business_cloud'") == "uninstalled"
        assert _psql(db, "SELECT to_regclass('sage_connection') IS NULL") == "t"
        leftovers = _psql(db, "SELECT count(*) FROM information_schema.columns WHERE table_name='res_partner' "
                              "AND (column_name LIKE 'sage%' OR column_name = 'team_id')")
        assert leftovers == "0"
        assert _psql(db, "SELECT count(*) FROM ir_cron WHERE cron_name LIKE 'Sage Business Cloud%'") == "0"
    finally:
        subprocess.run(["dropdb", "--if-exists", "--force", db], check=False, env=_pg_env())

