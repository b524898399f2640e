"""The proto3 JSON mapping of `protowire decode` / `protowire encode` against Python's
google.protobuf.json_format, both ways, for every CSI and plugin-registration message filled
with random values (several seeds each), and the tool's answers to bad input."""

import importlib
import importlib.resources
import json
import os
import random
import subprocess
import sys

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor as FD

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTOWIRE = os.path.join(ROOT, ".build", "debug", "protowire")
SEEDS = range(4)


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    if not os.path.exists(PROTOWIRE):
        pytest.fail("build protowire first: swift build --product protowire")
    from grpc_tools import protoc

    out = str(tmp_path_factory.mktemp("json-stubs"))
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    protos = os.path.join(ROOT, "Sources", "CSI", "Protos")
    for proto in ("csi.proto", "pluginregistration.proto"):
        rc = protoc.main(["protoc", "-I" + protos, "-I" + include, "--python_out=" + out, os.path.join(protos, proto)])
        assert rc == 0, proto
    sys.path.insert(0, out)
    try:
        return [importlib.import_module("csi_pb2"), importlib.import_module("pluginregistration_pb2")]
    finally:
        sys.path.remove(out)


def all_messages(module):
    """Every message class of a generated module, nested ones too, map entries left out."""
    found = []

    def walk(descriptor):
        if descriptor.GetOptions().map_entry:
            return
        found.append(descriptor)
        for nested in descriptor.nested_types:
            walk(nested)

    for descriptor in module.DESCRIPTOR.message_types_by_name.values():
        walk(descriptor)
    return found


def message_class(descriptor):
    from google.protobuf import message_factory
    return message_factory.GetMessageClass(descriptor)


TEXT = "abcxyzÅß日本 \"\\/\n\t\u2028\x01"


def random_scalar(rng, field):
    t = field.type
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return rng.choice([0, 1, -1, 2**31 - 1, -2**31, rng.randint(-2**31, 2**31 - 1)])
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return rng.choice([0, 1, 2**32 - 1, rng.randint(0, 2**32 - 1)])
    if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return rng.choice([0, -1, 2**63 - 1, -2**63, 2**53 + 1, rng.randint(-2**63, 2**63 - 1)])
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return rng.choice([0, 2**64 - 1, 2**53 + 1, rng.randint(0, 2**64 - 1)])
    if t == FD.TYPE_BOOL:
        return rng.choice([True, False])
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return rng.choice([0.0, 1.5, -2.25, 1e10, 0.1])
    if t == FD.TYPE_STRING:
        return "".join(rng.choice(TEXT) for _ in range(rng.randint(0, 12)))
    if t == FD.TYPE_BYTES:
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 9)))
    if t == FD.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values])
    raise AssertionError("unexpected type %d" % t)


def fill(rng, message, depth=0):
    """Sets a random subset of the message's fields; a random member of each oneof."""
    descriptor = message.DESCRIPTOR
    chosen_oneof = {o.name: rng.choice(o.fields) for o in descriptor.oneofs}
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and not oneof.name.startswith("_") and chosen_oneof[oneof.name] is not field:
            continue
        if rng.random() < 0.25:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            target = getattr(message, field.name)
            for _ in range(rng.randint(0, 3)):
                key = random_scalar(rng, key_field)
                if value_field.message_type is not None:
                    if depth < 3:
                        fill(rng, target[key], depth + 1)
                else:
                    target[key] = random_scalar(rng, value_field)
            continue
        if field.message_type is not None:
            name = field.message_type.full_name
            if field.is_repeated:
                for _ in range(rng.randint(0, 2) if depth < 3 else 0):
                    fill(rng, getattr(message, field.name).add(), depth + 1)
            elif name == "google.protobuf.Timestamp":
                getattr(message, field.name).FromSeconds(rng.randint(-62135596800, 253402300799))
                getattr(message, field.name).nanos = rng.choice([0, 1000000, 123456000, 999999999])
            elif name.startswith("google.protobuf.") and name.endswith("Value"):
                getattr(message, field.name).value = random_scalar(rng, field.message_type.fields_by_name["value"])
            elif depth < 3:
                sub = getattr(message, field.name)
                sub.SetInParent()
                fill(rng, sub, depth + 1)
            continue
        if field.is_repeated:
            getattr(message, field.name).extend(random_scalar(rng, field) for _ in range(rng.randint(0, 3)))
        else:
            setattr(message, field.name, random_scalar(rng, field))


def run(args, data):
    return subprocess.run([PROTOWIRE] + args, input=data, capture_output=True, timeout=30)


def cases(modules):
    for module in modules:
        for descriptor in all_messages(module):
            cls = message_class(descriptor)
            for seed in SEEDS:
                rng = random.Random("%s/%d" % (descriptor.full_name, seed))
                message = cls()
                fill(rng, message)
                yield descriptor.full_name, message


def test_every_message_is_covered(modules):
    names = {name for name, _ in cases(modules)}
    listed = set(run(["types"], b"").stdout.decode().split())
    assert names == listed, "protowire types and the .proto files differ: %s" % sorted(names ^ listed)
    assert len(names) >= 95


def test_python_bytes_become_our_json_equal_to_message_to_dict(modules):
    checked = 0
    for name, message in cases(modules):
        for proto_names in (False, True):
            args = ["decode", "--show-secrets"] + (["--proto-names"] if proto_names else []) + [name]
            result = run(args, message.SerializeToString())
            assert result.returncode == 0, (name, result.stderr)
            ours = json.loads(result.stdout)
            expected = json_format.MessageToDict(message, preserving_proto_field_name=proto_names)
            assert ours == expected, "%s\nours:   %s\npython: %s" % (name, ours, expected)
            checked += 1
    assert checked >= 2 * 95 * len(SEEDS)


def test_python_json_becomes_our_bytes_that_python_parses_equal(modules):
    for name, message in cases(modules):
        for proto_names in (False, True):
            text = json_format.MessageToJson(message, preserving_proto_field_name=proto_names)
            result = run(["encode", name], text.encode())
            assert result.returncode == 0, (name, text, result.stderr)
            back = type(message)()
            back.ParseFromString(result.stdout)
            assert back == message, "%s\njson: %s\nback: %s" % (name, text, back)


def test_secrets_are_stripped_at_any_depth_by_default(modules):
    csi = modules[0]
    request = csi.CreateVolumeRequest(name="pvc-1", secrets={"password": "hunter2"})
    result = run(["decode", "csi.v1.CreateVolumeRequest"], request.SerializeToString())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "pvc-1", "secrets": "***stripped***"}
    assert b"hunter2" not in result.stdout
    # A secret inside a nested message (the snapshot metadata iterator's secrets sit at top level,
    # so nest through a list: ListSnapshotsRequest has secrets too).
    nested = csi.ListSnapshotsRequest(max_entries=3, secrets={"k": "sekrit"})
    result = run(["decode", "csi.v1.ListSnapshotsRequest"], nested.SerializeToString())
    assert b"sekrit" not in result.stdout and b"***stripped***" in result.stdout


@pytest.mark.parametrize(
    "text, needle",
    [
        ('{"volumeId": "x", "bogus": 1}', 'unknown field "bogus" in csi.v1.NodePublishVolumeRequest'),
        ('{"volumeId": "x",', "offset"),
        ('{"volumeId": 5}', "must be a string"),
        ('{"readonly": "yes"}', "must be true or false"),
        ('{"volumeCapability": {"accessMode": {"mode": "NO_SUCH_MODE"}}}', '"NO_SUCH_MODE" is not a value of'),
        ('{"volumeId": "a", "volume_id": "b"}', "given twice"),
        ('{"volumeCapability": {"block": {}, "mount": {}}}', "one oneof"),
        ('[1, 2]', "must be a JSON object"),
        ('{"secrets": {"k": null}}', "null"),
        ('{"volumeId": "\\ud800"}', "surrogate"),
        ('{"volumeId": "x"} trailing', "after the JSON value"),
    ],
)
def test_bad_json_is_one_clear_line_and_exit_1(modules, text, needle):
    result = run(["encode", "csi.v1.NodePublishVolumeRequest"], text.encode())
    assert result.returncode == 1, result
    assert result.stdout == b""
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines


def test_unknown_fields_can_be_ignored(modules):
    result = run(["encode", "--ignore-unknown", "csi.v1.NodePublishVolumeRequest"], b'{"volumeId": "x", "bogus": [1]}')
    assert result.returncode == 0, result.stderr
    request = modules[0].NodePublishVolumeRequest()
    request.ParseFromString(result.stdout)
    assert request.volume_id == "x"


def test_integers_and_base64_in_every_accepted_form(modules):
    csi = modules[0]
    text = json.dumps({"capacityRange": {"requiredBytes": 1e3, "limitBytes": "9223372036854775807"},
                       "name": "n", "parameters": {}})
    result = run(["encode", "csi.v1.CreateVolumeRequest"], text.encode())
    assert result.returncode == 0, result.stderr
    request = csi.CreateVolumeRequest()
    request.ParseFromString(result.stdout)
    assert request.capacity_range.required_bytes == 1000 and request.capacity_range.limit_bytes == 2**63 - 1
    for bad in ('{"capacityRange": {"requiredBytes": 1.5}}', '{"capacityRange": {"requiredBytes": "9223372036854775808"}}',
                '{"capacityRange": {"requiredBytes": "0x10"}}'):
        result = run(["encode", "csi.v1.CreateVolumeRequest"], bad.encode())
        assert result.returncode == 1 and b"is not an integer" in result.stderr, (bad, result.stderr)


def test_malformed_binary_and_unknown_types(modules):
    result = run(["decode", "csi.v1.NodePublishVolumeRequest"], b"\x0a\x05ab")
    assert result.returncode == 1 and len(result.stderr.decode().strip().splitlines()) == 1
    assert b"runs past the end" in result.stderr
    result = run(["decode", "csi.v1.NoSuchMessage"], b"")
    assert result.returncode == 1 and b"unknown message type" in result.stderr
    result = run(["decode", "--type", "csi.v1.ProbeResponse"], b"")
    assert result.returncode == 0 and json.loads(result.stdout) == {}
