"""Checks the project's own .proto definitions: they compile with grpcio-tools and
carry the facts (field numbers, options, service and method names) that peers
such as the kubelet and the kubernetes-csi sidecars depend on."""

import pathlib
import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSI_PROTOS = ROOT / "Sources" / "CSI" / "Protos"
H2_PROTOS = ROOT / "Sources" / "H2" / "Protos"

CSI_SECRET = 1059
ALPHA = 1060


def _compile(tmp_path_factory, include: pathlib.Path, name: str) -> descriptor_pb2.FileDescriptorProto:
    import grpc_tools

    out = tmp_path_factory.mktemp("desc") / (name + ".pb")
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{include}", f"-I{well_known}",
        f"--descriptor_set_out={out}",
        f"--python_out={out.parent}",
        str(include / name),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{name} does not compile: {proc.stderr}"
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(out.read_bytes())
    return fds.file[0]


@pytest.fixture(scope="module")
def csi(tmp_path_factory):
    return _compile(tmp_path_factory, CSI_PROTOS, "csi.proto")


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    return _compile(tmp_path_factory, CSI_PROTOS, "pluginregistration.proto")


@pytest.fixture(scope="module")
def health(tmp_path_factory):
    return _compile(tmp_path_factory, H2_PROTOS, "health.proto")


@pytest.fixture(scope="module")
def reflection(tmp_path_factory):
    return _compile(tmp_path_factory, H2_PROTOS, "reflection.proto")


def _messages(fdp):
    """All messages by dotted name (nested ones as Outer.Inner)."""
    out = {}

    def walk(m, prefix):
        out[prefix + m.name] = m
        for n in m.nested_type:
            walk(n, prefix + m.name + ".")

    for m in fdp.message_type:
        walk(m, "")
    return out


def _enums(fdp):
    out = {e.name: e for e in fdp.enum_type}
    for name, m in _messages(fdp).items():
        for e in m.enum_type:
            out[name + "." + e.name] = e
    return out


def _field(fdp, message, field):
    m = _messages(fdp)[message]
    for f in m.field:
        if f.name == field:
            return f
    raise AssertionError(f"{message} has no field {field}")


def _ext_value(options, number):
    """Value of a custom bool option given by field number, read from the raw bytes
    so the check does not depend on the generated extension classes."""
    raw = options.SerializeToString()
    key = (number << 3) | 0  # varint wire type
    # encode key as varint
    enc = bytearray()
    k = key
    while True:
        b = k & 0x7F
        k >>= 7
        if k:
            enc.append(b | 0x80)
        else:
            enc.append(b)
            break
    i = raw.find(bytes(enc))
    return i >= 0 and raw[i + len(enc)] == 1


def _services(fdp):
    return {
        f"{fdp.package}.{s.name}": {m.name: m for m in s.method} for s in fdp.service
    }


# --- csi.proto ----------------------------------------------------------------

def test_csi_package_and_imports(csi):
    assert csi.package == "csi.v1"
    assert set(csi.dependency) == {
        "google/protobuf/descriptor.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/wrappers.proto",
    }


def test_csi_extensions(csi):
    ext = {e.name: (e.extendee, e.number) for e in csi.extension}
    assert ext == {
        "csi_secret": (".google.protobuf.FieldOptions", CSI_SECRET),
        "alpha_field": (".google.protobuf.FieldOptions", ALPHA),
        "alpha_enum": (".google.protobuf.EnumOptions", ALPHA),
        "alpha_enum_value": (".google.protobuf.EnumValueOptions", ALPHA),
        "alpha_message": (".google.protobuf.MessageOptions", ALPHA),
        "alpha_method": (".google.protobuf.MethodOptions", ALPHA),
        "alpha_service": (".google.protobuf.ServiceOptions", ALPHA),
    }


@pytest.mark.parametrize("message,field,number", [
    ("GetPluginInfoResponse", "name", 1),
    ("GetPluginInfoResponse", "vendor_version", 2),
    ("GetPluginInfoResponse", "manifest", 3),
    ("ProbeResponse", "ready", 1),
    ("CreateVolumeRequest", "name", 1),
    ("CreateVolumeRequest", "capacity_range", 2),
    ("CreateVolumeRequest", "volume_capabilities", 3),
    ("CreateVolumeRequest", "parameters", 4),
    ("CreateVolumeRequest", "volume_content_source", 6),
    ("CreateVolumeRequest", "accessibility_requirements", 7),
    ("CreateVolumeRequest", "mutable_parameters", 8),
    ("VolumeCapability", "block", 1),
    ("VolumeCapability", "mount", 2),
    ("VolumeCapability", "access_mode", 3),
    ("VolumeCapability.MountVolume", "volume_mount_group", 3),
    ("Volume", "capacity_bytes", 1),
    ("Volume", "volume_id", 2),
    ("Volume", "accessible_topology", 5),
    ("Topology", "segments", 1),
    ("ControllerPublishVolumeRequest", "readonly", 4),
    ("ControllerPublishVolumeRequest", "volume_context", 6),
    ("ListVolumesResponse.VolumeStatus", "volume_condition", 2),
    ("GetCapacityResponse", "minimum_volume_size", 3),
    ("Snapshot", "group_snapshot_id", 6),
    ("ControllerExpandVolumeResponse", "node_expansion_required", 2),
    ("NodeStageVolumeRequest", "staging_target_path", 3),
    ("NodeStageVolumeRequest", "volume_context", 6),
    ("NodePublishVolumeRequest", "target_path", 4),
    ("NodePublishVolumeRequest", "readonly", 6),
    ("NodePublishVolumeRequest", "volume_context", 8),
    ("NodeGetInfoResponse", "node_id", 1),
    ("NodeGetInfoResponse", "max_volumes_per_node", 2),
    ("NodeGetInfoResponse", "accessible_topology", 3),
    ("NodeExpandVolumeRequest", "volume_capability", 5),
    ("VolumeGroupSnapshot", "ready_to_use", 4),
    ("GetMetadataDeltaRequest", "max_results", 4),
])
def test_csi_field_numbers(csi, message, field, number):
    assert _field(csi, message, field).number == number


SECRET_FIELDS = {
    "CreateVolumeRequest": 5,
    "DeleteVolumeRequest": 2,
    "ControllerPublishVolumeRequest": 5,
    "ControllerUnpublishVolumeRequest": 3,
    "ValidateVolumeCapabilitiesRequest": 5,
    "ControllerModifyVolumeRequest": 2,
    "CreateSnapshotRequest": 3,
    "DeleteSnapshotRequest": 2,
    "ListSnapshotsRequest": 5,
    "GetSnapshotRequest": 2,
    "ControllerExpandVolumeRequest": 3,
    "NodeStageVolumeRequest": 5,
    "NodePublishVolumeRequest": 7,
    "NodeExpandVolumeRequest": 6,
    "CreateVolumeGroupSnapshotRequest": 3,
    "DeleteVolumeGroupSnapshotRequest": 3,
    "GetVolumeGroupSnapshotRequest": 3,
    "GetMetadataAllocatedRequest": 4,
    "GetMetadataDeltaRequest": 5,
}


def test_every_secrets_field_is_marked(csi):
    found = {}
    for name, m in _messages(csi).items():
        for f in m.field:
            if f.name == "secrets":
                found[name] = f.number
                assert _ext_value(f.options, CSI_SECRET), f"{name}.secrets lacks (csi_secret) = true"
    assert found == SECRET_FIELDS


def test_only_secrets_fields_are_marked(csi):
    for name, m in _messages(csi).items():
        for f in m.field:
            if f.name != "secrets":
                assert not _ext_value(f.options, CSI_SECRET), f"{name}.{f.name} is marked secret"


def test_alpha_markers(csi):
    msgs = _messages(csi)
    for name in ["ControllerGetVolumeRequest", "ControllerGetVolumeResponse", "GetSnapshotRequest",
                 "GetSnapshotResponse", "VolumeCondition"]:
        assert _ext_value(msgs[name].options, ALPHA), name
    assert not _ext_value(msgs["CreateVolumeRequest"].options, ALPHA)
    assert _ext_value(_field(csi, "NodeExpandVolumeRequest", "secrets").options, ALPHA)
    assert _ext_value(_field(csi, "GetCapacityResponse", "minimum_volume_size").options, ALPHA)
    services = {s.name: s for s in csi.service}
    assert _ext_value(services["SnapshotMetadata"].options, ALPHA)
    assert not _ext_value(services["GroupController"].options, ALPHA)
    methods = {m.name: m for m in services["Controller"].method}
    assert _ext_value(methods["GetSnapshot"].options, ALPHA)
    assert _ext_value(methods["ControllerGetVolume"].options, ALPHA)
    assert not _ext_value(methods["ControllerModifyVolume"].options, ALPHA)
    rpc = {v.name: v for v in _enums(csi)["ControllerServiceCapability.RPC.Type"].value}
    assert rpc["GET_SNAPSHOT"].number == 15 and _ext_value(rpc["GET_SNAPSHOT"].options, ALPHA)
    assert rpc["MODIFY_VOLUME"].number == 14 and not _ext_value(rpc["MODIFY_VOLUME"].options, ALPHA)


def test_csi_enums(csi):
    enums = _enums(csi)
    values = lambda n: {v.name: v.number for v in enums[n].value}  # noqa: E731
    assert values("VolumeCapability.AccessMode.Mode") == {
        "UNKNOWN": 0, "SINGLE_NODE_WRITER": 1, "SINGLE_NODE_READER_ONLY": 2,
        "MULTI_NODE_READER_ONLY": 3, "MULTI_NODE_SINGLE_WRITER": 4, "MULTI_NODE_MULTI_WRITER": 5,
        "SINGLE_NODE_SINGLE_WRITER": 6, "SINGLE_NODE_MULTI_WRITER": 7,
    }
    assert values("NodeServiceCapability.RPC.Type") == {
        "UNKNOWN": 0, "STAGE_UNSTAGE_VOLUME": 1, "GET_VOLUME_STATS": 2, "EXPAND_VOLUME": 3,
        "VOLUME_CONDITION": 4, "SINGLE_NODE_MULTI_WRITER": 5, "VOLUME_MOUNT_GROUP": 6,
    }
    assert values("PluginCapability.Service.Type")["GROUP_CONTROLLER_SERVICE"] == 3
    assert values("BlockMetadataType") == {"UNKNOWN": 0, "FIXED_LENGTH": 1, "VARIABLE_LENGTH": 2}


def test_csi_oneofs(csi):
    msgs = _messages(csi)
    oneofs = {name: [o.name for o in m.oneof_decl] for name, m in msgs.items() if m.oneof_decl}
    assert oneofs == {
        "PluginCapability": ["type"],
        "VolumeContentSource": ["type"],
        "VolumeCapability": ["access_type"],
        "ControllerServiceCapability": ["type"],
        "NodeServiceCapability": ["type"],
        "GroupControllerServiceCapability": ["type"],
    }


def test_csi_services(csi):
    services = _services(csi)
    assert set(services) == {"csi.v1.Identity", "csi.v1.Controller", "csi.v1.GroupController",
                             "csi.v1.SnapshotMetadata", "csi.v1.Node"}
    assert list(services["csi.v1.Identity"]) == ["GetPluginInfo", "GetPluginCapabilities", "Probe"]
    assert list(services["csi.v1.Node"]) == [
        "NodeStageVolume", "NodeUnstageVolume", "NodePublishVolume", "NodeUnpublishVolume",
        "NodeGetVolumeStats", "NodeExpandVolume", "NodeGetCapabilities", "NodeGetInfo"]
    assert list(services["csi.v1.Controller"]) == [
        "CreateVolume", "DeleteVolume", "ControllerPublishVolume", "ControllerUnpublishVolume",
        "ValidateVolumeCapabilities", "ListVolumes", "GetCapacity", "ControllerGetCapabilities",
        "CreateSnapshot", "DeleteSnapshot", "ListSnapshots", "GetSnapshot", "ControllerExpandVolume",
        "ControllerGetVolume", "ControllerModifyVolume"]
    assert list(services["csi.v1.GroupController"]) == [
        "GroupControllerGetCapabilities", "CreateVolumeGroupSnapshot", "DeleteVolumeGroupSnapshot",
        "GetVolumeGroupSnapshot"]
    info = services["csi.v1.Node"]["NodeGetInfo"]
    assert (info.input_type, info.output_type) == (".csi.v1.NodeGetInfoRequest", ".csi.v1.NodeGetInfoResponse")
    for m in services["csi.v1.SnapshotMetadata"].values():
        assert m.server_streaming and not m.client_streaming


# --- pluginregistration.proto ---------------------------------------------------

def test_pluginregistration(reg):
    assert reg.package == "pluginregistration"
    numbers = lambda msg: {f.name: f.number for f in _messages(reg)[msg].field}  # noqa: E731
    assert numbers("PluginInfo") == {"type": 1, "name": 2, "endpoint": 3, "supported_versions": 4}
    assert _field(reg, "PluginInfo", "supported_versions").label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    assert numbers("RegistrationStatus") == {"plugin_registered": 1, "error": 2}
    assert numbers("RegistrationStatusResponse") == {}
    assert numbers("InfoRequest") == {}
    methods = _services(reg)["pluginregistration.Registration"]
    assert {n: (m.input_type, m.output_type) for n, m in methods.items()} == {
        "GetInfo": (".pluginregistration.InfoRequest", ".pluginregistration.PluginInfo"),
        "NotifyRegistrationStatus": (".pluginregistration.RegistrationStatus",
                                     ".pluginregistration.RegistrationStatusResponse"),
    }


# --- health.proto and reflection.proto ------------------------------------------

def test_health(health):
    assert health.package == "grpc.health.v1"
    status = {v.name: v.number for v in _enums(health)["HealthCheckResponse.ServingStatus"].value}
    assert status == {"UNKNOWN": 0, "SERVING": 1, "NOT_SERVING": 2, "SERVICE_UNKNOWN": 3}
    assert _field(health, "HealthCheckRequest", "service").number == 1
    assert _field(health, "HealthCheckResponse", "status").number == 1
    methods = _services(health)["grpc.health.v1.Health"]
    assert not methods["Check"].server_streaming
    assert methods["Watch"].server_streaming and not methods["Watch"].client_streaming
    assert methods["List"].output_type == ".grpc.health.v1.HealthListResponse"


def test_reflection(reflection):
    assert reflection.package == "grpc.reflection.v1"
    methods = _services(reflection)["grpc.reflection.v1.ServerReflection"]
    info = methods["ServerReflectionInfo"]
    assert info.client_streaming and info.server_streaming
    req = {f.name: f.number for f in _messages(reflection)["ServerReflectionRequest"].field}
    assert req == {"host": 1, "file_by_filename": 3, "file_containing_symbol": 4,
                   "file_containing_extension": 5, "all_extension_numbers_of_type": 6,
                   "list_services": 7}
    resp = {f.name: f.number for f in _messages(reflection)["ServerReflectionResponse"].field}
    assert resp == {"valid_host": 1, "original_request": 2, "file_descriptor_response": 4,
                    "all_extension_numbers_response": 5, "list_services_response": 6,
                    "error_response": 7}
    assert _field(reflection, "ErrorResponse", "error_code").number == 1


def test_debian_protoc_compiles_all():
    """The generator runs Debian's protoc with /usr/include for the well-known types."""
    import shutil
    if not shutil.which("protoc") or not pathlib.Path("/usr/include/google/protobuf/descriptor.proto").exists():
        pytest.skip("Debian protoc or libprotobuf-dev headers not installed")
    for inc, name in [(CSI_PROTOS, "csi.proto"), (CSI_PROTOS, "pluginregistration.proto"),
                      (H2_PROTOS, "health.proto"), (H2_PROTOS, "reflection.proto")]:
        proc = subprocess.run(["protoc", "-I/usr/include", f"-I{inc}", "--descriptor_set_out=/dev/null",
                               str(inc / name)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
