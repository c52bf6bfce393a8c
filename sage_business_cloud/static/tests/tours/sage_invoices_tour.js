/** @odoo-module **/
/**
 * A sales user opens a customer linked to Sage, reads the overdue figure and the invoices in
 * its Sage tab, and opens an overdue invoice in Sage. The new window is not opened: the tour
 * records the address the web client would open and checks it is the invoice's Sage address.
 */
import { browser } from "@web/core/browser/browser";
import { registry } from "@web/core/registry";
import { quoted, sageTourData } from "./sage_tour_data";

const INVOICES = ".o_field_widget[name='sage_display_sale_invoice_ids']";

registry.category("web_tour.tours").add("sage_business_cloud_invoices", {
    steps: () => {
        const data = sageTourData("sage_business_cloud_invoices");
        const overdueRow = `${INVOICES} .o_data_row:contains(${quoted(data.overdueNumber)})`;
        let restoreOpen = null;
        return [
            {
                content: "Open the Sage tab of the customer",
                trigger: ".o_form_view .o_notebook .nav-link[name='sage']",
                run: "click",
            },
            {
                content: "The overdue figure is shown",
                trigger: `.o_field_widget[name='sage_display_overdue_amount']:contains(${quoted(data.overdueAmount)})`,
            },
            {
                content: "So is what is outstanding in all",
                trigger: `.o_field_widget[name='sage_display_outstanding_amount']:contains(${quoted(data.outstandingAmount)})`,
            },
            {
                content: "The invoice list holds every invoice of the customer",
                trigger: `${INVOICES} .o_data_row:contains(${quoted(data.currentNumber)})`,
                run() {
                    const rows = document.querySelectorAll(`${INVOICES} .o_data_row`);
                    if (rows.length !== data.invoiceCount) {
                        throw new Error(`${rows.length} invoice rows in the Sage tab, expected ${data.invoiceCount}`);
                    }
                },
            },
            {
                content: "The overdue invoice is marked as such",
                trigger: `${overdueRow}.text-danger`,
            },
            {
                content: "Open the overdue invoice in Sage (the window is recorded, not opened)",
                trigger: `${overdueRow} button[name='action_open_in_sage']`,
                run(helpers) {
                    const open = browser.open;
                    restoreOpen = () => (browser.open = open);
                    browser.open = (url, target) => {
                        document.body.dataset.sageOpenedUrl = url;
                        document.body.dataset.sageOpenedTarget = target || "";
                        return { closed: false };
                    };
                    return helpers.click();
                },
            },
            {
                content: "The invoice's own Sage address was opened, in a new window",
                trigger: "body[data-sage-opened-url]",
                run() {
                    restoreOpen();
                    const { sageOpenedUrl, sageOpenedTarget } = document.body.dataset;
                    if (sageOpenedUrl !== data.overdueUrl) {
                        throw new Error(`Opened ${sageOpenedUrl}, expected ${data.overdueUrl}`);
                    }
                    if (sageOpenedTarget !== "_blank") {
                        throw new Error(`Opened in "${sageOpenedTarget}", expected a new window`);
                    }
                },
            },
        ];
    },
});
