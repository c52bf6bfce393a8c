"""Transport-independent request handling: OAuth pages, the v3.1 API, web-app pages and controls."""

import base64
import html
import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from . import render
from .artefacts import ARTEFACT_RESOURCES, KINDS
from .clock import iso
from .errors import ApiError, invalid, not_found
from .listing import Lister
from .lookups import BASE_CURRENCY, CURRENCIES, base
from .oauth import OAuthError
from .pdf import artefact_pdf
from .store import RESOURCES

WRAPPERS = {"contacts": "contact", "contact_persons": "contact_person", "addresses": "address",
            "contact_payments": "contact_payment", "contact_allocations": "contact_allocation",
            **{resource: kind.wrapper for resource, kind in KINDS.items()}}
RESOURCE_ROUTE = re.compile(r"^/v3\.1/(" + "|".join(RESOURCES) + r")(?:/([^/]+))?(/release)?$")
BUSINESS_ROUTE = re.compile(r"^/v3\.1/businesses(?:/([^/]+))?$")
CONTACT_PAGE = re.compile(r"^/app/contacts/(customers|suppliers)/(\d+)$")
INVOICE_PAGE = re.compile(r"^/app/invoicing/(" + "|".join(ARTEFACT_RESOURCES) + r")/([0-9a-f]{32})$")


@dataclass
class Request:
    """A parsed HTTP request."""

    method: str
    path: str
    query: dict
    headers: dict
    body: bytes = b""

    def header(self, name):
        """Case-insensitive header lookup."""
        return self.headers.get(name.lower())

    def form(self):
        """The body decoded as ``application/x-www-form-urlencoded``."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace")))

    def json(self):
        """The body decoded as JSON (422 when it is not)."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise invalid("The request body is not valid JSON") from None


@dataclass
class Response:
    """Status, headers and body bytes to send back."""

    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def json_response(status, payload, headers=None):
    """Serialise ``payload`` as a JSON response."""
    body = b"" if payload is None else json.dumps(payload).encode("utf-8")
    return Response(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def html_response(status, title, body_html):
    """A minimal HTML page."""
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;max-width:44em;margin:2em auto'>"
            f"<p><small>Sage Business Cloud Accounting &mdash; local sandbox</small></p>"
            f"<h1>{html.escape(title)}</h1>{body_html}</body></html>")
    return Response(status, page.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})


def redirect(location):
    """A 302 redirect."""
    return Response(302, b"", {"Location": location})


def _with_query(url, params):
    return url + ("&" if "?" in url else "?") + urlencode(params)


class SandboxApp:
    """Routes requests to OAuth, API, web-app and control handlers.

    ``controls`` is the owning server; it provides ``reset``, ``seed``, fault and log handling.
    Callers hold ``store.lock`` while calling :meth:`handle`.
    """

    def __init__(self, store, oauth, controls):
        self.store = store
        self.oauth = oauth
        self.controls = controls
        self.lister = Lister(store)

    def handle(self, req):
        """Answer one request."""
        try:
            if req.path == "/oauth2/auth/central":
                return self.authorize(req)
            if req.path == "/token" and req.method == "POST":
                return self.token(req)
            if req.path == "/revoke" and req.method == "POST":
                return self.revoke(req)
            if req.path.startswith("/v3.1/"):
                return self.api(req)
            if req.path.startswith("/app/"):
                return self.web_page(req)
            if req.path.startswith("/_sandbox/"):
                return self.controls.control(req)
            raise not_found("Endpoint")
        except ApiError as exc:
            return json_response(exc.status, exc.body(), exc.headers)

    # ------------------------------------------------------------------ OAuth
    def authorize(self, req):
        """Authorize page: consent form (GET), decision (POST), or immediate redirect."""
        params = req.query if req.method == "GET" else req.form()
        problem = self.oauth.check_authorize(params)
        if problem:
            return html_response(400, "Authorisation error", f"<p>{html.escape(problem)}</p>")
        redirect_uri = params["redirect_uri"]
        echo = {"state": params["state"]} if params.get("state") is not None else {}
        error = self.oauth.authorize_error(params)
        if error:
            return redirect(_with_query(redirect_uri, {"error": error, **echo}))
        if req.method == "POST":
            if params.get("decision") != "allow":
                return redirect(_with_query(redirect_uri, {"error": "access_denied", **echo}))
        elif not self.oauth.config.auto_approve:
            hidden = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                             for k, v in params.items() if k != "decision")
            return html_response(200, "Allow access to your Sage business?", (
                f"<p>The application <b>{html.escape(params['client_id'])}</b> asks for "
                f"<b>{html.escape(params.get('scope') or 'full_access')}</b> access.</p>"
                f"<form method='post' action='/oauth2/auth/central'>{hidden}"
                "<button name='decision' value='allow' id='allow'>Allow</button> "
                "<button name='decision' value='deny' id='deny'>Deny</button></form>"))
        code = self.oauth.issue_code(params)
        return redirect(_with_query(redirect_uri, {"code": code, **echo, "country": "GB"}))

    def _client_credentials(self, req, form):
        auth = req.header("authorization") or ""
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            except ValueError:
                raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from None
            return client_id, secret
        return form.get("client_id"), form.get("client_secret")

    def token(self, req):
        """Token endpoint (authorization_code and refresh_token grants)."""
        form = req.form()
        try:
            self.oauth.check_client(*self._client_credentials(req, form))
            payload = self.oauth.token(form)
        except OAuthError as exc:
            return json_response(exc.status, exc.body(), {"Cache-Control": "no-store"})
        self.controls.changed()
        return json_response(200, payload, {"Cache-Control": "no-store"})

    def revoke(self, req):
        """Revoke a refresh token's grant."""
        form = req.form()
        try:
            self.oauth.check_client(*self._client_credentials(req, form))
        except OAuthError as exc:
            return json_response(exc.status, exc.body())
        self.oauth.revoke(form.get("token") or "")
        self.controls.changed()
        return json_response(200, {"success": "ok"})

    # ------------------------------------------------------------------ API
    def api(self, req):
        """Authenticate, select the business and dispatch a ``/v3.1`` call."""
        auth = req.header("authorization") or ""
        grant = self.oauth.authenticate(auth[7:].strip() if auth.lower().startswith("bearer ") else None)
        if grant is None:
            raise ApiError(401, "AuthorizationFailure", "Unauthorised Access: the access token is invalid or expired")
        if grant.scope == "readonly" and req.method != "GET":
            raise ApiError(403, "MultiUserAccessDenied", "The readonly scope does not allow changes")
        if req.path == "/v3.1/user":
            return json_response(200, self._user())
        match = BUSINESS_ROUTE.match(req.path)
        if match:
            return self.businesses(req, match.group(1))
        biz = self.store.business(req.header("x-business") or None)
        if req.path == "/v3.1/financial_settings":
            if req.method != "GET":
                raise not_found("Endpoint")
            response = json_response(200, self._financial_settings(biz))
            response.headers["X-Business"] = biz.id
            return response
        match = RESOURCE_ROUTE.match(req.path)
        if not match:
            raise not_found("Endpoint")
        response = self.resource(req, biz, *match.groups())
        response.headers["X-Business"] = biz.id
        return response

    def _user(self):
        return {"id": self.store.user_id, "displayed_as": "Sandbox User", "$path": "/user",
                "first_name": "Sandbox", "last_name": "User", "initials": "SU", "email": "sandbox.user@example.com",
                "locale": "en-GB"}

    def _business(self, biz, full):
        out = {"id": biz.id, "displayed_as": biz.name, "$path": f"/businesses/{biz.id}"}
        if full:
            out.update({"name": biz.name, "created_at": iso(biz.created), "updated_at": iso(biz.created),
                        "address_line_1": "1 Sandbox Street", "city": "London", "postal_code": "EC1A 1BB",
                        "country": {"id": "GB", "displayed_as": "United Kingdom (GB)", "$path": "/countries/GB"},
                        "is_demo": True, "subscriptions": [{"id": "ACCOUNTING", "displayed_as": "Accounting",
                                                            "active": True, "status": "active"}],
                        "owner": {"id": self.store.user_id, "displayed_as": "Sandbox User", "$path": "/user"}})
        return out

    @staticmethod
    def _financial_settings(biz):
        """``FinancialSettings`` of a UK business keeping its books in pounds."""
        year = int(iso(biz.created)[:4])
        return {"$path": "/financial_settings", "year_end_date": f"{year}-12-31", "year_end_lockdown_date": None,
                "accounting_type": "accrual", "accounts_start_date": f"{year - 3}-01-01",
                "base_currency": base("currencies", BASE_CURRENCY, CURRENCIES[BASE_CURRENCY][0]),
                "multi_currency_enabled": True, "use_live_exchange_rates": False,
                "mtd_activation_status": "active", "mtd_connected": True, "mtd_authenticated_date": None,
                "tax_return_frequency": base("tax_return_frequencies", "QUARTERLY", "Quarterly"),
                "tax_number": "GB123456789", "general_tax_number": None, "tax_office": None, "default_irpf_rate": None,
                "flat_rate_tax_percentage": None, "recoverable_percentage": None, "sales_tax_calculation": "invoice",
                "purchase_tax_calculation": "invoice", "updated_at": iso(biz.created), "postponed_accounting": False,
                "destination_vat": False}

    def businesses(self, req, key):
        """``/businesses`` (unpaginated list), ``/businesses/lead`` and ``/businesses/{id}``."""
        if req.method != "GET":
            raise not_found("Endpoint")
        if key is None:
            items = [self._business(b, False) for b in self.store.businesses.values()]
            return json_response(200, {"$total": len(items), "$page": 1, "$next": None, "$back": None,
                                       "$items_per_page": 2147483647, "$items": items})
        biz = self.store.business() if key == "lead" else self.store.businesses.get(key)
        if biz is None:
            raise not_found("Business")
        return json_response(200, self._business(biz, True))

    def _body(self, req, resource):
        data = req.json()
        wrapper = WRAPPERS[resource]
        if not isinstance(data, dict) or not isinstance(data.get(wrapper), dict):
            raise invalid(f"The request body must contain a '{wrapper}' object", wrapper)
        return data[wrapper]

    def resource(self, req, biz, resource, key, release):
        """CRUD on one resource collection."""
        store, method = self.store, req.method
        kind = KINDS.get(resource)
        if release:
            if method != "POST" or not (kind and kind.releasable):
                raise not_found("Endpoint")
            return json_response(200, store.render(biz, resource, store.release_invoice(biz, resource, key)))
        if key is None:
            if method == "GET":
                return json_response(200, self.lister.envelope(biz, resource, req.query))
            if method == "POST":
                data = self._body(req, resource)
                creators = {"contacts": store.create_contact, "addresses": store.create_address,
                            "contact_persons": store.create_person, "contact_payments": store.create_payment,
                            "contact_allocations": store.create_allocation}
                if kind:
                    rec = store.create_invoice(biz, resource, data)
                else:
                    rec = creators[resource](biz, data)
                return json_response(201, store.render(biz, resource, rec))
            raise not_found("Endpoint")
        if method == "GET":
            rec = biz.get(resource, key)
            if kind and "application/pdf" in (req.header("accept") or "").lower():
                return Response(200, artefact_pdf(biz, store.render(biz, resource, rec), kind),
                                {"Content-Type": "application/pdf",
                                 "Content-Disposition": f'inline; filename="{resource}-{rec["id"]}.pdf"'})
            return json_response(200, store.render(biz, resource, rec))
        if method == "PUT":
            data = self._body(req, resource)
            updaters = {"contacts": store.update_contact, "addresses": store.update_address,
                        "contact_persons": store.update_person}
            if kind:
                rec = store.update_invoice(biz, resource, key, data)
            elif resource in updaters:
                rec = updaters[resource](biz, key, data)
            else:
                raise not_found("Endpoint")
            return json_response(200, store.render(biz, resource, rec))
        if method == "DELETE":
            return self._delete(req, biz, resource, key)
        raise not_found("Endpoint")

    def _delete(self, req, biz, resource, key):
        store = self.store
        if resource in KINDS:
            body = req.json() if req.body.strip() else {}
            reason = req.query.get("void_reason") or (body.get("void_reason") if isinstance(body, dict) else None)
            rec = store.delete_invoice(biz, resource, key, reason)
            return json_response(200, store.render(biz, resource, rec)) if rec else Response(204)
        deleters = {"contacts": store.delete_contact, "addresses": store.delete_address,
                    "contact_persons": store.delete_person, "contact_allocations": store.delete_allocation,
                    "contact_payments": store.delete_payment}
        if resource not in deleters:
            raise not_found("Endpoint")
        deleters[resource](biz, key)
        return Response(204)

    # ------------------------------------------------------------------ web app
    def web_page(self, req):
        """Tiny HTML pages behind the ``links[rel=alternate]`` deep links."""
        match = CONTACT_PAGE.match(req.path)
        if match:
            found = self.store.legacy_index.get(int(match.group(2)))
            if not found:
                raise not_found("Contact")
            biz = self.store.businesses[found[0]]
            return self._record_page(biz, "contacts", biz.find("contacts", found[1]),
                                     ("name", "reference", "email", "balance", "updated_at"))
        match = INVOICE_PAGE.match(req.path)
        if match:
            resource, record_id = match.groups()
            for biz in self.store.businesses.values():
                rec = biz.find(resource, record_id)
                if rec:
                    return self._record_page(biz, resource, rec, (
                        "invoice_number", "credit_note_number", "quote_number", "estimate_number",
                        "vendor_reference", "contact_name", "date", "due_date", "expiry_date", "total_amount",
                        "outstanding_amount", "updated_at"))
        raise not_found("Page")

    def _record_page(self, biz, resource, rec, fields):
        data = self.store.render(biz, resource, rec)
        rows = "".join(f"<tr><th align='left'>{html.escape(f)}</th><td>{html.escape(str(data.get(f)))}</td></tr>"
                       for f in fields if f in data)
        status = data.get("status", {}).get("displayed_as") if data.get("status") else None
        extra = f"<p>Status: <b>{html.escape(status)}</b></p>" if status else ""
        deleted = "<p><b>This record has been deleted.</b></p>" if data.get("deleted_at") else ""
        title = f"{render.LABELS[resource]}: {data['displayed_as']}"
        return html_response(200, title, f"{deleted}{extra}<table>{rows}</table><p><small>{biz.name}</small></p>")
