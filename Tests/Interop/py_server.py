"""The interop.Test service on Python grpcio with raw-bytes (identity) serializers."""
import sys
import threading
import time
from concurrent import futures

import grpc

cancelled = 0
lock = threading.Lock()


def ident(b):
    return b


def echo(req, ctx):
    return req


def fail(req, ctx):
    code_s, _, msg = req.decode().partition(" ")
    code = int(code_s)
    ctx.set_trailing_metadata([("x-fail-detail", f"detail for {code}"), ("x-fail-bin", b"\x00\x01\x02\xff")])
    status = next(c for c in grpc.StatusCode if c.value[0] == code)
    ctx.abort(status, msg)


def metadata(req, ctx):
    lines = []
    for k, v in ctx.invocation_metadata():
        if isinstance(v, bytes):
            lines.append(f"{k}=hex:" + ",".join(format(b, "x") for b in v))
        else:
            lines.append(f"{k}={v}")
    return "\n".join(lines).encode()


def sleep(req, ctx):
    global cancelled
    ms = int(req.decode() or "0")
    deadline = time.monotonic() + ms / 1000
    while time.monotonic() < deadline:
        if not ctx.is_active():
            with lock:
                cancelled += 1
            return b""
        time.sleep(0.01)
    return f"slept {ms}".encode()


def cancelled_count(req, ctx):
    with lock:
        return str(cancelled).encode()


def server_stream(req, ctx):
    count, size = (int(x) for x in req.decode().split())
    for i in range(count):
        yield bytes([i & 0xFF]) * size


def client_stream(reqs, ctx):
    n = total = 0
    for r in reqs:
        n += 1
        total += len(r)
    return f"{n} {total}".encode()


def bidi(reqs, ctx):
    for r in reqs:
        yield r


def handlers():
    u = lambda f: grpc.unary_unary_rpc_method_handler(f, request_deserializer=ident, response_serializer=ident)
    return grpc.method_handlers_generic_handler("interop.Test", {
        "Echo": u(echo), "Fail": u(fail), "Metadata": u(metadata), "Sleep": u(sleep),
        "Cancelled": u(cancelled_count),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, request_deserializer=ident, response_serializer=ident),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, request_deserializer=ident, response_serializer=ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, request_deserializer=ident, response_serializer=ident),
    })


def serve(address, compression=None):
    """Starts the service; `compression` (a grpc.Compression) compresses every response."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64),
                         options=[("grpc.max_receive_message_length", 8 << 20),
                                  ("grpc.max_send_message_length", 8 << 20)],
                         compression=compression)
    server.add_generic_rpc_handlers((handlers(),))
    server.add_insecure_port(address)
    server.start()
    return server


if __name__ == "__main__":
    s = serve(sys.argv[1])
    print("LISTENING", flush=True)
    s.wait_for_termination()
