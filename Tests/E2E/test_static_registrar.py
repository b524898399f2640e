"""The registrar as `make release` ships it (scripts/build-release.sh): a static PIE with no run path and
no library to load, which starts and runs its event loop in a root holding nothing but itself and /proc,
as in an image with no C library. `make registrar-release-test` builds it and runs these, with the registrar's
end-to-end tests, against it (SWIFT_CSI_REGISTRAR_BIN); without that variable they are skipped."""

import os
import pathlib
import shutil
import struct
import subprocess
import tempfile

import pytest

RELEASE_BIN = os.environ.get("SWIFT_CSI_REGISTRAR_BIN")
pytestmark = pytest.mark.skipif(not RELEASE_BIN, reason="SWIFT_CSI_REGISTRAR_BIN is not set: make registrar-release-test")

PT_DYNAMIC, PT_INTERP = 2, 3
DT_NEEDED, DT_RPATH, DT_RUNPATH = 1, 15, 29


def elf_facts(path):
    """(e_type, program header types, dynamic tags) of a 64-bit little-endian ELF file."""
    data = pathlib.Path(path).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path} is not a 64-bit LE ELF file"
    e_type = struct.unpack_from("<H", data, 16)[0]
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    types, tags = [], []
    for i in range(phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        types.append(p_type)
        if p_type == PT_DYNAMIC:
            for off in range(p_offset, p_offset + p_filesz, 16):
                tag = struct.unpack_from("<q", data, off)[0]
                if tag == 0:
                    break
                tags.append(tag)
    return e_type, types, tags


def test_release_registrar_is_a_static_pie():
    e_type, types, tags = elf_facts(RELEASE_BIN)
    assert e_type == 3, f"e_type {e_type}: not position-independent"
    assert PT_INTERP not in types, "asks for a dynamic loader"
    assert DT_NEEDED not in tags, "needs shared libraries"
    # glibc's static-PIE start-up aborts on a run path.
    assert DT_RUNPATH not in tags and DT_RPATH not in tags, "has a run path"


@pytest.fixture
def empty_root():
    root = pathlib.Path(tempfile.mkdtemp(prefix="registrar-root-"))
    try:
        shutil.copy2(RELEASE_BIN, root / "node-driver-registrar")
        yield root
    finally:
        shutil.rmtree(root)


def in_root(root, *args):
    """Runs the copy in `root` as a container runtime would: its own mount and PID namespaces, /proc
    mounted (the Swift runtime reads /proc/self), and nothing else."""
    (root / "proc").mkdir(exist_ok=True)
    return subprocess.run(["unshare", "--fork", "--pid", "--mount", f"--mount-proc={root / 'proc'}",
                           "chroot", str(root), "/node-driver-registrar", *args],
                          capture_output=True, text=True, timeout=30)


def test_starts_in_a_root_with_nothing_else(empty_root):
    r = in_root(empty_root, "--version")
    assert r.returncode == 0 and "2.17" in r.stdout, r
    # The event loop, its timers and the CSI client run: the driver socket never appears, and the
    # registrar gives up after its connection timeout with the usual message and code.
    r = in_root(empty_root, "--csi-address=/csi/csi.sock", "--kubelet-registration-path=/var/lib/x/csi.sock",
                "--plugin-registration-path=/registry", "--connection-timeout=1s")
    assert r.returncode == 1, r
    assert "error connecting to CSI driver at /csi/csi.sock" in r.stderr, r
