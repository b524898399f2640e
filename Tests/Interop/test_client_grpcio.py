"""The Swift client (h2-interop call) against a Python grpcio server over a Unix socket."""
import os
import subprocess
import sys
import time

import pytest

from h2_interop_support import interop_binary

sys.path.insert(0, os.path.dirname(__file__))
import py_server  # noqa: E402


@pytest.fixture
def py_target(sockdir):
    address = f"unix://{sockdir}/py.sock"
    server = py_server.serve(address)
    yield address
    server.stop(0)


def run_client(target, *scenarios, timeout=120):
    return subprocess.run([interop_binary(), "call", target, *scenarios], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("scenario", ["unary", "large", "status", "metadata", "deadline", "cancel",
                                      "server-stream", "client-stream", "bidi", "concurrent"])
def test_swift_client_against_grpcio(py_target, scenario):
    p = run_client(py_target, scenario)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"OK {scenario}" in p.stdout


def test_unavailable_names_the_target(sockdir):
    target = f"unix://{sockdir}/missing/csi.sock"
    p = run_client(target, "unavailable")
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"UNAVAILABLE: cannot connect to {target}: No such file or directory" in p.stdout


@pytest.mark.parametrize("scenario", ["wait", "wait-for-ready-call"])
def test_wait_until_the_socket_answers(sockdir, scenario):
    address = f"unix://{sockdir}/late/csi.sock"
    client = subprocess.Popen([interop_binary(), "call", address, scenario], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    assert client.poll() is None, client.stdout.read()
    os.makedirs(f"{sockdir}/late")
    server = py_server.serve(address)
    try:
        out, _ = client.communicate(timeout=15)
        assert client.returncode == 0, out
        assert f"OK {scenario}" in out
    finally:
        server.stop(0)


def test_reconnects_after_server_restart(sockdir):
    address = f"unix://{sockdir}/restart.sock"
    server = py_server.serve(address)
    client = subprocess.Popen([interop_binary(), "call", address, "reconnect"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert client.stdout.readline().strip() == "READY1"
        server.stop(0).wait()
        time.sleep(0.2)
        server = py_server.serve(address)
        client.stdin.write("go\n")
        client.stdin.flush()
        out, _ = client.communicate(timeout=15)
        assert client.returncode == 0, out
        assert "OK reconnect" in out
    finally:
        server.stop(0)
