"""Two Odoo workers refreshing one grant at the same moment (real transactions, real threads).

Sage refresh tokens are single use: if both workers spent the same one, the second would get
invalid_grant and the company would need a reconnect. The row lock on the token makes the
second worker wait, re-read, and use the token the first one stored.
"""

import threading

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests.common import get_db_name

from .common import configure_sandbox_params, connect_to_sandbox, get_sandbox


def _token_calls(sandbox):
    return sandbox.request_log()["by_path"].get("POST /token", 0)


def test_two_workers_refreshing_at_once_keep_the_connection():
    registry = Registry(get_db_name())
    sandbox = get_sandbox()
    sandbox.reset()
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        configure_sandbox_params(env, sandbox)
        env["ir.config_parameter"].set_param("web.base.url", "http://localhost:8069")
        connection = env["sage.connection"]._get_for_company(env.ref("base.main_company"))
        connect_to_sandbox(connection, sandbox)
        connection_id = connection.id
        # The workers run in their own transactions: they need committed data.
        cr.commit()  # pylint: disable=invalid-commit

    barrier = threading.Barrier(2, timeout=30)
    outcomes = []

    def worker():
        try:
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                client = env["sage.connection"].browse(connection_id)._get_client()
                barrier.wait()
                outcomes.append(("ok", len(client.list_businesses())))
        except Exception as error:  # noqa: BLE001 - reported below
            outcomes.append(("error", repr(error)))

    try:
        sandbox.expire_access_tokens()
        sandbox.clear_requests()
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert [kind for kind, _value in outcomes] == ["ok", "ok"], outcomes
        assert _token_calls(sandbox) == 1, "the grant must be refreshed once, not twice"

        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            connection = env["sage.connection"].browse(connection_id)
            assert connection.state == "connected"
            # The stored refresh token is the live one: the next expiry is crossed as well.
            sandbox.expire_access_tokens()
            connection._get_client().list_businesses()
            assert connection.state == "connected"
    finally:
        with registry.cursor() as cr:
            api.Environment(cr, SUPERUSER_ID, {})["sage.connection"].browse(connection_id).unlink()
