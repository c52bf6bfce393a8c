"""Client for the Sage Business Cloud Accounting API v3.1 (UK).

Plain Python on top of ``requests`` and ``requests-oauthlib``; nothing in this
module imports Odoo, so it can be unit tested and reused on its own.

Main pieces:

* :class:`SageSettings` - endpoints, credentials and retry tuning.
* :class:`SageOAuth` - authorization URL (PKCE S256), code exchange, token
  refresh (Sage rotates the refresh token on every refresh) and revocation.
* :class:`SageClient` - API calls with a Bearer token, ``X-Business`` header,
  proactive and reactive (401) token refresh, paging (pages read ahead in a few
  threads, or ``$next`` followed), retries on 429 / 5xx / network errors, and
  mapping of Sage's error array to exceptions.

Security rules kept throughout: access tokens, refresh tokens, client secrets
and authorization codes never appear in log records or exception messages.
Plain ``http://`` is accepted only for loopback hosts (a local sandbox).

Retry policy: GET, PUT and DELETE are retried on 429, 5xx, timeouts and
connection errors.  A POST is retried on 429 (the request was refused, so
nothing was created) but after a timeout, a connection error or a 5xx it may
already have created the record in Sage, so it is retried only when the body
carries an ``idempotency_id`` inside the resource object (Sage then creates the
record once); otherwise :class:`SageTransientError` is raised at once and the
caller must check before posting again.  Token endpoint calls are never
retried: a refresh token is single use, so replaying a refresh whose answer was
lost would only end in ``invalid_grant``.

On 429 the ``Retry-After`` header (seconds or HTTP date) is honoured when
present, otherwise the wait is exponential backoff with full jitter capped at
``backoff_cap``.  A ``Retry-After`` longer than ``backoff_cap`` is not slept
through: :class:`SageRateLimitError` is raised at once with ``retry_after``
so that the caller can reschedule.  A 429 pauses every thread of the client, not
only the one that got it: the others wait for the same ``Retry-After``.

Reading ahead: when the first page of a listing gives ``$total`` and
``$itemsPerPage`` and its ``$next`` names the next page by number, the next
``prefetch`` pages (default :data:`DEFAULT_PREFETCH`) are read by page number in
worker threads while the caller works on the current page; the pages are still
yielded one by one, in order.  The workers send plain HTTP only: each has its
own ``requests.Session`` (a session's cookie jar and connection pool are not
meant to be shared between threads), and a worker never refreshes the token
itself, because a ``refresh_handler`` may use the caller's database cursor.  A
worker whose token is about to expire, or answered 401, hands its page back to
the caller's thread, which refreshes once (the token lock makes a refresh that
another thread already did a no-op) and sends the page again.
"""

import contextlib
import datetime as dt
import email.utils
import ipaddress
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session

_logger = logging.getLogger(__name__)

SAGE_AUTHORIZE_URL = "https://www.sageone.com/oauth2/auth/central?filter=apiv3.1"
SAGE_TOKEN_URL = "https://oauth.accounting.sage.com/token"
SAGE_REVOKE_URL = "https://oauth.accounting.sage.com/revoke"
SAGE_API_URL = "https://api.accounting.sage.com/v3.1"

#: Refresh the access token when it expires within this many seconds.
TOKEN_EXPIRY_MARGIN = 60
#: Sage's documented lifetimes, used when a token response omits them.
DEFAULT_ACCESS_TOKEN_LIFETIME = 300
DEFAULT_REFRESH_TOKEN_LIFETIME = 31 * 24 * 3600

#: Pages read ahead by :meth:`SageClient.iter_pages` (1 = one page at a time, following ``$next``).
#: Sage allows 150 concurrent requests per app; a few are enough to hide its latency.
DEFAULT_PREFETCH = 4
#: At most this many first pages asked for at once by ``warm_first_pages``.
MAX_WARM_WORKERS = 16

#: Token endpoint error codes meaning the connection must be re-authorised.
AUTH_ERROR_CODES = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})

#: Resource (URL segment) -> name of the object wrapping a POST/PUT body.
SINGULAR = {
    "contacts": "contact",
    "contact_persons": "contact_person",
    "addresses": "address",
    "sales_invoices": "sales_invoice",
    "purchase_invoices": "purchase_invoice",
    "contact_payments": "contact_payment",
}

#: Paths answered for the user as a whole, without ``X-Business``.
_USER_LEVEL_ROOTS = frozenset({"businesses", "user"})
_RETRY_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_LOOPBACK_NAMES = frozenset({"localhost"})


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class SageError(Exception):
    """Base class of every error raised by this module.

    ``status`` is the HTTP status when there was a response, ``code`` the
    OAuth error code or Sage ``$dataCode`` when known, ``request_id`` the
    request id header Sage returned (useful for Sage support).
    """

    def __init__(self, message, status=None, code=None, request_id=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id


class SageAuthError(SageError):
    """Authorisation is lost: the user has to connect again."""


class SageRateLimitError(SageError):
    """HTTP 429 persisted after the allowed retries."""

    def __init__(self, message, status=429, retry_after=None, **kwargs):
        super().__init__(message, status=status, **kwargs)
        self.retry_after = retry_after


class SageTransientError(SageError):
    """5xx, timeout or connection error that persisted (or was not retried)."""


class SageValidationError(SageError):
    """Sage rejected the data (422, or 400 with Sage's error array)."""

    def __init__(self, message, status=422, errors=None, **kwargs):
        super().__init__(message, status=status, **kwargs)
        self.errors = list(errors or [])
        self.user_message = format_sage_errors(self.errors) or message


class SageNotFoundError(SageError):
    """HTTP 404: unknown endpoint or record id."""


class _TokenStale(Exception):
    """A read-ahead worker needs a token refresh, which only the caller's thread makes.

    ``token`` is the token the worker had; ``answered_401`` tells a 401 from a token that
    expires within :data:`TOKEN_EXPIRY_MARGIN` (nothing was sent then).
    """

    def __init__(self, token, answered_401):
        super().__init__("token refresh needed")
        self.token = token
        self.answered_401 = answered_401


class _Cancelled(Exception):
    """The listing was closed: a read-ahead worker stops before its next attempt."""


def format_sage_errors(errors):
    """Join Sage error entries as ``"$source: $message"`` (one per entry)."""
    parts = []
    for entry in errors or []:
        message = str(entry.get("$message") or entry.get("message") or "").strip()
        source = str(entry.get("$source") or "").strip()
        if not message:
            message = str(entry.get("$dataCode") or "").strip()
        if not message:
            continue
        parts.append(f"{source}: {message}" if source else message)
    return "; ".join(parts)


def _redact(text, secrets):
    """Replace each known secret occurring in ``text`` by ``***``."""
    text = str(text)
    for secret in secrets:
        if secret and len(str(secret)) >= 4:
            text = text.replace(str(secret), "***")
    return text


# ---------------------------------------------------------------------------
# URL checks and oauthlib plumbing
# ---------------------------------------------------------------------------


def is_loopback_host(host):
    """True for localhost and loopback IP addresses (IPv4 or IPv6)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url):
    """Raise :class:`SageError` unless ``url`` is https, or http on loopback."""
    parts = urlsplit(url or "")
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return
    raise SageError(
        f"Refusing URL {parts.scheme or '?'}://{parts.hostname or '?'}: "
        "HTTPS is required (plain HTTP is only allowed for loopback hosts)"
    )


_insecure_lock = threading.RLock()


@contextlib.contextmanager
def _oauthlib_transport(url):
    """Let oauthlib talk plain HTTP to a loopback ``url``, for this call only.

    oauthlib refuses non-HTTPS URLs unless ``OAUTHLIB_INSECURE_TRANSPORT`` is
    set.  The variable is set only while a call to a loopback http URL runs,
    and restored afterwards; for any other URL nothing is changed.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not is_loopback_host(parts.hostname):
        yield
        return
    with _insecure_lock:
        previous = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
            else:
                os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = previous


class _TokenCallLogFilter(logging.Filter):
    """Drop requests-oauthlib's debug records during our token calls.

    requests-oauthlib logs request bodies (client secret, code, refresh token)
    and whole token responses at DEBUG level.  While a thread is inside one of
    our token calls, the records of that logger are discarded.
    """

    def __init__(self):
        super().__init__()
        self._local = threading.local()

    @contextlib.contextmanager
    def active(self):
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    def filter(self, record):
        return not getattr(self._local, "depth", 0)


_token_log_filter = _TokenCallLogFilter()
for _name in ("requests_oauthlib.oauth2_session", "requests_oauthlib"):
    logging.getLogger(_name).addFilter(_token_log_filter)


def _retry_after_seconds(value, now):
    """Parse a Retry-After header (delta seconds or HTTP date) into seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        _logger.debug("Retry-After is not a number of seconds; reading it as an HTTP date")
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


def _json_or_none(response):
    try:
        return response.json()
    except ValueError:
        return None


def _request_id(response):
    headers = response.headers
    return headers.get("X-Request-Id") or headers.get("x_request_id")


# ---------------------------------------------------------------------------
# Settings and tokens
# ---------------------------------------------------------------------------


@dataclass
class SageSettings:
    """Endpoints, credentials and tuning shared by :class:`SageOAuth` and :class:`SageClient`."""

    client_id: str
    client_secret: str
    redirect_uri: str | None = None
    authorize_url: str = SAGE_AUTHORIZE_URL
    token_url: str = SAGE_TOKEN_URL
    revoke_url: str | None = None
    api_url: str = SAGE_API_URL
    scope: str = "full_access"
    timeout: float | tuple = (5, 60)
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    country: str | None = "gb"

    def __post_init__(self):
        for url in (self.authorize_url, self.token_url, self.revoke_url, self.api_url):
            if url is not None:
                check_url(url)

    @property
    def effective_revoke_url(self):
        """``revoke_url``, or ``token_url`` with its last segment replaced by ``revoke``."""
        if self.revoke_url:
            return self.revoke_url
        parts = urlsplit(self.token_url)
        head = parts.path.rstrip("/").rpartition("/")[0]
        return urlunsplit((parts.scheme, parts.netloc, f"{head}/revoke", "", ""))


def normalize_token(raw, now, unknown_expiry=None):
    """Return the token dict shape used by this project.

    Keys: access_token, refresh_token, token_type, expires_at,
    refresh_token_expires_at (epoch floats), scope, requested_by_id.
    Existing absolute expiry values win over relative ``*_expires_in`` ones.
    A token without any access-token expiry gets ``unknown_expiry`` as
    ``expires_at`` when given, else Sage's default lifetime from ``now``.
    """
    raw = dict(raw or {})
    if unknown_expiry is not None and raw.get("expires_at") is None and raw.get("expires_in") is None:
        raw["expires_at"] = unknown_expiry

    def absolute(at_key, in_key, default_lifetime):
        if raw.get(at_key) is not None:
            return float(raw[at_key])
        lifetime = raw.get(in_key)
        return float(now) + float(default_lifetime if lifetime in (None, "") else lifetime)

    scope = raw.get("scope")
    if isinstance(scope, (list, tuple, set)):
        scope = " ".join(scope)
    return {
        "access_token": raw.get("access_token"),
        "refresh_token": raw.get("refresh_token"),
        "token_type": raw.get("token_type") or "bearer",
        "expires_at": absolute("expires_at", "expires_in", DEFAULT_ACCESS_TOKEN_LIFETIME),
        "refresh_token_expires_at": absolute(
            "refresh_token_expires_at", "refresh_token_expires_in", DEFAULT_REFRESH_TOKEN_LIFETIME
        ),
        "scope": scope,
        "requested_by_id": raw.get("requested_by_id"),
    }


# ---------------------------------------------------------------------------
# OAuth
# ---------------------------------------------------------------------------


class SageOAuth:
    """OAuth 2.0 authorization-code flow against Sage's auth servers."""

    def __init__(self, settings, session=None, clock=time.time):
        self.settings = settings
        self._session = session or requests.Session()
        self._clock = clock

    def _oauth_session(self, **kwargs):
        oauth = OAuth2Session(self.settings.client_id, **kwargs)
        # Reuse the transport of the injected session (adapters, TLS, proxies).
        oauth.adapters = self._session.adapters
        oauth.verify = self._session.verify
        oauth.proxies = self._session.proxies
        oauth.cert = self._session.cert
        return oauth

    def authorization_url(self, state):
        """Return ``(url, code_verifier)`` for the user's browser (PKCE S256)."""
        pkce = WebApplicationClient(self.settings.client_id)
        verifier = pkce.create_code_verifier(64)
        challenge = pkce.create_code_challenge(verifier, "S256")
        extra = {"code_challenge": challenge, "code_challenge_method": "S256"}
        if self.settings.country:
            extra["country"] = self.settings.country
        oauth = self._oauth_session(redirect_uri=self.settings.redirect_uri, scope=self.settings.scope)
        with _oauthlib_transport(self.settings.authorize_url):
            url, _state = oauth.authorization_url(self.settings.authorize_url, state=state, **extra)
        return url, verifier

    def fetch_token(self, code, code_verifier=None):
        """Exchange an authorization code for a token dict."""
        extra = {"code_verifier": code_verifier} if code_verifier else {}
        oauth = self._oauth_session(redirect_uri=self.settings.redirect_uri)
        oauth.register_compliance_hook("access_token_response", self._check_token_response)
        raw = self._token_call(
            "code exchange",
            (code, code_verifier),
            lambda: oauth.fetch_token(
                self.settings.token_url,
                code=code,
                client_secret=self.settings.client_secret,
                include_client_id=True,
                timeout=self.settings.timeout,
                **extra,
            ),
        )
        return normalize_token(raw, self._clock())

    def refresh(self, refresh_token):
        """Use ``refresh_token`` once; the answer carries a new refresh token."""
        if not refresh_token:
            raise SageAuthError("No Sage refresh token available", code="missing_refresh_token")
        oauth = self._oauth_session()
        oauth.register_compliance_hook("refresh_token_response", self._check_token_response)
        raw = self._token_call(
            "token refresh",
            (refresh_token,),
            lambda: oauth.refresh_token(
                self.settings.token_url,
                refresh_token=refresh_token,
                client_id=self.settings.client_id,
                client_secret=self.settings.client_secret,
                timeout=self.settings.timeout,
            ),
        )
        return normalize_token(raw, self._clock())

    def revoke(self, refresh_token):
        """Revoke ``refresh_token`` (access tokens cannot be revoked)."""
        url = self.settings.effective_revoke_url
        data = {
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
            "token": refresh_token,
        }
        self._token_call(
            "token revocation",
            (refresh_token,),
            lambda: self._check_token_response(
                self._session.post(
                    url, data=data, headers={"Accept": "application/json"}, timeout=self.settings.timeout
                )
            ),
        )

    # -- helpers -----------------------------------------------------------

    def _token_call(self, what, secrets, call):
        """Run a token endpoint call with logging muted and errors mapped."""
        secrets = (*secrets, self.settings.client_secret)
        started = time.monotonic()
        try:
            with _token_log_filter.active(), _oauthlib_transport(self.settings.token_url):
                result = call()
        except SageError as exc:
            exc.message = _redact(exc.message, secrets)
            exc.args = (exc.message,)
            _logger.warning("Sage %s failed: %s", what, exc.message)
            raise
        except requests.RequestException as exc:
            message = f"Sage {what} failed: {type(exc).__name__}"
            _logger.warning(message)
            raise SageTransientError(message) from None
        except OAuth2Error as exc:
            code = exc.error or "invalid_response"
            cls = SageAuthError if code in AUTH_ERROR_CODES else SageError
            message = _redact(f"Sage {what} failed: {code}", secrets)
            _logger.warning(message)
            raise cls(message, status=exc.status_code, code=code) from None
        _logger.info("Sage %s succeeded in %.0f ms", what, (time.monotonic() - started) * 1000)
        if isinstance(result, dict):
            result = dict(result)
            if result.get("expires_in") is not None:
                # oauthlib dated the token with time.time(); use our clock instead.
                result.pop("expires_at", None)
        return result

    def _check_token_response(self, response):
        """Raise the mapped error for a failed token endpoint answer."""
        status = response.status_code
        if status < 400:
            return response
        body = _json_or_none(response)
        body = body if isinstance(body, dict) else {}
        code = body.get("error")
        description = body.get("error_description")
        message = f"Sage token endpoint answered HTTP {status}"
        if code:
            message += f": {code}"
        if description:
            message += f" ({description})"
        kwargs = {"status": status, "code": code, "request_id": _request_id(response)}
        if status == 429:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"), self._clock())
            raise SageRateLimitError(message, retry_after=retry_after, **kwargs)
        if status >= 500:
            raise SageTransientError(message, **kwargs)
        if code in AUTH_ERROR_CODES:
            raise SageAuthError(message, **kwargs)
        raise SageError(message, **kwargs)


# ---------------------------------------------------------------------------
# API client
# ---------------------------------------------------------------------------


def format_param(value):
    """Serialise a query value: datetimes as UTC ISO 8601 with ``Z``."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.replace(microsecond=0).isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(format_param(v) for v in value)
    return str(value)


def build_params(params):
    """Drop None values and serialise the rest with :func:`format_param`."""
    return {key: format_param(value) for key, value in (params or {}).items() if value is not None}


def singular(resource):
    """Name of the object wrapping a ``resource`` body, e.g. contacts -> contact."""
    resource = resource.strip("/")
    if resource in SINGULAR:
        return SINGULAR[resource]
    if resource.endswith("ies"):
        return resource[:-3] + "y"
    return resource.removesuffix("s")


def _has_idempotency_id(body):
    return isinstance(body, dict) and any(
        isinstance(value, dict) and value.get("idempotency_id") for value in body.values()
    )


class SageClient:
    """Sage Accounting API v3.1 client for one user token and one business."""

    def __init__(
        self,
        settings,
        token,
        business_id=None,
        token_saver=None,
        refresh_handler=None,
        session=None,
        sleep=time.sleep,
        clock=time.time,
        prefetch=None,
    ):
        self.settings = settings
        self.business_id = business_id
        # A stored token without expiry information is treated as expired.
        self._token = normalize_token(token, clock(), unknown_expiry=0.0)
        self._token_saver = token_saver
        self._refresh_handler = refresh_handler
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._oauth = SageOAuth(settings, session=self._session, clock=clock)
        api = urlsplit(settings.api_url)
        self._origin = (api.scheme, api.netloc)
        self._base_path = api.path.rstrip("/")
        if prefetch is not None:
            self.prefetch = max(1, int(prefetch))
        #: HTTP requests sent to the API (token endpoint calls excluded), from every thread.
        self.request_count = 0
        #: Seconds the caller's thread spent waiting for Sage (its own calls, and the pages
        #: it needed before a worker had brought them); what read-ahead hides is not counted.
        self.wait_seconds = 0.0
        #: Envelope data of the last page yielded by :meth:`iter_pages`.
        self.last_page = {}
        #: ``jitter(low, high)`` used for backoff; replaceable in tests.
        self.jitter = random.uniform
        # One refresh at a time; a thread that waited finds the token refreshed and keeps it.
        self._token_lock = threading.RLock()
        self._count_lock = threading.Lock()
        # Clock time before which no thread sends (set by a 429), and per thread the pause
        # it has already waited for.
        self._pause_lock = threading.Lock()
        self._pause_until = 0.0
        self._local = threading.local()
        #: First pages asked for ahead by :meth:`warm_first_pages` and :meth:`chain_first_pages`:
        #: ``{url: future}``.
        self._warm = {}
        self._warm_cancel = None
        self._warmed = False
        #: First-page URLs of the listings to be read one after the other (:meth:`chain_first_pages`).
        self._chain = []

    #: Pages :meth:`iter_pages` reads ahead in worker threads (1 = none); the ``prefetch``
    #: argument sets it for one client, assigning the class attribute for every client.
    prefetch = DEFAULT_PREFETCH

    # -- tokens ------------------------------------------------------------

    @property
    def token(self):
        return dict(self._token)

    def _expiring(self, token):
        expires_at = token.get("expires_at")
        return (
            not token.get("access_token")
            or expires_at is None
            or expires_at < self._clock() + TOKEN_EXPIRY_MARGIN
        )

    def ensure_token(self):
        """Refresh when the access token is missing or expires within 60 s."""
        if self._expiring(self._token):
            with self._token_lock:
                if self._expiring(self._token):  # not refreshed by another thread meanwhile
                    self.refresh_token()

    def refresh_token(self):
        """Force a refresh, through ``refresh_handler`` when one was given."""
        with self._token_lock:
            stale = dict(self._token)
            if self._refresh_handler is not None:
                fresh = self._refresh_handler(stale)
                if not fresh or not fresh.get("access_token"):
                    raise SageAuthError("Sage token refresh returned no access token", code="no_token")
                self._token = normalize_token(fresh, self._clock())
            else:
                self._token = self._oauth.refresh(stale.get("refresh_token"))
                if self._token_saver is not None:
                    self._token_saver(dict(self._token))
            return dict(self._token)

    def _refresh_after_401(self, used):
        """Refresh after a 401 answered to ``used``, unless another thread already replaced it.

        Several requests refused at once therefore cost one refresh, not one each.
        """
        with self._token_lock:
            if self._token.get("access_token") == used.get("access_token"):
                self.refresh_token()

    # -- business ----------------------------------------------------------

    def list_businesses(self):
        """Businesses the user can access (at least id, displayed_as, name)."""
        data = self.request("GET", "/businesses")
        if isinstance(data, list):
            items = data
        else:
            items = [item for page in self._pages("/businesses", {}, data) for item in page]
        for item in items:
            item.setdefault("name", item.get("displayed_as"))
        return items

    def get_lead_business(self):
        return self.request("GET", "/businesses/lead")

    # -- listing -----------------------------------------------------------

    def iter_pages(self, resource, attributes="all", items_per_page=200, **filters) -> Iterator[list]:
        """Yield the ``$items`` of each page, in order, until the last page.

        Lazy: nothing is read before the first page is asked for. Empty pages are not yielded.
        None-valued filters are dropped. When the first page gives ``$total`` and
        ``$itemsPerPage`` and ``prefetch`` is above 1, the following pages are read ahead by
        page number, at most ``prefetch`` at a time, in worker threads, while the caller works
        on the current page (see the module's docstring); after the last of them, ``$next`` is
        still followed, so records added meanwhile are read too. Otherwise each page is read
        once the previous one was consumed, following ``$next`` until null. Closing the
        generator early cancels the pages not read yet.
        """
        path, params = self._listing(resource, attributes, items_per_page, filters)
        return self._pages(path, params, None)

    @staticmethod
    def _listing(resource, attributes, items_per_page, filters):
        if isinstance(attributes, (list, tuple)):
            attributes = ",".join(attributes)
        params = build_params({"items_per_page": items_per_page, "attributes": attributes or None, **filters})
        return "/" + resource.strip("/"), params

    def warm_first_pages(self, listings):
        """Ask for the first page of each listing now, all at once, in worker threads.

        ``listings`` are ``(resource, attributes, items_per_page, filters)``, exactly as
        :meth:`iter_pages` will be called for them later. A run that lists six resources one
        after the other then waits for one round trip instead of six (the rest of each listing
        is read as usual). A first page that a worker could not bring (token to refresh,
        listing dropped) is asked for again by :meth:`iter_pages`; an error Sage gave it after
        the retries is raised there, as it would have been. Once per client at most.
        """
        if self.prefetch <= 1 or self._warmed or not listings:
            return
        self._warmed = True
        self._submit_warm([self._listing_url(listing) for listing in listings])

    def chain_first_pages(self, listings):
        """Listings that will be read one after the other, in this order (a first import).

        The first page of each one is asked for as soon as every page of the one before has
        been asked for, so the wait for it overlaps the writing of the previous pages; it is
        therefore never read long before its own listing. ``listings`` as for
        :meth:`warm_first_pages`; a listing read that is not the next in the chain changes
        nothing (its page is asked for when it is read, as usual).
        """
        if self.prefetch > 1:
            self._chain = [self._listing_url(listing) for listing in listings]

    def _listing_url(self, listing):
        resource, attributes, items_per_page, filters = listing
        return self._url(*self._listing(resource, attributes, items_per_page, filters))

    def _all_asked(self, url):
        """Every page of the listing at ``url`` has been asked for: ask for the next one's first."""
        if url not in self._chain:
            return
        position = self._chain.index(url)
        upcoming = self._chain[position + 1:position + 2]
        del self._chain[:position + 1]
        if upcoming and upcoming[0] not in self._warm:
            self._submit_warm(upcoming)

    def _submit_warm(self, urls):
        self.ensure_token()  # on the caller's thread, before the workers need it
        if self._warm_cancel is None:
            self._warm_cancel = threading.Event()
        cancel = self._warm_cancel

        def start_worker():
            self._local.session = self._worker_session()

        # one worker per listing (a run has 13; Sage allows 150 requests in flight per app)
        pool = ThreadPoolExecutor(max_workers=min(len(urls), MAX_WARM_WORKERS),
                                  thread_name_prefix="sage-first-pages", initializer=start_worker)
        for url in urls:
            self._warm[url] = pool.submit(self._send, "GET", url, worker=cancel, check_expiry=False)
        pool.shutdown(wait=False)

    def _take_warm(self, url):
        """The first page asked for ahead at ``url``, or None to ask for it now."""
        future = self._warm.pop(url, None)
        if future is None:
            return None
        try:
            return self._waited_for(future.result)
        except (_TokenStale, _Cancelled):
            return None

    def drop_warm(self):
        """Forget the first pages asked for ahead and not used (a run that stopped early)."""
        if self._warm_cancel is not None:
            self._warm_cancel.set()
            self._warm_cancel = None  # workers sent later get an event of their own
        for future in self._warm.values():
            future.cancel()
        self._warm.clear()
        self._chain = []

    def iter_items(self, resource, **kwargs) -> Iterator[dict]:
        for page in self.iter_pages(resource, **kwargs):
            yield from page

    def _pages(self, path, params, first):
        listing_url = self._url(path, params)
        if first is None:
            first = self._take_warm(listing_url)
        data = first if first is not None else self.request("GET", path, params=params)
        seen = {listing_url}
        plan = self._read_ahead_plan(data, params)
        if plan:
            data = yield from self._read_ahead(data, seen, *plan, lambda: self._all_asked(listing_url))
        else:
            if not (isinstance(data, dict) and data.get("$next")):
                self._all_asked(listing_url)  # a listing of one page
            yield from self._page_items(data)
        while True:
            next_link = data.get("$next") if isinstance(data, dict) else None
            if not next_link:
                self._all_asked(listing_url)
                return
            url = self._next_url(next_link, params)
            if url in seen:
                _logger.warning("Sage paging stopped: $next repeats a page already read (%s)", path)
                return
            seen.add(url)
            data = self.request("GET", url)
            yield from self._page_items(data)

    def _page_items(self, data):
        """Yield the page's items, if any, recording its envelope in ``last_page``."""
        data = data if isinstance(data, dict) else {}
        self.last_page = {
            "total": data.get("$total"),
            "page": data.get("$page"),
            "items_per_page": data.get("$itemsPerPage", data.get("$items_per_page")),
            "next": data.get("$next"),
        }
        items = data.get("$items") or []
        if items:
            yield items

    def _read_ahead_plan(self, first, params):
        """``(url of page n, last page number)`` when the pages after ``first`` can be read by
        number: ``$total`` and ``$itemsPerPage`` given, ``$next`` naming page 2. Else None."""
        if self.prefetch <= 1 or not isinstance(first, dict) or not first.get("$next"):
            return None
        total = first.get("$total")
        per_page = first.get("$itemsPerPage", first.get("$items_per_page"))
        try:
            total, per_page = int(total), int(per_page)
        except (TypeError, ValueError):
            return None  # Sage may omit them: follow $next instead
        last = -(-total // per_page) if per_page > 0 else 0
        parts = urlsplit(self._next_url(first["$next"], params))
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if last < 2 or query.get("page") != "2":
            return None
        query["items_per_page"] = str(per_page)

        def page_url(number):
            return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({**query, "page": number}), ""))

        return page_url, last

    def _read_ahead(self, first, seen, page_url, last, all_asked):
        """Yield pages 1 to ``last`` (``first`` is page 1) while workers read the next ones;
        ``all_asked()`` once page ``last`` has been asked for.

        Returns the envelope of page ``last``, whose ``$next`` the caller goes on following.
        """
        cancel = threading.Event()
        sessions = []
        futures = {}
        upcoming = 2

        def start_worker():
            self._local.session = self._worker_session()
            sessions.append(self._local.session)

        def submit(number, refreshed=False, check_expiry=True):
            futures[number] = pool.submit(
                self._send, "GET", page_url(number), worker=cancel, refreshed=refreshed, check_expiry=check_expiry)

        def top_up(current):
            nonlocal upcoming
            self.ensure_token()  # here, on the caller's thread, before the workers need it
            while upcoming <= min(last, current + self.prefetch):
                seen.add(page_url(upcoming))
                submit(upcoming)
                upcoming += 1
                if upcoming > last:
                    all_asked()

        pool = ThreadPoolExecutor(
            max_workers=min(self.prefetch, last - 1), thread_name_prefix="sage-read-ahead",
            initializer=start_worker,
        )
        finished = False
        try:
            top_up(1)
            yield from self._page_items(first)
            data = first
            for number in range(2, last + 1):
                data = self._read_ahead_result(number, futures, submit)
                top_up(number)
                yield from self._page_items(data)
            finished = True
            return data
        finally:
            cancel.set()
            for future in futures.values():
                future.cancel()
            # After the last page nothing runs any more; after an early close, workers still
            # in a call finish it in the background and their answers are dropped.
            pool.shutdown(wait=finished, cancel_futures=True)
            if finished:
                for session in sessions:
                    session.close()

    def _read_ahead_result(self, number, futures, submit):
        """The envelope of page ``number``; refreshes the token here when a worker needed it."""
        while True:
            try:
                return self._waited_for(futures.pop(number).result)
            except _TokenStale as stale:
                if stale.answered_401:
                    self._refresh_after_401(stale.token)
                else:
                    self.ensure_token()
                # This page and every other one handed back are sent again with the new token.
                again = {number: stale}
                for other, future in futures.items():
                    if future.done() and isinstance(future.exception(), _TokenStale):
                        again[other] = future.exception()
                for page, reason in sorted(again.items()):
                    submit(page, refreshed=reason.answered_401, check_expiry=False)

    def _worker_session(self):
        """A session for one read-ahead worker, configured like the client's own.

        Custom adapters given with ``session`` are shared (thread-safe transports are expected);
        plain ones are not: each worker gets its own connection pool.
        """
        base = self._session
        session = requests.Session()
        session.headers.update(base.headers)
        session.verify, session.cert, session.trust_env = base.verify, base.cert, base.trust_env
        session.proxies.update(base.proxies)
        for prefix, adapter in base.adapters.items():
            if type(adapter) is not requests.adapters.HTTPAdapter:
                session.mount(prefix, adapter)
        return session

    def _next_url(self, next_link, params):
        """Absolute URL for ``$next``, keeping original params it does not repeat."""
        url = self._url(next_link)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        for key, value in params.items():
            query.setdefault(key, value)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))

    # -- records -----------------------------------------------------------

    def _record_path(self, resource, key):
        return f"/{resource.strip('/')}/{quote(str(key), safe='')}"

    def get(self, resource, key, **params):
        return self.request("GET", self._record_path(resource, key), params=build_params(params))

    def create(self, resource, values, idempotency_id=None):  # pylint: disable=method-required-super
        """POST ``{"<singular>": values}``; ``idempotency_id`` goes inside the object."""
        values = dict(values)
        if idempotency_id:
            values["idempotency_id"] = idempotency_id
        return self.request("POST", "/" + resource.strip("/"), json={singular(resource): values})

    def update(self, resource, key, values):
        return self.request("PUT", self._record_path(resource, key), json={singular(resource): dict(values)})

    def delete(self, resource, key, **params):
        return self.request("DELETE", self._record_path(resource, key), params=build_params(params))

    # -- transport ---------------------------------------------------------

    def _url(self, path, params=None):
        """Absolute API URL for ``path`` (relative, with or without the base path, or absolute)."""
        parts = urlsplit(path)
        if parts.scheme or parts.netloc:
            if (parts.scheme, parts.netloc) != self._origin:
                raise SageError("Refusing to send the Sage token to a foreign host")
            rel_path = parts.path
        else:
            rel_path = "/" + parts.path.lstrip("/")
            base = self._base_path
            if base and not (rel_path == base or rel_path.startswith(base + "/")):
                rel_path = base + rel_path
        query = parts.query
        if params:
            query = "&".join(filter(None, [query, urlencode(params)]))
        return urlunsplit((*self._origin, rel_path, query, ""))

    def _needs_business_header(self, url):
        path = urlsplit(url).path
        if self._base_path and path.startswith(self._base_path):
            path = path[len(self._base_path):]
        return path.strip("/").split("/")[0] not in _USER_LEVEL_ROOTS

    def _backoff(self, attempt):
        ceiling = min(self.settings.backoff_cap, self.settings.backoff_base * (2 ** attempt))
        return self.jitter(0, ceiling)

    def request(self, method, path, params=None, json=None, accept=None):
        """Send one API call with auth, retries and error mapping.

        Returns the decoded JSON body, or None for an empty body (e.g. 204). With ``accept``
        (e.g. ``"application/pdf"``), asks Sage for that rendition and returns its bytes.
        """
        return self._waited_for(self._send, method.upper(), self._url(path, params), json=json, accept=accept)

    def _waited_for(self, call, *args, **kwargs):
        """``call(*args, **kwargs)`` on the caller's thread, its duration added to ``wait_seconds``."""
        started = time.monotonic()
        try:
            return call(*args, **kwargs)
        finally:
            self.wait_seconds += time.monotonic() - started

    def _send(self, method, url, json=None, worker=None, refreshed=False, check_expiry=True, accept=None):
        """:meth:`request` for an absolute ``url``.

        ``worker`` is None on the caller's thread. In a read-ahead worker it is the listing's
        cancel event: the call then uses the thread's own session, raises :class:`_Cancelled`
        once the listing is closed, and raises :class:`_TokenStale` instead of refreshing
        (``refreshed``: the caller refreshed already for this call, so a 401 is final;
        ``check_expiry``: False when the caller has just made sure of the token).
        """
        log_path = urlsplit(url).path
        retry_safe = method in _RETRY_SAFE_METHODS or _has_idempotency_id(json)
        session = self._session if worker is None else self._local.session
        headers = {"Accept": accept or "application/json"}
        if self.business_id and self._needs_business_header(url):
            headers["X-Business"] = self.business_id
        attempt = 0
        while True:
            if worker is None:
                self.ensure_token()
            elif worker.is_set():
                raise _Cancelled()
            token = self._token
            if worker is not None and check_expiry and self._expiring(token):
                raise _TokenStale(token, answered_401=False)
            headers["Authorization"] = f"Bearer {token['access_token']}"
            self._wait_turn(worker)
            with self._count_lock:
                self.request_count += 1
            started = time.monotonic()
            try:
                response = session.request(
                    method, url, json=json, headers=headers, timeout=self.settings.timeout
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                reason = type(exc).__name__
                _logger.warning("Sage %s %s failed: %s", method, log_path, reason)
                if not retry_safe:
                    raise SageTransientError(
                        f"Sage {method} {log_path} failed ({reason}); not retried because "
                        "the request may have been processed (no idempotency_id)"
                    ) from None
                if attempt >= self.settings.max_retries:
                    raise SageTransientError(
                        f"Sage {method} {log_path} failed ({reason}) after {attempt + 1} attempts"
                    ) from None
                self._wait(self._backoff(attempt), method, log_path, reason, worker)
                attempt += 1
                continue
            status = response.status_code
            _logger.debug(
                "Sage %s %s -> %s in %.0f ms", method, log_path, status, (time.monotonic() - started) * 1000
            )
            if status == 401 and not refreshed:
                refreshed = True
                if worker is not None:
                    raise _TokenStale(token, answered_401=True)
                _logger.info("Sage %s %s answered 401; refreshing the token once", method, log_path)
                self._refresh_after_401(token)
                continue
            if status == 429:
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"), self._clock())
                if retry_after is not None and retry_after > self.settings.backoff_cap:
                    raise self._error(response, method, log_path, retry_after=retry_after)
                if attempt >= self.settings.max_retries:
                    raise self._error(response, method, log_path, retry_after=retry_after)
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                self._wait(self._pause_all(delay), method, log_path, "HTTP 429", worker)
                attempt += 1
                continue
            if status >= 500:
                if not retry_safe or attempt >= self.settings.max_retries:
                    raise self._error(response, method, log_path, attempts=attempt + 1)
                self._wait(self._backoff(attempt), method, log_path, f"HTTP {status}", worker)
                attempt += 1
                continue
            if status >= 400:
                raise self._error(response, method, log_path)
            if accept:
                return response.content
            if not response.content or not response.content.strip():
                return None
            data = _json_or_none(response)
            if data is None:
                # An answer cut short on its way: like a dropped connection, sent again when
                # that is safe (the call itself was carried out; a retry reads or repeats it).
                if retry_safe and attempt < self.settings.max_retries:
                    self._wait(self._backoff(attempt), method, log_path, "answer is not JSON", worker)
                    attempt += 1
                    continue
                raise SageTransientError(
                    f"Sage {method} {log_path} returned an answer that is not JSON (cut short?)"
                    + (f" after {attempt + 1} attempts" if attempt else ""), status=status,
                    request_id=_request_id(response),
                )
            return data

    # -- shared pause after a 429 -----------------------------------------

    def _pause_all(self, delay):
        """Make every thread of this client wait ``delay`` seconds from now; return this
        thread's own wait (longer when another thread's pause ends later)."""
        with self._pause_lock:
            self._pause_until = until = max(self._pause_until, self._clock() + delay)
        self._local.paused_until = until
        return max(delay, until - self._clock())

    def _wait_turn(self, worker=None):
        """Before sending: wait out a pause another thread was asked for (a 429)."""
        with self._pause_lock:
            until = self._pause_until
        if until <= getattr(self._local, "paused_until", 0.0):
            return
        self._local.paused_until = until
        remaining = until - self._clock()
        if remaining > 0:
            _logger.info("Sage: another request was rate limited; waiting %.2f s", remaining)
            self._nap(remaining, worker)

    def _wait(self, delay, method, log_path, reason, worker=None):
        _logger.warning("Sage %s %s: %s, retrying in %.2f s", method, log_path, reason, delay)
        self._nap(delay, worker)

    def _nap(self, seconds, worker):
        """Sleep; a worker wakes up as soon as its listing is closed (with the real clock)."""
        if worker is not None and self._sleep is time.sleep:
            if worker.wait(seconds):
                raise _Cancelled()
            return
        self._sleep(seconds)
        if worker is not None and worker.is_set():
            raise _Cancelled()

    def _error(self, response, method, log_path, retry_after=None, attempts=1):
        """Build the exception for a final error response."""
        status = response.status_code
        body = _json_or_none(response)
        if isinstance(body, dict):
            errors = body.get("$errors") or body.get("errors") or ([body] if "$message" in body else [])
        else:
            errors = body if isinstance(body, list) else []
        errors = [entry for entry in errors if isinstance(entry, dict)]
        detail = format_sage_errors(errors)
        code = next((e.get("$dataCode") for e in errors if e.get("$dataCode")), None)
        message = f"Sage {method} {log_path} failed with HTTP {status}"
        if attempts > 1:
            message += f" after {attempts} attempts"
        if detail:
            message += f": {detail}"
        message = _redact(message, (self._token.get("access_token"), self._token.get("refresh_token")))
        kwargs = {"status": status, "code": code, "request_id": _request_id(response)}
        _logger.log(logging.INFO if status in (404, 422) else logging.WARNING, message)
        if status == 401:
            return SageAuthError(message, **kwargs)
        if status == 404:
            return SageNotFoundError(message, **kwargs)
        if status == 429:
            return SageRateLimitError(message, retry_after=retry_after, **kwargs)
        if status >= 500:
            return SageTransientError(message, **kwargs)
        if status == 422 or (status == 400 and errors):
            return SageValidationError(message, errors=errors, **kwargs)
        return SageError(message, **kwargs)
