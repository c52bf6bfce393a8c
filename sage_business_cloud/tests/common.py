"""Shared test ground: one local Sage sandbox per test process, and Odoo cases wired to it.

Odoo's test cases let requests to 127.0.0.1/localhost through their HTTP blocker, so every
test below talks real HTTP to the sandbox (``sage_sandbox``) on a free loopback port.
"""

import atexit
import sys
import threading
from pathlib import Path
import odoo
from odoo.tests.common import HttpCase, TransactionCase

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sage_sandbox import SandboxServer  # noqa: E402
from tools import sandbox_link  # noqa: E402
from tools.sandbox_link import authorize_code  # noqa: E402,F401 - used by the test modules

from ..models.sage_connection import CALLBACK_ROUTE  # noqa: E402

CLIENT_ID = "odoo-test-client"
CLIENT_SECRET = "odoo-test-secret"  # noqa: S105 - a sandbox credential
TEST_BASE_URL = "http://localhost:8069"

_sandbox = None
_sandbox_lock = threading.Lock()


def get_sandbox():
    """Start the process-wide sandbox on first use (stopped at exit)."""
    global _sandbox
    with _sandbox_lock:
        if _sandbox is None:
            http_port = odoo.tools.config.get("http_port") or 8069
            redirect_uris = [
                TEST_BASE_URL + CALLBACK_ROUTE,
                "http://127.0.0.1:%s%s" % (http_port, CALLBACK_ROUTE),
                "http://localhost:%s%s" % (http_port, CALLBACK_ROUTE),
            ]
            _sandbox = SandboxServer(
                host="127.0.0.1", port=0, auto_approve=True, client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET, redirect_uris=redirect_uris, businesses=2,
            )
            _sandbox.start()
            atexit.register(_sandbox.stop)
        return _sandbox


def configure_sandbox_params(env, sandbox):
    """Point the addon's system parameters at the sandbox."""
    sandbox_link.configure_sandbox_params(env, sandbox.base_url, CLIENT_ID, CLIENT_SECRET)


def connect_to_sandbox(connection, sandbox, business_id=None):
    """Connect ``connection`` through the real OAuth code flow, skipping only the browser."""
    return sandbox_link.connect(connection, sandbox.store.business_ids(), business_id)


class SageSandboxMixin:
    """Gives a case ``self.sandbox`` (reset before each test) and a connected ``connection``."""

    sage_connect = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sandbox = get_sandbox()
        configure_sandbox_params(cls.env, cls.sandbox)
        cls.env["ir.config_parameter"].sudo().set_param("web.base.url", cls._sage_base_url())

    @classmethod
    def _sage_base_url(cls):
        return TEST_BASE_URL

    def setUp(self):
        super().setUp()
        self.sandbox.reset()
        self.sandbox.clear_faults()
        self.sandbox.clear_requests()
        self.business_id = self.sandbox.store.business_ids()[0]
        self.connection = self.env["sage.connection"]._get_for_company(self.env.company)
        if self.sage_connect:
            self.connect_to_sandbox(self.connection, self.business_id)

    def connect_to_sandbox(self, connection, business_id=None):
        return connect_to_sandbox(connection, self.sandbox, business_id)


class SageTransactionCase(SageSandboxMixin, TransactionCase):
    """A transaction rolled back after each test, a fresh sandbox, a connected company."""


class SageHttpCase(SageSandboxMixin, HttpCase):
    """Same, with Odoo's HTTP test server for routes (the OAuth callback)."""

    @classmethod
    def _sage_base_url(cls):
        return "http://127.0.0.1:%s" % odoo.tools.config["http_port"]


def bound_partner(env, connection, name, sage_id, **values):
    """A company partner bound to the Sage contact ``sage_id`` (as the addon would bind it)."""
    partner = env["res.partner"].create({"name": name, "is_company": True, **values})
    env["sage.binding"].sudo().create({"connection_id": connection.id, "partner_id": partner.id,
                                       "sage_contact_id": sage_id, "link_method": "manual",
                                       "push_state": "synced", "push_snapshot": {}})
    partner.invalidate_recordset()
    return partner
