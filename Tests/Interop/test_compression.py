"""Message compression (grpc-encoding gzip and deflate) between Python grpcio and H2, both ways,
checked on the wire with a raw HTTP/2 peer, plus hostile compressed payloads."""
import gzip
import os
import select
import socket
import struct
import subprocess
import sys
import time
import zlib

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from h2_interop_support import identity, interop_binary, wait_for

sys.path.insert(0, os.path.dirname(__file__))
import py_server  # noqa: E402

ENCODINGS = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}
PYTHON_COMPRESS = {"gzip": lambda b: gzip.compress(b, 6), "deflate": lambda b: zlib.compress(b, 6)}
PYTHON_DECOMPRESS = {"gzip": gzip.decompress, "deflate": zlib.decompress}


def compressible(n):
    words = b"volume node publish stage capacity /var/lib/kubelet/pods pvc-1234 "
    out = bytearray()
    i = 0
    while len(out) < n:
        out += words[i % 7 * 5:] + str(i).encode()
        i += 1
    return bytes(out[:n])


def stub(channel, name, kind="unary_unary"):
    return getattr(channel, kind)(f"/interop.Test/{name}", request_serializer=identity, response_deserializer=identity)


def raw_call(server, path="/interop.Test/Echo", headers=(), body=b"", timeout=10):
    """One call over a raw HTTP/2 connection: returns (response headers, DATA bytes, trailers)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(server.address[len("unix://"):])
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                            ("content-type", "application/grpc"), ("te", "trailers"), *headers])
    pending = body
    sock.sendall(conn.data_to_send())
    response, data, trailers = {}, bytearray(), None
    deadline = time.monotonic() + timeout
    ended = False
    while trailers is None and time.monotonic() < deadline:
        while pending and not ended:
            window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if window <= 0:
                break
            chunk, pending = pending[:window], pending[window:]
            conn.send_data(sid, chunk, end_stream=not pending)
        if not pending and not ended:
            if not body:
                conn.end_stream(sid)
            ended = True
        sock.sendall(conn.data_to_send())
        readable, _, _ = select.select([sock], [], [], 0.2)
        if not readable:
            continue
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                response = dict(ev.headers)
                if "grpc-status" in response:
                    trailers = response
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.TrailersReceived):
                trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamReset):
                trailers = {"reset": str(ev.error_code)}
        sock.sendall(conn.data_to_send())
    sock.close()
    return response, bytes(data), trailers


def messages(data):
    """(compressed flag, payload) of each length-prefixed message."""
    out = []
    while data:
        flag, n = data[0], struct.unpack(">I", data[1:5])[0]
        out.append((flag, data[5:5 + n]))
        data = data[5 + n:]
    return out


def frame(payload, compressed):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(payload)) + payload


# grpcio client -> Swift server


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("server_compress", [None, "gzip", "deflate"])
def test_grpcio_client_with_compression(start_server, encoding, server_compress):
    server = start_server(*(["--compress", server_compress] if server_compress else []))
    with grpc.insecure_channel(server.address, compression=ENCODINGS[encoding]) as ch:
        for payload in [b"", b"hello", compressible(300_000), os.urandom(100_000)]:
            assert stub(ch, "Echo")(payload) == payload
        # Per call, too, and on the streaming kinds.
        other = ENCODINGS["deflate" if encoding == "gzip" else "gzip"]
        assert stub(ch, "Echo")(compressible(5000), compression=other) == compressible(5000)
        got = list(stub(ch, "ServerStream", "unary_stream")(b"3 20000"))
        assert got == [bytes([i]) * 20000 for i in range(3)]
        reqs = [compressible(10_000), b"x", compressible(70_000)]
        assert stub(ch, "ClientStream", "stream_unary")(iter(reqs)) == f"3 {sum(map(len, reqs))}".encode()
        assert list(stub(ch, "Bidi", "stream_stream")(iter(reqs))) == reqs


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_server_decodes_python_zlib_messages_on_the_wire(server, encoding):
    payload = compressible(50_000)
    body = frame(PYTHON_COMPRESS[encoding](payload), True) + frame(b"", False)
    # Two messages on a unary call is an error, so send one compressed message per call;
    # an uncompressed message under a grpc-encoding is allowed too (flag 0).
    for b in [frame(PYTHON_COMPRESS[encoding](payload), True), frame(payload, False)]:
        response, data, trailers = raw_call(server, headers=[("grpc-encoding", encoding)], body=b)
        assert trailers.get("grpc-status") == "0", trailers
        assert response["grpc-accept-encoding"] == "identity,deflate,gzip"
        assert "grpc-encoding" not in response  # the server does not compress unless configured
        assert messages(data) == [(0, payload)]
    assert body  # keeps the framing helper honest


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_server_compresses_responses_only_when_configured_and_accepted(start_server, encoding):
    server = start_server("--compress", encoding)
    payload = compressible(40_000)
    response, data, trailers = raw_call(server, headers=[("grpc-accept-encoding", f"identity,{encoding}")],
                                        body=frame(payload, False))
    assert trailers.get("grpc-status") == "0", trailers
    assert response["grpc-encoding"] == encoding
    [(flag, z)] = messages(data)
    assert flag == 1 and len(z) < len(payload) // 5
    assert PYTHON_DECOMPRESS[encoding](z) == payload
    # A tiny message stays uncompressed (flag 0) under the same grpc-encoding.
    _, data, _ = raw_call(server, headers=[("grpc-accept-encoding", encoding)], body=frame(b"hi", False))
    assert messages(data) == [(0, b"hi")]
    # A client that does not accept it gets identity.
    response, data, _ = raw_call(server, headers=[("grpc-accept-encoding", "identity")], body=frame(payload, False))
    assert "grpc-encoding" not in response
    assert messages(data) == [(0, payload)]
    response, data, _ = raw_call(server, body=frame(payload, False))
    assert "grpc-encoding" not in response and messages(data) == [(0, payload)]


def test_unknown_encoding_is_unimplemented_and_lists_what_is_supported(server):
    response, _, trailers = raw_call(server, headers=[("grpc-encoding", "snappy")], body=frame(b"zzz", True))
    assert trailers["grpc-status"] == "12", trailers
    assert trailers["grpc-accept-encoding"] == "identity,deflate,gzip"
    assert "snappy" in trailers["grpc-message"]


def test_compressed_flag_without_encoding_is_internal(server):
    _, _, trailers = raw_call(server, body=frame(gzip.compress(b"abc"), True))
    assert trailers["grpc-status"] == "13", trailers
    assert "no grpc-encoding" in trailers["grpc-message"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_corrupt_payload_is_internal_naming_encoding_and_peer(server, encoding):
    good = PYTHON_COMPRESS[encoding](compressible(20_000))
    corrupt = good[:40] + bytes(b ^ 0x5A for b in good[40:80]) + good[80:]
    for bad in [corrupt, good[:-7], b"\x00" * 64, os.urandom(300)]:
        _, _, trailers = raw_call(server, headers=[("grpc-encoding", encoding)], body=frame(bad, True))
        assert trailers["grpc-status"] == "13", trailers
        msg = trailers["grpc-message"]
        assert msg.startswith(f"{encoding}-compressed message from the client on "), msg
        assert "invalid" in msg and "pid" in msg
    assert stub(grpc.insecure_channel(server.address), "Echo")(b"still fine", timeout=5) == b"still fine"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_decompression_bomb_is_cut_off_at_the_receive_limit(start_server, encoding):
    server = start_server("--max-receive", str(1 << 20))
    baseline = server.rss_kib()
    bomb = PYTHON_COMPRESS[encoding](b"\0" * (512 << 20))  # 512 MiB of zeros in ~500 KiB
    assert len(bomb) < 1 << 20
    t = time.monotonic()
    _, _, trailers = raw_call(server, headers=[("grpc-encoding", encoding)], body=frame(bomb, True), timeout=20)
    assert trailers["grpc-status"] == "8", trailers
    assert "more than the limit of 1048576 bytes" in trailers["grpc-message"]
    assert time.monotonic() - t < 10
    # The same through grpcio, which compresses a large message itself.
    with grpc.insecure_channel(server.address, compression=ENCODINGS[encoding]) as ch:
        with pytest.raises(grpc.RpcError) as e:
            stub(ch, "Echo")(b"\0" * (8 << 20))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub(ch, "Echo")(compressible(900_000)) == compressible(900_000)
    assert server.alive()
    assert wait_for(lambda: server.rss_kib() - baseline < 24 * 1024, timeout=3), \
        f"RSS grew from {baseline} KiB to {server.rss_kib()} KiB"


# Swift client -> grpcio server


@pytest.fixture(params=[None, "gzip", "deflate"])
def compressing_py_target(sockdir, request):
    address = f"unix://{sockdir}/py.sock"
    server = py_server.serve(address, compression=ENCODINGS[request.param] if request.param else None)
    yield address
    server.stop(0)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate:1", "gzip:9"])
def test_swift_client_compresses_against_grpcio(compressing_py_target, encoding):
    p = subprocess.run([interop_binary(), "call", compressing_py_target, "--compress", encoding,
                        "unary", "large", "status", "server-stream", "client-stream", "bidi"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_swift_client_decodes_grpcio_compressed_responses(compressing_py_target):
    p = subprocess.run([interop_binary(), "call", compressing_py_target, "unary", "large", "server-stream", "bidi"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def raw_echo_server(path, respond_with, seen):
    """Serves one connection on `path` with a raw HTTP/2 peer: records each request's headers and
    messages in `seen`, answers each message back compressed with `respond_with` (Python's zlib)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def run():
        sock, _ = listener.accept()
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        bodies, heads = {}, {}
        try:
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    return
                for ev in conn.receive_data(chunk):
                    if isinstance(ev, h2.events.RequestReceived):
                        heads[ev.stream_id] = dict(ev.headers)
                        bodies[ev.stream_id] = bytearray()
                    elif isinstance(ev, h2.events.DataReceived):
                        bodies[ev.stream_id] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        sid = ev.stream_id
                        msgs = messages(bytes(bodies[sid]))
                        seen.append((heads[sid], msgs))
                        plain = [PYTHON_DECOMPRESS[heads[sid]["grpc-encoding"]](p) if f else p for f, p in msgs]
                        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                                                ("grpc-encoding", respond_with)])
                        out = b"".join(frame(PYTHON_COMPRESS[respond_with](p), True) for p in plain)
                        for i in range(0, len(out), 16384):  # small enough for the default windows
                            conn.send_data(sid, out[i:i + 16384])
                        conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
                sock.sendall(conn.data_to_send())
        finally:
            sock.close()
            listener.close()

    import threading
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_swift_client_sends_and_receives_compressed_messages_on_the_wire(sockdir, encoding):
    path = f"{sockdir}/raw.sock"
    seen = []
    answer = "deflate" if encoding == "gzip" else "gzip"
    t = raw_echo_server(path, answer, seen)
    p = subprocess.run([interop_binary(), "call", f"unix://{path}", "--compress", encoding, "large"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(seen) == 2
    for head, msgs in seen:
        assert head["grpc-encoding"] == encoding
        assert head["grpc-accept-encoding"] == "identity,deflate,gzip"
        [(flag, z)] = msgs
        assert flag == 1 and len(z) < 200_000  # 1 MiB and 4 MiB of a short period
    t.join(timeout=5)


def test_swift_client_per_call_compression_overrides_the_channel(sockdir):
    path = f"{sockdir}/raw.sock"
    seen = []
    t = raw_echo_server(path, "gzip", seen)
    p = subprocess.run([interop_binary(), "call", f"unix://{path}", "--compress", "gzip", "per-call-compression"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    [(first, [(flag1, z)]), (second, [(flag2, plain)])] = seen
    assert first["grpc-encoding"] == "deflate" and flag1 == 1 and len(z) < 10_000
    assert "grpc-encoding" not in second and flag2 == 0 and len(plain) == 100_000
    t.join(timeout=5)
