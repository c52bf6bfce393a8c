"""Undo a first import: back to "not yet imported", keeping what someone has used since.

The first import is every run of the connection that read the whole book (``full_import``,
previews aside) since the last undo; it spans from the first one's start to the last one's end
(the moment it recorded its result).
Undoing it:

- deletes the partners it created (and the children it created with them) that nobody changed
  since: no write after the import's end, no message on them but the sync's own notes (and none
  after the import's end), no activity, and no record of another model pointing at them through a
  many2one (a sale, an invoice, a user, a contact added under them...). The others are kept,
  linked, and listed on the run with the reason;
- ends the links it made by exact name (the partners stay);
- clears the retry list and the skipped contacts, and returns the connection to "not yet
  imported" (its watermarks are cleared, and the next first import waits for Import now, even
  if it was set to start by itself).

Every link ends through ``sage.binding._sage_end``. The undo holds the connection's sync lock,
so no run can write meanwhile. Its cost is a few queries for the whole import, whatever its size
(one for all the many2one references).
"""

from markupsafe import Markup

from odoo import _, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from .sage_sync import LOCK_NAMESPACE

#: The addon's own models and fields: their references to a partner do not make it "used".
OWN_PREFIX = "sage."
OWN_FIELDS = frozenset({"sage_duplicate_of_id"})
CHUNK = 1000


class SageSyncRun(models.Model):
    _inherit = "sage.sync.run"

    def action_sage_undo(self):
        """Button: the confirmation of the undo of this first import (counts first)."""
        self.ensure_one()
        self._sage_check_may_undo()
        plan = self._sage_undo_plan()
        wizard = self.env["sage.sync.undo"].create({
            "run_id": self.id,
            "delete_count": len(plan["delete"]),
            "unlink_count": len(plan["unlink"]),
            "kept_partner_ids": [(6, 0, list(plan["keep"]))],
        })
        return {"type": "ir.actions.act_window", "res_model": "sage.sync.undo", "res_id": wizard.id,
                "view_mode": "form", "target": "new", "name": _("Undo the first import")}

    def _sage_check_may_undo(self):
        self.ensure_one()
        self.connection_id._check_admin()
        self.check_access("write")
        if not self.may_undo:
            raise UserError(_("Only a first import that is over, and not undone yet, can be undone."))

    def _sage_first_import_runs(self):
        """The runs that make up this run's first import (see the module's docstring)."""
        return self.sudo().search([
            ("connection_id", "=", self.connection_id.id), ("full_import", "=", True),
            ("trigger", "!=", "preview"), ("undone_at", "=", False),
            ("state", "in", ("done", "partial", "failed")),
        ])

    def _sage_undo_plan(self):
        """``{"delete": partner ids, "keep": {partner id: reason}, "unlink": bindings}``."""
        runs = self._sage_first_import_runs()
        # Changes are compared with the moment the last run recorded its result (its write_date,
        # to the microsecond like every write_date and message date, in database time); the links
        # it made are those of its span (``linked_at`` and ``finished_at``: wall clock, seconds).
        start, end = min(runs.mapped("started_at")), max(runs.mapped("write_date"))
        Binding = self.env["sage.binding"].sudo()
        bindings = Binding.search([
            ("connection_id", "=", self.connection_id.id), ("kind", "=", "contact"),
            ("linked_at", ">=", start), ("linked_at", "<=", max(runs.mapped("finished_at"))),
        ])
        created = bindings.filtered(lambda b: b.link_method == "imported")
        families = self.env["sage.sync"]._sage_families(created.partner_id, end)
        keep = self.env["sage.sync"]._sage_changed_since(families, end)
        return {
            "delete": [pid for pid in families if pid not in keep],
            "keep": keep,
            "families": families,
            "unlink": bindings.filtered(lambda b: b.link_method == "name_match"),
            "created": created,
            "runs": runs,
        }

    def _sage_undo(self):
        """Undo this first import (see the module's docstring); returns the plan carried out."""
        self._sage_check_may_undo()
        connection = self.connection_id.sudo()
        self.env.cr.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, connection.id])
        if not self.env.cr.fetchone()[0]:
            raise UserError(_("A sync of this company is running: undo the import once it is over."))
        plan = self._sage_undo_plan()
        Partner = self.env["res.partner"].sudo().with_context(active_test=False)
        doomed = Partner.browse(plan["delete"])
        plan["created"].filtered(lambda b: b.partner_id in doomed)._sage_end()
        family_ids = [pid for owner in plan["delete"] for pid in plan["families"][owner]]
        Partner.browse(family_ids).with_context(sage_deleted_in_sage=True).unlink()
        plan["unlink"]._sage_end(note=Markup("<p>%s</p>") % _(
            "The first Sage import was undone: this partner is no longer linked to its Sage contact."))
        kept = Partner.browse(list(plan["keep"]))
        if kept:
            kept._message_log_batch({partner.id: Markup("<p>%s</p>") % _(
                "The first Sage import was undone; this partner was kept, still linked: %s.",
                plan["keep"][partner.id]) for partner in kept})
        self.env["sage.sync.backlog"].sudo().search([("connection_id", "=", connection.id)]).unlink()
        self.env["sage.sync"]._sage_forget_skipped(connection)
        # Whatever the mode was, the next first import waits for an administrator's Import now:
        # the cron must not bring back at once what was just undone.
        connection.write({"contacts_synced_until": False, "invoices_synced_until": False,
                          "purchases_synced_until": False, "first_import_approved": False,
                          "first_import_mode": "preview"})
        now = fields.Datetime.now()
        plan["runs"].write({"undone_at": now})
        lines = [_("Undone on %(date)s: %(deleted)s created partners deleted, %(kept)s kept (changed since), "
                   "%(unlinked)s links by name removed.", date=now, deleted=len(plan["delete"]),
                   kept=len(kept), unlinked=len(plan["unlink"]))]
        lines += ["- %s: %s" % (partner.display_name, plan["keep"][partner.id]) for partner in kept]
        self.sudo().write({
            "undo_kept_partner_ids": [(6, 0, kept.ids)],
            "message": "\n".join(filter(None, [self.message, *lines])),
        })
        return plan


class SageSync(models.AbstractModel):
    _inherit = "sage.sync"

    @api.model
    def _sage_families(self, partners, end):
        """``{partner id: [its id and its children's created up to end]}`` (one query)."""
        families = {pid: [pid] for pid in partners.ids}
        if not families:
            return families
        self.env["res.partner"].flush_model()
        self.env.cr.execute(
            "SELECT parent_id, id FROM res_partner WHERE parent_id = ANY(%s) AND create_date <= %s",
            [list(families), end])
        for parent_id, child_id in self.env.cr.fetchall():
            families[parent_id].append(child_id)
        return families

    @api.model
    def _sage_changed_since(self, families, end):
        """``{partner id: reason}`` of the families someone changed or used after ``end``."""
        member_of = {member: owner for owner, members in families.items() for member in members}
        members = list(member_of)
        reasons = {}
        if not members:
            return reasons
        self.env.flush_all()
        cr = self.env.cr
        for start in range(0, len(members), CHUNK):
            chunk = members[start:start + CHUNK]
            cr.execute("SELECT id FROM res_partner WHERE id = ANY(%s) AND write_date > %s", [chunk, end])
            for (pid,) in cr.fetchall():
                reasons.setdefault(member_of[pid], _("edited after the import"))
            cr.execute(
                "SELECT DISTINCT res_id FROM mail_message WHERE model = 'res.partner' AND res_id = ANY(%s) "
                "AND (message_type != 'notification' OR create_date > %s)", [chunk, end])
            for (pid,) in cr.fetchall():
                reasons.setdefault(member_of[pid], _("a message was posted on it"))
            cr.execute("SELECT DISTINCT res_id FROM mail_activity WHERE res_model = 'res.partner' "
                       "AND res_id = ANY(%s)", [chunk])
            for (pid,) in cr.fetchall():
                reasons.setdefault(member_of[pid], _("an activity is planned on it"))
            for pid, label in self._sage_referenced(chunk, member_of):
                reasons.setdefault(member_of[pid], _("a record points at it (%s)", label))
        return reasons

    @api.model
    def _sage_referenced(self, partner_ids, member_of):
        """``[(partner id, model description)]``: records of other models (or partners outside
        these families) whose stored many2one points at one of ``partner_ids``; one query."""
        parts, labels = [], []
        for model_name in self.env.registry:
            model = self.env[model_name]
            if model._abstract or model._transient or not model._auto or model._table_query:
                continue
            if model_name.startswith(OWN_PREFIX):
                continue
            for field in model._fields.values():
                if (field.type != "many2one" or field.comodel_name != "res.partner" or not field.store
                        or field.company_dependent or field.inherited or field.name in OWN_FIELDS):
                    continue
                own = SQL(" AND NOT (id = ANY(%s))", list(member_of)) if model_name == "res.partner" else SQL()
                labels.append(model._description or model_name)
                parts.append(SQL("SELECT %s, %s FROM %s WHERE %s = ANY(%s)%s", len(labels) - 1,
                                 SQL.identifier(field.name), SQL.identifier(model._table),
                                 SQL.identifier(field.name), partner_ids, own))
        if not parts:
            return []
        self.env.cr.execute(SQL(" UNION ").join(parts))
        return [(pid, labels[index]) for index, pid in self.env.cr.fetchall()]
