{
    "name": "Sage Business Cloud Accounting: sync and pushes as queue jobs",
    "summary": "Run each company's Sage sync and each contact push as a queue_job job, "
    "spread over Odoo's workers",
    "version": "18.0.1.0.0",
    "category": "Accounting/Accounting",
    "author": "sage_business_cloud developers",
    "license": "LGPL-3",
    "depends": ["sage_business_cloud", "queue_job"],
    "data": [
        "security/ir.model.access.csv",
        "security/sage_queue_security.xml",
        "data/queue_job_data.xml",
        "views/sage_queue_menus.xml",
    ],
    "auto_install": True,
}
