"""Local stand-in for the Sage Business Cloud Accounting UK API v3.1 (OAuth, contacts, invoices).

Usage::

    from sage_sandbox import SandboxServer
    srv = SandboxServer(port=0, contacts=50, invoices=200).start()
    ...  # talk to srv.base_url
    srv.stop()
"""

from .server import SandboxServer

__all__ = ["SandboxServer"]
