"""Nothing is left in /tmp by the pieces that used to leave it there: the kubelet simulator's generated
stubs (as a library in the tests and as the demo's process) and the H2 tests' socket directories. Each
runs with TMPDIR set to a fresh directory, which must be empty once it has exited. (The whole Python
session is checked the same way by conftest.py.)"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture
def private_tmp():
    d = tempfile.mkdtemp(prefix="hygiene-")
    env = dict(os.environ, TMPDIR=d)
    try:
        yield pathlib.Path(d), env
    finally:
        shutil.rmtree(d, ignore_errors=True)


def contents(path: pathlib.Path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_kubelet_simulator_stubs_are_removed_at_exit(private_tmp):
    tmp, env = private_tmp
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import kubelet_sim, os; s = kubelet_sim.load_stubs(); "
            "assert os.path.isdir(s.out_dir) and s.out_dir.startswith(sys.argv[2]), s.out_dir")
    subprocess.run([sys.executable, "-c", code, str(HERE), str(tmp)], env=env, check=True, timeout=120)
    assert contents(tmp) == []


def test_kubelet_simulator_process_stopped_like_the_demo_stops_it(private_tmp):
    tmp, env = private_tmp
    state = tempfile.mkdtemp(prefix="hygiene-state-")
    registry = tempfile.mkdtemp(prefix="hygiene-registry-")
    try:
        p = subprocess.Popen([sys.executable, str(HERE / "kubelet_sim.py"), "--registry-dir", registry,
                              "--state-dir", state], env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not any(tmp.iterdir()):
            assert p.poll() is None, "the simulator exited early"
            assert time.monotonic() < deadline, "the simulator made no stubs directory"
            time.sleep(0.05)
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0
    finally:
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(registry, ignore_errors=True)
    assert contents(tmp) == []


TEST_BUNDLE = ROOT / ".build" / "debug" / "swift-csiPackageTests.xctest"


@pytest.mark.skipif(not TEST_BUNDLE.exists(), reason=f"{TEST_BUNDLE} is not built (swift build --build-tests)")
def test_h2_tests_remove_their_socket_directories(private_tmp):
    """The H2 tests' sockets live in $TMPDIR/h2-tests-<pid>, which is gone once the test process exits.
    (The test bundle runs directly: `swift test` leaves lock files of its own in TMPDIR.)"""
    tmp, env = private_tmp
    p = subprocess.Popen([str(TEST_BUNDLE), "--testing-library", "swift-testing", "--filter", "ServerClientTests"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = set()
    deadline = time.monotonic() + 600
    while p.poll() is None and time.monotonic() < deadline:
        seen.update(e.name for e in tmp.iterdir())
        time.sleep(0.005)
    output = p.communicate(timeout=60)[0]
    assert p.returncode == 0, output[-3000:]
    assert "passed" in output
    assert any(name.startswith("h2-tests-") for name in seen), f"the tests made no socket directory in TMPDIR: {seen}"
    assert contents(tmp) == []
