"""Run ``python -m sage_sandbox`` in a process of its own and drive it over its control routes.

The benchmark uses it so that the sandbox's work (building and encoding pages, its delays) runs
beside Odoo, as real Sage does on its own servers, instead of competing with Odoo for one
interpreter. Everything goes through HTTP: ``/_sandbox/...`` for seeding, faults and the request
log, the public API for the rest.
"""

import re
import subprocess
import sys
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (http://\S+)")


class SandboxProcess:
    """A sandbox child process; ``start()`` returns once it listens, ``stop()`` ends it."""

    def __init__(self, client_id, client_secret, startup_timeout=60):
        self.client_id, self.client_secret = client_id, client_secret
        self.startup_timeout = startup_timeout
        self.base_url = None
        self._process = None
        self._http = requests.Session()

    def start(self):
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sage_sandbox", "--host", "127.0.0.1", "--port", "0", "--quiet",
             "--auto-approve", "--client-id", self.client_id, "--client-secret", self.client_secret],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        line = self._process.stdout.readline()
        found = LISTENING.search(line)
        if not found:
            self.stop()
            raise RuntimeError(f"the sandbox did not start: {line.strip() or 'no output'}")
        self.base_url = found.group(1)
        return self

    def stop(self):
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process and self._process.stdout:
            self._process.stdout.close()
        self._process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def control(self, method, name, payload=None, timeout=30):
        answer = self._http.request(method, f"{self.base_url}/_sandbox/{name}", json=payload, timeout=timeout)
        answer.raise_for_status()
        return answer.json()

    def seed(self, contacts, invoices, seed):
        """Seed the lead business; return the number of records of each resource and its id."""
        return self.control("POST", "seed", {"contacts": contacts, "invoices": invoices, "seed": seed},
                            timeout=600)

    def business_ids(self):
        return self.control("GET", "state")["businesses"]

    def add_fault(self, **spec):
        return self.control("POST", "faults", spec)

    def clear_faults(self):
        self.control("DELETE", "faults")

    def request_log(self):
        return self.control("GET", "requests")

    def clear_requests(self):
        self.control("DELETE", "requests")
