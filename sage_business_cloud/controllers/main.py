"""OAuth 2.0 callback of Sage Business Cloud and the business picker that may follow it."""

import logging

from odoo import _, http
from odoo.exceptions import UserError
from odoo.http import request

from ..services.sage_client import SageError

_logger = logging.getLogger(__name__)

SETTINGS_URL = "/odoo/settings#sage_business_cloud"


class SageOAuthController(http.Controller):

    def _page(self, title, message, status=200, businesses=None, state=None):
        html = request.env["ir.qweb"]._render("sage_business_cloud.oauth_page", {
            "title": title,
            "message": message,
            "businesses": businesses or [],
            "state": state,
            "settings_url": SETTINGS_URL,
            "csrf_token": request.csrf_token(),
        })
        return request.make_response(html, headers=[("Content-Type", "text/html; charset=utf-8")],
                                     status=status)

    @staticmethod
    def _oauth_errors():
        """The error codes of RFC 6749 (section 4.1.2.1), in words."""
        return {
            "access_denied": _("The Sage login refused the access."),
            "invalid_request": _("Sage found the authorisation request invalid."),
            "unauthorized_client": _("Sage does not let this app ask for access this way."),
            "unsupported_response_type": _("Sage does not support this kind of authorisation."),
            "invalid_scope": _("Sage refused the access rights asked for."),
            "server_error": _("Sage had an internal error."),
            "temporarily_unavailable": _("Sage is temporarily unavailable."),
        }

    @http.route("/sage_business_cloud/oauth/callback", type="http", auth="user", methods=["GET"])
    def oauth_callback(self, code=None, state=None, error=None, error_description=None, **kwargs):
        """Sage sends the browser back here with ``code`` and our ``state`` (or ``error``)."""
        if error:
            # Only OAuth's own error codes are put into words; anything else in the link (and
            # ``error_description`` always) could be an attacker's text, so it is never shown.
            reason = self._oauth_errors().get(error, _("Sage did not give a known reason."))
            return self._page(
                _("Sage did not connect"),
                _("%(reason)s Nothing was changed; you can try Connect again from the settings.",
                  reason=reason),
                status=400,
            )
        connection = request.env["sage.connection"]._find_by_oauth_state(state)
        if not connection or not code:
            return self._page(
                _("This Sage link is not valid"),
                _("The link is missing, expired, already used, or was started by another user or "
                  "database. Nothing was changed: start again with Connect in the settings."),
                status=400,
            )
        try:
            chosen = connection._oauth_complete(code)
        except (SageError, UserError) as exc:
            _logger.warning("Sage: completing the connection of %s failed: %s",
                            connection.company_id.name, exc)
            return self._page(_("Sage did not connect"), str(exc), status=400)
        if chosen:
            return request.redirect(SETTINGS_URL, local=True)
        return self._page(
            _("Choose the Sage business"),
            _("Your Sage login can open several businesses. Which one should %s use?",
              connection.company_id.name),
            businesses=connection.sudo().available_businesses, state=state,
        )

    @http.route("/sage_business_cloud/oauth/business", type="http", auth="user", methods=["POST"])
    def oauth_pick_business(self, state=None, business_id=None, **kwargs):
        """Second step when the login opens several businesses."""
        connection = request.env["sage.connection"]._find_by_oauth_state(state)
        if not connection:
            return self._page(_("This Sage link is not valid"),
                              _("Start again with Connect in the settings."), status=400)
        try:
            connection._select_business(business_id)
        except UserError as exc:
            return self._page(_("Sage did not connect"), str(exc), status=400)
        return request.redirect(SETTINGS_URL, local=True)
