"""OAuth 2.0 authorisation-code grant with PKCE, rotating refresh tokens and revocation.

Tokens are opaque random strings mapped server-side to a *grant* (one user consent). Revoking a
grant (``/revoke`` or ``/_sandbox/revoke_grants``) invalidates its refresh token and every access
token issued under it.
"""

import base64
import hashlib
import secrets
from dataclasses import dataclass, field

DEFAULT_REDIRECT_URIS = (
    "http://localhost:8069/sage_business_cloud/oauth/callback",
    "http://127.0.0.1:8069/sage_business_cloud/oauth/callback",
)
SCOPES = ("full_access", "readonly")


class OAuthError(Exception):
    """A token-endpoint failure: ``{"error", "error_description"}`` with an HTTP status."""

    def __init__(self, error, description, status=400):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self):
        """JSON body of the error."""
        return {"error": self.error, "error_description": self.description}


@dataclass
class OAuthConfig:
    """Registered client and token lifetimes."""

    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    redirect_uris: tuple = DEFAULT_REDIRECT_URIS
    access_token_ttl: int = 300
    refresh_token_ttl: int = 2678400
    code_ttl: int = 60
    auto_approve: bool = False


@dataclass
class Grant:
    """One user consent; tokens are issued under it until it is revoked."""

    scope: str
    refresh_token: str = ""
    refresh_expires: float = 0.0
    revoked: bool = False
    access_tokens: dict = field(default_factory=dict)


def pkce_matches(verifier, challenge, method):
    """Check a PKCE ``code_verifier`` against the stored challenge (S256 or plain)."""
    if method == "plain":
        return secrets.compare_digest(verifier, challenge)
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return secrets.compare_digest(expected, challenge)


class OAuthServer:
    """Authorization codes, grants and tokens, all times taken from the shared clock."""

    def __init__(self, config, clock, user_id):
        self.config = config
        self.clock = clock
        self.user_id = user_id
        self.codes = {}
        self.grants = []
        self.refresh_index = {}
        self.access_index = {}

    # ---------------------------------------------------------------- authorize
    def check_authorize(self, params):
        """Validate an authorize request; returns an error text for a 400 page or ``None``.

        Only client_id and redirect_uri problems are answered with a page; everything else is
        reported to the (valid) redirect URI by :meth:`authorize_error`.
        """
        if params.get("client_id") != self.config.client_id:
            return "Unknown client_id."
        if params.get("redirect_uri") not in self.config.redirect_uris:
            return "The redirect_uri is not registered for this client."
        return None

    @staticmethod
    def authorize_error(params):
        """Return an OAuth error code for the redirect, or ``None`` when the request is fine."""
        if params.get("response_type") != "code":
            return "unsupported_response_type"
        if params.get("scope", "full_access") not in SCOPES:
            return "invalid_scope"
        method = params.get("code_challenge_method")
        challenge = params.get("code_challenge")
        if challenge and (method or "plain") not in ("S256", "plain"):
            return "invalid_request"
        if challenge and not 43 <= len(challenge) <= 128:
            return "invalid_request"
        return None

    def issue_code(self, params):
        """Create a single-use authorization code (``GB/`` prefixed) for an approved request."""
        code = "GB/" + secrets.token_urlsafe(24)
        self.codes[code] = {
            "redirect_uri": params["redirect_uri"], "created": self.clock.now(), "used": False,
            "scope": params.get("scope") or "full_access", "challenge": params.get("code_challenge"),
            "method": params.get("code_challenge_method") or "plain",
        }
        return code

    # ---------------------------------------------------------------- token endpoint
    def check_client(self, client_id, client_secret):
        """Raise ``invalid_client`` (401) unless the credentials match the registered client."""
        if client_id != self.config.client_id or not secrets.compare_digest(
                client_secret or "", self.config.client_secret):
            raise OAuthError("invalid_client", "Client authentication failed.", 401)

    def token(self, form):
        """Handle a token request (form already client-authenticated); returns the JSON body."""
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is missing.")
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type} is not supported.")

    def _exchange_code(self, form):
        code = self.codes.get(form.get("code") or "")
        if code is None:
            raise OAuthError("invalid_grant", "The authorization code is invalid.")
        if code["used"]:
            raise OAuthError("invalid_grant", "The authorization code has already been used.")
        if self.clock.now() - code["created"] > self.config.code_ttl:
            raise OAuthError("invalid_grant", "The authorization code has expired.")
        if form.get("redirect_uri") != code["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request.")
        if code["challenge"]:
            verifier = form.get("code_verifier")
            if not verifier or not pkce_matches(verifier, code["challenge"], code["method"]):
                raise OAuthError("invalid_grant", "PKCE verification failed.")
        code["used"] = True
        grant = Grant(scope=code["scope"])
        self.grants.append(grant)
        return self._issue(grant)

    def _refresh(self, form):
        token = form.get("refresh_token") or ""
        grant = self.refresh_index.get(token)
        if grant is None or grant.revoked or grant.refresh_token != token:
            raise OAuthError("invalid_grant", "The refresh token is invalid, used or revoked.")
        if self.clock.now() > grant.refresh_expires:
            raise OAuthError("invalid_grant", "The refresh token has expired.")
        return self._issue(grant)

    def _issue(self, grant):
        now = self.clock.now()
        access = secrets.token_urlsafe(48)
        refresh = secrets.token_urlsafe(48)
        grant.access_tokens[access] = now + self.config.access_token_ttl
        grant.refresh_token = refresh
        grant.refresh_expires = now + self.config.refresh_token_ttl
        self.access_index[access] = grant
        self.refresh_index[refresh] = grant
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.config.access_token_ttl,
                "refresh_token_expires_in": self.config.refresh_token_ttl, "token_type": "bearer",
                "scope": grant.scope, "requested_by_id": self.user_id}

    def revoke(self, token):
        """Revoke the grant behind a refresh (or access) token; unknown tokens are ignored."""
        grant = self.refresh_index.get(token) or self.access_index.get(token)
        if grant:
            grant.revoked = True

    # ---------------------------------------------------------------- resource access
    def authenticate(self, token):
        """Return the grant of a live access token, or ``None``."""
        grant = self.access_index.get(token or "")
        if grant is None or grant.revoked or grant.access_tokens.get(token, 0) < self.clock.now():
            return None
        return grant

    def expire_access_tokens(self):
        """Make every access token issued so far expired."""
        past = self.clock.now() - 1
        for grant in self.grants:
            for token in grant.access_tokens:
                grant.access_tokens[token] = past

    def revoke_grants(self):
        """Revoke every grant (the user lost access; the app must re-authorise)."""
        for grant in self.grants:
            grant.revoked = True

    # ---------------------------------------------------------------- persistence
    def dump(self):
        """Grants and tokens as JSON-serialisable data (codes are short-lived and not kept)."""
        return [{"scope": g.scope, "refresh_token": g.refresh_token, "refresh_expires": g.refresh_expires,
                 "revoked": g.revoked, "access_tokens": g.access_tokens} for g in self.grants]

    def load(self, grants):
        """Restore grants saved by :meth:`dump`."""
        self.grants, self.refresh_index, self.access_index = [], {}, {}
        for raw in grants:
            grant = Grant(**raw)
            self.grants.append(grant)
            self.refresh_index[grant.refresh_token] = grant
            for token in grant.access_tokens:
                self.access_index[token] = grant
