"""Fixtures: the Swift `h2-interop` peer, started on a fresh Unix socket per test."""
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from h2_interop_support import SwiftServer  # noqa: E402


# No files left in /tmp: a private temporary directory for the session, checked empty at its end.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tmp_hygiene  # noqa: E402


def pytest_configure(config):
    tmp_hygiene.start(config)


def pytest_sessionfinish(session, exitstatus):
    tmp_hygiene.finish(session, session.config.pluginmanager.get_plugin("terminalreporter"))


@pytest.fixture
def sockdir():
    with tempfile.TemporaryDirectory(prefix="h2-interop-") as d:
        yield d


@pytest.fixture
def server(sockdir):
    s = SwiftServer(f"unix://{sockdir}/run/test.sock")
    yield s
    s.stop()


@pytest.fixture
def start_server(sockdir):
    started = []

    def start(*args, path=None):
        s = SwiftServer(path or f"unix://{sockdir}/run/test.sock", *args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


