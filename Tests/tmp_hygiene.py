"""Keeps the Python suites from leaving files in /tmp: the session gets a private temporary directory
(tempfile's default, and TMPDIR for the processes it starts), which must be empty when the session
ends; what is left is listed and the session fails. Loaded by the conftest.py of Tests/E2E and
Tests/Interop; the hooks there call `start` and `finish`, which run once however many call them."""

import os
import shutil
import tempfile

_state = {"dir": None, "finished": False}


def start():
    if _state["dir"] is None:
        # Short: sockets are made below it, and a Unix socket path is limited to 107 bytes.
        _state["dir"] = tempfile.mkdtemp(prefix="swift-csi-py-", dir="/tmp")
        tempfile.tempdir = _state["dir"]
        os.environ["TMPDIR"] = _state["dir"]
    return _state["dir"]


def leftovers(path):
    out = []
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(root, name), path))
    return sorted(out)


def finish(session, reporter=None):
    """Fails the session when the private directory is not empty; removes it either way."""
    if _state["finished"] or _state["dir"] is None:
        return
    _state["finished"] = True
    left = leftovers(_state["dir"])
    shutil.rmtree(_state["dir"], ignore_errors=True)
    if left:
        message = ("temporary files left behind by the tests (each test must remove what it makes):\n  "
                   + "\n  ".join(left[:50]))
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(message, red=True)
        else:
            print(message)
        session.exitstatus = 1
