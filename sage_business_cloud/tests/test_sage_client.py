"""Unit tests of the plain-Python Sage client (services/sage_client.py).

They run without Odoo (plain pytest) and under pytest-odoo alike: the client
module is loaded from its file path, never through ``odoo.addons``.  HTTP is
mocked with ``responses``; sleeping and the clock are injected.
"""

import base64
import datetime as dt
import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

_CLIENT_PATH = Path(__file__).resolve().parents[1] / "services" / "sage_client.py"


def _load_client_module():
    module = sys.modules.get("sage_client")
    if module is not None and Path(getattr(module, "__file__", "")).resolve() == _CLIENT_PATH:
        return module
    spec = importlib.util.spec_from_file_location("sage_client", _CLIENT_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sage_client"] = module
    spec.loader.exec_module(module)
    return module


sc = _load_client_module()

API = sc.SAGE_API_URL
TOKEN_URL = sc.SAGE_TOKEN_URL
NOW = 1_700_000_000.0
CLIENT_SECRET = "client-SECRET-0123456789"
ACCESS = "access-SECRET-aaaa1111"
REFRESH = "refresh-SECRET-bbbb2222"
NEW_ACCESS = "access-SECRET-cccc3333"
NEW_REFRESH = "refresh-SECRET-dddd4444"
AUTH_CODE = "GB/code-SECRET-eeee5555"
SECRETS = (CLIENT_SECRET, ACCESS, REFRESH, NEW_ACCESS, NEW_REFRESH, AUTH_CODE)


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


class Sleeper:
    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)


def read_ahead_threads():
    return [t for t in threading.enumerate() if t.name.startswith(("sage-read-ahead", "sage-first-pages"))]


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock
        # A listing that stopped early leaves its workers to finish their last call in the
        # background: let them end here, or they would send it to the next test's mock.
        deadline = time.monotonic() + 5
        while read_ahead_threads() and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture
def sleeper():
    return Sleeper()


@pytest.fixture
def clock():
    return Clock()


def make_settings(**overrides):
    values = {
        "client_id": "cid",
        "client_secret": CLIENT_SECRET,
        "redirect_uri": "https://odoo.example.com/sage/callback",
    }
    values.update(overrides)
    return sc.SageSettings(**values)


@pytest.fixture
def make_client(sleeper, clock):
    def factory(settings=None, expires_in=3600, **kwargs):
        token = {
            "access_token": ACCESS,
            "refresh_token": REFRESH,
            "token_type": "bearer",
            "expires_at": clock() + expires_in,
        }
        kwargs.setdefault("sleep", sleeper)
        kwargs.setdefault("clock", clock)
        return sc.SageClient(settings or make_settings(), token, **kwargs)

    return factory


def bearer(token):
    return matchers.header_matcher({"Authorization": f"Bearer {token}"})


def token_reply(access=NEW_ACCESS, refresh=NEW_REFRESH, **extra):
    body = {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": 300,
        "scope": "full_access",
        "requested_by_id": "user-1",
    }
    body.update(extra)
    return body


def add_refresh(rsps, url=TOKEN_URL, **extra):
    form = {"grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": "cid",
            "client_secret": CLIENT_SECRET}
    return rsps.post(url, json=token_reply(**extra), match=[matchers.urlencoded_params_matcher(form)])


def query(call):
    return {key: values[0] for key, values in parse_qs(urlsplit(call.request.url).query).items()}


# -- OAuth -----------------------------------------------------------------


def test_authorization_url_has_pkce_state_and_keeps_filter():
    url, verifier = sc.SageOAuth(make_settings()).authorization_url("st4te-123")

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "www.sageone.com", "/oauth2/auth/central")
    params = {key: values[0] for key, values in parse_qs(parts.query).items()}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert params == {
        "filter": "apiv3.1",
        "client_id": "cid",
        "response_type": "code",
        "redirect_uri": "https://odoo.example.com/sage/callback",
        "scope": "full_access",
        "state": "st4te-123",
        "country": "gb",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    assert 43 <= len(verifier) <= 128


def test_fetch_token_sends_code_verifier_and_secret_in_body(rsps, clock):
    form = {"grant_type": "authorization_code", "code": AUTH_CODE, "client_id": "cid",
            "client_secret": CLIENT_SECRET, "redirect_uri": "https://odoo.example.com/sage/callback",
            "code_verifier": "v" * 43}
    rsps.post(TOKEN_URL, json=token_reply(refresh_token_expires_in=1000),
              match=[matchers.urlencoded_params_matcher(form)])

    token = sc.SageOAuth(make_settings(), clock=clock).fetch_token(AUTH_CODE, code_verifier="v" * 43)

    assert "Authorization" not in rsps.calls[0].request.headers
    assert token == {
        "access_token": NEW_ACCESS,
        "refresh_token": NEW_REFRESH,
        "token_type": "bearer",
        "expires_at": NOW + 300,
        "refresh_token_expires_at": NOW + 1000,
        "scope": "full_access",
        "requested_by_id": "user-1",
    }


def test_refresh_rotation_calls_token_saver_with_new_refresh_token(rsps, make_client):
    saved = []
    add_refresh(rsps)
    client = make_client(token_saver=saved.append)

    token = client.refresh_token()

    assert token["refresh_token"] == NEW_REFRESH
    assert saved == [client.token]
    assert saved[0]["refresh_token"] == NEW_REFRESH
    assert saved[0]["refresh_token_expires_at"] == NOW + 31 * 24 * 3600  # Sage default when omitted


def test_refresh_handler_replaces_self_refresh(rsps, make_client):
    stale_seen, saved = [], []

    def handler(stale):
        stale_seen.append(stale)
        return token_reply()

    rsps.get(f"{API}/contacts/c1", json={"id": "c1"}, match=[bearer(NEW_ACCESS)])
    client = make_client(expires_in=-5, refresh_handler=handler, token_saver=saved.append)

    assert client.get("contacts", "c1") == {"id": "c1"}
    assert [s["refresh_token"] for s in stale_seen] == [REFRESH]
    assert saved == []  # persisting is the handler's job
    assert all(call.request.url != TOKEN_URL for call in rsps.calls)


@pytest.mark.parametrize(("expires_in", "refreshed"), [(30, True), (120, False)])
def test_proactive_refresh_when_expiry_within_a_minute(rsps, make_client, expires_in, refreshed):
    if refreshed:
        add_refresh(rsps)
    rsps.get(f"{API}/contacts/c1", json={"id": "c1"}, match=[bearer(NEW_ACCESS if refreshed else ACCESS)])

    make_client(expires_in=expires_in).get("contacts", "c1")

    assert len(rsps.calls) == (2 if refreshed else 1)


def test_401_refreshes_and_retries_once(rsps, make_client):
    rsps.get(f"{API}/contacts/c1", status=401, json=[{"$message": "expired"}], match=[bearer(ACCESS)])
    add_refresh(rsps)
    rsps.get(f"{API}/contacts/c1", json={"id": "c1"}, match=[bearer(NEW_ACCESS)])
    client = make_client()

    assert client.get("contacts", "c1") == {"id": "c1"}
    assert client.request_count == 2
    assert client.token["access_token"] == NEW_ACCESS


def test_second_401_raises_auth_error(rsps, make_client):
    rsps.get(f"{API}/contacts", status=401, json=[{"$dataCode": "AuthorizationFailure",
                                                   "$message": "No active subscription. (MSE)"}])
    add_refresh(rsps)
    client = make_client()

    with pytest.raises(sc.SageAuthError) as info:
        client.request("GET", "/contacts")
    assert info.value.status == 401
    assert "No active subscription" in str(info.value)
    assert [c.request.url for c in rsps.calls].count(TOKEN_URL) == 1
    assert client.request_count == 2


def test_403_is_a_plain_sage_error(rsps, make_client):
    rsps.get(f"{API}/contacts", status=403, json=[{"$dataCode": "MultiUserAccessDenied", "$message": "no"}])

    with pytest.raises(sc.SageError) as info:
        make_client().request("GET", "/contacts")
    assert type(info.value) is sc.SageError
    assert (info.value.status, info.value.code) == (403, "MultiUserAccessDenied")


def test_invalid_grant_raises_auth_error_without_token(rsps, make_client):
    rsps.post(TOKEN_URL, status=400, json={"error": "invalid_grant",
                                           "error_description": f"refresh token {REFRESH} was used"})

    with pytest.raises(sc.SageAuthError) as info:
        make_client().refresh_token()
    assert info.value.code == "invalid_grant"
    assert info.value.status == 400
    assert REFRESH not in str(info.value)


def test_x_business_header_on_api_calls_but_not_on_businesses(rsps, make_client):
    rsps.get(f"{API}/contacts/c1", json={"id": "c1"},
             match=[matchers.header_matcher({"X-Business": "biz-1", "Accept": "application/json"})])
    rsps.get(f"{API}/businesses", json={"$items": [{"id": "biz-1", "displayed_as": "Acme"}], "$next": None})
    client = make_client(business_id="biz-1")

    client.get("contacts", "c1")
    businesses = client.list_businesses()

    assert businesses == [{"id": "biz-1", "displayed_as": "Acme", "name": "Acme"}]
    assert "X-Business" not in rsps.calls[1].request.headers


def test_paging_follows_next_lazily(rsps, make_client):
    first = {"items_per_page": "200", "attributes": "all"}
    rsps.get(f"{API}/contacts", match=[matchers.query_param_matcher(first)], json={
        "$items": [{"id": "1"}, {"id": "2"}], "$itemsPerPage": 200,
        "$next": "/contacts?page=2&items_per_page=200&attributes=all"})
    rsps.get(f"{API}/contacts", match=[matchers.query_param_matcher({**first, "page": "2"})], json={
        "$items": [{"id": "3"}], "$items_per_page": 200,
        "$next": "/v3.1/contacts?page=3&items_per_page=200&attributes=all"})
    rsps.get(f"{API}/contacts", match=[matchers.query_param_matcher({**first, "page": "3"})],
             json={"$items": [{"id": "4"}], "$next": None})
    client = make_client()

    pages = client.iter_pages("contacts")
    assert len(rsps.calls) == 0
    assert next(pages) == [{"id": "1"}, {"id": "2"}]
    assert len(rsps.calls) == 1
    assert next(pages) == [{"id": "3"}]
    assert len(rsps.calls) == 2
    assert client.last_page["items_per_page"] == 200
    assert list(pages) == [[{"id": "4"}]]
    assert len(rsps.calls) == 3


def test_refresh_in_the_middle_of_a_listing_resumes_same_page(rsps, make_client):
    first = matchers.query_param_matcher({"items_per_page": "200", "attributes": "all"})
    rsps.get(f"{API}/contacts", match=[first], json={"$items": [{"id": "1"}], "$next": "/contacts?page=2"})
    rsps.get(f"{API}/contacts", status=401, match=[bearer(ACCESS)])
    add_refresh(rsps)
    rsps.get(f"{API}/contacts", json={"$items": [{"id": "2"}], "$next": None}, match=[bearer(NEW_ACCESS)])
    client = make_client()

    assert [item["id"] for item in client.iter_items("contacts")] == ["1", "2"]
    api_calls = [c for c in rsps.calls if c.request.url != TOKEN_URL]
    assert [query(c).get("page") for c in api_calls] == [None, "2", "2"]
    # Filters of the first request are kept when $next does not repeat them.
    assert query(api_calls[2])["items_per_page"] == "200"


def test_filters_are_serialised_and_none_dropped(rsps, make_client):
    expected = {
        "items_per_page": "50",
        "attributes": "id,name",
        "updated_or_created_since": "2024-05-01T10:30:15Z",
        "contact_id": "c1",
        "from_date": "2024-01-31",
    }
    rsps.get(f"{API}/contact_persons", json={"$items": [], "$next": None},
             match=[matchers.query_param_matcher(expected)])
    since = dt.datetime(2024, 5, 1, 12, 30, 15, 999, tzinfo=dt.timezone(dt.timedelta(hours=2)))

    pages = list(make_client().iter_pages(
        "contact_persons", attributes=["id", "name"], items_per_page=50, updated_or_created_since=since,
        deleted_since=None, contact_id="c1", from_date=dt.date(2024, 1, 31)))

    assert pages == []
    assert sc.format_param(dt.datetime(2024, 5, 1, 8, 0)) == "2024-05-01T08:00:00Z"  # naive = UTC


# -- retries ---------------------------------------------------------------


def test_429_honours_retry_after(rsps, make_client, sleeper):
    rsps.get(f"{API}/contacts/c1", status=429, headers={"Retry-After": "7"})
    rsps.get(f"{API}/contacts/c1", json={"id": "c1"})

    assert make_client().get("contacts", "c1") == {"id": "c1"}
    assert sleeper.calls == [7.0]


def test_429_without_retry_after_uses_capped_full_jitter(rsps, make_client, sleeper):
    for _ in range(4):
        rsps.get(f"{API}/contacts/c1", status=429)
    rsps.get(f"{API}/contacts/c1", json={"id": "c1"})
    client = make_client(make_settings(backoff_base=1.0, backoff_cap=5.0, max_retries=4))
    ranges = []
    client.jitter = lambda low, high: ranges.append((low, high)) or high / 2

    client.get("contacts", "c1")

    assert ranges == [(0, 1.0), (0, 2.0), (0, 4.0), (0, 5.0)]
    assert sleeper.calls == [0.5, 1.0, 2.0, 2.5]


def test_429_exhausted_raises_rate_limit_error(rsps, make_client, sleeper):
    for _ in range(3):
        rsps.get(f"{API}/contacts/c1", status=429, headers={"Retry-After": "1"})
    client = make_client(make_settings(max_retries=2))

    with pytest.raises(sc.SageRateLimitError) as info:
        client.get("contacts", "c1")
    assert info.value.retry_after == 1.0
    assert info.value.status == 429
    assert sleeper.calls == [1.0, 1.0]
    assert client.request_count == 3


def test_429_with_retry_after_beyond_cap_raises_at_once(rsps, make_client, sleeper):
    rsps.get(f"{API}/contacts/c1", status=429, headers={"Retry-After": "600"})

    with pytest.raises(sc.SageRateLimitError) as info:
        make_client().get("contacts", "c1")
    assert info.value.retry_after == 600.0
    assert sleeper.calls == []


def test_503_then_success(rsps, make_client, sleeper):
    rsps.get(f"{API}/contacts/c1", status=503)
    rsps.get(f"{API}/contacts/c1", json={"id": "c1"})

    assert make_client().get("contacts", "c1") == {"id": "c1"}
    assert len(sleeper.calls) == 1


def test_5xx_exhausted_raises_transient_error(rsps, make_client, sleeper):
    boom = [{"$dataCode": "UnexpectedError", "$message": "boom"}]
    for _ in range(3):
        rsps.get(f"{API}/contacts/c1", status=500, json=boom)
    client = make_client(make_settings(max_retries=2))

    with pytest.raises(sc.SageTransientError) as info:
        client.get("contacts", "c1")
    assert info.value.status == 500
    assert client.request_count == 3
    assert len(sleeper.calls) == 2


def test_timeouts_and_connection_errors_retried_then_transient_error(rsps, make_client, sleeper):
    rsps.get(f"{API}/contacts/c1", body=requests.Timeout("read timed out"))
    rsps.get(f"{API}/contacts/c1", body=requests.ConnectionError("reset"))
    rsps.get(f"{API}/contacts/c1", body=requests.Timeout("read timed out"))
    client = make_client(make_settings(max_retries=2))

    with pytest.raises(sc.SageTransientError) as info:
        client.get("contacts", "c1")
    assert info.value.status is None
    assert client.request_count == 3
    assert len(sleeper.calls) == 2


def test_answer_cut_short_is_read_again_then_transient_error(rsps, make_client, sleeper):
    cut = {"status": 200, "body": '{"$items": [{"id": "c', "content_type": "application/json"}
    rsps.get(f"{API}/contacts/c1", **cut)
    rsps.get(f"{API}/contacts/c1", json={"id": "c1"})
    assert make_client().get("contacts", "c1") == {"id": "c1"}
    assert len(sleeper.calls) == 1

    for _ in range(3):
        rsps.get(f"{API}/contacts/c2", **cut)
    client = make_client(make_settings(max_retries=2))
    with pytest.raises(sc.SageTransientError, match="not JSON"):
        client.get("contacts", "c2")
    assert client.request_count == 3


@pytest.mark.parametrize("failure", [{"status": 503}, {"body": requests.Timeout("slow")}])
def test_post_without_idempotency_id_is_not_retried(rsps, make_client, sleeper, failure):
    rsps.post(f"{API}/contacts", **failure)
    client = make_client()

    with pytest.raises(sc.SageTransientError):
        client.create("contacts", {"name": "Acme"})
    assert client.request_count == 1
    assert sleeper.calls == []


def test_post_with_idempotency_id_puts_it_inside_resource_and_retries(rsps, make_client):
    body = {"contact": {"name": "Acme", "contact_type_ids": ["CUSTOMER"], "idempotency_id": "idem-1"}}
    rsps.post(f"{API}/contacts", status=503, match=[matchers.json_params_matcher(body)])
    rsps.post(f"{API}/contacts", status=201, json={"id": "new"}, match=[matchers.json_params_matcher(body)])
    client = make_client()

    values = {"name": "Acme", "contact_type_ids": ["CUSTOMER"]}
    created = client.create("contacts", values, idempotency_id="idem-1")

    assert created == {"id": "new"}
    assert client.request_count == 2


def test_update_wraps_values_and_delete_returns_none_on_204(rsps, make_client):
    rsps.put(f"{API}/contact_persons/p%2F1", json={"id": "p/1"},
             match=[matchers.json_params_matcher({"contact_person": {"name": "Jane"}})])
    rsps.delete(f"{API}/addresses/a1", status=204)
    client = make_client()

    assert client.update("contact_persons", "p/1", {"name": "Jane"}) == {"id": "p/1"}
    assert client.delete("addresses", "a1") is None


# -- error mapping ---------------------------------------------------------


@pytest.mark.parametrize("status", [422, 400])
def test_validation_error_carries_sage_messages(rsps, make_client, status):
    errors = [
        {"$severity": "error", "$dataCode": "RecordInvalid", "$message": "can't be blank", "$source": "name"},
        {"$severity": "error", "$dataCode": "RecordInvalid", "$message": "Contact is invalid", "$source": ""},
    ]
    rsps.post(f"{API}/contacts", status=status, json=errors)

    with pytest.raises(sc.SageValidationError) as info:
        make_client().create("contacts", {"name": ""})
    assert info.value.status == status
    assert info.value.errors == errors
    assert info.value.user_message == "name: can't be blank; Contact is invalid"


def test_404_raises_not_found(rsps, make_client):
    rsps.get(f"{API}/contacts/missing", status=404,
             json=[{"$dataCode": "RecordNotFound", "$message": "gone"}])

    with pytest.raises(sc.SageNotFoundError) as info:
        make_client().get("contacts", "missing")
    assert info.value.status == 404


# -- transport rules and secrecy ---------------------------------------------


def test_timeout_passed_to_every_request(rsps, make_client):
    add_refresh(rsps)
    rsps.get(f"{API}/contacts/c1", json={"id": "c1"})
    rsps.post(sc.SAGE_REVOKE_URL, json={"success": "ok"})
    client = make_client(make_settings(timeout=(3, 17)), expires_in=0)

    client.get("contacts", "c1")
    sc.SageOAuth(client.settings).revoke(NEW_REFRESH)

    assert len(rsps.calls) == 3
    assert [call.request.req_kwargs["timeout"] for call in rsps.calls] == [(3, 17)] * 3


def test_secrets_never_in_logs_or_exceptions(rsps, make_client, caplog, clock):
    caplog.set_level(logging.DEBUG)
    rsps.post(TOKEN_URL, json=token_reply(access=ACCESS, refresh=REFRESH))
    rsps.get(f"{API}/contacts/c1", status=401)
    add_refresh(rsps)
    rsps.get(f"{API}/contacts/c1", status=422, json=[{"$message": "bad", "$source": "name"}])
    rsps.post(TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": CLIENT_SECRET})

    sc.SageOAuth(make_settings(), clock=clock).fetch_token(AUTH_CODE, code_verifier="v" * 43)
    client = make_client()
    with pytest.raises(sc.SageValidationError) as validation:
        client.get("contacts", "c1")
    with pytest.raises(sc.SageAuthError) as auth:
        client.refresh_token()

    assert caplog.records  # something was logged at all
    texts = [caplog.text, str(validation.value), str(auth.value), repr(auth.value)]
    assert not [secret for secret in SECRETS for text in texts if secret in text]


def test_revoke_posts_refresh_token_to_derived_loopback_url(rsps):
    settings = make_settings(token_url="http://127.0.0.1:8069/sage_sandbox/oauth/token")
    revoke_url = "http://127.0.0.1:8069/sage_sandbox/oauth/revoke"
    rsps.post(revoke_url, json={"success": "ok"}, match=[matchers.urlencoded_params_matcher(
        {"client_id": "cid", "client_secret": CLIENT_SECRET, "token": REFRESH})])
    add_refresh(rsps, url=settings.token_url)
    oauth = sc.SageOAuth(settings)

    assert settings.effective_revoke_url == revoke_url
    assert oauth.revoke(REFRESH) is None
    assert oauth.refresh(REFRESH)["refresh_token"] == NEW_REFRESH  # oauthlib accepts loopback http
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


@pytest.mark.parametrize("field", ["api_url", "token_url", "authorize_url", "revoke_url"])
def test_plain_http_refused_for_non_loopback_hosts(field):
    with pytest.raises(sc.SageError):
        make_settings(**{field: "http://sage.example.com/v3.1"})
    make_settings(**{field: "http://localhost:8069/v3.1"})
    make_settings(**{field: "http://[::1]:8069/v3.1"})


def test_next_link_to_foreign_host_is_refused(rsps, make_client):
    foreign = "https://evil.example.com/contacts?page=2"
    rsps.get(f"{API}/contacts", json={"$items": [{"id": "1"}], "$next": foreign})

    with pytest.raises(sc.SageError):
        list(make_client().iter_pages("contacts"))
    assert len(rsps.calls) == 1


def test_request_body_is_json(rsps, make_client):
    rsps.post(f"{API}/addresses", status=201, json={"id": "a1"})

    make_client().create("addresses", {"name": "Main"})

    assert json.loads(rsps.calls[0].request.body) == {"address": {"name": "Main"}}


# -- reading ahead -----------------------------------------------------------


class Listing:
    """A fake Sage listing of ``total`` contacts answering by page number, safe across threads.

    ``hook(page, request)`` may return an answer ``(status, headers, body)`` instead of the page;
    ``delay(page)`` is how long the answer takes. Counts requests and how many were in flight.
    """

    def __init__(self, total, per_page=2, with_total=True, hook=None, delay=None):
        self.total, self.per_page, self.with_total = total, per_page, with_total
        self.hook, self.delay = hook, delay
        self.lock = threading.Lock()
        self.asked = []
        self.in_flight = self.max_in_flight = 0

    def ids(self, page):
        start = (page - 1) * self.per_page
        return [str(n) for n in range(start + 1, min(start + self.per_page, self.total) + 1)]

    def __call__(self, request):
        page = int(query_of(request.url).get("page", 1))
        with self.lock:
            self.asked.append(page)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay(page))
            answer = self.hook(page, request) if self.hook else None
            if answer:
                return answer
            last = max(1, -(-self.total // self.per_page))
            body = {"$items": [{"id": i} for i in self.ids(page)], "$page": page, "$itemsPerPage": self.per_page,
                    "$next": f"/contacts?page={page + 1}&items_per_page={self.per_page}" if page < last else None}
            if self.with_total:
                body["$total"] = self.total
            return 200, {}, json.dumps(body)
        finally:
            with self.lock:
                self.in_flight -= 1

    def serve(self, rsps):
        rsps.add_callback(responses.GET, re.compile(re.escape(f"{API}/contacts") + r"(\?.*)?$"), callback=self)
        return self


def query_of(url):
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def ids_of(pages):
    return [item["id"] for page in pages for item in page]


def test_read_ahead_yields_pages_in_order_and_reads_each_once(rsps, make_client):
    # Every third page answers late, so that the workers finish out of order.
    listing = Listing(20, delay=lambda page: 0.05 if page % 3 == 2 else 0).serve(rsps)
    client = make_client(prefetch=3)

    pages = list(client.iter_pages("contacts"))

    assert pages == [[{"id": i} for i in listing.ids(n)] for n in range(1, 11)]
    assert sorted(listing.asked) == list(range(1, 11))
    assert listing.max_in_flight >= 2  # really read ahead
    assert client.request_count == 10
    assert client.last_page["page"] == 10
    # Later pages are read with the page size Sage answered (2), not the one asked for (200).
    assert {query_of(call.request.url)["items_per_page"] for call in rsps.calls[1:]} == {"2"}


def test_read_ahead_keeps_at_most_prefetch_pages_in_flight(rsps, make_client):
    listing = Listing(24, delay=lambda page: 0.02).serve(rsps)
    client = make_client(prefetch=3)

    for number, _page in enumerate(client.iter_pages("contacts"), start=1):
        time.sleep(0.03)  # the caller works on the page meanwhile
        # Never more than 3 pages beyond the one being worked on.
        assert max(listing.asked) <= number + 3

    assert 2 <= listing.max_in_flight <= 3
    assert len(listing.asked) == 12


def test_prefetch_one_reads_a_page_when_the_previous_one_was_consumed(rsps, make_client):
    listing = Listing(6).serve(rsps)
    pages = make_client(prefetch=1).iter_pages("contacts")

    assert next(pages) == [{"id": "1"}, {"id": "2"}]
    assert listing.asked == [1]
    assert next(pages) == [{"id": "3"}, {"id": "4"}]
    assert listing.asked == [1, 2]
    assert ids_of(pages) == ["5", "6"]


def test_without_total_pages_follow_next_one_at_a_time(rsps, make_client):
    listing = Listing(6, with_total=False).serve(rsps)
    client = make_client(prefetch=4)
    pages = client.iter_pages("contacts")

    assert next(pages) == [{"id": "1"}, {"id": "2"}]
    time.sleep(0.05)
    assert listing.asked == [1]
    assert ids_of(pages) == ["3", "4", "5", "6"]
    assert listing.asked == [1, 2, 3]
    # $next was followed as given (its page size, no attributes added by us are lost).
    assert query_of(rsps.calls[1].request.url) == {"page": "2", "items_per_page": "2", "attributes": "all"}


def test_records_added_while_paging_are_read_after_the_last_planned_page(rsps, make_client):
    def grow(page, _request):
        if page == 3:
            listing.total = 9  # two pages more appear while page 3 is read

    listing = Listing(6, hook=grow).serve(rsps)

    pages = list(make_client(prefetch=2).iter_pages("contacts"))

    assert ids_of(pages) == [str(n) for n in range(1, 10)]
    assert sorted(listing.asked) == [1, 2, 3, 4, 5]


def test_empty_pages_are_not_yielded_with_read_ahead(rsps, make_client):
    listing = Listing(8, hook=lambda page, _r: (200, {}, json.dumps({
        "$items": [], "$total": 8, "$itemsPerPage": 2, "$next": "/contacts?page=4"})) if page == 3 else None)
    listing.serve(rsps)

    pages = list(make_client(prefetch=3).iter_pages("contacts"))

    assert ids_of(pages) == ["1", "2", "3", "4", "7", "8"]
    assert len(pages) == 3


def test_concurrent_401s_cost_one_refresh_made_on_the_callers_thread(rsps, make_client):
    refused = threading.Barrier(3, timeout=5)

    def expire(page, request):
        if page > 1 and request.headers["Authorization"] == f"Bearer {ACCESS}":
            refused.wait()  # the three workers are refused at the same time
            return 401, {}, ""
        return None

    listing = Listing(8, hook=expire).serve(rsps)
    refreshes = []

    def handler(stale):
        refreshes.append((stale["access_token"], threading.current_thread()))
        return {"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, "expires_in": 300}

    client = make_client(prefetch=3, refresh_handler=handler)

    assert ids_of(client.iter_pages("contacts")) == [str(n) for n in range(1, 9)]
    assert refreshes == [(ACCESS, threading.current_thread())]
    assert client.request_count == 7 == len(listing.asked)  # 1 + 3 refused + 3 again
    assert client.token["access_token"] == NEW_ACCESS


def test_401_surviving_the_refresh_in_a_worker_raises_auth_error_at_its_page(rsps, make_client):
    listing = Listing(8, hook=lambda page, _r: (401, {}, "") if page == 3 else None).serve(rsps)
    refreshes = []

    def handler(stale):
        refreshes.append(stale)
        return {"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, "expires_in": 300}

    pages = make_client(prefetch=3, refresh_handler=handler).iter_pages("contacts")

    assert ids_of([next(pages), next(pages)]) == ["1", "2", "3", "4"]
    with pytest.raises(sc.SageAuthError):
        next(pages)
    assert len(refreshes) == 1
    assert listing.asked.count(3) == 2


def test_token_expiring_during_read_ahead_is_refreshed_once_on_the_callers_thread(rsps, make_client, clock):
    listing = Listing(12).serve(rsps)
    refreshes = []

    def handler(stale):
        refreshes.append(threading.current_thread())
        return {"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, "expires_in": 300}

    pages = make_client(prefetch=2, refresh_handler=handler, expires_in=120).iter_pages("contacts")
    assert next(pages) == [{"id": "1"}, {"id": "2"}]
    clock.now += 90  # now the token expires within the 60 s margin

    assert ids_of(pages) == [str(n) for n in range(3, 13)]
    assert refreshes == [threading.current_thread()]
    assert len(listing.asked) == 6
    # Whatever was sent after the refresh carried the new token.
    late = [call for call in rsps.calls if query_of(call.request.url).get("page") in ("5", "6")]
    assert {call.request.headers["Authorization"] for call in late} == {f"Bearer {NEW_ACCESS}"}


def test_429_in_one_worker_pauses_the_others(rsps, make_client, sleeper):
    answered = set()
    page_3_sent = threading.Event()

    def rate_limit(page, _request):
        if page in answered:
            return None
        answered.add(page)
        if page == 2:
            page_3_sent.wait(5)  # both pages are in flight, in two workers
            return 429, {"Retry-After": "5"}, ""
        if page == 3:
            page_3_sent.set()
            # Refused (503) only once page 2's worker is waiting out its 429.
            deadline = time.monotonic() + 5
            while not sleeper.calls and time.monotonic() < deadline:
                time.sleep(0.005)
            return 503, {}, ""
        return None

    Listing(6, hook=rate_limit).serve(rsps)
    client = make_client(prefetch=2)
    client.jitter = lambda low, high: 0.1

    assert ids_of(client.iter_pages("contacts")) == ["1", "2", "3", "4", "5", "6"]
    # Page 3's worker would have retried after 0.1 s; it waited for the 429's 5 s too.
    assert sorted(sleeper.calls) == [0.1, 5.0, 5.0]
    assert client.request_count == 5


def test_closing_the_listing_early_cancels_the_pages_not_read(rsps, make_client):
    listing = Listing(40, delay=lambda page: 0.02).serve(rsps)
    pages = make_client(prefetch=3).iter_pages("contacts")

    assert ids_of([next(pages), next(pages)]) == ["1", "2", "3", "4"]
    pages.close()
    time.sleep(0.2)
    asked = len(listing.asked)
    time.sleep(0.2)

    assert len(listing.asked) == asked <= 2 + 3
    assert not read_ahead_threads()


def test_request_count_adds_up_every_threads_requests(rsps, make_client, sleeper):
    failed = set()

    def flaky(page, _request):
        if page in (5, 9, 13) and page not in failed:
            failed.add(page)
            return 503, {}, ""
        return None

    listing = Listing(60, hook=flaky).serve(rsps)
    client = make_client(prefetch=4)

    assert len(list(client.iter_pages("contacts"))) == 30
    assert client.request_count == 33 == len(listing.asked) == len(rsps.calls)
    assert len(sleeper.calls) == 3


def _slow_listing(rsps, resource, delay, status=200):
    """A one-page listing of ``resource`` that answers after ``delay`` seconds; records its calls."""
    calls = []

    def answer(request):
        calls.append(time.monotonic())
        time.sleep(delay)
        if status != 200:
            return status, {}, json.dumps([{"$severity": "error", "$message": "busy"}])
        return 200, {}, json.dumps({"$items": [{"id": resource}], "$total": 1, "$itemsPerPage": 200, "$next": None})

    rsps.add_callback(responses.GET, re.compile(re.escape(f"{API}/{resource}") + r"(\?.*)?$"), callback=answer)
    return calls


def test_first_pages_asked_at_once_are_waited_for_once(rsps, make_client):
    # more listings than pages read ahead: still one round trip for all of them
    resources = ["contacts", "sales_invoices", "purchase_invoices", "sales_credit_notes", "purchase_credit_notes",
                 "sales_quotes", "sales_estimates", "contact_payments"]
    calls = {resource: _slow_listing(rsps, resource, 0.2) for resource in resources}
    client = make_client(prefetch=4)
    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    client.warm_first_pages([(r, None, 200, {"updated_or_created_since": since}) for r in resources])

    begin = time.monotonic()
    pages = [list(client.iter_pages(r, attributes=None, updated_or_created_since=since)) for r in resources]
    elapsed = time.monotonic() - begin

    assert pages == [[[{"id": r}]] for r in resources]
    assert [len(calls[r]) for r in resources] == [1] * len(resources), "each first page asked once"
    assert elapsed < 0.45, f"eight round trips of 0.2 s overlapped ({elapsed:.2f} s)"
    assert client.request_count == len(resources)


def test_a_listing_asked_differently_is_not_answered_by_a_warmed_page(rsps, make_client):
    calls = _slow_listing(rsps, "contacts", 0)
    client = make_client(prefetch=4)
    client.warm_first_pages([("contacts", None, 200, {"deleted_since": "2026-01-01T00:00:00Z"})])

    list(client.iter_pages("contacts", attributes=None, updated_or_created_since="2026-01-01T00:00:00Z"))
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:  # the warmed page is sent by a worker
        time.sleep(0.01)

    assert len(calls) == 2, "another filter is another listing: asked for on its own"
    assert client._warm, "the warmed page is still there for its own listing"


def test_an_error_of_a_warmed_first_page_is_raised_where_the_listing_is_read(rsps, make_client):
    _slow_listing(rsps, "contacts", 0, status=503)
    client = make_client(prefetch=4)
    client.warm_first_pages([("contacts", None, 200, {})])

    with pytest.raises(sc.SageTransientError):
        list(client.iter_pages("contacts", attributes=None))


def test_warming_does_nothing_without_read_ahead(rsps, make_client):
    calls = _slow_listing(rsps, "contacts", 0)
    client = make_client(prefetch=1)
    client.warm_first_pages([("contacts", None, 200, {})])
    assert calls == []
    list(client.iter_pages("contacts", attributes=None))
    assert len(calls) == 1


def test_a_chained_listing_is_asked_for_while_the_previous_one_is_still_read(rsps, make_client):
    Listing(6).serve(rsps)  # three pages of two
    invoices = _slow_listing(rsps, "sales_invoices", 0.2)
    client = make_client(prefetch=4)
    client.chain_first_pages([("contacts", None, 2, {}), ("sales_invoices", None, 200, {})])

    contacts = client.iter_pages("contacts", attributes=None, items_per_page=2)
    assert next(contacts) == [{"id": "1"}, {"id": "2"}]
    deadline = time.monotonic() + 5
    while not invoices and time.monotonic() < deadline:  # sent by a worker
        time.sleep(0.01)
    assert len(invoices) == 1, "asked for once every contacts page had been asked for"
    assert list(contacts) == [[{"id": "3"}, {"id": "4"}], [{"id": "5"}, {"id": "6"}]]

    assert list(client.iter_pages("sales_invoices", attributes=None)) == [[{"id": "sales_invoices"}]]
    assert len(invoices) == 1, "the chained first page is the one read"
    assert client.request_count == 4


def test_a_listing_out_of_the_chain_asks_for_nothing_ahead(rsps, make_client):
    Listing(6).serve(rsps)
    invoices = _slow_listing(rsps, "sales_invoices", 0)
    client = make_client(prefetch=4)
    client.chain_first_pages([("contacts", None, 2, {"contact_type_id": "CUSTOMER"}),
                              ("sales_invoices", None, 200, {})])

    assert len(list(client.iter_pages("contacts", attributes=None, items_per_page=2))) == 3
    # a page asked for ahead is registered on the caller's thread before any worker sends it
    assert client._warm == {}, "another listing than the chain's: its successor is not guessed at"
    list(client.iter_pages("sales_invoices", attributes=None))
    assert len(invoices) == 1
