"""Fixtures: the Swift `h2-interop` peer, started on a fresh Unix socket per test."""
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from h2_interop_support import SwiftServer  # noqa: E402


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


