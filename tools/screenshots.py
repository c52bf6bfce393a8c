#!/usr/bin/env python3
"""Take the README's screenshots from a running demo with headless Chromium.

    bin/demo &                       # Odoo on http://localhost:8069, admin / admin
    python3 tools/screenshots.py     # writes docs/images/*.png and the Apps page's copies

The browser is Debian's ``chromium`` (``apt-get install chromium``), driven over the Chrome
DevTools protocol with ``websocket-client`` (an Odoo requirement), and started with
``OFFLINE_SWITCHES`` so that it reaches nothing but this machine; the browser tours
(``sage_business_cloud/tests/test_tours.py``) start it with the same switches.

Each picture is 1280x800, taken once the page has rendered what it is meant to show (the
script waits for it and fails otherwise), then reduced to a 256-colour palette.
"""

import argparse
import base64
import io
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1280, 800
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Switches that keep Chromium off the network: only loopback is reachable. Odoo's own launcher
# already disables background networking, extensions, translation and crash reports.
OFFLINE_SWITCHES = (
    # Every host name but localhost fails to resolve...
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    # ...and an address written as digits goes to a proxy nobody serves (loopback bypasses it).
    "--proxy-server=http://127.0.0.1:9",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-pings",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
)

HEADLESS_SWITCHES = (
    "--headless",
    "--no-sandbox",  # Chromium refuses to run as root otherwise
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--window-size=%d,%d" % (WIDTH, HEIGHT),
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

# The web client is busy while one of these is on the page.
BUSY = ".o_loading_indicator, .o_blockUI, .o-main-components-container .o_spinner, .fa-spin"


def find_chromium(explicit=None):
    """Path of the Chromium executable, or SystemExit saying what to install."""
    for name in ([explicit] if explicit else CHROMIUM_NAMES):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("Chromium not found: apt-get install chromium (or pass --chromium PATH)")


class Chromium:
    """One headless Chromium and one page, spoken to over the DevTools protocol."""

    def __init__(self, executable):
        self.profile = tempfile.mkdtemp(prefix="sage_screenshots_")
        self.process = subprocess.Popen(
            [executable, *HEADLESS_SWITCHES, *OFFLINE_SWITCHES, "--user-data-dir=" + self.profile,
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.ids = itertools.count(1)
        try:
            import websocket  # noqa: PLC0415 - websocket-client; the tours import this module without it
        except ImportError:
            self.close()
            raise SystemExit("websocket-client is missing: pip install websocket-client") from None
        try:
            self.ws = websocket.create_connection(self._page_websocket(), timeout=60, suppress_origin=True)
        except BaseException:
            self.close()
            raise

    def _page_websocket(self):
        port_file = Path(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("Chromium stopped at start (exit status %s)" % self.process.returncode)
            if port_file.is_file() and port_file.stat().st_size > 5:
                port = int(port_file.read_text().split()[0])
                pages = requests.get("http://127.0.0.1:%d/json/list" % port, timeout=5).json()
                for page in pages:
                    if page["type"] == "page":
                        return page["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise SystemExit("Chromium did not open its DevTools port within 30 s")

    def call(self, method, **params):
        """Send one DevTools command and return its result (events are skipped)."""
        request_id = next(self.ids)
        self.ws.send(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") != request_id:
                continue
            if "error" in message:
                raise RuntimeError("%s failed: %s" % (method, message["error"]))
            return message["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError("In the page: %s" % result["exceptionDetails"].get("exception", {}).get(
                "description", result["exceptionDetails"].get("text")))
        return result["result"].get("value")

    def wait_for(self, selector, timeout=120):
        """Wait until ``selector`` is on the page and the web client is idle, then let it paint.

        The first page of a fresh database waits for Odoo to build its asset bundles.
        """
        check = """(() => {
            if (document.readyState !== "complete") return false;
            if (document.querySelector(%s)) return false;
            return Boolean(document.querySelector(%s));
        })()""" % (json.dumps(BUSY), json.dumps(selector))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(check):
                self.evaluate("document.fonts.ready.then(() => true)")
                time.sleep(0.8)  # animations (notebook, list rows) and late paints
                if self.evaluate(check):
                    return
            time.sleep(0.2)
        url = self.evaluate("location.href")
        raise SystemExit("Timed out waiting for %r on %s" % (selector, url))

    def click(self, selector):
        self.evaluate("document.querySelector(%s).click()" % json.dumps(selector))

    def navigate(self, url):
        self.call("Page.navigate", url=url)

    def screenshot(self):
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        return base64.b64decode(data)

    def close(self):
        if getattr(self, "ws", None):
            try:
                self.call("Browser.close")
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self.ws.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class OdooSession:
    """A logged-in JSON-RPC session on the demo, whose cookie the browser reuses."""

    def __init__(self, url, db, login, password):
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.db = db or self._single_database()
        result = self.rpc("/web/session/authenticate", {"db": self.db, "login": login, "password": password})
        if not result or not result.get("uid"):
            raise SystemExit("Could not log in to %s as %s" % (self.url, login))

    def _single_database(self):
        databases = self.rpc("/web/database/list", {})
        if len(databases) != 1:
            raise SystemExit("Several databases (%s): pass --db" % ", ".join(databases))
        return databases[0]

    def rpc(self, route, params):
        answer = self.http.post(self.url + route, json={"jsonrpc": "2.0", "method": "call", "params": params},
                                timeout=60)
        answer.raise_for_status()
        body = answer.json()
        if "error" in body:
            raise SystemExit("%s: %s" % (route, body["error"]["data"].get("message", body["error"])))
        return body["result"]

    def call(self, model, method, *args, **kwargs):
        return self.rpc("/web/dataset/call_kw", {"model": model, "method": method, "args": list(args),
                                                 "kwargs": kwargs})

    def cookie(self):
        return self.http.cookies.get("session_id")


def overdue_customer(odoo):
    """A company with overdue Sage invoices and few enough of them to fit the picture."""
    partners = odoo.call("res.partner", "search_read",
                         [("sage_overdue_amount", ">", 0), ("is_company", "=", True)],
                         fields=["name", "sage_display_invoice_count"], order="sage_overdue_amount desc", limit=30)
    if not partners:
        raise SystemExit("No customer with overdue Sage invoices: is the demo synced?")
    fitting = [p for p in partners if 2 <= (p["sage_display_invoice_count"] or 0) <= 5]
    return (fitting or partners)[0]["id"]


def shoot_sage_tab(browser, odoo):
    browser.navigate("%s/odoo/contacts/%d" % (odoo.url, overdue_customer(odoo)))
    tab = ".o_form_view .o_notebook .nav-link[name='sage']"
    browser.wait_for(tab)
    browser.click(tab)
    browser.wait_for(".o_field_widget[name='sage_display_sale_invoice_ids'] .o_data_row")
    # The tab is below the partner's address: bring the tab's headers to the top of the page.
    browser.evaluate("document.querySelector('.o_form_view .o_notebook').scrollIntoView({block: 'start'})")
    browser.wait_for(".o_field_widget[name='sage_display_overdue_amount']")


def shoot_smart_button(browser, odoo):
    browser.navigate("%s/odoo/contacts/%d" % (odoo.url, overdue_customer(odoo)))
    browser.wait_for("button[name='action_sage_open_invoices'] .text-danger")


def shoot_receivables(browser, odoo):
    browser.navigate("%s/odoo/action-sage_business_cloud.sage_invoice_action_receivables" % odoo.url)
    browser.wait_for(".o_pivot table th")


def shoot_settings(browser, odoo):
    browser.navigate("%s/odoo/settings#sage_business_cloud" % odoo.url)
    browser.wait_for(".app_settings_block[data-key='sage_business_cloud'] [name='sage_business_name'] span")


def shoot_action(xmlid):
    def shoot(browser, odoo):
        browser.navigate("%s/odoo/action-%s" % (odoo.url, xmlid))
        browser.wait_for(".o_list_view .o_data_row")
    return shoot


SHOTS = {
    "sage-tab.png": shoot_sage_tab,
    "smart-button.png": shoot_smart_button,
    "aged-debt.png": shoot_receivables,
    "settings.png": shoot_settings,
    "contacts-to-review.png": shoot_action("sage_business_cloud.res_partner_action_sage_review"),
    "sync-runs.png": shoot_action("sage_business_cloud.sage_sync_run_action"),
}


def optimise(png):
    """The page as a 1280x800, 256-colour PNG (screens of flat colours lose nothing visible)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.size != (WIDTH, HEIGHT):
        image = image.crop((0, 0, WIDTH, HEIGHT))
    out = io.BytesIO()
    image.quantize(colors=256, dither=Image.Dither.NONE).save(out, format="PNG", optimize=True)
    return out.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://localhost:8069", help="the demo's Odoo (default %(default)s)")
    parser.add_argument("--db", help="database (default: the only one the server lists)")
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--chromium", help="Chromium executable (default: chromium on PATH)")
    parser.add_argument("--out", action="append", type=Path,
                        help="where to write the PNGs; repeatable (default: docs/images and the "
                             "addon's static/description)")
    parser.add_argument("--only", action="append", choices=sorted(SHOTS), help="take only these")
    args = parser.parse_args(argv)
    outs = args.out or [REPO / "docs" / "images", REPO / "sage_business_cloud" / "static" / "description"]

    odoo = OdooSession(args.url, args.db, args.login, args.password)
    browser = Chromium(find_chromium(args.chromium))
    try:
        browser.call("Page.enable")
        browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                     mobile=False)
        browser.call("Network.enable")
        browser.call("Network.setCookie", name="session_id", value=odoo.cookie(), path="/",
                     domain=urlsplit(odoo.url).hostname)
        for name in args.only or SHOTS:
            SHOTS[name](browser, odoo)
            png = optimise(browser.screenshot())
            for out in outs:
                out.mkdir(parents=True, exist_ok=True)
                (out / name).write_bytes(png)
            print("%s: %d KiB" % (name, len(png) // 1024))
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
