"""OAuth 2.0 code flow, PKCE, token rotation, revocation and API authentication."""

import base64
import time

import pytest
import requests

from sage_sandbox import SandboxServer
from sage_sandbox.tests.helpers import CLIENT, REDIRECT, authorize, exchange, pkce_pair, refresh, tokens


@pytest.fixture(scope="module")
def short():
    """Sandbox with tiny lifetimes so expiry can be observed quickly."""
    srv = SandboxServer(port=0, code_ttl=1, access_token_ttl=1, refresh_token_ttl=3).start()
    yield srv
    srv.stop()


def api_get(server, token, path="/contacts"):
    return requests.get(f"{server.base_url}/v3.1{path}", headers={"Authorization": f"Bearer {token}"})


def test_code_flow_returns_sage_shaped_tokens(server):
    params = authorize(server, state="xyz")
    assert params["code"].startswith("GB/")
    assert params["state"] == "xyz" and params["country"] == "GB"
    body = exchange(server, params["code"]).json()
    assert set(body) == {"access_token", "refresh_token", "expires_in", "refresh_token_expires_in", "token_type",
                         "scope", "requested_by_id"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 300
    assert body["refresh_token_expires_in"] == 2678400 and body["scope"] == "full_access"
    assert api_get(server, body["access_token"]).status_code == 200


def test_consent_form_allow_and_deny():
    srv = SandboxServer(port=0, auto_approve=False).start()
    try:
        params = {"client_id": CLIENT["client_id"], "response_type": "code", "redirect_uri": REDIRECT, "state": "k"}
        page = requests.get(f"{srv.base_url}/oauth2/auth/central", params=params)
        assert page.status_code == 200 and "Allow" in page.text and "<form" in page.text
        url = f"{srv.base_url}/oauth2/auth/central"
        allow = requests.post(url, data={**params, "decision": "allow"}, allow_redirects=False)
        assert allow.status_code == 302 and "code=GB%2F" in allow.headers["Location"]
        deny = requests.post(url, data={**params, "decision": "deny"}, allow_redirects=False)
        assert deny.headers["Location"].startswith(REDIRECT)
        assert "error=access_denied" in deny.headers["Location"] and "state=k" in deny.headers["Location"]
    finally:
        srv.stop()


@pytest.mark.parametrize("override", [{"redirect_uri": "http://evil.example/cb"},
                                      {"redirect_uri": REDIRECT + "?x=1"}, {"client_id": "nope"}])
def test_authorize_refuses_unknown_client_or_redirect(server, override):
    params = {"client_id": CLIENT["client_id"], "response_type": "code", "redirect_uri": REDIRECT, **override}
    resp = requests.get(f"{server.base_url}/oauth2/auth/central", params=params, allow_redirects=False)
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert resp.headers["Content-Type"].startswith("text/html")


def test_authorize_reports_bad_response_type_to_redirect(server):
    resp = requests.get(f"{server.base_url}/oauth2/auth/central", allow_redirects=False, params={
        "client_id": CLIENT["client_id"], "response_type": "token", "redirect_uri": REDIRECT})
    assert "error=unsupported_response_type" in resp.headers["Location"]


def test_invalid_client_is_401(server):
    code = authorize(server)["code"]
    resp = exchange(server, code, client_secret="wrong")
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert "error_description" in resp.json()


def test_http_basic_client_credentials(server):
    code = authorize(server)["code"]
    basic = base64.b64encode(b"sandbox-client-id:sandbox-client-secret").decode()
    resp = requests.post(f"{server.base_url}/token", headers={"Authorization": f"Basic {basic}"},
                         data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert resp.status_code == 200


def test_code_is_single_use(server):
    code = authorize(server)["code"]
    assert exchange(server, code).status_code == 200
    again = exchange(server, code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_code_expires(short):
    code = authorize(short)["code"]
    time.sleep(1.2)
    resp = exchange(short, code)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_redirect_uri_must_match_authorize_request(server):
    code = authorize(server)["code"]
    resp = exchange(server, code, redirect_uri="http://127.0.0.1:8069/sage_business_cloud/oauth/callback")
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_unsupported_grant_type(server):
    resp = requests.post(f"{server.base_url}/token", data={**CLIENT, "grant_type": "client_credentials"})
    assert resp.status_code == 400 and resp.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("method", ["S256", "plain"])
def test_pkce(server, method):
    verifier, challenge = pkce_pair()
    if method == "plain":
        challenge = verifier
    code = authorize(server, code_challenge=challenge, code_challenge_method=method)["code"]
    assert exchange(server, code, code_verifier="w" * 50).json()["error"] == "invalid_grant"
    code = authorize(server, code_challenge=challenge, code_challenge_method=method)["code"]
    assert exchange(server, code).json()["error"] == "invalid_grant"  # verifier missing
    code = authorize(server, code_challenge=challenge, code_challenge_method=method)["code"]
    assert exchange(server, code, code_verifier=verifier).status_code == 200


def test_access_token_expiry(short):
    body = tokens(short)
    assert api_get(short, body["access_token"]).status_code == 200
    time.sleep(1.2)
    resp = api_get(short, body["access_token"])
    assert resp.status_code == 401
    assert resp.json()[0]["$dataCode"] == "AuthorizationFailure"


def test_missing_or_garbage_token_is_401(server, http):
    assert http.get(f"{server.base_url}/v3.1/contacts").status_code == 401
    assert api_get(server, "garbage").status_code == 401


def test_refresh_tokens_rotate_and_are_single_use(server):
    first = tokens(server)
    second = refresh(server, first["refresh_token"])
    assert second.status_code == 200
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    reused = refresh(server, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert refresh(server, second["refresh_token"]).status_code == 200


def test_refresh_token_expiry(short):
    body = tokens(short)
    time.sleep(3.2)
    assert refresh(short, body["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_kills_refresh_and_access_tokens(server):
    body = tokens(server)
    resp = requests.post(f"{server.base_url}/revoke", data={**CLIENT, "token": body["refresh_token"]})
    assert resp.status_code == 200 and resp.json() == {"success": "ok"}
    assert refresh(server, body["refresh_token"]).json()["error"] == "invalid_grant"
    assert api_get(server, body["access_token"]).status_code == 401
    bad = requests.post(f"{server.base_url}/revoke", data={"client_id": "x", "client_secret": "y", "token": "t"})
    assert bad.status_code == 401


def test_control_expire_access_tokens_and_revoke_grants(server, http):
    body = tokens(server)
    http.post(f"{server.base_url}/_sandbox/expire_access_tokens")
    assert api_get(server, body["access_token"]).status_code == 401
    renewed = refresh(server, body["refresh_token"]).json()
    assert api_get(server, renewed["access_token"]).status_code == 200
    http.post(f"{server.base_url}/_sandbox/revoke_grants")
    assert refresh(server, renewed["refresh_token"]).json()["error"] == "invalid_grant"


def test_time_shift_expires_tokens(fresh, http):
    body = tokens(fresh)
    http.post(f"{fresh.base_url}/_sandbox/time_shift", json={"seconds": 301})
    assert api_get(fresh, body["access_token"]).status_code == 401


def test_readonly_scope_cannot_write(server):
    code = authorize(server, scope="readonly")["code"]
    token = exchange(server, code).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert api_get(server, token).status_code == 200
    resp = requests.post(f"{server.base_url}/v3.1/contacts", headers=headers,
                         json={"contact": {"name": "X", "contact_type_ids": ["CUSTOMER"]}})
    assert resp.status_code == 403 and resp.json()[0]["$dataCode"] == "MultiUserAccessDenied"
