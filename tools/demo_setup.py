"""Run inside ``odoo-bin shell`` by bin/demo: point the addon at the sandbox, connect, sync.

Idempotent: a second run keeps the connection (and only syncs what changed).
"""
# ruff: noqa: F821 - ``env`` is provided by odoo-bin shell
import os
from urllib.parse import parse_qs, urlsplit

import requests

sandbox = os.environ["SAGE_SANDBOX_URL"]
params = env["ir.config_parameter"].sudo()
for key, value in {
    "client_id": "sandbox-client-id",
    "client_secret": "sandbox-client-secret",
    "authorize_url": sandbox + "/oauth2/auth/central",
    "token_url": sandbox + "/token",
    "api_url": sandbox + "/v3.1",
}.items():
    params.set_param("sage_business_cloud." + key, value)
params.set_param("web.base.url", os.environ["SAGE_ODOO_URL"])
params.set_param("web.base.url.freeze", True)

# A UK company: figures are kept in the company currency, and Sage UK books are in pounds.
gbp = env.ref("base.GBP")
gbp.active = True
env.company.write({"currency_id": gbp.id, "country_id": env.ref("base.uk").id})
team = env["crm.team"].search([], limit=1)
connection = env["sage.connection"]._get_for_company(env.company)
connection.default_team_id = team

if connection.state != "connected":
    # The browser's path without a browser: the sandbox approves at once (consent screen skipped
    # with its state file's client), and the code goes through the same exchange as the callback.
    admin = env.ref("base.user_admin")
    action = connection.with_user(admin).action_connect()
    answer = requests.get(action["url"], allow_redirects=False, timeout=10)
    if answer.status_code in (302, 303):  # bin/demo starts the sandbox with --auto-approve
        query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
        found = env["sage.connection"].with_user(admin)._find_by_oauth_state(query.get("state"))
        found._oauth_complete(query["code"])
    else:
        raise SystemExit("The sandbox asks for consent: open Settings > Sage Business Cloud > Connect.")
    env.cr.commit()

    # Odoo contacts that existed before the first sync: some with exactly a Sage name (they get
    # linked), some with nearly the same name (created again, flagged for review).
    page = next(connection._get_client().iter_pages("contacts", attributes="name", items_per_page=40))
    names = [contact["name"] for contact in page]
    env["res.partner"].create(
        [{"name": name, "is_company": True} for name in names[:6]]
        + [{"name": name.upper() + ".", "is_company": True} for name in names[6:10]]
    )
    env.cr.commit()

run = connection._run_sync(trigger="script")
env.cr.commit()
if run:
    print("First sync: %s contacts read, %s linked by name, %s created, %s invoices; %s" % (
        run.contacts_read, run.contacts_linked, run.contacts_created, run.invoices_stored, run.state))
