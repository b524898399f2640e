"""Prepares Debian's kernel for a fast boot under emulation (used by Tests/VM/vm setup).

  kernel-prep.py vmlinux VMLINUZ OUT        the ELF kernel inside the bzImage's xz payload
  kernel-prep.py strip-signatures DIR       drops the appended signature of every .ko below DIR
"""
import lzma
import os
import struct
import sys

MAGIC = b"~Module signature appended~\n"


def vmlinux(vmlinuz, out):
    data = open(vmlinuz, "rb").read()
    start = data.find(b"\xfd7zXZ\x00")
    while start >= 0:
        try:
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
        except lzma.LZMAError:
            elf = b""
        if elf.startswith(b"\x7fELF"):
            with open(out, "wb") as f:
                f.write(elf)
            return
        start = data.find(b"\xfd7zXZ\x00", start + 1)
    sys.exit("kernel-prep: no xz-compressed ELF kernel in %s" % vmlinuz)


def strip_signatures(root):
    stripped = 0
    for directory, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".ko"):
                continue
            path = os.path.join(directory, name)
            data = open(path, "rb").read()
            if not data.endswith(MAGIC):
                continue
            # struct module_signature (12 bytes, signature length big-endian last) precedes the magic.
            length = struct.unpack(">I", data[-len(MAGIC) - 4:-len(MAGIC)])[0]
            with open(path, "wb") as f:
                f.write(data[:len(data) - len(MAGIC) - 12 - length])
            stripped += 1
    print("kernel-prep: stripped the signatures of %d modules" % stripped, file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "vmlinux":
        vmlinux(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "strip-signatures":
        strip_signatures(sys.argv[2])
    else:
        sys.exit(__doc__)
