"""What a run adds for the first import: its preview, the contacts its scope skipped, its
progress while it runs, and its undo."""

from odoo import api, fields, models

from .sage_sync_scope import SKIP_REASONS

PREVIEW_DECISIONS = [
    ("link", "Linked by exact name"),
    ("create", "Created"),
    ("ambiguous", "Created, ambiguous (several partners with that name)"),
    ("near_match", "Created, possible duplicate"),
    ("skipped", "Skipped by the scope"),
]


class SageSyncRun(models.Model):
    _inherit = "sage.sync.run"

    trigger = fields.Selection(selection_add=[("preview", "Preview of the first import")],
                               ondelete={"preview": "cascade"})
    contacts_skipped = fields.Integer(help="Not created: outside the import's scope.")
    pages_done = fields.Integer(readonly=True)
    pages_expected = fields.Integer(readonly=True, help="From Sage's $total of each listing's first page.")
    progress = fields.Float(compute="_compute_progress", help="Pages done, in percent of the pages expected.")
    estimated_end = fields.Datetime(readonly=True)
    preview_line_ids = fields.One2many("sage.sync.preview.line", "run_id", string="Preview")
    skipped_ids = fields.One2many("sage.sync.skipped", "run_id", string="Skipped by the scope")
    preview_ambiguous = fields.Integer("Ambiguous", help="Would be created and flagged: several partners "
                                       "or Sage contacts with that name.")
    preview_near_match = fields.Integer("Possible duplicates", help="Would be created and flagged as a "
                                        "possible duplicate of an existing partner.")
    undone_at = fields.Datetime(readonly=True, copy=False, help="When this first import was undone.")
    undo_kept_partner_ids = fields.Many2many(
        "res.partner", "sage_sync_run_undo_kept_rel", "run_id", "partner_id", string="Kept by the undo",
        readonly=True, help="Partners the import created that someone changed since: not deleted.")
    may_undo = fields.Boolean(compute="_compute_may_undo")

    @api.depends("pages_done", "pages_expected", "state")
    def _compute_progress(self):
        for run in self:
            if run.state in ("done", "partial") and run.pages_done:
                run.progress = 100.0
            else:
                run.progress = 100.0 * run.pages_done / run.pages_expected if run.pages_expected else 0.0

    @api.depends("state", "full_import", "trigger", "undone_at")
    def _compute_may_undo(self):
        for run in self:
            run.may_undo = bool(run.full_import and run.trigger != "preview" and not run.undone_at
                                and run.state in ("done", "partial", "failed"))


class SageSyncPreviewLine(models.Model):
    _name = "sage.sync.preview.line"
    _description = "What the first import would do with one Sage contact"
    _order = "id"
    _log_access = False

    run_id = fields.Many2one("sage.sync.run", required=True, ondelete="cascade", index=True, readonly=True)
    company_id = fields.Many2one(related="run_id.company_id", store=True, index=True)
    sage_contact_id = fields.Char("Sage contact id", readonly=True)
    name = fields.Char("Sage name", readonly=True)
    decision = fields.Selection(PREVIEW_DECISIONS, required=True, readonly=True, index=True)
    partner_id = fields.Many2one(
        "res.partner", string="Odoo partner", ondelete="set null", readonly=True,
        help="The partner it would be linked to, or the one it may duplicate.")
    reason = fields.Selection(SKIP_REASONS, string="Why skipped", readonly=True)
