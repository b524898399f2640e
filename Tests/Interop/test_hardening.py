"""Hostile HTTP/2 peers against the Swift server, speaking raw frames over the Unix socket.

Each test checks that the server stays up, still answers another client, and that its RSS
does not grow without bound. Loops are bounded and take seconds."""
import os
import select
import socket
import struct
import time

import grpc
import hpack
import pytest

from h2_interop_support import identity, wait_for

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def request_headers(path="/interop.Test/Echo", extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers"), *extra]


def grpc_message(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def connect(server):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(server.address[len("unix://"):])
    s.sendall(PREFACE + frame(SETTINGS, 0, 0))
    return s


def read_frames(sock, timeout=2.0, until=None):
    """Reads frames until `until(kind, flags, stream, payload)` is true, EOF or timeout."""
    sock.settimeout(timeout)
    buf = b""
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            frames.append(("EOF",))
            break
        if not chunk:
            frames.append(("EOF",))
            break
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            kind, flags = buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            f = (kind, flags, stream, buf[9:9 + length])
            frames.append(f)
            buf = buf[9 + length:]
            if until and until(*f):
                return frames
    return frames


def assert_healthy(server):
    assert server.alive(), "the server died"
    with grpc.insecure_channel(server.address) as ch:
        call = ch.unary_unary("/interop.Test/Echo", request_serializer=identity, response_deserializer=identity)
        assert call(b"still here", timeout=5) == b"still here"


def settle_rss(server, baseline, limit_kib):
    # Memory freed by the allocator may take a moment to show; allow a bounded margin.
    ok = wait_for(lambda: server.rss_kib() - baseline < limit_kib, timeout=3)
    assert ok, f"RSS grew from {baseline} KiB to {server.rss_kib()} KiB"


def test_ping_is_answered(server):
    s = connect(server)
    s.sendall(frame(PING, 0, 0, b"12345678"))
    frames = read_frames(s, until=lambda k, f, st, p: k == PING and f & ACK)
    assert any(f[0] == PING and f[1] & ACK and f[3] == b"12345678" for f in frames if len(f) == 4)
    s.close()


def test_rapid_reset(server):
    baseline = server.rss_kib()
    enc = hpack.Encoder()
    block = enc.encode(request_headers("/interop.Test/Sleep"))
    for _ in range(3):
        s = connect(server)
        out = bytearray()
        sid = 1
        for _ in range(5000):
            out += frame(HEADERS, END_HEADERS, sid, block)
            out += frame(RST_STREAM, 0, sid, struct.pack(">I", 8))
            sid += 2
        try:
            s.sendall(bytes(out))
            frames = read_frames(s, timeout=2, until=lambda k, f, st, p: k == GOAWAY)
        except (BrokenPipeError, ConnectionResetError):
            frames = [("EOF",)]
        s.close()
        assert any(f[0] in (GOAWAY, "EOF") for f in frames), "the server tolerated 5,000 resets in a burst"
        block = hpack.Encoder().encode(request_headers("/interop.Test/Sleep"))
    assert_healthy(server)
    settle_rss(server, baseline, 16 * 1024)


def test_ping_flood(server):
    baseline = server.rss_kib()
    s = connect(server)
    payload = frame(PING, 0, 0, b"floodflo") * 10000
    closed = False
    try:
        for _ in range(20):  # 200,000 PINGs, never reading the ACKs
            s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        closed = True
    s.close()
    assert_healthy(server)
    settle_rss(server, baseline, 16 * 1024)


def test_settings_flood(server):
    baseline = server.rss_kib()
    s = connect(server)
    payload = frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 100)) * 5000
    try:
        for _ in range(20):
            s.sendall(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()
    assert_healthy(server)
    settle_rss(server, baseline, 16 * 1024)


def test_hpack_header_bomb(server):
    baseline = server.rss_kib()
    s = connect(server)
    enc = hpack.Encoder()
    # One 4 KiB header enters the dynamic table, then is referenced thousands of times (1 byte each).
    first = enc.encode(request_headers(extra=[("x-bomb", "b" * 4000)]))
    s.sendall(frame(HEADERS, END_HEADERS, 1, first))
    index = enc.header_table.dynamic_entries and 62
    bomb = enc.encode(request_headers()) + bytes([0x80 | index]) * 16000
    s.sendall(frame(HEADERS, 0, 3, bomb[:16000]) + frame(CONTINUATION, END_HEADERS, 3, bomb[16000:]))
    frames = read_frames(s, timeout=2, until=lambda k, f, st, p: (k == RST_STREAM and st == 3) or k == GOAWAY)
    assert any(f[0] in (RST_STREAM, GOAWAY, "EOF") for f in frames), f"no reset for a 64 MiB header list: {frames}"
    s.close()
    assert_healthy(server)
    settle_rss(server, baseline, 16 * 1024)


def test_continuation_flood(server):
    s = connect(server)
    enc = hpack.Encoder()
    block = enc.encode(request_headers())
    out = frame(HEADERS, 0, 1, block) + frame(CONTINUATION, 0, 1, b"") * 10000
    try:
        s.sendall(out)
        frames = read_frames(s, timeout=2, until=lambda k, f, st, p: k == GOAWAY)
    except (BrokenPipeError, ConnectionResetError):
        frames = [("EOF",)]
    s.close()
    assert any(f[0] in (GOAWAY, "EOF") for f in frames)
    assert_healthy(server)


def test_slow_reader_does_not_buffer_unboundedly(server):
    baseline = server.rss_kib()
    socks = []
    enc = hpack.Encoder()
    for _ in range(4):
        s = connect(server)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # Ask for 256 MiB on each of 8 streams and never read (no WINDOW_UPDATE either).
        for sid in range(1, 17, 2):
            block = enc.encode(request_headers("/interop.Test/ServerStream"))
            s.sendall(frame(HEADERS, END_HEADERS, sid, block) + frame(DATA, END_STREAM, sid, grpc_message(b"256 1048576")))
        socks.append(s)
        enc = hpack.Encoder()
    time.sleep(1.5)
    assert_healthy(server)
    settle_rss(server, baseline, 48 * 1024)
    for s in socks:
        s.close()
    assert_healthy(server)


def test_slow_writer_does_not_block_others(server):
    # A client dribbles one request a byte at a time; others are served meanwhile.
    s = connect(server)
    enc = hpack.Encoder()
    wire = frame(HEADERS, END_HEADERS, 1, enc.encode(request_headers())) + frame(DATA, END_STREAM, 1, grpc_message(b"slow"))
    for i, b in enumerate(wire):
        s.sendall(bytes([b]))
        if i % 10 == 0:
            assert_healthy(server)
    frames = read_frames(s, timeout=3, until=lambda k, f, st, p: k == HEADERS and st == 1 and f & END_STREAM)
    assert any(f[0] == DATA and f[3].endswith(b"slow") for f in frames if len(f) == 4)
    s.close()


def test_many_idle_connections_are_limited(start_server):
    server = start_server("--max-connections", "32")
    baseline = server.rss_kib()
    socks = []
    for _ in range(200):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(server.address[len("unix://"):])
        socks.append(s)
    # Wait (generously, for a loaded machine) until the server has dealt with every connection: it
    # sent SETTINGS (kept) or closed it. One still undecided by then counts as kept.
    kept, closed = set(), set()
    for s in socks:
        s.setblocking(False)
    deadline = time.monotonic() + 30
    while True:
        for i, s in enumerate(socks):
            if i in kept or i in closed:
                continue
            try:
                (kept if s.recv(1) != b"" else closed).add(i)  # SETTINGS arrived: the server kept it
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed.add(i)
        if len(kept) + len(closed) == len(socks) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    open_count = len(socks) - len(closed)
    assert open_count <= 33, f"{open_count} connections were kept"
    for s in socks:
        s.close()
    time.sleep(0.3)
    assert_healthy(server)
    settle_rss(server, baseline, 16 * 1024)


def test_idle_connection_is_closed(start_server):
    server = start_server("--idle-timeout-ms", "300")
    s = connect(server)
    frames = read_frames(s, timeout=3, until=lambda k, f, st, p: k == GOAWAY)
    assert any(f[0] == GOAWAY for f in frames)
    s.close()
    assert_healthy(server)


def test_garbage_preface_closes_only_that_connection(server):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(server.address[len("unix://"):])
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
    frames = read_frames(s, timeout=2)
    s.close()
    assert_healthy(server)


def test_non_grpc_requests_get_http_errors(server):
    s = connect(server)
    enc = hpack.Encoder()
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "x")])))
    s.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 3, enc.encode(request_headers(extra=[]) [:4] + [("content-type", "text/plain")])))
    frames = read_frames(s, timeout=2, until=lambda k, f, st, p: k == HEADERS and st == 3)
    dec = hpack.Decoder()
    statuses = {f[2]: dict(dec.decode(f[3])).get(":status") for f in frames if len(f) == 4 and f[0] == HEADERS}
    assert statuses == {1: "405", 3: "415"}
    s.close()


def test_streaming_requests_are_flow_controlled(server):
    # The client pushes 128 MiB on a bidirectional call but never reads the echoes: the handler
    # blocks on writing, stops taking requests, and the server stops granting window.
    baseline = server.rss_kib()
    sent = [0]

    def requests():
        chunk = b"r" * 65536
        for _ in range(2048):
            sent[0] += 1
            yield chunk

    with grpc.insecure_channel(server.address) as ch:
        call = ch.stream_stream("/interop.Test/Bidi", request_serializer=identity, response_deserializer=identity)(requests())
        time.sleep(2)
        assert sent[0] < 2048, "the whole request stream was accepted without being read"
        settle_rss(server, baseline, 48 * 1024)
        call.cancel()
    assert_healthy(server)


def test_random_frames_never_crash_the_server(server):
    # Seeded random frames after a valid preface: valid-looking HEADERS and DATA mixed with
    # arbitrary types, flags, stream ids and payloads. The server may reset or close; it must
    # not die.
    import random
    rng = random.Random(20231010)
    enc_block = hpack.Encoder().encode(request_headers())
    for _ in range(150):
        s = connect(server)
        out = bytearray()
        for _ in range(rng.randint(1, 12)):
            choice = rng.random()
            sid = rng.choice([0, 1, 3, 5, rng.randint(0, 2**31 - 1)])
            if choice < 0.3:
                out += frame(HEADERS, rng.choice([END_HEADERS, END_HEADERS | END_STREAM, 0]), sid | 1, enc_block)
            elif choice < 0.6:
                payload = grpc_message(rng.randbytes(rng.randint(0, 40)))
                cut = rng.randint(0, len(payload))
                out += frame(DATA, rng.choice([0, END_STREAM, 0x8]), sid, payload[:cut])
            else:
                out += frame(rng.randint(0, 12), rng.randint(0, 255), sid, rng.randbytes(rng.randint(0, 64)))
        try:
            s.sendall(bytes(out))
            read_frames(s, timeout=0.02)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.close()
    assert_healthy(server)


def test_partial_messages_are_capped_per_connection(start_server):
    # 24 calls each announce a 4 MiB message and send 2 MiB of it (respecting flow control):
    # 48 MiB of unfinished requests against a 16 MiB cap. Calls over the cap fail with
    # RESOURCE_EXHAUSTED, the buffers are freed and the server keeps serving.
    import h2.config
    import h2.connection
    import h2.events

    server = start_server("--max-buffered", str(16 << 20))
    baseline = server.rss_kib()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(server.address[len("unix://"):])
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    for _ in range(24):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, request_headers())
        streams[sid] = b"\x00" + struct.pack(">I", 4 << 20) + b"p" * (2 << 20)
    sock.sendall(conn.data_to_send())
    statuses = {}
    deadline = time.monotonic() + 20
    drain_until = None
    while time.monotonic() < deadline:
        if not streams:
            drain_until = drain_until or time.monotonic() + 1.0
            if time.monotonic() > drain_until:
                break
        progressed = False
        for sid in list(streams):
            if sid in statuses:
                streams.pop(sid)
                continue
            window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if window > 0:
                chunk, streams[sid] = streams[sid][:window], streams[sid][window:]
                conn.send_data(sid, chunk)
                progressed = True
                if not streams[sid]:
                    streams.pop(sid)
        sock.sendall(conn.data_to_send())
        readable, _, _ = select.select([sock], [], [], 0 if progressed else 0.2)
        data = sock.recv(65536) if readable else b""
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.TrailersReceived) or isinstance(ev, h2.events.ResponseReceived):
                st = dict(ev.headers).get("grpc-status")
                if st is not None:
                    statuses[ev.stream_id] = st
            elif isinstance(ev, h2.events.StreamReset):
                statuses.setdefault(ev.stream_id, "reset")
        sock.sendall(conn.data_to_send())
    assert "8" in statuses.values(), f"no call failed with RESOURCE_EXHAUSTED: {statuses}"
    sock.close()
    assert_healthy(server)
    settle_rss(server, baseline, 40 * 1024)
