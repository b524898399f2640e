"""Calls NodeGetInfo once on a server with grpcio and checks the answer, so every server in the
table is known to speak correct gRPC before it is measured. Exit 0 when the answer is right.
usage: check.py --socket PATH [--gen-dir DIR]"""
import argparse
import os
import sys

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

    with grpc.insecure_channel(f"unix://{args.socket}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        reply = pb2_grpc.NodeStub(channel).NodeGetInfo(pb2.NodeGetInfoRequest(), timeout=10)
    if reply.node_id != "node-1" or reply.max_volumes_per_node != 100:
        print(f"check.py: {args.socket} answered {reply!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
