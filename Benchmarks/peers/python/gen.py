"""Generates the Python protobuf and grpcio modules for peers/csi_bench.proto into a directory
(under .build: generated code is not committed) and puts that directory on sys.path."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.dirname(HERE)


def load(out_dir):
    """Returns (csi_bench_pb2, csi_bench_pb2_grpc), generating them into out_dir when missing."""
    from grpc_tools import protoc

    os.makedirs(out_dir, exist_ok=True)
    proto = os.path.join(PROTO_DIR, "csi_bench.proto")
    target = os.path.join(out_dir, "csi_bench_pb2.py")
    if not os.path.exists(target) or os.path.getmtime(target) < os.path.getmtime(proto):
        include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
        code = protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out_dir}",
                            f"--grpc_python_out={out_dir}", proto])
        if code != 0:
            raise SystemExit(f"gen.py: protoc failed on {proto}")
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    import csi_bench_pb2
    import csi_bench_pb2_grpc
    return csi_bench_pb2, csi_bench_pb2_grpc
