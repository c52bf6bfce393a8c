"""Run inside ``odoo-bin shell`` by bin/demo: point the addon at the sandbox, connect, sync.

Idempotent: a later run keeps the connection (reconnecting only if the sandbox forgot the grant)
and only syncs what changed; it says whether the sync was the first one or a later one.
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

# The demo user reads English (UK): dates as 01/12/2026, weeks from Monday.
admin = env.ref("base.user_admin")
en_gb = env.ref("base.lang_en_GB").with_context(active_test=False)
if not en_gb.active:
    env["base.language.install"].create({"lang_ids": [(6, 0, en_gb.ids)], "overwrite": False}).lang_install()
if admin.lang != "en_GB":
    admin.lang = "en_GB"
    admin.partner_id.lang = "en_GB"
env.cr.commit()


def connect():
    """The browser's path without a browser: the sandbox approves at once (bin/demo starts it with
    --auto-approve), and the code goes through the same exchange as the callback."""
    action = connection.with_user(admin).action_connect()
    env.cr.commit()  # like the browser: Connect and the callback are two requests, two transactions
    answer = requests.get(action["url"], allow_redirects=False, timeout=10)
    if answer.status_code not in (302, 303):
        raise SystemExit("The sandbox asks for consent: open Settings > Sage Business Cloud > Connect.")
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    env["sage.connection"].with_user(admin)._find_by_oauth_state(query.get("state"))._oauth_complete(query["code"])
    env.cr.commit()


previous = connection.last_sync_at
first_time = not previous and not env["sage.sync.run"].search_count([("connection_id", "=", connection.id)])
if connection.state != "connected":
    connect()
    if first_time:
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
if connection.state == "needs_reconnect":
    # The sandbox no longer knows the stored grant (its state file was removed): connect again.
    print("The sandbox forgot the grant (%s): connecting again." % (connection.last_error or "no reason given"))
    connect()
    run = connection._run_sync(trigger="script")
    env.cr.commit()

if not run:
    print("No sync ran (another one holds the lock); the data is as the last sync left it.")
elif run.full_import:
    print("First sync (every Sage contact read): %s contacts read, %s linked by name, %s created, %s flagged "
          "for review; %s invoices stored; %s." % (run.contacts_read, run.contacts_linked, run.contacts_created,
                                                  run.contacts_flagged, run.invoices_stored, run.state))
else:
    print("Later sync (only what changed in Sage since %s UTC): %s contacts read, %s created, %s invoices stored; "
          "%s. The first sync's data is kept in the database." % (
              previous or "the last run", run.contacts_read, run.contacts_created, run.invoices_stored, run.state))
