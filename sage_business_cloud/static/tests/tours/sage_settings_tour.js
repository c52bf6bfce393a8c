/** @odoo-module **/
/**
 * An administrator opens Settings > Sage Business Cloud and sees the company connected to its
 * Sage business: the business name, the health block and the buttons of a live connection.
 */
import { registry } from "@web/core/registry";
import { quoted, sageTourData } from "./sage_tour_data";

const APP = ".app_settings_block[data-key='sage_business_cloud']";

registry.category("web_tour.tours").add("sage_business_cloud_settings", {
    steps: () => {
        const data = sageTourData("sage_business_cloud_settings");
        return [
            {
                content: "The Sage Business Cloud settings are open",
                trigger: `${APP} [name='sage_business_name']`,
            },
            {
                content: "The connected business is named",
                trigger: `${APP} [name='sage_business_name']:contains(${quoted(data.businessName)})`,
            },
            {
                content: "Connected: Sync now and Disconnect are offered, Connect is not",
                trigger: `${APP}:not(:has(button[name='action_sage_connect'])) button[name='action_sage_sync_now']`,
            },
            {
                trigger: `${APP} button[name='action_sage_disconnect']`,
            },
            {
                content: "The health of the connection: when it last synced",
                trigger: `${APP} [name='sage_last_sync_at']`,
                run() {
                    const shown = this.anchor.textContent.trim();
                    if (!shown) {
                        throw new Error("The last successful sync is empty in the settings");
                    }
                },
            },
        ];
    },
});
