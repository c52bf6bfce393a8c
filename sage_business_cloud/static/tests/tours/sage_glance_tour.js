/** @odoo-module **/
/**
 * A sales user sees what a customer owes at a glance: the smart button says how much is overdue,
 * opens the customer's Sage invoices, the aged-debt pivot splits them by how late they are, and
 * an invoice's form downloads Sage's PDF on click (the test then finds the PDF Odoo served).
 */
import { registry } from "@web/core/registry";
import { quoted, sageTourData } from "./sage_tour_data";

registry.category("web_tour.tours").add("sage_business_cloud_glance", {
    steps: () => {
        const data = sageTourData("sage_business_cloud_glance");
        return [
            {
                content: "The smart button shows the overdue amount, in red",
                trigger: `button[name='action_sage_open_invoices'] .text-danger:contains(${quoted(data.overdueAmount)})`,
            },
            {
                content: "It opens the customer's Sage invoices",
                trigger: "button[name='action_sage_open_invoices']",
                run: "click",
            },
            {
                content: "The list holds the customer's invoices",
                trigger: `.o_list_view .o_data_row:contains(${quoted(data.overdueNumber)})`,
            },
            {
                content: "Switch to the aged-debt pivot",
                trigger: ".o_switch_view.o_pivot",
                run: "click",
            },
            {
                content: "The pivot splits the debt by age",
                trigger: `.o_pivot th:contains(${quoted(data.overdueBucket)})`,
            },
            {
                content: "Back to the list",
                trigger: ".o_switch_view.o_list",
                run: "click",
            },
            {
                content: "Open the overdue invoice",
                trigger: `.o_list_view .o_data_row:contains(${quoted(data.overdueNumber)}) td.o_data_cell`,
                run: "click",
            },
            {
                content: "Download Sage's PDF (fetched on this click; the test checks the file)",
                trigger: ".o_form_view button[name='action_download_pdf']",
                run: "click",
            },
            {
                content: "The download leaves the invoice on screen",
                trigger: ".o_form_view:not(:has(.o_dialog)) button[name='action_open_in_sage']",
            },
        ];
    },
});
