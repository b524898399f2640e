#!/usr/bin/env python3
"""Drives every NodeGetInfo server with h2load (and the raw-socket floor with its own client),
alternating servers over several rounds, and prints one table; then the codec table.

Built binaries are expected where run.sh puts them; run.sh builds them first. Per measurement:
  requests/s and p50/p99 latency  from h2load's per-request log (--log-file), or the floor's log;
  server CPU per request          from /proc/PID/stat utime+stime before and after, divided by the
                                  requests served (robust to other load on the machine);
  context switches per request    voluntary+involuntary, summed over /proc/PID/task/*/status;
  RSS idle / under load           VmRSS after one call, VmHWM after all the load.
Each figure is the median of the rounds. Other CPU load during each run is measured from
/proc/stat and reported, since absolute figures on a shared machine are noisy: compare by ratio.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, ".build")
RELEASE = os.path.join(BUILD, "release")
# Ours, linked as `make release` links them (run.sh builds them there).
STATIC = os.path.join(HERE, ".build-static", "release")
TICK = os.sysconf("SC_CLK_TCK")
PATH_ = "/csi.v1.Node/NodeGetInfo"

CONFIGS = [("1x1", 1, 1), ("4x32", 4, 32)]


def server_commands(sockdir, with_python, with_driver, baseline=None):
    """(name, argv, kind) for every server in the table; kind is 'grpc' or 'floor'."""
    py_gen = os.path.join(BUILD, "python")
    servers = [
        ("swift-csi H2", [os.path.join(STATIC, "rpc-bench-server")], "grpc"),
    ]
    if baseline:
        # Another build of rpc-bench-server (an earlier commit, other flags), measured alternately
        # with ours in the same run so that the two compare by ratio.
        servers.append(("H2 baseline", [os.path.abspath(baseline)], "grpc"))
    servers += [
        ("grpc-go", [os.path.join(BUILD, "gopath", "bin", "grpc-go-bench-server")], "grpc"),
        ("grpc-swift-2", [os.path.join(RELEASE, "grpc-swift-bench-server")], "grpc"),
        ("raw UDS floor", [os.path.join(RELEASE, "uds-pingpong"), "serve"], "floor"),
    ]
    if with_python:
        servers.append(("python grpcio", [sys.executable, os.path.join(HERE, "peers", "python", "server.py"),
                                          "--gen-dir", py_gen], "grpc"))
    if with_driver:
        # The real driver, loop-file backend (nothing is created: NodeGetInfo only reads its flags).
        state = os.path.join(sockdir, "driver")
        os.makedirs(os.path.join(state, "kubelet"), exist_ok=True)  # the driver resolves it at start
        servers.append(("csi-lvm-driver", [os.path.join(STATIC, "csi-lvm-driver"), "--backend", "loopfile",
                                           "--loopfile-dir", os.path.join(state, "loopfile"),
                                           "--kubelet-dir", os.path.join(state, "kubelet"), "--node-id", "node-1",
                                           "--max-volumes-per-node", "100", "--log-level", "warning"], "grpc"))
    out = []
    for name, argv, kind in servers:
        if not os.path.exists(argv[0]) and argv[0] != sys.executable:
            print(f"bench: skipping {name}: {argv[0]} is not built", file=sys.stderr)
            continue
        sock = os.path.join(sockdir, name.replace(" ", "-") + ".sock")
        flag = ["--endpoint", sock] if name == "csi-lvm-driver" else ["--socket", sock]
        out.append({"name": name, "argv": argv + flag, "kind": kind, "socket": sock})
    return out


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def ctx_switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += proc_status(f"{pid}/task/{tid}", "voluntary_ctxt_switches")
            total += proc_status(f"{pid}/task/{tid}", "nonvoluntary_ctxt_switches")
        except OSError:
            pass
    return total


def system_busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / TICK, sum(v[:8]) / TICK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_for_socket(path, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {path}")
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {path} after {timeout} s")


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def read_latencies(log, column):
    values = []
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) > column:
                values.append(int(parts[column]))
    values.sort()
    return values


def drive(server, conns, streams, n, body, logdir, tag):
    """Runs one bounded load against the server; returns the measurement."""
    pid = server["proc"].pid
    log = os.path.join(logdir, f"{server['name'].replace(' ', '-')}-{tag}.log")
    if server["kind"] == "floor":
        argv = [os.path.join(RELEASE, "uds-pingpong"), "client", "--socket", server["socket"],
                "-c", str(conns), "-m", str(streams), "-n", str(n), "--log", log]
        column = 0
    else:
        argv = ["h2load", "-B", f"unix:{server['socket']}", "-n", str(n), "-c", str(conns), "-m", str(streams),
                "-t", "1", "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body,
                "--log-file", log, f"http://localhost{PATH_}"]
        column = 2  # start time, status, duration in microseconds
    cpu0, ctx0 = proc_cpu_seconds(pid), ctx_switches(pid)
    busy0, total0 = system_busy_seconds()
    child0 = children_cpu()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_rss = 0
    while proc.poll() is None:
        peak_rss = max(peak_rss, proc_status(pid, "VmRSS"))
        time.sleep(0.05)
    out = proc.stdout.read()
    elapsed = time.monotonic() - t0
    cpu1, ctx1 = proc_cpu_seconds(pid), ctx_switches(pid)
    busy1, total1 = system_busy_seconds()
    client_cpu = children_cpu() - child0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out}")
    if server["kind"] == "floor":
        stats = dict(kv.split("=") for kv in out.split())
        done, seconds = int(stats["requests"]), float(stats["seconds"])
    else:
        done = seconds = None
        for line in out.splitlines():
            if line.startswith("finished in"):
                # "finished in 539.66ms, 37060.30 req/s, 1.66MB/s"
                token = line.split()[2].rstrip(",")
                seconds = float(token[:-2]) / 1000 if token.endswith("ms") else float(token[:-1])
            if line.startswith("requests:"):
                parts = line.replace(",", "").split()
                succeeded = int(parts[parts.index("succeeded") - 1])
                done = succeeded
        if done != n:
            raise RuntimeError(f"{server['name']}: only {done} of {n} requests succeeded:\n{out}")
    lat = read_latencies(log, column)
    os.unlink(log)
    server_cpu = cpu1 - cpu0
    other = max(0.0, (busy1 - busy0) - server_cpu - client_cpu)
    return {
        "requests": done,
        "rps": done / seconds,
        "p50_us": percentile(lat, 0.50),
        "p99_us": percentile(lat, 0.99),
        "cpu_us_per_req": server_cpu / done * 1e6,
        "ctx_per_req": (ctx1 - ctx0) / done,
        "rss_load_kib": max(peak_rss, proc_status(pid, "VmHWM")),
        "other_cpu_share": other / max(elapsed, 1e-9) / os.cpu_count(),
        "client_cpu_share": client_cpu / max(elapsed, 1e-9),
        "seconds": seconds,
    }


def fmt(v, digits=0):
    if v is None or v != v:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="target duration of one measurement")
    ap.add_argument("--only", action="append", help="measure only servers whose name contains this")
    ap.add_argument("--no-python", action="store_true", help="leave out the Python grpcio reference server")
    ap.add_argument("--no-driver", action="store_true", help="leave out csi-lvm-driver (loop-file backend)")
    ap.add_argument("--baseline", metavar="PATH", help="another rpc-bench-server binary to measure beside ours")
    ap.add_argument("--no-codec", action="store_true")
    ap.add_argument("--no-rpc", action="store_true")
    ap.add_argument("--out", default=os.path.join(BUILD, "results"))
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    lines = [f"# swift-csi benchmarks, {stamp}", "",
             f"Machine: {platform.node()}, {os.cpu_count()} vCPUs, {platform.platform()}; "
             f"load average at start {open('/proc/loadavg').read().split()[:3]}.", ""]
    if not args.no_rpc:
        lines += rpc(args)
    if not args.no_codec:
        lines += codec(args)
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, f"bench-{stamp}.md"), "w") as f:
        f.write(text + "\n")


def rpc(args):
    sockdir = tempfile.mkdtemp(prefix="swift-csi-bench-")
    logdir = sockdir
    body = os.path.join(sockdir, "request.bin")
    with open(body, "wb") as f:
        f.write(b"\x00\x00\x00\x00\x00")  # uncompressed, length 0: an empty NodeGetInfoRequest
    servers = server_commands(sockdir, not args.no_python, not args.no_driver, args.baseline)
    if args.only:
        servers = [s for s in servers if any(o in s["name"] for o in args.only)]
    results = {s["name"]: {c[0]: [] for c in CONFIGS} for s in servers}
    try:
        started = []
        for s in servers:
            s["proc"] = subprocess.Popen(s["argv"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for_socket(s["socket"], s["proc"])
                if s["kind"] == "grpc":
                    check = subprocess.run([sys.executable, os.path.join(HERE, "peers", "python", "check.py"),
                                            "--socket", s["socket"], "--gen-dir", os.path.join(BUILD, "python")],
                                           capture_output=True, text=True, timeout=30)
                    if check.returncode != 0:
                        raise RuntimeError(f"NodeGetInfo through grpcio failed: {check.stderr.strip()[-500:]}")
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"bench: leaving out {s['name']}: {e}", file=sys.stderr)
                s["proc"].kill()
                s["proc"].wait()
                del results[s["name"]]
                continue
            time.sleep(0.5)
            s["rss_idle_kib"] = proc_status(s["proc"].pid, "VmRSS")
            s["anon_idle_kib"] = proc_status(s["proc"].pid, "RssAnon")
            started.append(s)
        servers[:] = started

        # Calibrate: a short run per server and shape sets the request count for ~args.seconds.
        counts = {}
        for s in servers:
            for tag, c, m in CONFIGS:
                probe = 500 if c * m == 1 else 4000
                r = drive(s, c, m, probe, body, logdir, f"probe-{tag}")
                n = int(r["rps"] * args.seconds)
                counts[(s["name"], tag)] = max(c * m * 10, min(n, 2_000_000)) // (c * m) * (c * m)
                print(f"bench: {s['name']:>14} {tag:>5}: ~{r['rps']:,.0f} req/s in probe; "
                      f"{counts[(s['name'], tag)]:,} requests per round", file=sys.stderr)

        for rnd in range(args.rounds):
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]  # rotate each round
            for tag, c, m in CONFIGS:
                for s in order:
                    r = drive(s, c, m, counts[(s["name"], tag)], body, logdir, f"{tag}-{rnd}")
                    results[s["name"]][tag].append(r)
                    print(f"bench: round {rnd + 1} {s['name']:>14} {tag:>5}: {r['rps']:>10,.0f} req/s "
                          f"p50 {r['p50_us']:>6.0f} µs p99 {r['p99_us']:>6.0f} µs "
                          f"cpu {r['cpu_us_per_req']:>6.1f} µs/req; others used "
                          f"{r['other_cpu_share'] * 100:.0f}% of the CPUs", file=sys.stderr)
    finally:
        for s in servers:
            if "proc" in s and s["proc"].poll() is None:
                s["proc"].terminate()
                try:
                    s["proc"].wait(timeout=5)
                except subprocess.TimeoutExpired:
                    s["proc"].kill()
        shutil.rmtree(sockdir, ignore_errors=True)

    def med(name, tag, key):
        vals = [r[key] for r in results[name][tag]]
        return statistics.median(vals) if vals else float("nan")

    with open(os.path.join(args.out, "rpc-raw.json"), "w") as f:
        json.dump({"results": results, "rss_idle_kib": {s["name"]: s["rss_idle_kib"] for s in servers},
                   "anon_idle_kib": {s["name"]: s["anon_idle_kib"] for s in servers}}, f, indent=1)

    others = [r["other_cpu_share"] for n in results for t in results[n] for r in results[n][t]]
    lines = [f"## RPC: unary `{PATH_}` over a Unix socket (medians of {args.rounds} alternating rounds)", "",
             "| server | 1x1 req/s | 1x1 p50 µs | 1x1 p99 µs | 4x32 req/s | 4x32 p50 µs | 4x32 p99 µs "
             "| CPU µs/req 1x1 | CPU µs/req 4x32 | ctx sw/req 4x32 | RSS idle MiB (anon) | RSS load MiB | client CPU 4x32 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in servers:
        n = s["name"]
        peak = max((r["rss_load_kib"] for t in results[n] for r in results[n][t]), default=float("nan"))
        lines.append(
            f"| {n} | {fmt(med(n, '1x1', 'rps'))} | {fmt(med(n, '1x1', 'p50_us'))} | {fmt(med(n, '1x1', 'p99_us'))} "
            f"| {fmt(med(n, '4x32', 'rps'))} | {fmt(med(n, '4x32', 'p50_us'))} | {fmt(med(n, '4x32', 'p99_us'))} "
            f"| {fmt(med(n, '1x1', 'cpu_us_per_req'), 1)} | {fmt(med(n, '4x32', 'cpu_us_per_req'), 1)} "
            f"| {fmt(med(n, '4x32', 'ctx_per_req'), 2)} | {fmt(s['rss_idle_kib'] / 1024, 1)} ({fmt(s['anon_idle_kib'] / 1024, 1)}) | {fmt(peak / 1024, 1)} "
            f"| {med(n, '4x32', 'client_cpu_share') * 100:.0f}% |")
    lines += ["", "The raw UDS floor is the C echo client and server with 64-byte messages (no HTTP/2, no gRPC); "
              "every other row is h2load (1 thread) against a gRPC server. Client CPU is the load generator's "
              "CPU time over wall time (100% = one vCPU busy: the client, not the server, may then be the limit). "
              "RSS idle counts the mapped pages of shared libraries too; (anon) is the process's own memory (RssAnon).",
              f"Other processes used a median {statistics.median(others) * 100:.0f}% "
              f"(max {max(others) * 100:.0f}%) of the machine's CPUs during the measurements."
              if others else "", ""]

    ours = "swift-csi H2"
    if ours in results and results[ours]["4x32"]:
        lines += ["Ratios, ours against each peer, from the same run:", "",
                  "| against | 4x32 req/s (x, higher is better) | 4x32 CPU/req (x, lower is better) "
                  "| 1x1 p50 (x, lower is better) | 1x1 req/s (x) |",
                  "|---|---:|---:|---:|---:|"]
        for peer in ("grpc-go", "grpc-swift-2", "python grpcio", "raw UDS floor"):
            if peer not in results or not results[peer]["4x32"]:
                continue
            lines.append(
                f"| {peer} | {med(ours, '4x32', 'rps') / med(peer, '4x32', 'rps'):.2f} "
                f"| {med(ours, '4x32', 'cpu_us_per_req') / med(peer, '4x32', 'cpu_us_per_req'):.2f} "
                f"| {med(ours, '1x1', 'p50_us') / med(peer, '1x1', 'p50_us'):.2f} "
                f"| {med(ours, '1x1', 'rps') / med(peer, '1x1', 'rps'):.2f} |")
        checks = []
        if "grpc-go" in results:
            checks.append(("4x32 req/s >= 1.2x grpc-go", med(ours, "4x32", "rps") >= 1.2 * med("grpc-go", "4x32", "rps")))
            checks.append(("1x1 p50 <= 0.8x grpc-go", med(ours, "1x1", "p50_us") <= 0.8 * med("grpc-go", "1x1", "p50_us")))
        if "grpc-swift-2" in results:
            checks.append(("4x32 req/s >= 8x grpc-swift-2",
                           med(ours, "4x32", "rps") >= 8 * med("grpc-swift-2", "4x32", "rps")))
        checks.append(("CPU per request at 4x32 <= 10 µs", med(ours, "4x32", "cpu_us_per_req") <= 10))
        idle = next(s["rss_idle_kib"] for s in servers if s["name"] == ours)
        checks.append(("idle RSS < 8 MiB", idle < 8 * 1024))
        lines += ["", "Targets: " + "; ".join(f"{c}: {'met' if ok else 'NOT met'}" for c, ok in checks), ""]
    return lines


def codec(args):
    sample = os.path.join(BUILD, "codec-sample.bin")
    rows = []
    bench = os.path.join(RELEASE, "codec-bench")
    if not os.path.exists(bench):
        return ["Codec: codec-bench is not built.", ""]
    out = subprocess.run([bench, "--write-sample", sample], check=True, capture_output=True, text=True).stdout
    rows += [line.split() for line in out.splitlines() if line.strip()]
    py = subprocess.run([sys.executable, os.path.join(HERE, "Codec", "python", "codec.py"), sample,
                         "--gen-dir", os.path.join(BUILD, "python")], capture_output=True, text=True)
    if py.returncode == 0:
        rows += [line.split() for line in py.stdout.splitlines() if line.strip()]
    else:
        print(f"bench: codec.py failed: {py.stderr}", file=sys.stderr)
    table = {}
    for codec_name, op, ns, size in rows:
        table.setdefault(codec_name, {})[op] = float(ns)
        table[codec_name]["bytes"] = int(size)
    with open(os.path.join(args.out, "codec-raw.json"), "w") as f:
        json.dump(table, f, indent=1)
    upb = next((k for k in table if k.startswith("python-protobuf")), None)
    lines = ["## Codec: one NodePublishVolumeRequest (maps, nested capability, secrets)", "",
             "Fastest of 7 timed batches, ns per operation; the ratio columns divide the peer's time by this row's "
             "(above 1: this row is faster).", "",
             "| codec | bytes | encode ns | decode ns | encode vs swift-protobuf | decode vs swift-protobuf "
             "| encode vs upb | decode vs upb |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    sp = table.get("swift-protobuf")
    for name, t in table.items():
        def ratio(base, op):
            return f"{base[op] / t[op]:.2f}" if base and op in base and op in t else "–"
        lines.append(f"| {name} | {t.get('bytes', '–')} | {fmt(t.get('encode'))} | {fmt(t.get('decode'))} "
                     f"| {ratio(sp, 'encode')} | {ratio(sp, 'decode')} "
                     f"| {ratio(table.get(upb), 'encode')} | {ratio(table.get(upb), 'decode')} |")
    lines.append("")
    lines += second_sample()
    ours = table.get("ProtoWire")
    if ours and "encode" in ours and "decode" in ours:
        checks = [("encode <= 500 ns", ours["encode"] <= 500), ("decode <= 1000 ns", ours["decode"] <= 1000)]
        if upb:
            checks.append(("faster than upb both ways",
                           ours["encode"] < table[upb]["encode"] and ours["decode"] < table[upb]["decode"]))
        lines += ["ProtoWire targets: " + "; ".join(f"{c}: {'met' if ok else 'NOT met'}" for c, ok in checks), ""]
    return lines


def second_sample():
    """ProtoWire's own benchmark message (`protowire bench`, Benchmarks/Codec/upb_reference.py):
    a second NodePublishVolumeRequest, built from the full csi.proto, timed by those tools."""
    tool = os.path.join(RELEASE, "protowire")
    reference = os.path.join(HERE, "Codec", "upb_reference.py")
    if not os.path.exists(tool) or not os.path.exists(reference):
        return []

    def figures(argv):
        out = subprocess.run(argv, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"bench: {' '.join(argv)} failed: {out.stderr.strip()[-300:]}", file=sys.stderr)
            return None
        found = {}
        for line in out.stdout.splitlines():
            words = line.replace(":", " ").split()
            if "bytes," in words:
                found["bytes"] = int(words[words.index("bytes,") - 1])
            for op in ("encode", "decode"):
                if words and words[0] == op:
                    found[op] = float(next(w for w in words[1:] if w.replace(".", "").isdigit()))
        return found

    ours = figures([tool, "bench", "200000"])
    upb = figures([sys.executable, reference, "200000"])
    if not ours or not upb:
        return []
    return ["The same comparison on ProtoWire's own sample (`protowire bench` and "
            "`Benchmarks/Codec/upb_reference.py`, best of 7 rounds):", "",
            "| codec | bytes | encode ns | decode ns | encode vs upb | decode vs upb |",
            "|---|---:|---:|---:|---:|---:|",
            f"| ProtoWire | {ours.get('bytes', '–')} | {fmt(ours.get('encode'))} | {fmt(ours.get('decode'))} "
            f"| {upb['encode'] / ours['encode']:.2f} | {upb['decode'] / ours['decode']:.2f} |",
            f"| python-protobuf-upb | {upb.get('bytes', '–')} | {fmt(upb.get('encode'))} | {fmt(upb.get('decode'))} "
            f"| 1.00 | 1.00 |", ""]


if __name__ == "__main__":
    main()
