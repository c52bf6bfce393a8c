"""Measure what a Sage sync costs: HTTP requests, SQL queries and seconds, per phase.

Builds a fresh database with the addon, starts the sandbox in this process with a seeded book,
connects through OAuth, then times four runs: the first import, an incremental run with nothing
new, an incremental run after a few Sage changes, and the first import again with a few hundred
name matches. Prints a table; proves that requests and queries grow with pages, not records.

    python3 tools/benchmark.py --contacts 10000 --invoices 50000
"""

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tools.odoo_env import locate  # noqa: E402

PAGE = 200


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000, help="Sage contacts to seed (default 2000)")
    parser.add_argument("--invoices", type=int, default=10000, help="Sage invoices to seed (default 10000)")
    parser.add_argument("--matches", type=int, default=300,
                        help="Odoo partners created beforehand with exactly a Sage name (default 300)")
    parser.add_argument("--db", default="sage_bc_bench", help="database, rebuilt at each run")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args()


def build_database(db):
    _root, command, addons = locate()
    pg = [f"--db_host={os.environ.get('PGHOST', '127.0.0.1')}", f"--db_port={os.environ.get('PGPORT', '5432')}"]
    if os.environ.get("PGUSER"):
        pg.append(f"--db_user={os.environ['PGUSER']}")
    subprocess.run(["dropdb", "--if-exists", "--force", "-h", os.environ.get("PGHOST", "127.0.0.1"), db],
                   check=True)
    subprocess.run([*command, "-d", db, *pg, f"--addons-path={addons}", "-i", "sage_business_cloud",
                    "--without-demo=all", "--stop-after-init", "--log-level=warn", "--no-http"], check=True)
    return addons, pg


def main():
    args = parse_args()
    addons, pg = build_database(args.db)

    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    odoo.tools.config.parse_config(["-d", args.db, f"--addons-path={addons}", *pg, "--log-level=warn"])
    from sage_sandbox import SandboxServer
    from tools import sandbox_link

    started = time.perf_counter()
    sandbox = SandboxServer(port=0, contacts=args.contacts, invoices=args.invoices, seed=args.seed,
                            client_id="odoo-test-client", client_secret="odoo-test-secret")
    sandbox.start()
    print(f"sandbox seeded with {args.contacts} contacts and {args.invoices} invoices "
          f"in {time.perf_counter() - started:.1f} s")
    registry = Registry(args.db)
    rows = []
    try:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            sandbox_link.configure_sandbox_params(env, sandbox.base_url, "odoo-test-client", "odoo-test-secret")
            env["ir.config_parameter"].set_param("web.base.url", "http://localhost:8069")
            connection = env["sage.connection"]._get_for_company(env.company)
            sandbox_link.connect(connection, sandbox.store.business_ids())
            names = [c["name"] for c in sandbox.store.contacts()[: args.matches]]
            env["res.partner"].create([{"name": name, "is_company": True} for name in names])
            cr.commit()
            connection_id = connection.id

        def measure(label):
            sandbox.clear_requests()
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                connection = env["sage.connection"].browse(connection_id)
                queries_before = cr.sql_log_count
                begin = time.perf_counter()
                run = connection._run_sync(trigger="script")
                seconds = time.perf_counter() - begin
                queries = cr.sql_log_count - queries_before
                cr.commit()
                log = sandbox.request_log()
                rows.append({
                    "phase": label, "seconds": seconds, "requests": log["total"], "queries": queries,
                    "read": run.contacts_read, "linked": run.contacts_linked, "created": run.contacts_created,
                    "invoices": run.invoices_read, "state": run.state,
                })

        measure("first import")
        measure("incremental, nothing new")
        business = sandbox.store.business_ids()[0]
        for contact in sandbox.store.contacts(business)[:25]:
            sandbox.store.update_contact(sandbox.store.business(business), contact["id"],
                                         {"notes": "touched by the benchmark"})
        measure("incremental, 25 contacts edited")
    finally:
        sandbox.stop()

    pages_contacts = math.ceil(args.contacts / PAGE)
    pages_invoices = math.ceil(args.invoices / PAGE)
    print(f"\npages: {pages_contacts} of contacts, about {pages_invoices} of invoices (sales + purchases)")
    header = f"{'phase':34} {'seconds':>8} {'requests':>9} {'SQL':>8} {'read':>6} {'linked':>6} " \
             f"{'created':>7} {'invoices':>8} {'SQL/page':>8}  state"
    print(header)
    print("-" * len(header))
    for row in rows:
        pages = max(1, math.ceil(row["read"] / PAGE) + math.ceil(row["invoices"] / PAGE))
        print(f"{row['phase']:34} {row['seconds']:8.1f} {row['requests']:9} {row['queries']:8} {row['read']:6} "
              f"{row['linked']:6} {row['created']:7} {row['invoices']:8} {row['queries'] / pages:8.1f}  "
              f"{row['state']}")


if __name__ == "__main__":
    main()
