"""Helpers for tests: run the OAuth code flow and build API sessions."""

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import requests

REDIRECT = "http://localhost:8069/sage_business_cloud/oauth/callback"
CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def pkce_pair(verifier="v" * 50):
    """Return ``(verifier, S256 challenge)``."""
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(server, **extra):
    """GET the authorize URL (auto-approve) and return the redirect's query parameters."""
    params = {"client_id": "sandbox-client-id", "response_type": "code", "redirect_uri": REDIRECT,
              "state": "s1", **extra}
    resp = requests.get(f"{server.base_url}/oauth2/auth/central", params=params, allow_redirects=False)
    assert resp.status_code == 302, resp.text
    return {k: v[0] for k, v in parse_qs(urlsplit(resp.headers["Location"]).query).items()}


def exchange(server, code, **extra):
    """POST the code to the token endpoint and return the response."""
    data = {**CLIENT, "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    return requests.post(f"{server.base_url}/token", data=data)


def refresh(server, refresh_token):
    """Use a refresh token; returns the response."""
    return requests.post(f"{server.base_url}/token",
                         data={**CLIENT, "grant_type": "refresh_token", "refresh_token": refresh_token})


def tokens(server):
    """Run the whole code flow and return the token JSON."""
    resp = exchange(server, authorize(server)["code"])
    assert resp.status_code == 200, resp.text
    return resp.json()


class ApiSession(requests.Session):
    """Session whose relative URLs are resolved against ``<base>/v3.1``."""

    def __init__(self, base):
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):
        """Prefix relative API paths (``/contacts``) with the API base URL."""
        if url.startswith("/"):
            url = self.base + url
        return super().request(method, url, *args, **kwargs)


def authorized_session(server):
    """An :class:`ApiSession` carrying a fresh access token."""
    session = ApiSession(f"{server.base_url}/v3.1")
    session.headers["Authorization"] = f"Bearer {tokens(server)['access_token']}"
    return session


def walk(session, path):
    """Follow ``$next`` links from ``path``; returns all items and the list of envelopes."""
    items, pages = [], []
    while path:
        env = session.get(path).json()
        pages.append(env)
        items.extend(env["$items"])
        path = env["$next"]
    return items, pages
