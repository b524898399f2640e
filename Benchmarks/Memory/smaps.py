"""Where a process's resident memory is, from /proc/PID/smaps: one row per mapped file (its code,
read-only data, relocated data and .bss summed) and one per kind of anonymous memory, with Rss,
Anonymous and Private_Dirty in KiB, plus the process's threads by name.

Anonymous mappings are told apart the way glibc lays them out: a mapping that starts on a 64 MiB
boundary is a malloc arena of a thread other than the main one, a read-write mapping of 1 MiB or more
right after a guard page is a thread stack, [heap] is the main arena; the rest (large malloc blocks,
runtime allocations) is "other anonymous".

Usage: python3 Benchmarks/Memory/smaps.py PID"""

import collections
import os
import sys

ARENA_ALIGN = 64 << 20


def read_status(pid):
    """VmRSS, RssAnon, RssFile, VmHWM (KiB) and Threads from /proc/PID/status."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def thread_names(pid):
    names = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names[f.read().strip()] += 1
        except OSError:
            pass  # exited meanwhile
    return names


def mappings(pid):
    """Each mapping as a dict: start, end, perms, path ('' when anonymous), and the smaps counters."""
    out = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts[0].endswith(":"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                out.append({"start": start, "end": end, "perms": parts[1],
                            "path": " ".join(parts[5:]) if len(parts) > 5 else ""})
            elif len(parts) >= 2 and parts[1].isdigit():
                out[-1][parts[0][:-1]] = int(parts[1])
    return out


def breakdown(pid):
    """Rows (name, rss, anonymous, private_dirty, mappings) ordered by rss, largest first."""
    maps = mappings(pid)
    rows = collections.OrderedDict()
    for i, m in enumerate(maps):
        path = m["path"]
        if path and not path.startswith("["):
            name = os.path.basename(path)
        elif path == "[heap]":
            name = "[heap] main malloc arena"
        elif path == "[stack]":
            name = "[stack] main thread"
        elif path:
            name = path
        elif m["start"] % ARENA_ALIGN == 0:
            name = "malloc arenas of other threads"
        elif (m["perms"].startswith("rw") and m["end"] - m["start"] >= 1 << 20 and i > 0
              and maps[i - 1]["end"] == m["start"] and maps[i - 1]["perms"].startswith("---")):
            name = "thread stacks"
        else:
            name = "other anonymous"
        r = rows.setdefault(name, [0, 0, 0, 0])
        r[0] += m.get("Rss", 0)
        r[1] += m.get("Anonymous", 0)
        r[2] += m.get("Private_Dirty", 0)
        r[3] += 1
    return sorted(((n, *v) for n, v in rows.items() if v[0]), key=lambda r: -r[1])


def report(pid, title=None):
    """The status line, the per-mapping table and the threads, as text."""
    s = read_status(pid)
    lines = []
    if title:
        lines.append(title)
    lines.append("VmRSS %.1f MiB  RssAnon %.1f MiB  RssFile %.1f MiB  VmHWM %.1f MiB  threads %d" % (
        s["VmRSS"] / 1024, s["RssAnon"] / 1024, s["RssFile"] / 1024, s["VmHWM"] / 1024, s["Threads"]))
    lines.append("  %-34s %8s %8s %8s %5s" % ("mapping", "Rss KiB", "Anon", "PrivDirty", "maps"))
    for name, rss, anon, dirty, count in breakdown(pid):
        lines.append("  %-34s %8d %8d %8d %5d" % (name[:34], rss, anon, dirty, count))
    lines.append("  threads: " + ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(thread_names(pid).items())))
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(report(int(sys.argv[1])))
