"""Issue 4: connecting a company to Sage, keeping the grant alive, losing it, disconnecting."""

import re
from unittest.mock import patch

import requests

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from ..services.sage_client import SageAuthError, SageOAuth
from .common import bound_partner, CALLBACK_ROUTE, SageHttpCase, SageTransactionCase, authorize_code


@tagged("post_install", "-at_install")
class TestConnectionTokens(SageTransactionCase):

    def _token(self):
        return self.connection.sudo().token_id

    def test_connected_connection_lists_the_sandbox_business(self):
        self.assertEqual(self.connection.state, "connected")
        self.assertEqual(self.connection.business_id, self.business_id)
        businesses = self.connection._get_client().list_businesses()
        self.assertIn(self.business_id, [b["id"] for b in businesses])

    def test_expired_access_token_is_refreshed_and_the_rotated_refresh_token_kept(self):
        old_refresh = self._token().refresh_token
        self.sandbox.expire_access_tokens()
        self.connection._get_client().list_businesses()
        new_refresh = self._token().refresh_token
        self.assertNotEqual(new_refresh, old_refresh, "the rotated refresh token must be stored")
        # Sage's refresh tokens are single use: the old one is dead, the stored one works.
        oauth = SageOAuth(self.connection._get_sage_settings())
        with self.assertRaises(SageAuthError):
            oauth.refresh(old_refresh)
        self.sandbox.expire_access_tokens()
        self.connection._get_client().list_businesses()
        self.assertEqual(self.connection.state, "connected")

    def test_a_stale_refresh_token_is_not_spent_twice(self):
        """A worker holding an old token uses the one another worker already refreshed."""
        stale = self._token()._as_token()
        self.sandbox.expire_access_tokens()
        self.connection._get_client().list_businesses()  # first worker refreshes
        fresh = self._token()._as_token()
        with patch.object(SageOAuth, "refresh", side_effect=AssertionError("refreshed twice")):
            token = self.connection._refresh_token(stale)
        self.assertEqual(token["refresh_token"], fresh["refresh_token"])

    def test_lost_grant_needs_reconnect_and_tells_the_administrators(self):
        self.sandbox.revoke_grants()
        self.sandbox.expire_access_tokens()
        # Not assertRaises: Odoo's rolls the transaction back to a savepoint, whereas the real
        # code commits the "needs reconnect" state in its own transaction.
        caught = None
        try:
            self.connection._get_client().list_businesses()
        except SageAuthError as error:
            caught = error
        self.assertIsNotNone(caught, "a lost grant must raise SageAuthError")
        self.assertEqual(self.connection.state, "needs_reconnect")
        self.assertTrue(self.connection.last_error)
        self.assertFalse(self._token(), "dead tokens are dropped")
        activities = self.connection.activity_ids
        self.assertTrue(activities, "administrators get a reconnect activity")
        self.assertIn(self.env.ref("base.user_admin"), activities.user_id)
        # The sync stops cleanly: nothing to run for this company until it reconnects.
        with self.assertRaises(UserError):
            self.connection._get_client()
        # Reconnecting closes the activity and carries on.
        self.connect_to_sandbox(self.connection, self.business_id)
        self.assertEqual(self.connection.state, "connected")
        self.assertFalse(self.connection.activity_ids)
        self.assertFalse(self.connection.last_error)

    def test_disconnect_revokes_at_sage_and_keeps_partner_links(self):
        refresh = self._token().refresh_token
        partner = bound_partner(self.env, self.connection, "Linked Ltd", "a" * 32)
        self.connection.action_disconnect()
        self.assertEqual(self.connection.state, "disconnected")
        self.assertFalse(self._token())
        with self.assertRaises(SageAuthError):
            SageOAuth(self.connection._get_sage_settings()).refresh(refresh)
        self.assertEqual(partner.sage_contact_id, "a" * 32)
        # Same business again: allowed, the link carries on.
        self.connect_to_sandbox(self.connection, self.business_id)
        self.assertEqual(self.connection.state, "connected")
        self.assertEqual(partner.sage_connection_id, self.connection)

    def test_another_business_is_refused_while_partners_are_linked(self):
        other = self.sandbox.store.business_ids()[1]
        bound_partner(self.env, self.connection, "Linked Ltd", "b" * 32)
        with self.assertRaisesRegex(UserError, "still linked"):
            self.connection._select_business(other)
        self.assertEqual(self.connection.business_id, self.business_id)

    def test_refresh_token_close_to_expiry_warns(self):
        self.assertFalse(self.connection.refresh_token_expiring)
        self._token().refresh_expires_at = "2000-01-01 00:00:00"
        self.connection.invalidate_recordset(["refresh_token_expiring"])
        self.assertTrue(self.connection.refresh_token_expiring)

    def test_sync_now_triggers_the_cron_without_waiting(self):
        cron = self.env.ref("sage_business_cloud.ir_cron_sage_sync")
        before = self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])
        action = self.connection.action_sync_now()
        self.assertEqual(action["tag"], "display_notification")
        self.assertEqual(self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), before + 1)
        self.assertTrue(self.connection.sync_requested)

    def test_the_cron_ships_active_every_two_hours(self):
        cron = self.env.ref("sage_business_cloud.ir_cron_sage_sync")
        self.assertTrue(cron.active)
        self.assertEqual((cron.interval_number, cron.interval_type), (2, "hours"))


@tagged("post_install", "-at_install")
class TestConnectionAccess(SageTransactionCase):

    def setUp(self):
        super().setUp()
        self.user = new_test_user(self.env, login="sage_plain", groups="base.group_user")

    def test_plain_user_reads_the_state_but_never_the_tokens(self):
        connection = self.connection.with_user(self.user)
        self.assertEqual(connection.state, "connected")
        with self.assertRaises(AccessError):
            connection.read(["token_id"])
        with self.assertRaises(AccessError):
            self.env["sage.connection.token"].with_user(self.user).search([])
        with self.assertRaises(AccessError):
            connection.read(["oauth_code_verifier"])

    def test_plain_user_cannot_read_the_client_secret(self):
        with self.assertRaises(AccessError):
            self.env["ir.config_parameter"].with_user(self.user).search(
                [("key", "=", "sage_business_cloud.client_secret")]).read(["value"])
        settings_fields = self.env["res.config.settings"].with_user(self.user).fields_get()
        self.assertNotIn("sage_client_secret", settings_fields)

    def test_plain_user_cannot_change_or_drive_the_connection(self):
        connection = self.connection.with_user(self.user)
        with self.assertRaises(AccessError):
            connection.write({"exclude_supplier_invoices": True})
        for method in ("action_connect", "action_disconnect", "action_sync_now"):
            with self.assertRaises(UserError, msg=method):
                getattr(connection, method)()
        self.assertEqual(self.connection.state, "connected")

    def test_token_values_never_reach_the_chatter(self):
        self.sandbox.expire_access_tokens()
        self.connection._get_client().list_businesses()
        token = self.connection.sudo().token_id
        secrets = [token.access_token, token.refresh_token]
        self.connection.action_disconnect()
        bodies = " ".join(self.connection.message_ids.mapped("body"))
        for secret in secrets:
            self.assertTrue(secret)
            self.assertNotIn(secret, bodies)


@tagged("post_install", "-at_install")
class TestOAuthCallback(SageHttpCase):
    """The browser's path: Connect, Sage's authorize page, our callback route, the picker."""

    sage_connect = False

    def setUp(self):
        super().setUp()
        self.admin = self.env.ref("base.user_admin")
        self.authenticate("admin", "admin")

    def _start(self):
        action = self.connection.with_user(self.admin).action_connect()
        self.assertEqual(action["type"], "ir.actions.act_url")
        return authorize_code(action["url"])

    def _callback(self, params):
        return self.url_open(CALLBACK_ROUTE + "?" + requests.compat.urlencode(params),
                             allow_redirects=False)

    def test_full_flow_with_business_picker(self):
        params = self._start()
        self.assertIn("state", params)
        page = self._callback(params)
        self.assertEqual(page.status_code, 200)
        first, second = self.sandbox.store.business_ids()[:2]
        self.assertIn(first, page.text)
        self.assertIn(second, page.text)
        self.assertEqual(self.connection.state, "disconnected", "nothing is connected before the pick")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        answer = self.url_open("/sage_business_cloud/oauth/business", data={
            "state": params["state"], "business_id": second, "csrf_token": csrf,
        }, allow_redirects=False)
        self.assertIn(answer.status_code, (302, 303))
        self.assertIn("/odoo/settings", answer.headers["Location"])
        self.assertEqual(self.connection.state, "connected")
        self.assertEqual(self.connection.business_id, second)
        self.assertTrue(self.connection.sudo().token_id.refresh_token)
        # The state is spent: replaying the callback changes nothing.
        replay = self._callback(params)
        self.assertEqual(replay.status_code, 400)

    def test_reconnect_to_the_same_business_needs_no_pick(self):
        self.connect_to_sandbox(self.connection, self.sandbox.store.business_ids()[1])
        self.connection._mark_needs_reconnect("test")
        answer = self._callback(self._start())
        self.assertIn(answer.status_code, (302, 303))
        self.assertEqual(self.connection.state, "connected")

    def test_forged_missing_or_error_callbacks_change_nothing(self):
        params = self._start()
        forged = dict(params, state=params["state"][:-4] + "abcd")
        for query in (forged, {"code": params["code"]}, {"error": "access_denied", "state": params["state"]}):
            answer = self._callback(query)
            self.assertEqual(answer.status_code, 400, query)
        self.assertEqual(self.connection.state, "disconnected")
        self.assertFalse(self.connection.sudo().token_id)
        self.assertIn("refused the access", self._callback({"error": "access_denied"}).text)

    def test_state_of_another_user_is_refused(self):
        params = self._start()
        new_test_user(self.env, login="other_admin", password="other_admin_pw",
                      groups="base.group_system")
        self.authenticate("other_admin", "other_admin_pw")
        self.assertEqual(self._callback(params).status_code, 400)
        self.assertEqual(self.connection.state, "disconnected")

    def test_expired_state_is_refused(self):
        params = self._start()
        self.connection.sudo().oauth_state_expires_at = "2000-01-01 00:00:00"
        self.assertEqual(self._callback(params).status_code, 400)


@tagged("post_install", "-at_install")
class TestBusinessBinding(SageTransactionCase):

    def _link_a_partner(self):
        return bound_partner(self.env, self.connection, "Linked Ltd", "c" * 32)

    def test_business_is_not_changed_by_a_plain_write(self):
        with self.assertRaisesRegex(UserError, "only through Connect"):
            self.connection.write({"business_id": self.sandbox.store.business_ids()[1]})
        self.assertEqual(self.connection.business_id, self.business_id)

    def test_a_login_without_the_linked_business_is_refused_before_anything_is_stored(self):
        self._link_a_partner()
        token_before = self.connection.sudo().token_id.refresh_token
        with self.assertRaisesRegex(UserError, "cannot open"):
            self.connection._check_business_change({"f" * 32})
        self.connection._check_business_change({self.business_id, "f" * 32})  # same book: fine
        self.assertEqual(self.connection.sudo().token_id.refresh_token, token_before)


@tagged("post_install", "-at_install")
class TestMultiCompany(SageTransactionCase):

    def test_invoices_of_another_companys_book_stay_in_that_company(self):
        other_company = self.env["res.company"].create({"name": "Other Books Ltd"})
        other = self.env["sage.connection"].create({"company_id": other_company.id})
        shared = self.env["res.partner"].create({"name": "Shared Customer Ltd", "is_company": True})
        self.env["sage.invoice"].create({
            "partner_id": shared.id, "connection_id": other.id, "sage_id": "1" * 32,
            "invoice_type": "sale", "number": "SI-1", "currency_id": self.env.company.currency_id.id,
            "status": "UNPAID", "total_amount": 10, "outstanding_amount": 10,
        })
        user = new_test_user(self.env, login="sage_mc_user", groups="base.group_user")
        self.assertFalse(self.env["sage.invoice"].with_user(user).search([("partner_id", "=", shared.id)]))
        user.write({"company_ids": [(4, other_company.id)]})
        visible = self.env["sage.invoice"].with_user(user).with_context(
            allowed_company_ids=[self.env.company.id, other_company.id]).search([("partner_id", "=", shared.id)])
        self.assertEqual(visible.number, "SI-1")

    def test_figures_of_a_partner_shared_by_two_books_are_kept_per_company(self):
        other_company = self.env["res.company"].create({"name": "Other Books Ltd",
                                                        "currency_id": self.env.company.currency_id.id})
        other = self.env["sage.connection"].create({"company_id": other_company.id})
        shared = self.env["res.partner"].create({"name": "Shared Customer Ltd", "is_company": True})
        for connection, amount, sage_id in ((self.connection, 10, "1"), (other, 25, "2")):
            self.env["sage.invoice"].create({
                "partner_id": shared.id, "connection_id": connection.id, "sage_id": sage_id * 32,
                "invoice_type": "sale", "number": "SI-" + sage_id, "currency_id": connection._sage_currency().id,
                "status": "UNPAID", "total_amount": amount, "outstanding_amount": amount,
            })
        for connection in (self.connection, other, self.connection):  # each book's own recomputation
            shared._sage_recompute_invoice_figures(connection)
        shared.invalidate_recordset()
        self.assertEqual(shared.with_company(self.env.company).sage_outstanding_amount, 10)
        self.assertEqual(shared.with_company(other_company).sage_outstanding_amount, 25)
        self.assertEqual(self.env["res.partner"].with_company(other_company).search(
            [("id", "=", shared.id), ("sage_outstanding_amount", "=", 25)]), shared)
        self.assertFalse(self.env["res.partner"].search([("id", "=", shared.id), ("sage_outstanding_amount", "=", 25)]))

    def test_sync_errors_and_deleted_contacts_stay_in_their_company(self):
        other_company = self.env["res.company"].create({"name": "Other Books Ltd"})
        other = self.env["sage.connection"].create({"company_id": other_company.id})
        run = self.env["sage.sync.run"].create({"connection_id": other.id, "trigger": "script"})
        self.env["sage.sync.error"].create({"run_id": run.id, "sage_id": "x", "reason": "no name"})
        self.env["sage.deleted.contact"].create({"connection_id": other.id, "sage_contact_id": "y",
                                                  "name": "Gone Ltd"})
        manager = new_test_user(self.env, login="sage_mc_manager",
                                groups="base.group_user,sage_business_cloud.group_sage_manager")
        self.assertFalse(self.env["sage.sync.error"].with_user(manager).search([]))
        self.assertFalse(self.env["sage.deleted.contact"].with_user(manager).search([]))
