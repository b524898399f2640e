"""Helpers for the interop tests: the Swift `h2-interop` peer and small utilities."""
import os
import pathlib
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


_built = []


def interop_binary() -> str:
    """The debug build of h2-interop, built (or brought up to date) on first use:
    `swift build --build-tests` compiles executables' modules but does not always link them."""
    if not _built:
        subprocess.run(["swift", "build", "--product", "h2-interop"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        _built.append(str(ROOT / ".build" / "debug" / "h2-interop"))
    return _built[0]


class SwiftServer:
    def __init__(self, address: str, *args: str):
        self.address = address
        self.proc = subprocess.Popen(
            [interop_binary(), "serve", address, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("LISTENING"):
            rest = self.proc.stdout.read() if self.proc.poll() is not None else ""
            raise RuntimeError(f"server did not start: {line} {rest}")
        self.listening = line.split(" ", 1)[1]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""


def identity(b):
    return b


def wait_for(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
