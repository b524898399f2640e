"""Fixtures shared by the end-to-end tests."""
import os
import sys

import pytest


# No files left in /tmp: a private temporary directory for the session, checked empty at its end.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tmp_hygiene  # noqa: E402


def pytest_configure(config):
    tmp_hygiene.start(config)


def pytest_sessionfinish(session, exitstatus):
    tmp_hygiene.finish(session, session.config.pluginmanager.get_plugin("terminalreporter"))


@pytest.fixture
def world():
    """A node of the registrar harness (registrar_harness.World) for one test, closed after it: every
    process it started is killed."""
    from registrar_harness import World

    w = World()
    try:
        yield w
    finally:
        w.close()
