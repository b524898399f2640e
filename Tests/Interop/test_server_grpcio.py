"""Python grpcio's client against the Swift server over a Unix socket."""
import concurrent.futures
import os
import socket
import stat
import subprocess

import grpc
import pytest

from h2_interop_support import SwiftServer, identity, interop_binary, wait_for


def stub(channel, name, kind="unary_unary"):
    return getattr(channel, kind)(f"/interop.Test/{name}", request_serializer=identity, response_deserializer=identity)


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.address) as ch:
        yield ch


def test_unary_echo(channel):
    assert stub(channel, "Echo")(b"hello") == b"hello"
    assert stub(channel, "Echo")(b"") == b""


@pytest.mark.parametrize("size", [1 << 20, 4 << 20])
def test_large_messages(channel, size):
    payload = os.urandom(size)
    assert stub(channel, "Echo")(payload) == payload


def test_over_receive_limit_is_resource_exhausted(channel):
    with pytest.raises(grpc.RpcError) as e:
        stub(channel, "Echo")(b"x" * ((4 << 20) + 1))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "exceeds the limit" in e.value.details()
    assert stub(channel, "Echo")(b"still fine") == b"still fine"


@pytest.mark.parametrize("code", list(grpc.StatusCode)[1:], ids=lambda c: c.name)
def test_every_status_code(channel, code):
    number = code.value[0]
    with pytest.raises(grpc.RpcError) as e:
        stub(channel, "Fail")(f"{number} failed: 100% ünïcode".encode())
    assert e.value.code() == code
    assert e.value.details() == "failed: 100% ünïcode"
    trailers = dict(e.value.trailing_metadata())
    assert trailers["x-fail-detail"] == f"detail for {number}"
    assert trailers["x-fail-bin"] == b"\x00\x01\x02\xff"


def test_metadata_text_and_binary(channel):
    out = stub(channel, "Metadata")(b"", metadata=[("x-text", "value"), ("x-blob-bin", b"\x00\xfe\xff")])
    lines = out.decode().splitlines()
    assert "x-text=value" in lines
    assert "x-blob-bin=hex:0,fe,ff" in lines


def test_deadline_is_passed_to_handler(channel):
    out = stub(channel, "Metadata")(b"", timeout=10)
    ms = [int(l.split("=")[1]) for l in out.decode().splitlines() if l.startswith("deadline-ms=")]
    # The deadline the handler sees is the caller's 10 s less the time the call took to arrive: the
    # lower bound leaves seconds for a loaded machine and still catches a unit or scale error.
    assert ms and 5000 < ms[0] <= 10500


def test_deadline_exceeded_cancels_handler(channel):
    before = int(stub(channel, "Cancelled")(b""))
    with pytest.raises(grpc.RpcError) as e:
        stub(channel, "Sleep")(b"5000", timeout=0.2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_for(lambda: int(stub(channel, "Cancelled")(b"")) > before)


def test_client_cancellation_cancels_handler(channel):
    before = int(stub(channel, "Cancelled")(b""))
    future = stub(channel, "Sleep").future(b"5000")
    wait_for(lambda: False, timeout=0.2)
    future.cancel()
    assert wait_for(lambda: int(stub(channel, "Cancelled")(b"")) > before)


def test_unknown_method_is_unimplemented(channel):
    with pytest.raises(grpc.RpcError) as e:
        channel.unary_unary("/interop.Test/Missing")(b"")
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/interop.Test/Missing" in e.value.details()


def test_server_streaming(channel):
    sizes = [len(m) for m in stub(channel, "ServerStream", "unary_stream")(b"50 1000")]
    assert sizes == [1000] * 50


def test_server_streaming_large_total(channel):
    # 64 MiB through one stream exercises back-pressure on the writer.
    total = sum(len(m) for m in stub(channel, "ServerStream", "unary_stream")(b"64 1048576"))
    assert total == 64 << 20


def test_client_streaming(channel):
    out = stub(channel, "ClientStream", "stream_unary")(iter([b"a" * i for i in range(100)]))
    assert out == f"100 {sum(range(100))}".encode()


def test_bidirectional_streaming(channel):
    msgs = [os.urandom(i * 10) for i in range(50)]
    assert list(stub(channel, "Bidi", "stream_stream")(iter(msgs))) == msgs


def test_offloaded_blocking_calls_do_not_stall_the_loop(channel):
    blocked = stub(channel, "Offload").future(b"500")
    # While a worker blocks, the loop still answers quickly.
    for _ in range(20):
        assert stub(channel, "Echo")(b"ping", timeout=0.4) == b"ping"
    assert blocked.result(timeout=5) == b"blocked 500"


def test_thousand_concurrent_calls_one_connection(channel):
    futures = [stub(channel, "Sleep").future(b"100") for _ in range(1000)]
    assert all(f.result(timeout=30) == b"slept 100" for f in futures)


def test_many_connections(server):
    def one(i):
        # Distinct channel options force distinct connections.
        with grpc.insecure_channel(server.address, options=[("grpc.primary_user_agent", f"c{i}")]) as ch:
            return [stub(ch, "Echo")(f"{i}-{j}".encode()) for j in range(5)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(64)))
    assert results == [[f"{i}-{j}".encode() for j in range(5)] for i in range(64)]


def test_peer_credentials(channel):
    pid, uid, gid = (int(x) for x in stub(channel, "Peer")(b"").split())
    assert (pid, uid, gid) == (os.getpid(), os.getuid(), os.getgid())


def test_uid_allow_list(start_server):
    s = start_server("--allow-uid", str(os.getuid() + 12345))
    with grpc.insecure_channel(s.address) as ch:
        with pytest.raises(grpc.RpcError) as e:
            stub(ch, "Echo")(b"x")
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert str(os.getuid()) in e.value.details()


def test_socket_mode_and_parent_directory(sockdir, start_server):
    path = f"{sockdir}/a/b/c/test.sock"
    start_server("--mode", "600", path=path)
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    start_server(path=f"{sockdir}/default.sock")
    assert stat.S_IMODE(os.stat(f"{sockdir}/default.sock").st_mode) == 0o660


def test_stale_socket_is_replaced(sockdir):
    path = f"{sockdir}/stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()  # the file stays, nobody answers
    srv = SwiftServer(path)
    try:
        with grpc.insecure_channel(f"unix://{path}") as ch:
            assert stub(ch, "Echo")(b"x") == b"x"
    finally:
        srv.stop()


def run_expecting_refusal(address):
    p = subprocess.run([interop_binary(), "serve", address], capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    return p.stdout + p.stderr


def test_refuses_socket_served_by_another_process(server):
    path = server.address[len("unix://"):]
    out = run_expecting_refusal(server.address)
    assert path in out and "another process is serving it" in out
    with grpc.insecure_channel(server.address) as ch:
        assert stub(ch, "Echo")(b"x") == b"x"


def test_refuses_non_socket_file(sockdir):
    path = f"{sockdir}/file.sock"
    with open(path, "w") as f:
        f.write("not a socket")
    out = run_expecting_refusal(path)
    assert path in out and "not a socket" in out
    assert open(path).read() == "not a socket"


def test_graceful_shutdown_finishes_calls_and_unlinks(sockdir):
    path = f"{sockdir}/graceful.sock"
    srv = SwiftServer(f"unix://{path}")
    with grpc.insecure_channel(f"unix://{path}") as ch:
        assert stub(ch, "Echo")(b"x") == b"x"
        inflight = stub(ch, "Sleep").future(b"500")
        wait_for(lambda: False, timeout=0.1)
        srv.proc.terminate()
        assert inflight.result(timeout=5) == b"slept 500"
    out = srv.stop()
    assert "STOPPED" in out
    assert not os.path.exists(path)


def test_tcp_loopback(start_server):
    s = start_server(path="127.0.0.1:0")
    with grpc.insecure_channel(s.listening) as ch:
        assert stub(ch, "Echo")(b"tcp") == b"tcp"


def test_shutdown_leaves_a_replaced_socket_file_alone(sockdir):
    path = f"{sockdir}/replaced.sock"
    srv = SwiftServer(f"unix://{path}")
    os.unlink(path)
    with open(path, "w") as f:
        f.write("someone else's file")
    out = srv.stop()
    assert "STOPPED" in out
    assert open(path).read() == "someone else's file"


def test_several_event_loops(start_server):
    s = start_server("--loops", "3")
    def one(i):
        with grpc.insecure_channel(s.address, options=[("grpc.primary_user_agent", f"loops{i}")]) as ch:
            return [stub(ch, "Echo")(f"{i}-{j}".encode()) for j in range(20)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(12)))
    assert results == [[f"{i}-{j}".encode() for j in range(20)] for i in range(12)]
    threads = {open(f"/proc/{s.pid}/task/{t}/comm").read().strip() for t in os.listdir(f"/proc/{s.pid}/task")}
    assert {"h2-server-0", "h2-server-1", "h2-server-2"} <= threads


def test_compressed_requests_are_accepted(channel):
    # gzip and deflate are negotiated (test_compression.py has the details); others are UNIMPLEMENTED.
    assert stub(channel, "Echo")(b"x" * 1000, compression=grpc.Compression.Gzip) == b"x" * 1000
    assert stub(channel, "Echo")(b"plain") == b"plain"
