"""Keeps the Python suites from leaving files in /tmp: the session gets a private temporary directory
(tempfile's default, and TMPDIR for the processes it starts), which must be empty when the session
ends; what is left is listed and the session fails. Loaded by the conftest.py of Tests/E2E and
Tests/Interop; the hooks there call `start` and `finish`, which run once however many call them."""

import os
import shutil
import sys
import tempfile

_state = {"dir": None, "finished": False}


def start(config=None):
    if _state["dir"] is None:
        # Short: sockets are made below it, and a Unix socket path is limited to 107 bytes.
        _state["dir"] = tempfile.mkdtemp(prefix="swift-csi-py-", dir="/tmp")
        tempfile.tempdir = _state["dir"]
        os.environ["TMPDIR"] = _state["dir"]
    if config is not None and not config.option.basetemp:
        # pytest's own tmp_path directories: managed by pytest, removed with the session's directory.
        config.option.basetemp = os.path.join(_state["dir"], "pytest")
    return _state["dir"]


def _swiftpm_own(name):
    """What `swift build` (run by some tests to link an executable) leaves in TMPDIR of its own accord."""
    return name.startswith("TemporaryDirectory.") or (name.startswith("_") and name.endswith(".lock"))


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
    # Modules that keep temporary files for the life of the process (the kubelet simulator's generated
    # stubs, removed at exit) remove them now, before the check.
    for module in list(sys.modules.values()):
        remove = getattr(module, "remove_temporary_files", None)
        if callable(remove):
            remove()
    shutil.rmtree(os.path.join(_state["dir"], "pytest"), ignore_errors=True)
    for name in filter(_swiftpm_own, os.listdir(_state["dir"])):
        path = os.path.join(_state["dir"], name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
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
