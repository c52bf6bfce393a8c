"""One Sage Business Cloud connection per Odoo company.

The connection holds what an administrator chose (the Sage business, the default sales team,
whether supplier invoices are shown), the health of the link (state, last sync, last error,
refresh-token expiry) and the sync watermarks. OAuth tokens live in ``sage.connection.token``,
a model only system administrators can reach, so that a token refresh committed by one worker
never collides with another transaction writing the connection row itself.
"""

import logging
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg2.errors
from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError

from ..services import sage_client
from ..services.sage_api import SageService
from ..services.sage_client import SageAuthError, SageError, SageOAuth, SageSettings

_logger = logging.getLogger(__name__)

PARAM_PREFIX = "sage_business_cloud."
CALLBACK_ROUTE = "/sage_business_cloud/oauth/callback"
# How long a Connect click stays valid before its state expires.
OAUTH_STATE_TTL = timedelta(minutes=15)
# Settings warn when the refresh token gets closer than this to its end.
REFRESH_WARNING_DELAY = timedelta(days=7)
# Postgres lock_timeout while waiting for another worker's token refresh.
REFRESH_LOCK_TIMEOUT = "15s"
REFRESH_ATTEMPTS = 3


def _is_testing():
    return getattr(threading.current_thread(), "testing", False)


class SageConnection(models.Model):
    _name = "sage.connection"
    _description = "Sage Business Cloud connection"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _rec_name = "company_id"

    company_id = fields.Many2one(
        "res.company", required=True, ondelete="cascade", index=True,
        default=lambda self: self.env.company,
    )
    state = fields.Selection(
        [
            ("disconnected", "Not connected"),
            ("connected", "Connected"),
            ("needs_reconnect", "Needs reconnect"),
        ],
        default="disconnected", required=True, tracking=True,
    )
    business_id = fields.Char("Sage business id", copy=False, tracking=True)
    business_name = fields.Char("Sage business", copy=False)
    available_businesses = fields.Json(copy=False, groups="base.group_system")
    sage_user_id = fields.Char("Sage user id", copy=False, help="requested_by_id of the grant",
                               groups="sage_business_cloud.group_sage_manager")
    currency_id = fields.Many2one(
        "res.currency", string="Sage base currency", copy=False, readonly=True,
        help="The Sage business's base currency (read from Sage at connect): the currency of the "
        "figures shown on contacts.")
    currency_asked = fields.Boolean(copy=False, readonly=True,
                                    help="Sage was asked for the base currency since the business was chosen.")
    default_team_id = fields.Many2one(
        "crm.team", string="Default sales team",
        help="Sales team given to contacts that the sync creates from Sage.",
    )
    exclude_supplier_invoices = fields.Boolean(
        help="Do not fetch or keep Sage purchase (supplier) invoices. "
        "Supplier contacts are still imported.",
    )
    last_sync_at = fields.Datetime("Last successful sync", readonly=True, copy=False)
    last_error = fields.Text(readonly=True, copy=False, groups="sage_business_cloud.group_sage_manager")
    last_error_at = fields.Datetime(readonly=True, copy=False)
    refresh_token_expires_at = fields.Datetime(
        "Authorisation expires", compute="_compute_token_health",
    )
    refresh_token_expiring = fields.Boolean(compute="_compute_token_health")
    # Watermarks: the start time of the last run that finished each stream.
    contacts_synced_until = fields.Datetime(copy=False)
    invoices_synced_until = fields.Datetime(copy=False)
    purchases_synced_until = fields.Datetime(copy=False)
    figures_refreshed_on = fields.Date(
        copy=False, readonly=True,
        help="Day the sync last brought every figure and aged bucket of this business up to that day "
             "(overdue amounts depend on the date; done by the first run of each day).")
    token_id = fields.One2many(
        "sage.connection.token", "connection_id", groups="base.group_system",
    )
    # OAuth "state" of a pending Connect: bound to user, company and database.
    oauth_state = fields.Char(copy=False, groups="base.group_system")
    oauth_code_verifier = fields.Char(copy=False, groups="base.group_system")
    oauth_user_id = fields.Many2one("res.users", copy=False, groups="base.group_system")
    oauth_state_expires_at = fields.Datetime(copy=False, groups="base.group_system")
    linked_partner_count = fields.Integer(compute="_compute_linked_partner_count")
    sync_requested = fields.Boolean(copy=False, help="Set by Sync now; cleared when a run starts.")

    _sql_constraints = [
        ("company_uniq", "unique(company_id)", "A company has one Sage connection at most."),
    ]

    # ------------------------------------------------------------------
    # computes
    # ------------------------------------------------------------------
    @api.depends("state")
    def _compute_token_health(self):
        tokens = self.env["sage.connection.token"].sudo().search([("connection_id", "in", self.ids)])
        by_connection = {t.connection_id.id: t for t in tokens}
        limit = fields.Datetime.now() + REFRESH_WARNING_DELAY
        for connection in self:
            token = by_connection.get(connection.id)
            expiry = token.refresh_expires_at if token else False
            connection.refresh_token_expires_at = expiry
            connection.refresh_token_expiring = bool(
                expiry and connection.state == "connected" and expiry < limit
            )

    def _compute_linked_partner_count(self):
        counts = dict(
            self.env["sage.binding"].sudo()._read_group(
                [("connection_id", "in", self.ids), ("kind", "=", "contact")],
                ["connection_id"], ["__count"],
            )
        )
        for connection in self:
            connection.linked_partner_count = counts.get(connection, 0)

    def write(self, vals):
        """Keep the business binding consistent: it changes only through Connect (see
        ``_select_business``), never by a plain write, so two Sage books are never mixed."""
        if {"business_id", "business_name"} & set(vals) and not self.env.context.get("sage_select_business"):
            raise UserError(_("The Sage business changes only through Connect / Reconnect."))
        return super().write(vals)

    # ------------------------------------------------------------------
    # configuration
    # ------------------------------------------------------------------
    @api.model
    def _get_for_company(self, company=None, create=True):
        """Return the connection of ``company`` (default: current), creating it when asked."""
        company = company or self.env.company
        connection = self.sudo().search([("company_id", "=", company.id)], limit=1)
        if not connection and create:
            connection = self.sudo().create({"company_id": company.id})
        return connection

    @api.model
    def _get_sage_settings(self):
        """Build the client settings from the system parameters (defaults: Sage's UK URLs)."""
        params = self.env["ir.config_parameter"].sudo()

        def param(key, default=None):
            return (params.get_param(PARAM_PREFIX + key) or default or "").strip() or None

        return SageSettings(
            client_id=param("client_id") or "",
            client_secret=param("client_secret") or "",
            redirect_uri=self._get_redirect_uri(),
            authorize_url=param("authorize_url", sage_client.SAGE_AUTHORIZE_URL),
            token_url=param("token_url", sage_client.SAGE_TOKEN_URL),
            revoke_url=param("revoke_url"),
            api_url=param("api_url", sage_client.SAGE_API_URL),
        )

    @api.model
    def _get_redirect_uri(self):
        base = self.env["ir.config_parameter"].sudo().get_param("web.base.url", "")
        return base.rstrip("/") + CALLBACK_ROUTE

    def _check_client_configured(self, settings):
        if not settings.client_id or not settings.client_secret:
            raise UserError(_(
                "Set the Sage OAuth client id and secret in Settings > Sage Business Cloud "
                "before connecting."
            ))

    # ------------------------------------------------------------------
    # OAuth: connect, callback, disconnect
    # ------------------------------------------------------------------
    def action_connect(self):
        """Start the OAuth 2.0 authorisation at Sage (XML-RPC: administrators only).

        Returns an ``ir.actions.act_url`` that sends the browser to Sage's authorize page with a
        ``state`` bound to this user, company and database, and a PKCE challenge.
        """
        self.ensure_one()
        self._check_admin()
        settings = self._get_sage_settings()
        self._check_client_configured(settings)
        state = "%s.%s.%s" % (self.env.cr.dbname, self.id, secrets.token_urlsafe(32))
        url, verifier = SageOAuth(settings).authorization_url(state)
        self.sudo().write({
            "oauth_state": state,
            "oauth_code_verifier": verifier,
            "oauth_user_id": self.env.user.id,
            "oauth_state_expires_at": fields.Datetime.now() + OAUTH_STATE_TTL,
        })
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    @api.model
    def _find_by_oauth_state(self, state):
        """Return the connection whose pending Connect issued ``state`` for the current user."""
        if not state or state.count(".") < 2:
            return self.browse()
        # The database name may hold dots; the id and the token never do.
        dbname, connection_id, _token = state.rsplit(".", 2)
        if dbname != self.env.cr.dbname or not connection_id.isdigit():
            return self.browse()
        connection = self.sudo().browse(int(connection_id)).exists()
        if (
            not connection
            or not connection.oauth_state
            or not secrets.compare_digest(connection.oauth_state, state)
            or connection.oauth_user_id != self.env.user
            or connection.company_id not in self.env.user.company_ids
            or not connection.oauth_state_expires_at
            or connection.oauth_state_expires_at < fields.Datetime.now()
        ):
            return self.browse()
        return connection

    def _oauth_complete(self, code):
        """Exchange ``code`` for tokens, list the businesses and choose one when there is one.

        Called by the callback route once ``state`` has been checked. The PKCE verifier is
        consumed first, so that a replayed callback cannot exchange a code again. Returns ``True``
        when a business was chosen and ``False`` when the user must pick one among several (the
        state then stays valid for the picker only).
        """
        self.ensure_one()
        connection = self.sudo()
        verifier = connection.oauth_code_verifier
        if not verifier:
            raise UserError(_("This Sage authorisation was already used. Click Connect again."))
        connection.oauth_code_verifier = False
        settings = self._get_sage_settings()
        token = SageOAuth(settings).fetch_token(code, code_verifier=verifier)
        client = sage_client.SageClient(settings, token)
        businesses = client.list_businesses()
        try:
            lead = client.get_lead_business()
        except SageError:
            lead = businesses[0] if businesses else {}
        choices = [
            {"id": b["id"], "name": b.get("name") or b.get("displayed_as") or b["id"]}
            for b in businesses
        ]
        lead_id = lead.get("id")
        choices.sort(key=lambda b: b["id"] != lead_id)
        connection._check_business_change({c["id"] for c in choices})
        connection._store_token(token)
        connection.write({"available_businesses": choices, "sage_user_id": token.get("requested_by_id")})
        if len(choices) == 1:
            connection._select_business(choices[0]["id"])
            return True
        if connection.business_id and connection.business_id in {c["id"] for c in choices}:
            # A reconnect to the business chosen before: keep it.
            connection._select_business(connection.business_id)
            return True
        return False

    def _check_business_change(self, business_ids):
        """Refuse, before anything is stored, a login that cannot open the business partners use.

        ``business_ids`` are the businesses the new login can open. While partners are linked to
        this connection's business, only a login that can open that business is accepted.
        """
        if self.business_id and self.business_id not in business_ids and self.linked_partner_count:
            raise UserError(_(
                "%(count)s contacts are linked to the Sage business %(old)s, which this Sage login "
                "cannot open. Nothing was changed: reconnect with a login of that business, or "
                "disconnect and unlink those contacts first.",
                count=self.linked_partner_count, old=self.business_name or self.business_id,
            ))

    def _clear_oauth_state(self):
        self.sudo().write({
            "oauth_state": False, "oauth_code_verifier": False,
            "oauth_user_id": False, "oauth_state_expires_at": False,
        })

    def _select_business(self, business_id):
        """Bind the connection to ``business_id`` and mark it connected.

        Refused while partners are still linked to another Sage business, because their Sage ids
        would point into the wrong book.
        """
        self.ensure_one()
        choices = {c["id"]: c["name"] for c in (self.sudo().available_businesses or [])}
        if business_id not in choices:
            raise UserError(_("This Sage business is not one of the businesses your login can open."))
        if self.business_id and self.business_id != business_id and self.linked_partner_count:
            raise UserError(_(
                "%(count)s contacts are still linked to the Sage business %(old)s. Connecting "
                "%(new)s would mix two books: disconnect and unlink those contacts first, or "
                "reconnect to %(old)s.",
                count=self.linked_partner_count, old=self.business_name or self.business_id,
                new=choices[business_id],
            ))
        values = {
            "business_id": business_id,
            "business_name": choices[business_id],
            "state": "connected",
            "last_error": False,
            "last_error_at": False,
        }
        if self.business_id != business_id:
            values.update(contacts_synced_until=False, invoices_synced_until=False,
                          purchases_synced_until=False, currency_id=False)
        self.sudo().with_context(sage_select_business=True).write(values)
        self._sage_read_base_currency(self._get_client())
        self._clear_oauth_state()
        self._close_reconnect_activities()
        self.message_post(body=_("Connected to the Sage business %s.", choices[business_id]))

    def action_disconnect(self):
        """Revoke the grant at Sage and forget the tokens (XML-RPC: administrators only).

        Every partner keeps its Sage link, so reconnecting to the same business carries on
        without duplicates.
        """
        self._check_admin()
        for connection in self.sudo():
            token = connection.token_id[:1]
            if token.refresh_token:
                try:
                    SageOAuth(self._get_sage_settings()).revoke(token.refresh_token)
                except SageError as error:
                    _logger.warning("Sage: revoking the grant of %s failed: %s",
                                    connection.company_id.name, error)
            token.unlink()
            connection.write({"state": "disconnected"})
            connection.message_post(body=_("Disconnected from Sage; contact links are kept."))
        return True

    def _check_admin(self):
        """Administrators only, and only on connections their record rules let them write."""
        if self.env.is_superuser():
            return
        if not self.env.user.has_group("base.group_system"):
            raise UserError(_("Only administrators can change the Sage connection."))
        self.check_access("write")

    def _sage_currency(self):
        """Currency of the Sage business's figures: its base currency, else the company's."""
        connection = self[:1].sudo()
        return connection.currency_id or connection.company_id.currency_id or self.env.company.currency_id

    def _sage_read_base_currency(self, client, in_sync=False):
        """Ask Sage for the business's base currency and remember it (unknown: left as is).

        ``in_sync``: written in a short transaction of its own, like the sync's other bookkeeping;
        at connect time it is part of the transaction that binds the business.
        """
        self.ensure_one()
        save = self._write_sync_state if in_sync else self.sudo().write
        try:
            code = SageService(client).base_currency()
        except SageError as error:
            _logger.info("Sage: the base currency of %s could not be read: %s", self.company_id.name, error)
            save({"currency_asked": True})
            return
        currency = self.env["res.currency"].with_context(active_test=False).search(
            [("name", "=", (code or "").upper())], limit=1) if code else None
        values = {"currency_asked": True}
        if currency and currency != self.sudo().currency_id:
            if not currency.active:
                currency.sudo().active = True
            values["currency_id"] = currency.id
        save(values)

    # ------------------------------------------------------------------
    # tokens
    # ------------------------------------------------------------------
    def _store_token(self, token):
        self.ensure_one()
        values = self.env["sage.connection.token"]._values_from_token(token)
        record = self.sudo().token_id[:1]
        if record:
            record.write(values)
        else:
            self.env["sage.connection.token"].sudo().create(dict(values, connection_id=self.id))

    def _get_client(self):
        """Return a ``SageClient`` for this connection's business.

        Refreshes go through :meth:`_refresh_token`, which serialises them across workers and
        commits each rotated refresh token at once.
        """
        self.ensure_one()
        if self.state != "connected" or not self.business_id:
            raise UserError(_("The company %s is not connected to Sage.", self.company_id.name))
        token = self.sudo().token_id[:1]
        if not token.refresh_token:
            raise UserError(_("The Sage connection of %s has no authorisation.", self.company_id.name))
        return sage_client.SageClient(
            self._get_sage_settings(), token._as_token(), business_id=self.business_id,
            refresh_handler=self._refresh_token,
        )

    def _refresh_token(self, stale_token):
        """Refresh the grant once across all workers and return a usable token.

        The token row is locked; if another worker refreshed since ``stale_token`` was read, its
        result is used instead of spending the (single-use) refresh token a second time. Outside
        tests this happens in its own transaction, committed at once, so the new refresh token
        is never lost with a rolled-back sync.
        """
        self.ensure_one()
        if _is_testing():
            return self._refresh_token_in(self.env.cr, stale_token)
        with self.env.registry.cursor() as cr:
            for attempt in range(REFRESH_ATTEMPTS):
                try:
                    return self._refresh_token_in(cr, stale_token)
                except psycopg2.errors.SerializationFailure:
                    # Another worker refreshed while we waited for its lock: our snapshot is
                    # older than its commit. A new transaction sees (and uses) its token.
                    cr.rollback()
                    if attempt == REFRESH_ATTEMPTS - 1:
                        raise
        return None

    def _refresh_token_in(self, cr, stale_token):
        env = self.env(cr=cr, su=True)
        connection = self.with_env(env)
        cr.execute("SET LOCAL lock_timeout = %s", [REFRESH_LOCK_TIMEOUT])
        cr.execute(
            "SELECT id FROM sage_connection_token WHERE connection_id = %s FOR NO KEY UPDATE",
            [connection.id],
        )
        row = cr.fetchone()
        if not row:
            raise SageAuthError("The Sage authorisation was removed (disconnected).")
        record = env["sage.connection.token"].browse(row[0])
        record.invalidate_recordset()
        current = record._as_token()
        if current["refresh_token"] != stale_token.get("refresh_token"):
            return current
        try:
            fresh = SageOAuth(connection._get_sage_settings()).refresh(current["refresh_token"])
        except SageAuthError as error:
            connection._mark_needs_reconnect(str(error))
            if not _is_testing():
                # Own cursor: "needs reconnect" must survive the caller's rollback.
                cr.commit()  # pylint: disable=invalid-commit
            raise
        record.write(env["sage.connection.token"]._values_from_token(fresh))
        if not _is_testing():
            # Own cursor: the single-use refresh token is spent, its successor must be durable.
            cr.commit()  # pylint: disable=invalid-commit
        return fresh

    def _write_sync_state(self, values):
        """Write the sync's bookkeeping (watermarks, last sync, last error, Sync now flag).

        Outside tests this happens in a short transaction of its own, committed at once: a sync
        runs for minutes in page-sized transactions, and under REPEATABLE READ its own UPDATE of
        this row would fail if an administrator saved the settings or clicked Sync now meanwhile.
        """
        self.ensure_one()
        if _is_testing():
            self.sudo().write(values)
            return
        with self.env.registry.cursor() as cr:
            for attempt in range(REFRESH_ATTEMPTS):
                try:
                    self.with_env(self.env(cr=cr, su=True)).write(values)
                    cr.commit()  # pylint: disable=invalid-commit
                    break
                except psycopg2.errors.SerializationFailure:
                    cr.rollback()
                    if attempt == REFRESH_ATTEMPTS - 1:
                        raise
        self.invalidate_recordset(list(values))

    def _mark_needs_reconnect(self, reason):
        """Stop syncing and tell the administrators why and what to do."""
        for connection in self.sudo():
            connection.token_id.unlink()
            connection.write({
                "state": "needs_reconnect",
                "last_error": reason,
                "last_error_at": fields.Datetime.now(),
            })
            connection._schedule_reconnect_activities(reason)

    def _schedule_reconnect_activities(self, reason):
        admins = self.env.ref("base.group_system").users.filtered(
            lambda u: not u.share and self.company_id in u.company_ids
        )
        note = Markup("<p>%s</p><p>%s</p>") % (
            _("Sage no longer accepts this connection's authorisation: %s", reason),
            _("Open Settings > Sage Business Cloud and click Reconnect."),
        )
        for admin in admins:
            self.activity_schedule(
                act_type_xmlid="sage_business_cloud.mail_activity_sage_reconnect",
                summary=_("Reconnect Sage Business Cloud"), note=note, user_id=admin.id,
            )
        self.message_post(body=note)

    def _close_reconnect_activities(self):
        self.sudo().activity_unlink(["sage_business_cloud.mail_activity_sage_reconnect"])

    # ------------------------------------------------------------------
    # sync entry points
    # ------------------------------------------------------------------
    def action_sync_now(self):
        """Start a sync of these companies at once, without making the caller wait (XML-RPC).

        The sync cron is triggered to run now; poll ``last_sync_at`` or ``sage.sync.run``.
        """
        self._check_admin()
        if any(c.state != "connected" for c in self):
            raise UserError(_("Connect to Sage before syncing."))
        self.sudo().write({"sync_requested": True})
        self._sage_dispatch_syncs("manual")
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "info",
                "message": _("The Sage sync has started; its result appears in the sync runs."),
                "sticky": False,
            },
        }

    @api.model
    def _cron_sync(self):
        """Cron entry point: sync every connected company."""
        self.sudo().search([("state", "=", "connected")])._sage_dispatch_syncs("cron")

    def _sage_dispatch_syncs(self, trigger):
        """Have these connections synced; the one place Sync now and the cron hand the work over.

        ``trigger`` is ``"manual"`` (Sync now, from the caller's transaction: nothing may run
        before it commits) or ``"cron"`` (the sync cron, which may do the work itself). By
        default Sync now triggers the cron and the cron syncs the companies one after the other
        in its own process; an addon may hand each company to a worker of its own instead.
        """
        if trigger == "manual":
            self.env.ref("sage_business_cloud.ir_cron_sage_sync").sudo()._trigger()
            return
        for connection in self:
            run_trigger = "manual" if connection.sync_requested else trigger
            try:
                connection.with_company(connection.company_id)._run_sync(trigger=run_trigger)
            except Exception:  # noqa: BLE001 - one company's failure must not stop the others
                _logger.exception("Sage: the sync of %s failed", connection.company_id.name)
                if not _is_testing():
                    self.env.cr.rollback()

    def _run_sync(self, trigger="manual"):
        """Run one sync of this connection; see ``sage.sync``."""
        self.ensure_one()
        return self.env["sage.sync"]._sync_connection(self, trigger=trigger)


class SageConnectionToken(models.Model):
    """The OAuth grant of a connection. System administrators only; never shown in a view."""

    _name = "sage.connection.token"
    _description = "Sage Business Cloud OAuth token"
    _log_access = False

    connection_id = fields.Many2one("sage.connection", required=True, ondelete="cascade", index=True)
    access_token = fields.Char(groups="base.group_system", copy=False)
    refresh_token = fields.Char(groups="base.group_system", copy=False)
    expires_at = fields.Float("Access token expiry (epoch)", copy=False)
    refresh_expires_at = fields.Datetime(copy=False)
    scope = fields.Char(copy=False)

    _sql_constraints = [
        ("connection_uniq", "unique(connection_id)", "A connection has one grant."),
    ]

    @api.model
    def _values_from_token(self, token):
        refresh_expiry = token.get("refresh_token_expires_at") or (time.time() + 31 * 86400)
        return {
            "access_token": token["access_token"],
            "refresh_token": token["refresh_token"],
            "expires_at": float(token.get("expires_at") or 0.0),
            "refresh_expires_at": datetime.fromtimestamp(refresh_expiry, tz=timezone.utc).replace(tzinfo=None),
            "scope": token.get("scope"),
        }

    def _as_token(self):
        self.ensure_one()
        record = self.sudo()
        return {
            "access_token": record.access_token,
            "refresh_token": record.refresh_token,
            "token_type": "bearer",
            "expires_at": record.expires_at,
            "scope": record.scope,
        }

