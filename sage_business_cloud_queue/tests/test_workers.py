"""Many workers for real: Odoo started with --workers=2 and queue_job's runner, three companies
connected to three Sage businesses, Sync now for all at once, then one edit of a partner that all
three share.

Everything is committed (the server is another process); the names carry this process's id so a
reused database never collides, and what the test made is removed afterwards. Every wait has a
deadline, and a failure shows the end of the server's log.
"""

import os
import socket
import subprocess
import tempfile
import time
import xmlrpc.client
from contextlib import contextmanager
from pathlib import Path

import requests

import odoo
from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests.common import get_db_name

from odoo.addons.sage_business_cloud.tests.common import CLIENT_ID, CLIENT_SECRET, REPO
from odoo.addons.sage_business_cloud.tests.test_install import _db_args

from sage_sandbox import SandboxServer  # noqa: E402 - importable once common put REPO on sys.path
from sage_sandbox.seed import DAY, seed_business  # noqa: E402
from tools import sandbox_link  # noqa: E402
from tools.odoo_env import locate  # noqa: E402

COMPANIES = 3
CONTACTS = 60  # per business
SHARED = "Shared Holdings Ltd"
ADMIN_PASSWORD = "admin"  # noqa: S105 - a throw-away test database
START_TIMEOUT = 60
SYNC_TIMEOUT = 90
PUSH_TIMEOUT = 60


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(cr):
    return api.Environment(cr, SUPERUSER_ID, {})


def _sandbox(port):
    callback = "/sage_business_cloud/oauth/callback"
    sandbox = SandboxServer(
        host="127.0.0.1", port=0, auto_approve=True, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        redirect_uris=[f"http://127.0.0.1:{port}{callback}"], businesses=COMPANIES)
    store = sandbox.store
    shared_ids = {}
    with store.lock:
        anchor = sandbox.clock.now() // DAY * DAY
        for index, business_id in enumerate(store.business_ids()):
            business = store.business(business_id)
            seed_business(store, business, CONTACTS, 40, 100 + index, anchor)
            shared_ids[business_id] = store.create_contact(
                business, {"name": SHARED, "contact_type_ids": ["CUSTOMER"]})["id"]
        store.reindex()
    return sandbox.start(), shared_ids


@contextmanager
def _companies(registry, sandbox, port):
    """Three companies, each connected to its own business, and a partner shared by all."""
    tag = os.getpid()
    with registry.cursor() as cr:
        env = _env(cr)
        sandbox_link.configure_sandbox_params(env, sandbox.base_url, CLIENT_ID, CLIENT_SECRET)
        env["ir.config_parameter"].set_param("web.base.url", f"http://127.0.0.1:{port}")
        env.ref("base.GBP").active = True
        admin = env.ref("base.user_admin")
        admin.password = ADMIN_PASSWORD
        companies = env["res.company"].create([{"name": f"Workers {tag} Company {n}"} for n in range(COMPANIES)])
        admin.company_ids = [odoo.Command.link(c.id) for c in companies]
        connections = env["sage.connection"].browse()
        for company, business_id in zip(companies, sandbox.store.business_ids(), strict=True):
            connection = env["sage.connection"]._get_for_company(company)
            sandbox_link.connect(connection, [business_id], business_id)
            connections |= connection
        shared = env["res.partner"].create({"name": SHARED, "is_company": True, "company_id": False})
        ids = (companies.ids, connections.ids, shared.id)
    try:
        yield ids
    finally:
        with registry.cursor() as cr:
            env = _env(cr)
            bindings = env["sage.binding"].search([("connection_id", "in", ids[1])])
            partners = bindings.partner_id | env["res.partner"].browse(ids[2]).exists()
            children = env["res.partner"].with_context(active_test=False).search([("parent_id", "in", partners.ids)])
            (children | partners).with_context(sage_deleted_in_sage=True).unlink()
            env["queue.job"].search([("model_name", "in", ("sage.connection", "sage.binding"))]).unlink()
            env["sage.connection"].browse(ids[1]).unlink()
            env["res.company"].browse(ids[0]).write({"active": False})


@contextmanager
def _server(db, port):
    """Odoo with two HTTP workers and the job runner (channels root:2, root.sage:2), no cron."""
    _root, command, addons = locate()
    folder = Path(tempfile.mkdtemp(prefix="sage-workers-"))
    config, log = folder / "odoo.conf", folder / "odoo.log"
    config.write_text(f"[options]\naddons_path = {addons}\n\n[queue_job]\nchannels = root:2,root.sage:2\n")
    # bin/test turns the runner off in pytest's own Odoo (ODOO_QUEUE_JOB_CHANNELS=root:0): not here.
    env = {k: v for k, v in os.environ.items() if k not in ("QUEUE_JOB__NO_DELAY", "ODOO_QUEUE_JOB_CHANNELS")}
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "-c", str(config), "-d", db, f"--db-filter=^{db}$", *_db_args(), "--workers=2",
             "--max-cron-threads=0", "--load=web,queue_job", f"--http-port={port}",
             "--http-interface=127.0.0.1", "--limit-time-real=120", "--log-level=info"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
    try:
        _wait(lambda: process.poll() is None and _healthy(port), START_TIMEOUT, "Odoo did not start", log)
        _wait(lambda: "database connections ready" in log.read_text(), START_TIMEOUT,
              "queue_job's runner did not get ready", log)
        yield log
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _healthy(port):
    try:
        return requests.get(f"http://127.0.0.1:{port}/web/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _wait(condition, timeout, what, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout} s; end of the server's log:\n{_tail(log)}")


def _tail(log, lines=40):
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _query(registry, sql, params=()):
    with registry.cursor() as cr:
        cr.execute(sql, params)
        return cr.fetchall()


def _jobs_left(registry):
    return _query(registry, "SELECT count(*) FROM queue_job WHERE model_name IN ('sage.connection', 'sage.binding') "
                            "AND state NOT IN ('done', 'cancelled')")[0][0]


def test_three_companies_sync_side_by_side_and_a_shared_edit_is_pushed_once_per_business():
    db, port = get_db_name(), _free_port()
    registry = Registry(db)
    sandbox, shared_ids = _sandbox(port)
    try:
        with _companies(registry, sandbox, port) as (company_ids, connection_ids, shared_id), \
                _server(db, port) as log:
            rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/xmlrpc/2/object", allow_none=True)
            uid = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/xmlrpc/2/common").authenticate(
                db, "admin", ADMIN_PASSWORD, {})
            context = {"context": {"allowed_company_ids": company_ids}}

            def call(model, method, *args):
                return rpc.execute_kw(db, uid, ADMIN_PASSWORD, model, method, list(args), context)

            # Sync now for all three at once: one job per company, two running side by side.
            call("sage.connection", "action_sync_now", connection_ids)

            def runs():
                return _query(registry, "SELECT connection_id, state, contacts_created, contacts_linked, message "
                                        "FROM sage_sync_run WHERE connection_id IN %s ORDER BY id",
                              [tuple(connection_ids)])

            def synced():
                done = {r[0] for r in runs() if r[1] == "done"}
                return done == set(connection_ids) and not _jobs_left(registry)

            _wait(synced, SYNC_TIMEOUT, "the three syncs did not finish", log)
            outcome = runs()
            for connection_id in connection_ids:
                mine = [r for r in outcome if r[0] == connection_id]
                assert [r[1] for r in mine].count("done") == 1, f"one completed run per business: {outcome}"
                # A run may lose a page to a concurrent update of the shared partner: its job tries
                # again and carries on. Every Sage contact is still imported exactly once.
                assert all(r[1] == "done" or "concurrent update" in (r[4] or "") for r in mine), mine
                assert sum(r[2] for r in mine) == CONTACTS, mine
                assert sum(r[3] for r in mine) == 1, f"the shared partner linked once per business: {mine}"
            assert _query(registry, "SELECT count(DISTINCT identity_key) FROM queue_job "
                                    "WHERE method_name = '_sage_sync_job' AND identity_key IN %s",
                          [tuple(f"sage_business_cloud_queue.sync.{c}" for c in connection_ids)])[0][0] == COMPANIES

            for connection_id, company_id in zip(connection_ids, company_ids, strict=True):
                bound = _query(registry, "SELECT sage_contact_id, partner_id FROM sage_binding "
                                         "WHERE connection_id = %s AND kind = 'contact'", [connection_id])
                assert len(bound) == CONTACTS + 1, (connection_id, len(bound))
                assert len({row[0] for row in bound}) == len({row[1] for row in bound}) == len(bound)
                top = _query(registry, "SELECT count(*) FROM res_partner WHERE company_id = %s "
                                       "AND parent_id IS NULL", [company_id])[0][0]
                assert top == CONTACTS, f"one partner per Sage contact in company {company_id}: {top}"
            shared_bindings = _query(registry, "SELECT connection_id FROM sage_binding WHERE partner_id = %s",
                                     [shared_id])
            assert sorted(r[0] for r in shared_bindings) == sorted(connection_ids), "shared partner bound thrice"
            assert _query(registry, "SELECT count(*) FROM res_partner WHERE name = %s", [SHARED])[0][0] == 1

            # One edit of the shared partner: one job per business, one PUT each.
            sandbox.clear_requests()
            call("res.partner", "write", [shared_id], {"phone": "020 7946 0123"})

            def pushed():
                states = _query(registry, "SELECT push_state FROM sage_binding WHERE partner_id = %s", [shared_id])
                return all(s[0] == "synced" for s in states) and not _jobs_left(registry)

            _wait(pushed, PUSH_TIMEOUT, "the shared partner's pushes did not finish", log)
            by_path = sandbox.request_log()["by_path"]
            puts = {key: n for key, n in by_path.items() if key.startswith("PUT ")}
            assert puts == {f"PUT /v3.1/contacts/{sage_id}": 1 for sage_id in shared_ids.values()}, puts
            for business_id, sage_id in shared_ids.items():
                person = sandbox.store.get("contacts", sage_id, business_id)["main_contact_person"]
                assert person["telephone"] == "020 7946 0123", person
    finally:
        sandbox.stop()
