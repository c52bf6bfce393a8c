"""Point an Odoo database at a running ``sage_sandbox`` and connect a company to it.

Used by the tests and the benchmark: the real OAuth code flow (authorize page, code, token
exchange with PKCE), only the browser is skipped because the sandbox approves at once.
"""

from urllib.parse import parse_qs, urlsplit

import requests


def configure_sandbox_params(env, base_url, client_id, client_secret):
    """Set the addon's system parameters to the sandbox at ``base_url``."""
    params = env["ir.config_parameter"].sudo()
    params.set_param("sage_business_cloud.client_id", client_id)
    params.set_param("sage_business_cloud.client_secret", client_secret)
    params.set_param("sage_business_cloud.authorize_url", base_url + "/oauth2/auth/central")
    params.set_param("sage_business_cloud.token_url", base_url + "/token")
    params.set_param("sage_business_cloud.api_url", base_url + "/v3.1")


def authorize_code(authorize_url):
    """Follow the sandbox's auto-approved authorize page; return the callback's query dict."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), answer.text
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    return {key: values[0] for key, values in query.items()}


def connect(connection, business_ids, business_id=None):
    """Connect ``connection`` (a ``sage.connection``) to ``business_id`` (default: the first)."""
    from odoo.addons.sage_business_cloud.services.sage_client import SageOAuth

    oauth = SageOAuth(connection._get_sage_settings())
    url, verifier = oauth.authorization_url("sandbox-link")
    code = authorize_code(url)["code"]
    token = oauth.fetch_token(code, code_verifier=verifier)
    connection._store_token(token)
    businesses = [{"id": bid, "name": bid} for bid in business_ids]
    connection.sudo().available_businesses = businesses
    connection._select_business(business_id or businesses[0]["id"])
    return token
