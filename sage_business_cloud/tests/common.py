"""Shared test ground: one local Sage sandbox per test process, and Odoo cases wired to it.

Odoo's test cases let requests to 127.0.0.1/localhost through their HTTP blocker, so every
test below talks real HTTP to the sandbox (``sage_sandbox``) on a free loopback port.
"""

import atexit
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

import odoo
from odoo.tests.common import HttpCase, TransactionCase

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sage_sandbox import SandboxServer  # noqa: E402

from ..models.sage_connection import CALLBACK_ROUTE  # noqa: E402
from ..services.sage_client import SageOAuth  # noqa: E402

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
    params = env["ir.config_parameter"].sudo()
    base = sandbox.base_url
    params.set_param("sage_business_cloud.client_id", CLIENT_ID)
    params.set_param("sage_business_cloud.client_secret", CLIENT_SECRET)
    params.set_param("sage_business_cloud.authorize_url", base + "/oauth2/auth/central")
    params.set_param("sage_business_cloud.token_url", base + "/token")
    params.set_param("sage_business_cloud.api_url", base + "/v3.1")


def authorize_code(authorize_url):
    """Follow the sandbox's auto-approved authorize page; return the callback's query dict."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return {key: values[0] for key, values in query.items()}


def connect_to_sandbox(connection, sandbox, business_id=None):
    """Connect ``connection`` through the real OAuth code flow, skipping only the browser."""
    settings = connection._get_sage_settings()
    oauth = SageOAuth(settings)
    url, verifier = oauth.authorization_url("test-state")
    code = authorize_code(url)["code"]
    token = oauth.fetch_token(code, code_verifier=verifier)
    connection._store_token(token)
    businesses = [{"id": bid, "name": bid} for bid in sandbox.store.business_ids()]
    connection.sudo().available_businesses = businesses
    connection._select_business(business_id or businesses[0]["id"])
    return token


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
