"""grpcio-bench-server: /csi.v1.Node/NodeGetInfo on Python grpcio, for reference.
usage: server.py --socket PATH [--gen-dir DIR]"""
import argparse
import os
import signal
import sys
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--gen-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "..", "..", ".build", "python"))
    args = parser.parse_args()
    pb2, pb2_grpc = gen.load(os.path.abspath(args.gen_dir))
    import grpc

    class Node(pb2_grpc.NodeServicer):
        def NodeGetInfo(self, request, context):
            return pb2.NodeGetInfoResponse(node_id="node-1", max_volumes_per_node=100)

    if os.path.exists(args.socket):
        os.unlink(args.socket)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_NodeServicer_to_server(Node(), server)
    server.add_insecure_port(f"unix://{args.socket}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    server.wait_for_termination()


if __name__ == "__main__":
    main()
