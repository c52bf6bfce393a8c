"""The contact importer of the sync engine: Sage contacts to partners and bindings.

Per page: partners already bound are looked up by Sage id (one query), unbound partners with
exactly the same name (one query) and near matches (one query); the missing partners, their
children and their bindings are created in batches. A bound contact is never overwritten (Odoo
is the source of truth). Contacts deleted in Sage end their bindings.
"""

from collections import Counter

from markupsafe import Markup

from odoo import _, api, models

from ..services import sage_export
from ..services.names import name_key
from ..services.sage_client import SageNotFoundError
from ..services.sage_format import parse_datetime
from ..services.sage_mapping import MappingError, contact_values
from .sage_sync import PAGE_SIZE, SYNC_CONTEXT


class SageSync(models.AbstractModel):
    _inherit = "sage.sync"

    # ------------------------------------------------------------------
    # lookups
    # ------------------------------------------------------------------
    def _partners_by_sage_id(self, connection, sage_ids):
        """``{sage_id: (partner_id, sage_updated_at)}`` of bound partners, archived ones included."""
        self.env["sage.binding"].flush_model()
        self.env.cr.execute(
            "SELECT sage_contact_id, partner_id, sage_updated_at FROM sage_binding "
            "WHERE connection_id = %s AND sage_contact_id = ANY(%s)",
            [connection.id, list(sage_ids)],
        )
        return {row[0]: (row[1], row[2]) for row in self.env.cr.fetchall()}

    def _deleted_in_odoo(self, connection, sage_ids):
        self.env["sage.deleted.contact"].flush_model()
        self.env.cr.execute(
            "SELECT sage_contact_id FROM sage_deleted_contact "
            "WHERE connection_id = %s AND sage_contact_id = ANY(%s)",
            [connection.id, list(sage_ids)],
        )
        return {row[0] for row in self.env.cr.fetchall()}

    def _candidate_condition(self):
        # Partners not bound in this business that may be the contact: companies, and
        # individuals without a company (bindings in other businesses do not count).
        return (
            "NOT EXISTS (SELECT 1 FROM sage_binding b WHERE b.partner_id = p.id AND b.connection_id = %s) "
            "AND p.active AND (p.is_company OR p.parent_id IS NULL) "
            "AND (p.company_id IS NULL OR p.company_id = %s)"
        )

    def _exact_candidates(self, connection, names):
        """``{trimmed name: {"free": [ids], "linked": [ids]}}`` of the partners with exactly these
        names that could be the contact: unlinked candidates, and partners that existed in Odoo
        and are already linked to another contact of this connection (a Sage contact of the same
        name is then a possible duplicate). Partners the sync itself created from another Sage
        contact do not count: they mirror Sage's own same-named contacts, nothing to review.
        Uses the ``trim(name)`` index (see ``res_partner_sync.init``)."""
        if not names:
            return {}
        self.env["res.partner"].flush_model()
        self.env["sage.binding"].flush_model()
        self.env.cr.execute(
            "SELECT trim(p.name), p.id, b.id IS NOT NULL FROM res_partner p "
            "LEFT JOIN sage_binding b ON b.partner_id = p.id AND b.connection_id = %s "
            "WHERE trim(p.name) = ANY(%s) AND p.active AND (p.is_company OR p.parent_id IS NULL) "
            "AND (p.company_id IS NULL OR p.company_id = %s) "
            "AND (b.id IS NULL OR (b.kind = 'contact' AND b.link_method IS DISTINCT FROM 'imported')) "
            "ORDER BY p.id",
            [connection.id, list(names), connection.company_id.id],
        )
        found = {}
        for name, partner_id, linked in self.env.cr.fetchall():
            found.setdefault(name, {"free": [], "linked": []})["linked" if linked else "free"].append(partner_id)
        return found

    def _near_candidates(self, connection, keys):
        """``{name key: [(partner id, trimmed name)]}`` of unlinked candidates with these keys."""
        if not keys:
            return {}
        self.env.cr.execute(
            "SELECT p.sage_name_key, p.id, trim(p.name) FROM res_partner p WHERE p.sage_name_key = ANY(%s) AND "
            + self._candidate_condition() + " ORDER BY p.id",
            [list(keys), connection.id, connection.company_id.id],
        )
        found = {}
        for key, partner_id, name in self.env.cr.fetchall():
            found.setdefault(key, []).append((partner_id, name))
        return found

    # ------------------------------------------------------------------
    # contacts
    # ------------------------------------------------------------------
    def _sync_contacts(self, state):
        connection = state.connection
        since = connection.contacts_synced_until
        pages = state.client.contacts_changed_since(since, self._page_size())
        for page in pages:
            self._in_savepoint(self._contacts_page, state, page)
        # Contacts to read again one by one (failed to map, or restored from the deleted list).
        Backlog = self.env["sage.sync.backlog"]
        retry = [
            sage_id for sage_id in Backlog._pending_ids(connection, "contact")
            if sage_id not in state.contacts_seen
        ]
        if retry:
            contacts, gone = [], []
            for sage_id in retry:
                try:
                    contacts.append(state.client.get_contact(sage_id))
                except SageNotFoundError:
                    gone.append(sage_id)
            Backlog._remove(connection, "contact", gone)
            if contacts:
                self._in_savepoint(self._contacts_page, state, contacts)

    def _page_size(self):
        return self.env.context.get("sage_page_size") or PAGE_SIZE

    def _contacts_page(self, state, contacts):
        connection = state.connection
        Partner = self.env["res.partner"].with_context(**SYNC_CONTEXT)
        Backlog = self.env["sage.sync.backlog"]
        state.counts["contacts_read"] += len(contacts)
        ids = [c.get("id") for c in contacts if c.get("id")]
        state.contacts_seen.update(ids)
        linked = self._partners_by_sage_id(connection, ids)
        deleted = self._deleted_in_odoo(connection, ids)
        countries = self._countries(state)
        todo, failed, handled = [], {}, set()
        for contact in contacts:
            sage_id = contact.get("id")
            if sage_id in linked:
                # Odoo is the source of truth: note a real change, overwrite nothing.
                seen = linked[sage_id][1]
                handled.add(sage_id)
                try:
                    updated = parse_datetime(contact.get("updated_at"))
                except MappingError as error:
                    state.error("contacts", sage_id, contact.get("name"), error)
                    continue
                if updated and (not seen or updated > seen):
                    state.counts["contacts_ignored"] += 1
                continue
            if sage_id in deleted:
                handled.add(sage_id)
                continue
            if sage_id in handled:
                continue  # listed twice (a page shifted under us)
            try:
                values, children = contact_values(contact, countries)
            except MappingError as error:
                state.error("contacts", sage_id, contact.get("name"), error)
                if sage_id:
                    failed[sage_id] = str(error)
                continue
            handled.add(sage_id)
            todo.append((contact, values, children))
        Backlog._add(connection, "contact", failed)
        Backlog._remove(connection, "contact", handled)
        if todo:
            self._link_or_create(state, Partner, todo)

    def _decision_lookups(self, state, todo):
        """What the link-or-create decision of a page needs from the database: the exact and near
        candidates of its names (a query each) and the contacts the scope would not create (a query
        with the scope "with at least one invoice", none otherwise)."""
        connection = state.connection
        exact = self._exact_candidates(connection, {values["name"] for _c, values, _ch in todo})
        keys = {values["name"]: name_key(values["name"]) for _c, values, _ch in todo}
        near = self._near_candidates(connection, set(keys.values()) - {""})
        return {"exact": exact, "near": near, "keys": keys, "out_of_scope": self._sage_out_of_scope(state, todo)}

    @api.model
    def _decide_links(self, todo, lookups):
        """Decide, for each contact of ``todo``, whether it is linked, created or skipped.

        A pure function of the page and of ``lookups`` (see ``_decision_lookups``): it writes
        nothing, so the import and its preview take the same decisions. Returns ``(to_link,
        to_create, skipped)``: ``(contact, partner id)``, ``(contact, values, children, review,
        duplicate of)`` and ``(contact, values, reason)``; a contact the scope leaves out is
        skipped instead of created, never instead of linked.
        """
        exact, near, keys = lookups["exact"], lookups["near"], lookups["keys"]
        out_of_scope = lookups["out_of_scope"]
        in_page = Counter(values["name"] for _c, values, _ch in todo)
        to_link, to_create, skipped = [], [], []
        for contact, values, children in todo:
            name = values["name"]
            found = exact.get(name, {"free": [], "linked": []})
            free, twins = found["free"], found["linked"]
            if len(free) == 1 and in_page[name] == 1 and not twins:
                to_link.append((contact, free[0]))
                continue
            if contact["id"] in out_of_scope:
                skipped.append((contact, values, out_of_scope[contact["id"]]))
                continue
            review = duplicate = False
            if (free or twins) and (in_page[name] > 1 or len(free) + len(twins) > 1):
                # Several Sage contacts or several partners with this name: never guess. (Several
                # Sage contacts and no Odoo partner of that name: Odoo mirrors them, unflagged.)
                review = "ambiguous"
                duplicate = (free or twins)[0]
            elif twins:
                # Its exact name is already linked to another Sage contact.
                review, duplicate = "near_match", twins[0]
            else:
                others = [pid for pid, other in near.get(keys[name], []) if other != name]
                if others:
                    review, duplicate = "near_match", others[0]
            to_create.append((contact, values, children, review, duplicate))
        return to_link, to_create, skipped

    def _link_or_create(self, state, Partner, todo):
        connection = state.connection
        lookups = self._decision_lookups(state, todo)
        to_link, to_create, skipped = self._decide_links(todo, lookups)
        self._sage_skip(state, todo, skipped)
        bodies = {}
        values_by_id = {contact["id"]: values for contact, values, _ch in todo}
        Binding = self.env["sage.binding"].sudo()
        if to_link:
            partners = Partner.browse([pid for _c, pid in to_link])
            snapshots = self._sage_snapshots(partners, [contact for contact, _pid in to_link])
            self._bulk_write(partners, [
                {"sage_contact_type": values_by_id[contact["id"]].get("sage_contact_type")}
                for contact, _pid in to_link
            ])
            Binding.create([
                Binding._sage_bind_values(connection, partner_id, contact, "name_match", snapshot=snapshot)
                for (contact, partner_id), snapshot in zip(to_link, snapshots, strict=True)
            ])
            for contact, partner_id in to_link:
                bodies[partner_id] = Markup("<p>%s</p>") % _(
                    "Linked to the Sage contact %s (same name) by the Sage sync.", contact.get("name"))
            state.counts["contacts_linked"] += len(to_link)

        if to_create:
            self._create_partners(state, Partner, to_create, bodies, lookups["keys"])
        if bodies:
            Partner.browse(list(bodies))._message_log_batch(bodies)

    def _create_partners(self, state, Partner, to_create, bodies, keys):
        """Create the partners of Sage contacts Odoo did not have, their children and bindings.

        They belong to the connection's company (its users only see them). The main contact
        person of an organisation becomes its child contact, bound to that Sage contact person.
        """
        connection = state.connection
        Binding = self.env["sage.binding"].sudo()
        team = connection.default_team_id.id or False
        known = Partner._fields
        vals_list = [
            {k: v for k, v in {
                **values, "team_id": team, "company_id": connection.company_id.id,
                "sage_review": review or False, "sage_duplicate_of_id": duplicate or False,
                "sage_name_key": keys[values["name"]] or False,  # computed once, for the lookup
            }.items() if k in known}
            for _contact, values, _children, review, duplicate in to_create
        ]
        # Odoo's per-record sync of a new partner with its parent and children (``_fields_sync``:
        # a write per child) is skipped; ``_child_inherited_values`` gives each child what it copies.
        Partner = Partner.with_context(_partners_skip_fields_sync=True)
        created = Partner.create(vals_list)
        child_vals, person_of = [], []
        inherit = self._child_inherited_values(created) if any(item[2] for item in to_create) else {}
        for partner, (contact, _values, children, review, _dup) in zip(created, to_create, strict=True):
            for child in children:
                common, with_address = inherit[partner.id]
                child_vals.append({**child, **(with_address if child.get("type") == "contact" else common),
                                   "parent_id": partner.id, "company_id": connection.company_id.id})
                person_of.append((partner.id, contact) if child.get("type") == "contact" else None)
            body = _("Created from the Sage contact %s by the Sage sync.", contact.get("name"))
            if review == "ambiguous":
                body += " " + _("Several partners or Sage contacts have this exact name: review it.")
            elif review == "near_match":
                body += " " + _("It may duplicate an existing partner: review it.")
            bodies[partner.id] = Markup("<p>%s</p>") % body
        main_persons = {}
        if child_vals:
            for child, owner in zip(Partner.create(child_vals), person_of, strict=True):
                if owner and (owner[1].get("main_contact_person") or {}).get("id"):
                    main_persons[owner[0]] = (child, owner[1]["main_contact_person"]["id"])
        persons = [main_persons.get(partner.id, (Partner.browse(), None))[0] for partner in created]
        # What Sage holds, as if Odoo had pushed it: the next edit sends only what changes.
        snapshots = self._sage_snapshots(created, [item[0] for item in to_create], persons)
        Binding.create([
            Binding._sage_bind_values(connection, partner.id, item[0], "imported", snapshot=snapshot,
                                      main_person_id=person.id or False)
            for partner, item, snapshot, person in zip(created, to_create, snapshots, persons, strict=True)
        ])
        Binding.create([
            {"connection_id": connection.id, "partner_id": child.id, "kind": "main_person",
             "sage_contact_person_id": person_id, "link_method": "imported", "push_state": "synced",
             "push_snapshot": {}}
            for child, person_id in main_persons.values()
        ])
        state.counts["contacts_created"] += len(created)
        state.counts["contacts_flagged"] += sum(1 for item in to_create if item[3])

    @api.model
    def _child_inherited_values(self, parents):
        """``{parent id: (values, values of a contact)}``: what Odoo's ``_fields_sync`` would copy from
        a new parent to a new child (of type ``contact``), for all parents with one read.

        The commercial fields (``_commercial_fields``, extended by other addons), the parent's
        language, and for a child of type ``contact`` the parent's address when it has one. Not
        copied: Odoo's "first contact gives its address to a parent without one", which would
        make a Sage delivery address the company's own (and push it to Sage as the main one).
        """
        commercial = parents._commercial_fields()
        address = parents._address_fields()
        parents.sudo().fetch(list({*commercial, *address, "lang"}))
        default_lang = self.env.context.get("default_lang") or self.env.lang
        result = {}
        for parent in parents:
            common = {**parent._update_fields_values(commercial), "lang": parent.lang or default_lang}
            own_address = parent._update_fields_values(address)
            result[parent.id] = (common, {**own_address, **common} if any(own_address.values()) else common)
        return result

    @api.model
    def _sage_snapshots(self, partners, contacts, main_persons=None):
        """The push snapshot of each partner just linked to (or created from) a Sage contact.

        Sage's values as read (``sage_export.sage_side``, the shape Odoo pushes), except where Odoo
        holds nothing: that value is recorded as empty, so that an empty Odoo field is never
        pushed over what Sage holds (a partner matched by name without e-mail keeps Sage's
        e-mail). Reads the partners together (prefetch): no query per partner.
        """
        snapshots = []
        # the push reads active children only
        main_persons = main_persons or [None] * len(partners)
        for partner, contact, person in zip(partners.with_context(active_test=True), contacts, main_persons,
                                            strict=True):
            values = partner._sage_contact_values(main_person=person)
            sage_now = sage_export.sage_side(contact, values)
            snapshot = {}
            for key, value in values.items():
                if isinstance(value, dict):
                    theirs = sage_now.get(key) or {}
                    snapshot[key] = {sub: (theirs.get(sub) if mine is not None else None)
                                     for sub, mine in value.items()}
                else:
                    snapshot[key] = sage_now.get(key) if value is not None else None
            snapshots.append(snapshot)
        return snapshots

    # ------------------------------------------------------------------
    # deletions in Sage
    # ------------------------------------------------------------------
    def _sync_deleted_contacts(self, state):
        since = state.connection.contacts_synced_until
        if not since:
            return  # a first import reads only live contacts
        for sage_ids in state.client.contacts_deleted_since(since, self._page_size()):
            self._in_savepoint(self._deleted_contacts_page, state, sage_ids)

    def _deleted_contacts_page(self, state, sage_ids):
        connection = state.connection
        bindings = self.env["sage.binding"].sudo().search(
            [("connection_id", "=", connection.id), ("sage_contact_id", "in", sage_ids)])
        if bindings:
            state.counts["invoices_removed"] += self.env["sage.invoice"].search_count(
                [("connection_id", "=", connection.id), ("partner_id", "in", bindings.partner_id.ids)])
            for binding in bindings:
                binding._sage_end(note=Markup("<p>%s</p>") % _(
                    "The Sage contact %s was deleted in Sage: this partner is no longer linked "
                    "and its Sage invoices were removed.", binding.sage_contact_id))
            state.counts["contacts_unlinked"] += len(bindings)
        # Nothing left to remember or retry about contacts that no longer exist.
        self.env["sage.deleted.contact"].search([
            ("connection_id", "=", connection.id), ("sage_contact_id", "in", sage_ids),
        ]).unlink()
        self.env["sage.sync.backlog"]._remove(connection, "contact", sage_ids)
        self.env["sage.sync.backlog"]._remove(connection, "invoices", sage_ids)
