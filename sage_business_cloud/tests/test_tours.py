"""Issue 13: the addon in a real browser (headless Chromium), as three kinds of users see it.

The tours live in ``static/tests/tours/``; each test below builds what its tour needs through the
real sync or the sandbox, runs the tour, then checks the server side. A missing browser is a
failure here, never a skip: Odoo's own helpers skip the test when Chrome cannot be found or
started, which would let a run without Chromium pass unnoticed.
"""

import json
import time
import unittest
from datetime import date, timedelta
from unittest import mock

import odoo
from odoo.tests import common as odoo_common
from odoo.tests import new_test_user, tagged

from .common import REPO, SageHttpCase, SageTransactionCase

from tools.screenshots import OFFLINE_SWITCHES  # noqa: E402 - REPO is on sys.path through .common

NO_BROWSER = ("Browser tours need Debian's Chromium (apt-get install chromium) and Odoo's HTTP test "
              "server (pytest --odoo-http, as bin/test runs it)")


class OfflineChromeBrowser(odoo_common.ChromeBrowser):
    """Odoo's headless Chrome, also kept from reaching anything but this machine."""

    def _spawn_chrome(self, cmd):
        *switches, url = cmd
        return super()._spawn_chrome([*switches, *OFFLINE_SWITCHES, url])


def chromium_or_fail(case):
    """Fail ``case`` (instead of Odoo's skip) when no Chromium is installed."""
    try:
        return odoo_common._find_executable()
    except unittest.SkipTest as error:
        case.fail("%s: %s" % (NO_BROWSER, error))


@tagged("post_install", "-at_install")
class TestTourPrerequisites(SageTransactionCase):
    """Runs even where pytest-odoo skips HTTP cases (no --odoo-http): the tours cannot hide."""

    sage_connect = False

    def test_chromium_is_installed_and_the_http_server_runs(self):
        self.assertTrue(chromium_or_fail(self))
        self.assertTrue(odoo_common.HttpCase.http_port(), NO_BROWSER)
        manifest = (REPO / "sage_business_cloud" / "__manifest__.py").read_text()
        self.assertIn("sage_business_cloud/static/tests/tours/", manifest)


@tagged("post_install", "-at_install")
class TestTours(SageHttpCase):

    browser_size = "1366x900"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        gbp = cls.env.ref("base.GBP")
        gbp.active = True
        cls.env.company.currency_id = gbp
        cls.gbp = gbp
        # Build the web client's bundles once for the class: each test's transaction is rolled
        # back, and the first page of every tour would otherwise wait while Odoo builds them.
        for name in ("web.assets_web", "web.assets_tests"):
            bundle = cls.env["ir.qweb"]._get_asset_bundle(name)
            bundle.js()
            bundle.css()

    def setUp(self):
        super().setUp()
        chromium_or_fail(self)
        for patcher in (
            mock.patch.object(odoo_common, "ChromeBrowser", OfflineChromeBrowser),
            # Pages load the tours (web.assets_tests) in test mode only, which pytest-odoo,
            # unlike odoo-bin --test-enable, does not turn on.
            mock.patch.dict(odoo.tools.config.options, {"test_enable": True}),
        ):
            patcher.start()
            self.addCleanup(patcher.stop)

    # -- helpers -----------------------------------------------------------
    def run_tour(self, url, tour, login, data):
        """Run ``tour`` at ``url`` as ``login``; ``data`` becomes ``odoo.sageTourData``.

        The data is set by the ready check, which Odoo evaluates before it starts the tour (and
        which already builds the tour's steps). Odoo skips the test when Chrome fails to start
        or to answer; here that fails it.
        """
        ready = "(odoo.sageTourData = %s) && odoo.isTourReady(%s)" % (json.dumps(data), json.dumps(tour))
        try:
            self.start_tour(url, tour, login=login, ready=ready, timeout=90)
        except unittest.SkipTest as error:
            self.fail("%s: %s" % (NO_BROWSER, error))

    def money(self, amount):
        return self.gbp.format(amount).replace("\N{NO-BREAK SPACE}", " ").replace("£", "").strip()

    def sage_contact(self, name, **data):
        store = self.sandbox.store
        with store.lock:
            return store.create_contact(store.business(self.business_id),
                                        {"name": name, "contact_type_ids": ["CUSTOMER"], **data})["id"]

    def sage_invoice(self, contact_id, amount, days_old, due_in):
        store = self.sandbox.store
        issued = date.today() - timedelta(days=days_old)
        data = {
            "contact_id": contact_id, "date": issued.isoformat(),
            "due_date": (issued + timedelta(days=due_in)).isoformat(), "status_id": "UNPAID",
            "invoice_lines": [{"description": "Work", "ledger_account_id": "4000", "quantity": 1.0,
                               "unit_price": amount, "tax_rate_id": "GB_ZERO"}],
        }
        with store.lock:
            return store.create_invoice(store.business(self.business_id), "sales_invoices", data)["id"]

    def sync(self):
        run = self.env["sage.sync"]._sync_connection(self.connection, trigger="script")
        self.env.invalidate_all()
        self.assertEqual(run.state, "done", run.message)
        return run

    # -- tours -------------------------------------------------------------
    def test_administrator_sees_the_connection_in_the_settings(self):
        self.sage_contact("Northwind Cycles Ltd")
        self.sync()
        self.assertEqual(self.connection.state, "connected")
        self.assertTrue(self.connection.business_name)
        self.assertTrue(self.connection.last_sync_at)
        self.run_tour("/odoo/settings#sage_business_cloud", "sage_business_cloud_settings", "admin",
                      {"businessName": self.connection.business_name})

    def test_sales_user_reads_the_overdue_invoices_and_opens_one_in_sage(self):
        contact_id = self.sage_contact("Harbour Lights Ltd")
        overdue_id = self.sage_invoice(contact_id, 1250.0, days_old=45, due_in=30)
        current_id = self.sage_invoice(contact_id, 300.0, days_old=5, due_in=30)
        self.sync()
        customer = self.env["res.partner"].search([("sage_contact_id", "=", contact_id)])
        self.assertEqual(customer.sage_overdue_amount, 1250.0)
        invoices = {invoice.sage_id: invoice for invoice in customer.sage_invoice_ids}
        overdue, current = invoices[overdue_id], invoices[current_id]
        self.assertTrue(overdue.sage_url)

        salesman = new_test_user(self.env, login="sage_tour_sales", name="Sally Sales",
                                 groups="base.group_user,sales_team.group_sale_salesman")
        self.assertFalse(salesman.has_group("base.group_system"))
        self.assertFalse(salesman.has_group("sage_business_cloud.group_sage_manager"))
        self.run_tour("/odoo/res.partner/%d" % customer.id, "sage_business_cloud_invoices", salesman.login, {
            "overdueAmount": self.money(1250.0),
            "outstandingAmount": self.money(1550.0),
            "overdueNumber": overdue.number,
            "currentNumber": current.number,
            "invoiceCount": 2,
            "overdueUrl": overdue.sage_url,
        })

    def test_sales_user_sees_the_debt_at_a_glance_and_downloads_a_pdf(self):
        contact_id = self.sage_contact("Lantern Quay Ltd")
        overdue_id = self.sage_invoice(contact_id, 640.0, days_old=70, due_in=30)
        self.sage_invoice(contact_id, 90.0, days_old=3, due_in=30)
        self.sync()
        customer = self.env["res.partner"].search([("sage_contact_id", "=", contact_id)])
        overdue = customer.sage_invoice_ids.filtered(lambda i: i.sage_id == overdue_id)
        self.assertEqual(overdue.aged_bucket, "31_60")
        salesman = new_test_user(self.env, login="sage_tour_glance", name="Gary Glance",
                                 groups="base.group_user,sales_team.group_sale_salesman")
        self.run_tour("/odoo/res.partner/%d" % customer.id, "sage_business_cloud_glance", salesman.login, {
            "overdueAmount": self.money(640.0),
            "overdueNumber": overdue.number,
            "overdueBucket": "31-60 days overdue",
        })
        for _attempt in range(50):  # the click's request may still be finishing
            self.env.invalidate_all()
            pdf = self.env["ir.attachment"].search([("res_model", "=", "sage.invoice"), ("res_id", "=", overdue.id)])
            if pdf:
                break
            time.sleep(0.2)
        self.assertEqual(len(pdf), 1)
        self.assertTrue(pdf.raw.startswith(b"%PDF-"))
        self.assertIn(overdue.number.encode(), pdf.raw)

    def test_sales_user_sees_the_account_credit_position_and_quotes(self):
        contact_id = self.sage_contact("Harbour Light Ltd", credit_limit=500.0, credit_days=30,
                                       credit_terms="date_from_invoice")
        self.sage_invoice(contact_id, 700.0, days_old=5, due_in=30)
        store = self.sandbox.store
        today, expiry = date.today(), date.today() + timedelta(days=20)
        line = {"description": "Work", "ledger_account_id": "4000", "quantity": 1.0, "tax_rate_id": "GB_ZERO"}
        with store.lock:
            biz = store.business(self.business_id)
            store.create_invoice(biz, "sales_credit_notes", {
                "contact_id": contact_id, "date": today.isoformat(),
                "credit_note_lines": [{**line, "unit_price": 50.0}]})
            store.create_invoice(biz, "sales_quotes", {
                "contact_id": contact_id, "date": today.isoformat(), "expiry_date": expiry.isoformat(),
                "quote_lines": [{**line, "unit_price": 1200.0}]})
        self.sync()
        customer = self.env["res.partner"].search([("sage_contact_id", "=", contact_id)])
        self.assertTrue(customer.sage_over_credit_limit)
        note = customer.sage_invoice_ids.filtered(lambda i: i.invoice_type == "sale_credit")
        quote = customer.sage_invoice_ids.filtered(lambda i: i.invoice_type == "quote")
        salesman = new_test_user(self.env, login="sage_tour_account", name="Cora Credit",
                                 groups="base.group_user,sales_team.group_sale_salesman")
        self.run_tour("/odoo/res.partner/%d" % customer.id, "sage_business_cloud_account", salesman.login, {
            "balance": self.money(650.0),
            "available": self.money(150.0),  # shown in red, with a minus sign
            "terms": "30 days from the invoice date",
            "creditNoteNumber": note.number,
            "quoteNumber": quote.number,
            "quoteExpiry": expiry.strftime("%m/%d/%Y"),
            "openQuotes": self.money(1200.0),
        })

    def test_user_exports_a_person_of_a_company_to_sage(self):
        company = self.env["res.partner"].create({
            "name": "Quayside Joinery Ltd", "is_company": True, "city": "Bristol",
            "country_id": self.env.ref("base.uk").id,
        })
        person = self.env["res.partner"].create({
            "name": "Megan Price", "parent_id": company.id, "email": "megan@quayside.example",
        })
        self.assertTrue(person.sage_can_export)
        self.assertFalse(self.sandbox.store.find_contacts(self.business_id, name=company.name))
        user = new_test_user(self.env, login="sage_tour_export", name="Eddie Export",
                             groups="base.group_user,base.group_partner_manager,sales_team.group_sale_salesman")
        self.run_tour("/odoo/res.partner/%d" % person.id, "sage_business_cloud_export", user.login,
                      {"companyName": company.name})

        self.env.invalidate_all()
        [contact] = self.sandbox.store.find_contacts(self.business_id, name=company.name)
        self.assertEqual(company.sage_contact_id, contact["id"])
        self.assertEqual(contact["main_contact_person"]["name"], "Megan Price")
        self.assertEqual(contact["main_contact_person"]["email"], "megan@quayside.example")
        self.assertEqual(person.commercial_partner_id, company)
