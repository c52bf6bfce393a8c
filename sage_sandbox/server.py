"""HTTP transport (standard-library ``ThreadingHTTPServer``), controls, faults and state persistence."""

import json
import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from .app import Request, Response, SandboxApp, json_response
from .artefacts import ARTEFACT_RESOURCES
from .clock import Clock
from .errors import ApiError, invalid, not_found
from .faults import FaultInjector, RequestLog
from .oauth import DEFAULT_REDIRECT_URIS, OAuthConfig, OAuthServer
from .seed import DAY, seed_business
from .store import Store, write_text_atomic

LOG = logging.getLogger("sage_sandbox")
FAULT_CODES = {429: ("TooManyRequests", "Rate limit exceeded"), 500: ("UnexpectedError", "Unexpected error"),
               502: ("BadGateway", "Bad gateway"), 503: ("ServiceUnavailable", "Service temporarily unavailable")}
SAVE_INTERVAL = 0.5
# run-time switches (``configure`` / ``/_sandbox/config``) and their allowed values
SETTINGS = {"nested_put": ("merge", "replace"),
            # whether a document or payment that moves a contact's balance bumps the contact's own
            # ``updated_at`` (Sage does not say; "no" is what the sandbox did first)
            "balance_changes_contact": ("no", "yes")}


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, applies faults, lets the app answer and logs the call."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; avoid 40 ms stalls
    server_version = "SageSandbox/1.0"

    def _dispatch(self):
        sandbox = self.server.sandbox
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                      {k.lower(): v for k, v in self.headers.items()}, body)
        controlled = url.path.startswith("/_sandbox/")
        rule = None if controlled else sandbox.faults.pick(req.method, req.path, req.query)
        if rule and rule.delay:
            time.sleep(float(rule.delay))
        if rule and rule.drop:
            sandbox.requests.record(req.method, req.path, url.query, None)
            self.close_connection = True
            return
        if rule and rule.status:
            code, message = FAULT_CODES[rule.status]
            headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
            response = json_response(rule.status, ApiError(rule.status, code, message).body(), headers)
        else:
            with sandbox.store.lock:
                response = sandbox.app.handle(req)
        if rule and rule.lose_answer:
            sandbox.requests.record(req.method, req.path, url.query, response.status, answer_lost=True)
            self.close_connection = True
            return
        if rule and (rule.malformed or rule.alters):
            response = _faulty(rule, response)
        if not controlled:
            sandbox.requests.record(req.method, req.path, url.query, response.status)
        self._send(response)

    def _send(self, response):
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def log_message(self, fmt, *args):
        """Route access logs to the ``sage_sandbox`` logger (silenced by ``--quiet``)."""
        LOG.info("%s %s", self.address_string(), fmt % args)


def _faulty(rule, response):
    """The answer of a ``malformed`` or ``mutate``/``remove`` rule, built from the real one."""
    if rule.malformed:
        body = response.body if response.body.strip() else b'{"$items": [{"id": "'
        return Response(200, body[:max(1, len(body) // 2)], {**response.headers,
                                                              "Content-Type": "application/json; charset=utf-8"})
    if 200 <= response.status < 300 and response.body and "json" in response.headers.get("Content-Type", ""):
        payload = rule.alter(json.loads(response.body))
        return Response(response.status, json.dumps(payload).encode("utf-8"), dict(response.headers))
    return response


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog is 5: a client opening a dozen connections at once (the
    # addon asks for the first page of every listing together) would see the surplus SYNs
    # dropped and retried by the kernel a second later. Sage's servers take them at once.
    request_queue_size = 128


class SandboxServer:
    """A local stand-in for Sage Business Cloud Accounting (UK, API v3.1).

    ``start()`` serves in a background thread; ``store`` gives in-process access to the data.
    """

    def __init__(self, host="127.0.0.1", port=0, contacts=0, invoices=0, seed=1, auto_approve=True,
                 client_id="sandbox-client-id", client_secret="sandbox-client-secret", redirect_uris=None,
                 access_token_ttl=300, refresh_token_ttl=2678400, code_ttl=60, businesses=1, state_file=None,
                 nested_put="merge", balance_changes_contact="no"):
        self.host, self.port = host, port
        self.businesses = max(1, int(businesses))
        self.state_file = state_file
        self.clock = Clock()
        self.store = Store(self.clock)
        self.defaults = self._checked_settings({"nested_put": nested_put,
                                                "balance_changes_contact": balance_changes_contact})
        self._apply_settings(self.defaults)
        config = OAuthConfig(client_id=client_id, client_secret=client_secret,
                             redirect_uris=tuple(redirect_uris or DEFAULT_REDIRECT_URIS),
                             access_token_ttl=access_token_ttl, refresh_token_ttl=refresh_token_ttl,
                             code_ttl=code_ttl, auto_approve=auto_approve)
        self.oauth = OAuthServer(config, self.clock, self.store.user_id)
        self.faults = FaultInjector()
        self.requests = RequestLog()
        self.app = SandboxApp(self.store, self.oauth, self)
        self._httpd = None
        self._threads = []
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        if state_file and os.path.exists(state_file):
            self.load_state(state_file)
        else:
            self.seed(contacts=contacts, invoices=invoices, seed=seed)
        self.store.on_change = self.changed

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self):
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self):
        """Bind, serve in a background thread and return once listening."""
        self._httpd = _HTTPServer((self.host, self.port), _Handler)
        self._httpd.sandbox = self
        self.port = self._httpd.server_address[1]
        self.store.base_url = self.base_url
        self._stopping.clear()
        self._threads = [threading.Thread(target=self._httpd.serve_forever, name="sage-sandbox", daemon=True)]
        if self.state_file:
            self._threads.append(threading.Thread(target=self._save_loop, name="sage-sandbox-state", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def serve_forever(self):
        """Start (unless already started) and block until interrupted (used by the CLI)."""
        if self._httpd is None:
            self.start()
        try:
            while self._threads[0].is_alive():
                self._threads[0].join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self):
        """Stop serving and write the state file one last time."""
        self._stopping.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for thread in self._threads:
            thread.join(5)
        self._threads = []
        if self.state_file:
            self.save_state()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ persistence
    def changed(self):
        """Note a mutation; the state file is rewritten within ``SAVE_INTERVAL`` seconds."""
        self._dirty.set()

    def _save_loop(self):
        while not self._stopping.wait(SAVE_INTERVAL):
            if self._dirty.is_set():
                self.save_state()

    def save_state(self, path=None):
        """Write data, OAuth grants and the clock offset to the state file."""
        path = path or self.state_file
        with self.store.lock:
            self._dirty.clear()
            text = json.dumps({"store": self.store.dump(), "oauth": self.oauth.dump()}, separators=(",", ":"))
        write_text_atomic(path, text)

    def load_state(self, path):
        """Load a state file written by :meth:`save_state`."""
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
        self.store.load(payload["store"])
        self.oauth.load(payload.get("oauth", []))

    # ------------------------------------------------------------------ settings
    @staticmethod
    def _checked_settings(settings):
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name, value in settings.items():
            if value not in SETTINGS[name]:
                raise ValueError(f"{name} must be one of {', '.join(SETTINGS[name])}")
        return dict(settings)

    def settings(self):
        """Current behaviour switches (``{"nested_put": "merge"|"replace", ...}``, see ``SETTINGS``)."""
        return {name: getattr(self.store, name) for name in SETTINGS}

    def _apply_settings(self, settings):
        for name, value in settings.items():
            setattr(self.store, name, value)

    def configure(self, **settings):
        """Change behaviour switches at run time; ``reset()`` and ``seed()`` restore the start values."""
        settings = self._checked_settings(settings)
        with self.store.lock:
            self._apply_settings(settings)
        return self.settings()

    def set_nested_put(self, mode):
        """``merge``: a nested object in PUT /contacts updates the given sub-fields only; ``replace``:
        it replaces the stored one whole (sub-fields not given become null)."""
        return self.configure(nested_put=mode)

    # ------------------------------------------------------------------ control operations
    def reset(self):
        """Empty every business and restore the start settings (keeps OAuth grants, faults, request log)."""
        with self.store.lock:
            self.store.reset(self.businesses)
            self._apply_settings(self.defaults)

    def seed(self, contacts=0, invoices=0, seed=1):
        """Reset, then generate ``contacts``/``invoices`` in the lead business (deterministic per seed)."""
        with self.store.lock:
            self.store.reset(self.businesses)
            self._apply_settings(self.defaults)
            anchor = self.clock.now() // DAY * DAY
            seed_business(self.store, self.store.business(), int(contacts), int(invoices), seed, anchor)

    def expire_access_tokens(self):
        """Make every issued access token expired."""
        with self.store.lock:
            self.oauth.expire_access_tokens()

    def revoke_grants(self):
        """Invalidate every grant (refresh and access tokens)."""
        with self.store.lock:
            self.oauth.revoke_grants()
            self.changed()

    def time_shift(self, seconds):
        """Move the sandbox clock (token expiry, timestamps of new changes)."""
        with self.store.lock:
            self.clock.shift(seconds)
            self.changed()

    def add_fault(self, **spec):
        """Add a fault rule (see :class:`sage_sandbox.faults.FaultRule`)."""
        return self.faults.add(spec)

    def clear_faults(self):
        """Remove all fault rules."""
        self.faults.clear()

    def request_log(self):
        """Snapshot of the request log."""
        return self.requests.snapshot()

    def clear_requests(self):
        """Forget recorded requests."""
        self.requests.clear()

    def control(self, req):
        """Answer a ``/_sandbox/...`` request (JSON in, JSON out; no OAuth)."""
        name, method = req.path[len("/_sandbox/"):].strip("/"), req.method
        data = req.json() if method == "POST" else {}
        if not isinstance(data, dict):
            raise invalid("Control bodies must be JSON objects")
        if (name, method) == ("reset", "POST"):
            self.reset()
        elif (name, method) == ("seed", "POST"):
            self.seed(data.get("contacts", 0), data.get("invoices", 0), data.get("seed", 1))
            biz = self.store.business()
            return json_response(200, {"business_id": biz.id, **{
                n: len(biz.collections[n].items) for n in ("contacts", *ARTEFACT_RESOURCES, "contact_allocations")}})
        elif name == "faults":
            if method == "POST":
                try:
                    rule = self.faults.add(data)
                except (TypeError, ValueError) as exc:
                    raise invalid(str(exc)) from None
                return json_response(201, rule.as_json())
            if method == "DELETE":
                self.clear_faults()
            elif method != "GET":
                raise not_found("Control")
            return json_response(200, {"faults": self.faults.snapshot()})
        elif name == "config" and method in ("GET", "POST"):
            if method == "POST":
                try:
                    self.configure(**data)
                except ValueError as exc:
                    raise invalid(str(exc)) from None
            return json_response(200, self.settings())
        elif name == "requests" and method in ("GET", "DELETE"):
            if method == "DELETE":
                self.clear_requests()
            return json_response(200, self.request_log())
        elif (name, method) == ("expire_access_tokens", "POST"):
            self.expire_access_tokens()
        elif (name, method) == ("revoke_grants", "POST"):
            self.revoke_grants()
        elif (name, method) == ("time_shift", "POST"):
            self.time_shift(float(data.get("seconds", 0)))
            return json_response(200, {"success": "ok", "offset": self.clock.offset})
        elif (name, method) == ("state", "GET"):
            return json_response(200, {"businesses": self.store.business_ids(), "version": self.store.version})
        else:
            raise not_found("Control")
        return json_response(200, {"success": "ok"})


def configure_logging(quiet):
    """Log access lines to stderr unless ``quiet``."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(message)s")


__all__ = ["SandboxServer", "configure_logging"]
