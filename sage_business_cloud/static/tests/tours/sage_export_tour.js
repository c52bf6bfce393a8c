/** @odoo-module **/
/**
 * A user exports a person of a company that Sage does not know yet: Export to Sage in the Sage
 * tab, a success notification naming the company, and the form then shows the link.
 */
import { registry } from "@web/core/registry";
import { quoted, sageTourData } from "./sage_tour_data";

registry.category("web_tour.tours").add("sage_business_cloud_export", {
    steps: () => {
        const data = sageTourData("sage_business_cloud_export");
        return [
            {
                content: "Open the Sage tab of the person",
                trigger: ".o_form_view .o_notebook .nav-link[name='sage']",
                run: "click",
            },
            {
                content: "Not linked yet: Export to Sage",
                trigger: ".o_notebook [name='sage_export'] button[name='action_export_to_sage']",
                run: "click",
            },
            {
                content: "A success notification says the company was created in Sage",
                trigger: `.o_notification:has(.o_notification_bar.bg-success) .o_notification_content:contains(${quoted(data.companyName)})`,
            },
            {
                content: "After the reload the person is linked through its company",
                trigger: ".o_form_view:not(:has(button[name='action_export_to_sage'])) .o_notebook button[name='action_sage_open']",
            },
        ];
    },
});
