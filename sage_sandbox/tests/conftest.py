"""Shared fixtures: sandbox servers on free ports and OAuth helpers talking real HTTP."""

import pytest
import requests

from sage_sandbox import SandboxServer
from sage_sandbox.tests.helpers import authorized_session


@pytest.fixture(scope="module")
def server():
    """A seeded sandbox (60 contacts, 300 invoices, 2 businesses) shared by a test module."""
    srv = SandboxServer(port=0, contacts=60, invoices=300, seed=7, businesses=2)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture()
def api(server):
    """A ``requests`` session with a fresh bearer token for ``server``; faults cleared afterwards."""
    session = authorized_session(server)
    yield session
    server.clear_faults()
    session.close()


@pytest.fixture()
def fresh():
    """An empty sandbox per test (for state-changing scenarios)."""
    srv = SandboxServer(port=0).start()
    yield srv
    srv.stop()


@pytest.fixture()
def http():
    """A plain ``requests`` session."""
    with requests.Session() as session:
        yield session
