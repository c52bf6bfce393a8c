"""Measure what a Sage sync costs: seconds, HTTP requests, SQL statements and memory, per phase.

Builds a fresh database with the addon, starts the sandbox in a process of its own (as real Sage
runs on its own servers, its work does not compete with Odoo's interpreter) with a seeded book,
connects through OAuth, then measures:

* the **floor**: the time to read the same pages as the first import with a plain client (no ORM;
  without latency, and also with it when ``--latency`` is given), plus one batch ``create`` of the
  same partners (and their child contacts) and invoice rows, rolled back afterwards;
* the first import, an incremental run with nothing new, and an incremental run after a few Sage
  changes, through the real engine (``sage.connection._run_sync``).

Each phase prints its wall time, HTTP requests (as the sandbox saw them, token calls included),
SQL statements (total and per page of Sage data), the peak growth of the process's resident memory
during the phase, and the ratio to the local floor; then the goals of issue 15 and whether they
are met.

    python3 tools/benchmark.py --contacts 10000 --invoices 50000 --matches 500
    python3 tools/benchmark.py --contacts 10000 --invoices 50000 --latency 0.3 --prefetch 4

``--latency`` adds a delay to every Sage answer (the sandbox's ``delay`` fault rule, token calls
included); ``--prefetch`` sets how many pages the client reads ahead (1 = one page at a time).
``--profile FILE`` writes a pyinstrument profile (text) of the first import's main thread.
"""

import argparse
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tools.odoo_env import locate  # noqa: E402

PAGE = 200
MB = 1024 * 1024

#: The goals of issue 15, checked in this order by ``print_goals``.
GOALS = (
    "first import without latency <= 1.5 x floor",
    "first import with 300 ms latency <= 1.6 x local floor",
    "first import requests <= pages + 5",
    "first import SQL <= 25 statements a page",
    "first import memory growth <= 150 MB",
    "idle incremental run: 1 request a listing and <= 1 s",
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000, help="Sage contacts to seed (default 2000)")
    parser.add_argument("--invoices", type=int, default=10000, help="Sage invoices to seed (default 10000)")
    parser.add_argument("--matches", type=int, default=300,
                        help="Odoo partners created beforehand with exactly a Sage name (default 300)")
    parser.add_argument("--db", default="sage_bc_bench", help="database, rebuilt at each run (default sage_bc_bench)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every Sage answer (default 0)")
    parser.add_argument("--prefetch", type=int, default=None,
                        help="pages the client reads ahead (default: the client's own default; 1 = none)")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor measurement")
    parser.add_argument("--profile", metavar="FILE", help="pyinstrument text profile of the first import")
    parser.add_argument("--profile-idle", metavar="FILE", help="pyinstrument text profile of the idle incremental run")
    return parser.parse_args()


def build_database(db):
    _root, command, addons = locate()
    host = os.environ.get("PGHOST", "127.0.0.1")
    pg = [f"--db_host={host}", f"--db_port={os.environ.get('PGPORT', '5432')}"]
    if os.environ.get("PGUSER"):
        pg.append(f"--db_user={os.environ['PGUSER']}")
    subprocess.run(["dropdb", "--if-exists", "--force", "-h", host, db], check=True)
    subprocess.run([*command, "-d", db, *pg, f"--addons-path={addons}", "-i", "sage_business_cloud",
                    "--without-demo=all", "--stop-after-init", "--log-level=warn", "--no-http"], check=True)
    return addons, pg


class MemoryPeak:
    """Samples the process's resident set size in a thread; ``growth`` is peak minus start (bytes)."""

    INTERVAL = 0.05

    def __init__(self):
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self.start = self.peak = self._rss()
        self._thread = threading.Thread(target=self._loop, name="benchmark-rss", daemon=True)

    def _rss(self):
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * self._page

    def _loop(self):
        while not self._stop.wait(self.INTERVAL):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth(self):
        return self.peak - self.start


class Bench:
    """The phases of one benchmark run and their measured rows."""

    def __init__(self, args, registry, sandbox, connection_id, seeded):
        self.args, self.registry, self.sandbox, self.connection_id = args, registry, sandbox, connection_id
        self.rows = []
        self.listings = None
        from odoo.addons.sage_business_cloud.services.sage_api import INVOICE_RESOURCES
        self.counts = {name: seeded[name] for name in ("contacts", *INVOICE_RESOURCES.values())}
        self.pages = sum(math.ceil(count / PAGE) for count in self.counts.values())

    def env(self, cr):
        from odoo import SUPERUSER_ID, api
        return api.Environment(cr, SUPERUSER_ID, {})

    def set_latency(self, latency):
        self.sandbox.clear_faults()
        if latency:
            self.sandbox.add_fault(delay=latency)

    def add_row(self, phase, seconds, requests, queries, memory, pages, note=""):
        self.rows.append({"phase": phase, "seconds": seconds, "requests": requests, "queries": queries,
                          "memory": memory, "pages": pages, "note": note})
        return self.rows[-1]

    # -- floor ---------------------------------------------------------------

    def read_pages(self, client):
        """Read the first import's listings; return (contacts pages, {kind: document pages})."""
        from odoo.addons.sage_business_cloud.services import sage_api

        contacts = list(client.iter_pages("contacts", attributes=list(sage_api.CONTACT_ATTRIBUTES),
                                          items_per_page=PAGE))
        # every kind of document: invoices, credit notes, quotes, estimates
        invoices = {
            kind: list(client.iter_pages(resource, attributes=list(sage_api.DOCUMENT_ATTRIBUTES[kind]),
                                         items_per_page=PAGE))
            for kind, resource in sage_api.INVOICE_RESOURCES.items()
        }
        return contacts, invoices

    def measure_read(self, label, settings, latency):
        self.set_latency(latency)
        try:
            client = plain_client(settings, self.sandbox.business_ids()[0])
            self.sandbox.clear_requests()
            with MemoryPeak() as memory:
                begin = time.perf_counter()
                contacts, invoices = self.read_pages(client)
                seconds = time.perf_counter() - begin
        finally:
            self.set_latency(0)
        pages = len(contacts) + sum(len(p) for p in invoices.values())
        self.add_row(label, seconds, self.sandbox.request_log()["total"], 0, memory.growth, pages)
        return contacts, invoices

    def measure_create(self, contacts, invoices):
        """One batch create of the partners, their children and the invoice rows; rolled back."""
        from odoo.addons.sage_business_cloud.models.sage_sync import SYNC_CONTEXT
        from odoo.addons.sage_business_cloud.services.sage_mapping import MappingError, contact_values, invoice_values

        with self.registry.cursor() as cr:
            env = self.env(cr)
            connection = env["sage.connection"].browse(self.connection_id)
            # as the engine creates them: without Odoo's per-record parent/children sync
            Partner = env["res.partner"].with_context(**SYNC_CONTEXT, _partners_skip_fields_sync=True)
            queries_before = cr.sql_log_count
            with MemoryPeak() as memory:
                begin = time.perf_counter()
                cr.execute("SELECT upper(code), id FROM res_country WHERE code IS NOT NULL")
                countries = dict(cr.fetchall())
                cr.execute("SELECT upper(name), id FROM res_currency")
                currencies = dict(cr.fetchall())
                vals_list, children = [], []
                team = connection.default_team_id.id or False
                for page in contacts:
                    for contact in page:
                        try:
                            values, kids = contact_values(contact, countries)
                        except MappingError:
                            continue
                        # Other Sage ids than the import's (whose partners exist already).
                        vals_list.append({**values, "team_id": team, "sage_contact_id": "floor-" + contact["id"],
                                          "contact": contact})
                        children.append(kids)
                known = Partner._fields
                created = Partner.create([{k: v for k, v in vals.items() if k in known and k != "sage_contact_id"}
                                          for vals in vals_list])
                Binding = env["sage.binding"]
                Binding.create([
                    Binding._sage_bind_values(connection, partner.id, dict(vals["contact"], id=vals["sage_contact_id"]),
                                              "imported")
                    for vals, partner in zip(vals_list, created, strict=True)])
                # The children as the engine makes them: what they inherit from their parent given
                # at create, instead of Odoo's write per child (``_partners_skip_fields_sync``).
                inherit = env["sage.sync"]._child_inherited_values(created)
                child_vals = [{**child, **inherit[partner.id][child.get("type") == "contact"],
                               "parent_id": partner.id}
                              for partner, kids in zip(created, children, strict=True) for child in kids]
                if child_vals:
                    Partner.create(child_vals)
                by_sage_id = {vals["sage_contact_id"]: partner.id
                              for vals, partner in zip(vals_list, created, strict=True)}
                rows = []
                for invoice_type, pages in invoices.items():
                    for page in pages:
                        for invoice in page:
                            try:
                                values = invoice_values(invoice, invoice_type, currencies)
                            except MappingError:
                                continue
                            partner_id = by_sage_id.get("floor-" + (values["sage_contact_id"] or ""))
                            if partner_id:
                                rows.append({**values, "sage_id": "floor-" + values["sage_id"],
                                             "partner_id": partner_id, "connection_id": connection.id})
                env["sage.invoice"].create(rows)
                env.flush_all()
                seconds = time.perf_counter() - begin
            queries = cr.sql_log_count - queries_before
            cr.rollback()
        pages = len(contacts) + sum(len(p) for p in invoices.values())
        self.add_row("floor: one batch create (rolled back)", seconds, 0, queries, memory.growth, pages,
                     f"{len(created) + len(child_vals)} partners, {len(rows)} invoice rows")

    def settle_database(self):
        """``VACUUM ANALYZE`` the database, so that the phase measured next does not share the
        machine with an autovacuum of the rows the previous phase wrote, nor plan with stale
        statistics: both the engine and the floor start from a settled database."""
        import psycopg2

        from odoo.sql_db import connection_info_for

        _name, params = connection_info_for(self.args.db)
        connection = psycopg2.connect(**params)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        finally:
            connection.close()

    def measure_floor(self):
        self.settle_database()
        with self.registry.cursor() as cr:
            settings = self.env(cr)["sage.connection"].browse(self.connection_id)._get_sage_settings()
        contacts, invoices = self.measure_read("floor: read the pages, no latency", settings, 0)
        if self.args.latency:
            self.measure_read(f"floor: read the pages, {self.args.latency * 1000:.0f} ms latency", settings,
                              self.args.latency)
        read = self.rows[-1] if not self.args.latency else self.rows[-2]
        self.measure_create(contacts, invoices)
        del contacts, invoices
        create = self.rows[-1]
        return self.add_row("floor (local read + create)", read["seconds"] + create["seconds"], read["requests"],
                            create["queries"], max(read["memory"], create["memory"]), read["pages"])

    # -- engine --------------------------------------------------------------

    def count_listings(self):
        """How many listings an incremental run reads (its floor of requests: one each)."""
        from odoo.addons.sage_business_cloud.services.sage_api import NO_DELETED_LISTING
        with self.registry.cursor() as cr:
            connection = self.env(cr)["sage.connection"].browse(self.connection_id)
            since = self.env(cr)["sage.sync"]._listed_since(connection)
        # each listing changed since its watermark, and its deleted listing where Sage has one
        self.listings = sum(1 if kind in NO_DELETED_LISTING or kind == "payments" else 2 for kind in since)

    def measure_run(self, label, profile=None):
        self.sandbox.clear_requests()
        with self.registry.cursor() as cr:
            env = self.env(cr)
            connection = env["sage.connection"].browse(self.connection_id)
            queries_before = cr.sql_log_count
            profiler = None
            if profile:
                from pyinstrument import Profiler
                profiler = Profiler(interval=0.002)
            with MemoryPeak() as memory:
                if profiler:
                    profiler.start()
                begin = time.perf_counter()
                run = connection._run_sync(trigger="script")
                seconds = time.perf_counter() - begin
                if profiler:
                    profiler.stop()
            queries = cr.sql_log_count - queries_before
            cr.commit()
            pages = math.ceil(run.contacts_read / PAGE) + math.ceil(run.invoices_read / PAGE)
            log = self.sandbox.request_log()
            row = self.add_row(label, seconds, log["total"], queries, memory.growth, max(1, pages),
                               f"{run.state} in {run.duration:.2f} s (recorded); "
                               f"read {run.contacts_read}, linked {run.contacts_linked}, "
                               f"created {run.contacts_created}, invoices {run.invoices_read}; "
                               f"client requests {run.http_requests}, waited for Sage {run.wait_seconds:.1f} s; "
                               f"{repeated_reads(log)} read twice; "
                               f"{describe_calls(log)}")
            row["duration"] = run.duration
        if profiler:
            Path(profile).write_text(profiler.output_text(unicode=True, color=False, show_all=False)
                                     + "\n" + profile_summary(profiler.last_session.root_frame(), seconds))
            print(f"profile of the {label} run written to {profile}")
        return row


def profile_summary(root, seconds, top=40):
    """Functions by own time and by inclusive time (counted once per stack), as text."""
    own, inclusive = {}, {}

    def walk(frame, on_stack):
        if frame.is_synthetic:  # "[self]" leaves: already in their parent's own time
            return
        key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        own[key] = own.get(key, 0.0) + frame.total_self_time
        if key not in on_stack:
            inclusive[key] = inclusive.get(key, 0.0) + frame.time
        for child in frame.children:
            walk(child, on_stack | {key})

    walk(root, frozenset())
    lines = []
    for title, table in (("own time", own), ("inclusive time", inclusive)):
        lines.append(f"top {top} functions by {title} (share of {seconds:.1f} s)")
        for key, value in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"  {value:8.2f} s {100 * value / seconds:5.1f} %  {key}")
    return "\n".join(lines) + "\n"


def repeated_reads(log):
    """GET calls of the log that asked for a page already asked for (same path and query)."""
    seen, repeats = set(), 0
    for entry in log["log"]:
        if entry["method"] != "GET":
            continue
        key = (entry["path"], entry["query"])
        repeats += key in seen
        seen.add(key)
    return repeats


def describe_calls(log):
    return ", ".join(f"{path} {count}" for path, count in sorted(log["by_path"].items()))


def print_table(bench, floor):
    others = sum(count for name, count in bench.counts.items()
                 if name not in ("contacts", "sales_invoices", "purchase_invoices"))
    print(f"\nSage data: {bench.counts['contacts']} contacts, {bench.counts['sales_invoices']} sales and "
          f"{bench.counts['purchase_invoices']} purchase invoices, {others} credit notes, quotes and estimates "
          f"= {bench.pages} pages of {PAGE}; "
          f"latency {bench.args.latency * 1000:.0f} ms, prefetch {bench.args.prefetch or 'default'}")
    header = (f"{'phase':44} {'seconds':>8} {'requests':>8} {'SQL':>7} {'SQL/page':>8} {'mem MB':>7} "
              f"{'x floor':>7}  note")
    print(header)
    print("-" * len(header))
    for row in bench.rows:
        ratio = f"{row['seconds'] / floor['seconds']:7.2f}" if floor else f"{'n/a':>7}"
        per_page = f"{row['queries'] / row['pages']:8.1f}" if row["queries"] else f"{'':8}"
        print(f"{row['phase']:44} {row['seconds']:8.1f} {row['requests']:8} {row['queries']:7} {per_page} "
              f"{row['memory'] / MB:7.1f} {ratio}  {row['note']}")


def print_goals(bench, first, idle, floor):
    latency = bench.args.latency
    ratio = first["seconds"] / floor["seconds"] if floor else None
    checks = [
        (f"{ratio:.2f} x" if ratio and not latency else "not measured (run without --latency)",
         ratio <= 1.5 if ratio and not latency else None),
        (f"{ratio:.2f} x at {latency * 1000:.0f} ms" if ratio and latency else "not measured (run with --latency 0.3)",
         ratio <= 1.6 if ratio and latency and abs(latency - 0.3) < 1e-9 else None),
        (f"{first['requests']} for {bench.pages} pages", first["requests"] <= bench.pages + 5),
        (f"{first['queries'] / bench.pages:.1f} a page", first["queries"] / bench.pages <= 25),
        (f"{first['memory'] / MB:.0f} MB", first["memory"] <= 150 * MB),
        (f"{idle['requests']} requests for {bench.listings} listings, {idle['duration']:.2f} s recorded",
         idle["requests"] <= bench.listings and idle["duration"] <= 1.0),
    ]
    print("\ngoals (issue 15)")
    for label, (measured, met) in zip(GOALS, checks, strict=True):
        verdict = "n/a" if met is None else ("met" if met else "NOT met")
        print(f"  {label:56} {measured:34} {verdict}")


def connect(connection, business_ids):
    """``sandbox_link.connect``, with the token and businesses committed before the business is
    selected."""
    from odoo.addons.sage_business_cloud.services.sage_client import SageOAuth
    from tools import sandbox_link

    oauth = SageOAuth(connection._get_sage_settings())
    url, verifier = oauth.authorization_url("benchmark")
    code = sandbox_link.authorize_code(url)["code"]
    connection._store_token(oauth.fetch_token(code, code_verifier=verifier))
    connection.sudo().available_businesses = [{"id": bid, "name": bid} for bid in business_ids]
    connection.env.cr.commit()
    connection._select_business(business_ids[0])


def plain_client(settings, business_id):
    """A client of its own grant (no ORM, no refresh handler): it never spends the connection's
    refresh token."""
    from odoo.addons.sage_business_cloud.services.sage_client import SageClient, SageOAuth
    from tools import sandbox_link

    oauth = SageOAuth(settings)
    url, verifier = oauth.authorization_url("benchmark")
    code = sandbox_link.authorize_code(url)["code"]
    token = oauth.fetch_token(code, code_verifier=verifier)
    # ``--prefetch`` is the class default already (see ``main``).
    return SageClient(settings, token, business_id=business_id)


def sage_contacts(client, limit):
    """The first ``limit`` contacts of the Sage listing (ids and names), through the API."""
    found = []
    for page in client.iter_pages("contacts", attributes=["name"], items_per_page=PAGE):
        found.extend(page)
        if len(found) >= limit:
            break
    return found[:limit]


def main():
    args = parse_args()
    addons, pg = build_database(args.db)

    import odoo
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    odoo.tools.config.parse_config(["-d", args.db, f"--addons-path={addons}", *pg, "--log-level=warn"])
    from odoo.addons.sage_business_cloud.services import sage_client
    from tools import sandbox_link
    from tools.sandbox_process import SandboxProcess

    if args.prefetch is not None:
        # The engine builds its own client (sage.connection._get_client): set the default.
        sage_client.SageClient.prefetch = args.prefetch
    started = time.perf_counter()
    sandbox = SandboxProcess("odoo-test-client", "odoo-test-secret").start()
    try:
        seeded = sandbox.seed(args.contacts, args.invoices, args.seed)
        business = sandbox.business_ids()[0]
        print(f"sandbox (process of its own) seeded with {args.contacts} contacts and {args.invoices} invoices "
              f"in {time.perf_counter() - started:.1f} s")
        registry = Registry(args.db)
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            sandbox_link.configure_sandbox_params(env, sandbox.base_url, "odoo-test-client", "odoo-test-secret")
            env["ir.config_parameter"].set_param("web.base.url", "http://localhost:8069")
            connection = env["sage.connection"]._get_for_company(env.company)
            cr.commit()
            connect(connection, sandbox.business_ids())
            client = plain_client(connection._get_sage_settings(), business)
            names = [c["name"] for c in sage_contacts(client, args.matches)]
            env["res.partner"].create([{"name": name, "is_company": True} for name in names])
            cr.commit()
            connection_id = connection.id
        bench = Bench(args, registry, sandbox, connection_id, seeded)
        bench.set_latency(args.latency)
        bench.settle_database()
        first = bench.measure_run("first import", profile=args.profile)
        bench.count_listings()
        idle = bench.measure_run("incremental, nothing new", profile=args.profile_idle)
        bench.set_latency(0)
        for contact in sage_contacts(client, 25):
            client.update("contacts", contact["id"], {"notes": "touched by the benchmark"})
        bench.set_latency(args.latency)
        bench.measure_run("incremental, 25 contacts edited")
        print_table(bench, None)
        # Last: the floor's batch create grows the process by hundreds of MB, which Python keeps;
        # measured first, it would hide the import's own memory growth.
        floor = None if args.no_floor else bench.measure_floor()
    finally:
        sandbox.stop()
    print_table(bench, floor)
    print_goals(bench, first, idle, floor)

if __name__ == "__main__":
    main()
