"""With queue_job: the cron and Sync now queue one sync job per company, an edit queues one push
job per binding, and a push job keeps the core's backoff and its list of pushes that failed."""

from datetime import timedelta

from odoo import fields
from odoo.tools.safe_eval import safe_eval

from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.sage_business_cloud.models.sage_binding_push import RETRY_MINUTES
from odoo.addons.sage_business_cloud.tests.common import SageTransactionCase
from odoo.addons.sage_business_cloud.tests.test_export import ExportHelpers

from ..jobs import CHANNEL, push_key, sync_key


class JobHelpers(ExportHelpers):

    def jobs(self, method):
        return self.env["queue.job"].sudo().search([("method_name", "=", method)], order="id")

    @staticmethod
    def raised(call):
        """What ``call()`` raised (Odoo's assertRaises would roll back what it wrote)."""
        try:
            call()
        except Exception as error:  # noqa: BLE001 - returned to the test
            return error
        return None

    def cron_triggers(self, xmlid):
        cron = self.env.ref(xmlid)
        return self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)])


class TestSyncJobs(JobHelpers, SageTransactionCase):

    def test_sync_now_queues_one_job_per_company_and_no_second_one(self):
        other = self.env["res.company"].create({"name": "Second Company Ltd"})
        second = self.env["sage.connection"]._get_for_company(other)
        self.connect_to_sandbox(second, self.sandbox.store.business_ids()[1])
        both = self.connection | second
        triggers = self.cron_triggers("sage_business_cloud.ir_cron_sage_sync")

        both.action_sync_now()
        both.action_sync_now()  # a second click while the jobs wait

        jobs = self.jobs("_sage_sync_job")
        self.assertEqual(len(jobs), 2, "one job per company, not one per click")
        self.assertEqual(set(jobs.mapped("identity_key")), {sync_key(c) for c in both})
        self.assertEqual(set(jobs.mapped("channel")), {CHANNEL})
        self.assertEqual(set(jobs.mapped("company_id")), set(both.company_id))
        self.assertEqual(self.cron_triggers("sage_business_cloud.ir_cron_sage_sync"), triggers,
                         "with jobs, Sync now does not wake the cron")
        self.assertFalse(self.env["sage.sync.run"].search([("connection_id", "in", both.ids)]),
                         "nothing ran in the caller's request")

    def test_the_cron_fans_out_and_a_job_runs_the_sync(self):
        self.sandbox.seed(contacts=5, invoices=0)
        self.connection.first_import_mode = "auto"  # no preview first: the cron may import
        self.env["sage.connection"]._cron_sync()
        job = self.jobs("_sage_sync_job")
        self.assertEqual(len(job), 1)
        self.assertEqual(list(job.args), ["cron"])
        self.env["sage.connection"]._cron_sync()
        self.assertEqual(len(self.jobs("_sage_sync_job")), 1, "the waiting job is not doubled")

        self.connection._sage_sync_job("cron")
        run = self.env["sage.sync.run"].search([("connection_id", "=", self.connection.id)])
        self.assertEqual((run.trigger, run.state, run.contacts_created), ("cron", "done", 5))

    def test_a_disconnected_company_is_left_alone(self):
        self.connection.action_disconnect()
        self.assertEqual(self.connection._sage_sync_job("cron"), "not connected: nothing to sync")
        self.assertFalse(self.env["sage.sync.run"].search([("connection_id", "=", self.connection.id)]))

    def test_without_delay_the_core_way_applies(self):
        self.sandbox.seed(contacts=3, invoices=0)
        self.connection.first_import_mode = "auto"  # no preview first: the cron may import
        self.env["sage.connection"].with_context(queue_job__no_delay=True)._cron_sync()
        self.assertFalse(self.jobs("_sage_sync_job"))
        run = self.env["sage.sync.run"].search([("connection_id", "=", self.connection.id)])
        self.assertEqual((run.state, run.contacts_created), ("done", 3))


class TestPushJobs(JobHelpers, SageTransactionCase):

    def setUp(self):
        super().setUp()
        self.company = self.make_company()
        self.company.action_export_to_sage()
        self.binding = self.company.sage_binding_id.sudo()
        self.contact_path = "/v3.1/contacts/" + self.binding.sage_contact_id
        self.jobs("_sage_push_job").unlink()

    def test_retry_pattern_is_the_push_crons_backoff(self):
        function = self.env.ref("sage_business_cloud_queue.job_function_sage_push")
        pattern = {int(tries): seconds for tries, seconds in function.retry_pattern.items()}
        self.assertEqual(pattern, {1: 60, 2: 120, 3: 300, 4: 600, 5: 1800, 6: 3600})
        self.assertEqual(pattern, {n: minutes * 60 for n, minutes in enumerate(RETRY_MINUTES, 1)})
        self.assertEqual(function.channel, CHANNEL)
        self.assertEqual(self.env.ref("sage_business_cloud_queue.job_function_sage_sync").channel, CHANNEL)

    def test_an_edit_queues_one_job_per_binding_that_pushes_once(self):
        triggers = self.cron_triggers("sage_business_cloud.ir_cron_sage_push")
        self.company.write({"name": "Acme Renamed Ltd"})
        self.company.write({"city": "Leeds"})
        job = self.jobs("_sage_push_job")
        self.assertEqual(len(job), 1, "two edits before the push: one job")
        self.assertEqual((job.identity_key, job.channel, job.max_retries), (push_key(self.binding), CHANNEL, 0))
        self.assertEqual(self.cron_triggers("sage_business_cloud.ir_cron_sage_push"), triggers)

        self.sandbox.clear_requests()
        self.env.flush_all()
        self.binding._sage_push_job()
        self.assertEqual(self.requests_to("/v3.1/"), {"GET " + self.contact_path: 1, "PUT " + self.contact_path: 1})
        self.assertEqual(self.company.sage_push_state, "synced")
        self.assertEqual(self.sage_contact(self.company)["main_address"]["city"], "Leeds")
        self.assertEqual(self.binding._sage_push_job(), "nothing to send")

    def test_sage_down_retries_on_the_backoff_and_a_new_edit_comes_forward(self):
        self.sandbox.add_fault(status=503, path=self.contact_path)
        self.company.name = "Acme Renamed Ltd"
        self.env.flush_all()
        self.assertIsInstance(self.raised(self.binding._sage_push_job), RetryableJobError)
        self.assertEqual(self.company.sage_push_state, "pending")
        self.assertEqual(self.company.sage_push_attempts, 1)
        self.assertIn("could not be reached", self.company.sage_push_error)
        failed = self.env.ref("sage_business_cloud.res_partner_action_sage_push_failed")
        self.assertIn(self.company, self.Partner.search(safe_eval(failed.domain)))

        # the job as queue_job leaves it after a retry: pending, due in a minute, tried once
        job = self.jobs("_sage_push_job")
        job.write({"eta": fields.Datetime.now() + timedelta(minutes=1), "retry": 1})
        self.env["sage.binding"]._cron_sage_push()
        self.assertEqual((len(self.jobs("_sage_push_job")), bool(job.eta)), (1, True),
                         "the catch-up cron neither doubles nor hurries a postponed job")
        self.company.city = "Leeds"  # a new edit: sent at once, as the push cron would
        self.assertEqual((job.eta, job.retry), (False, 0))

        self.sandbox.clear_faults()
        self.env.flush_all()
        self.binding._sage_push_job()
        self.assertEqual(self.company.sage_push_state, "synced")
        self.assertEqual(self.sage_contact(self.company)["name"], "Acme Renamed Ltd")

    def test_refused_by_sage_is_an_error_and_retry_queues_again(self):
        self.company.name = "Z" * 120
        self.env.flush_all()
        self.binding._sage_push_job()
        self.assertEqual(self.company.sage_push_state, "error")
        self.assertIn("name is too long", self.company.sage_push_error)
        self.jobs("_sage_push_job").unlink()
        self.company.name = "Acme Fixed Ltd"
        self.assertEqual(len(self.jobs("_sage_push_job")), 1)

    def test_an_unexpected_failure_lists_the_push_as_failed(self):
        self.company.name = "Acme Renamed Ltd"
        self.env.flush_all()
        binding_model = type(self.env["sage.binding"])

        def broken(self, services):
            raise ValueError("boom")

        original = binding_model._sage_push_one
        binding_model._sage_push_one = broken
        try:
            self.assertIsInstance(self.raised(self.binding._sage_push_job), ValueError)
        finally:
            binding_model._sage_push_one = original
        self.assertEqual(self.company.sage_push_state, "error")
        self.assertIn("boom", self.company.sage_push_error)

    def test_catch_up_cron_queues_pending_bindings_without_a_job(self):
        self.binding.write({"push_state": "pending"})
        self.env["sage.binding"]._cron_sage_push()
        self.env["sage.binding"]._cron_sage_push()
        self.assertEqual(len(self.jobs("_sage_push_job")), 1)
