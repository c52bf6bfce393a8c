{
    "name": "Sage Business Cloud Accounting",
    "summary": "Keep Odoo contacts and Sage Business Cloud Accounting (UK) in step, "
    "and show each contact's Sage invoices",
    "version": "18.0.2.1.0",
    "category": "Accounting/Accounting",
    "author": "sage_business_cloud developers",
    "license": "LGPL-3",
    "depends": ["contacts", "sales_team", "mail"],
    "external_dependencies": {
        "python": ["requests", "requests-oauthlib", "cleanco", "unidecode"],
    },
    "data": [
        "security/sage_security.xml",
        "security/ir.model.access.csv",
        "data/ir_cron_data.xml",
        "data/mail_activity_data.xml",
        "data/sage_push_data.xml",
        "views/sage_connection_views.xml",
        "views/sage_sync_run_views.xml",
        "views/sage_invoice_views.xml",
        "views/res_partner_views.xml",
        "views/res_partner_invoice_views.xml",
        "views/res_partner_credit_views.xml",
        "views/res_partner_export_views.xml",
        "views/res_config_settings_views.xml",
        "views/sage_templates.xml",
        "views/sage_menus.xml",
        "wizard/sage_link_wizard_views.xml",
        "wizard/sage_export_confirm_views.xml",
        "wizard/sage_link_action_views.xml",
        "views/res_partner_export_menus.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "sage_business_cloud/static/tests/tours/**/*",
        ],
    },
}
