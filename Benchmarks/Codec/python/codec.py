"""Encode/decode of the sample NodePublishVolumeRequest with Python's protobuf (upb, C).
Reads the sample's bytes (written by `codec-bench --write-sample`), prints `codec op ns_per_op bytes`
lines like codec-bench: the fastest of several timeit batches.
usage: codec.py SAMPLE_FILE [--gen-dir DIR] [--batches N]"""
import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "peers", "python"))
import gen  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sample")
    parser.add_argument("--gen-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "..", "..", ".build", "python"))
    parser.add_argument("--batches", type=int, default=7)
    args = parser.parse_args()
    pb2, _ = gen.load(os.path.abspath(args.gen_dir))
    from google.protobuf.internal import api_implementation

    with open(args.sample, "rb") as f:
        data = f.read()
    message = pb2.NodePublishVolumeRequest()
    message.ParseFromString(data)
    if message.volume_capability.mount.fs_type != "ext4" or not message.secrets:
        raise SystemExit("codec.py: the sample did not decode as expected")
    name = f"python-protobuf-{api_implementation.Type()}"

    def best(fn):
        timer = timeit.Timer(fn)
        number, _ = timer.autorange()
        number = max(number, 1000) * 2
        return min(timer.repeat(repeat=args.batches, number=number)) / number * 1e9

    encoded = message.SerializeToString()
    print(f"{name} encode {best(message.SerializeToString):.1f} {len(encoded)}")

    def decode():
        m = pb2.NodePublishVolumeRequest()
        m.ParseFromString(data)
        return m

    print(f"{name} decode {best(decode):.1f} {len(data)}")


if __name__ == "__main__":
    main()
