/** @odoo-module **/
/**
 * A sales user opens a customer who is over its Sage credit limit: the Sage tab shows the red
 * badge, the balance Sage states, the limit, the available credit and the payment terms in words;
 * the credit note is listed with the invoices, the quote in its own section with its open total.
 */
import { registry } from "@web/core/registry";
import { quoted, sageTourData } from "./sage_tour_data";

const INVOICES = ".o_field_widget[name='sage_display_sale_invoice_ids']";
const QUOTES = ".o_field_widget[name='sage_display_quote_ids']";

registry.category("web_tour.tours").add("sage_business_cloud_account", {
    steps: () => {
        const data = sageTourData("sage_business_cloud_account");
        return [
            {
                content: "Open the Sage tab of the customer",
                trigger: ".o_form_view .o_notebook .nav-link[name='sage']",
                run: "click",
            },
            {
                content: "A red badge says the customer is over its credit limit",
                trigger: ".o_sage_over_limit_badge.text-bg-danger:contains('Over credit limit')",
            },
            {
                content: "The balance is the one Sage states",
                trigger: `.o_field_widget[name='sage_balance']:contains(${quoted(data.balance)})`,
            },
            {
                content: "The credit left is negative, in red",
                trigger: `.o_field_widget[name='sage_available_credit'].text-danger:contains(${quoted(data.available)})`,
            },
            {
                content: "The payment terms, in words",
                trigger: `.o_field_widget[name='sage_payment_terms']:contains(${quoted(data.terms)})`,
            },
            {
                content: "The credit note is listed with the invoices",
                trigger: `${INVOICES} .o_data_row:contains(${quoted(data.creditNoteNumber)})`,
            },
            {
                content: "The quote has its own list, with its expiry date",
                trigger: `${QUOTES} .o_data_row:contains(${quoted(data.quoteNumber)}):contains(${quoted(data.quoteExpiry)})`,
            },
            {
                content: "And the open quotes total, apart from what is owed",
                trigger: `.o_field_widget[name='sage_display_open_quote_amount']:contains(${quoted(data.openQuotes)})`,
            },
        ];
    },
});
