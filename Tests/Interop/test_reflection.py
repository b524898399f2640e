"""Server reflection as standard clients use it: grpcio-reflection's ProtoReflectionDescriptorDatabase
feeding a DescriptorPool, against the real csi-lvm-driver (loop file backend) on a Unix socket.

Nothing here is compiled from csi.proto: every type comes from the server, and the calls at the end
go through messages built from those descriptors alone."""
import os
import subprocess
import tempfile
import time

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from h2_interop_support import ROOT

DRIVER_NAME = "reflection.csi.swift-csi.io"
_built = []


def driver_binary() -> str:
    """The debug csi-lvm-driver, linked on first use (`swift build --build-tests` may not link it)."""
    if not _built:
        subprocess.run(["swift", "build", "--product", "csi-lvm-driver"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        _built.append(str(ROOT / ".build" / "debug" / "csi-lvm-driver"))
    return _built[0]


@pytest.fixture(scope="module")
def driver():
    with tempfile.TemporaryDirectory(prefix="csi-reflection-") as workdir:
        socket = os.path.join(workdir, "csi.sock")
        os.makedirs(os.path.join(workdir, "kubelet"))
        log = open(os.path.join(workdir, "driver.log"), "wb")
        process = subprocess.Popen(
            [driver_binary(), "--endpoint", "unix://" + socket, "--driver-name", DRIVER_NAME,
             "--node-id", "node-r", "--kubelet-dir", os.path.join(workdir, "kubelet"),
             "--backend", "loopfile", "--loopfile-dir", os.path.join(workdir, "volumes")],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(socket):
                assert process.poll() is None, open(log.name).read()
                assert time.monotonic() < deadline, "driver did not create its socket in 30 s"
                time.sleep(0.02)
            with grpc.insecure_channel("unix://" + socket) as channel:
                grpc.channel_ready_future(channel).result(timeout=10)
                yield channel
        finally:
            process.terminate()
            process.wait(timeout=20)
            log.close()


@pytest.fixture
def reflection(driver):
    database = ProtoReflectionDescriptorDatabase(driver)
    return database, descriptor_pool.DescriptorPool(database)


def protoc_pool():
    """csi.proto and its imports as protoc itself describes them, for comparison."""
    with tempfile.NamedTemporaryFile(suffix=".pb") as out:
        subprocess.run(["protoc", "-I", str(ROOT / "Sources/CSI/Protos"), "-I", "/usr/include",
                        "--include_imports", "-o", out.name, "csi.proto"], check=True)
        files = descriptor_pb2.FileDescriptorSet.FromString(open(out.name, "rb").read())
    return {f.name: f for f in files.file}


def test_finds_the_controller_service_and_its_methods(reflection):
    _, pool = reflection
    controller = pool.FindServiceByName("csi.v1.Controller")
    assert controller.file.name == "csi.proto"
    create = controller.methods_by_name["CreateVolume"]
    assert create.input_type.full_name == "csi.v1.CreateVolumeRequest"
    assert create.output_type.full_name == "csi.v1.CreateVolumeResponse"
    assert "ControllerModifyVolume" in controller.methods_by_name


def test_resolves_create_volume_request_fields(reflection):
    _, pool = reflection
    request = pool.FindMessageTypeByName("csi.v1.CreateVolumeRequest")
    fields = {f.name: f for f in request.fields}
    assert {n: f.number for n, f in fields.items()} == {
        "name": 1, "capacity_range": 2, "volume_capabilities": 3, "parameters": 4, "secrets": 5,
        "volume_content_source": 6, "accessibility_requirements": 7, "mutable_parameters": 8}
    assert fields["name"].type == FieldDescriptor.TYPE_STRING
    assert fields["capacity_range"].message_type.full_name == "csi.v1.CapacityRange"
    assert fields["volume_capabilities"].is_repeated and not fields["name"].is_repeated
    assert fields["volume_capabilities"].message_type.full_name == "csi.v1.VolumeCapability"
    assert fields["parameters"].message_type.GetOptions().map_entry
    # The CSI option marking secrets travels with the descriptor, and resolves through the
    # extension declared in csi.proto itself.
    secret = pool.FindExtensionByName("csi.v1.csi_secret")
    assert secret.number == 1059
    assert secret.containing_type.full_name == "google.protobuf.FieldOptions"
    file = descriptor_pb2.FileDescriptorProto()
    request.file.CopyToProto(file)
    options = {f.name: f.options.SerializeToString()
               for m in file.message_type if m.name == "CreateVolumeRequest" for f in m.field}
    assert options["secrets"] == bytes([0x98, 0x42, 0x01])  # field 1059, varint, true
    assert options["parameters"] == b""
    # Imports: a wrapper field, and a nested enum beside its values.
    limit = pool.FindMessageTypeByName("csi.v1.NodeGetInfoResponse").fields_by_name["max_volumes_per_node"]
    assert limit.type == FieldDescriptor.TYPE_INT64
    volume_condition = pool.FindMessageTypeByName("csi.v1.GetCapacityResponse").fields_by_name["maximum_volume_size"]
    assert volume_condition.message_type.full_name == "google.protobuf.Int64Value"
    mode = pool.FindEnumTypeByName("csi.v1.VolumeCapability.AccessMode.Mode")
    assert mode.values_by_name["SINGLE_NODE_WRITER"].number == 1


def test_served_files_equal_protocs(reflection):
    database, pool = reflection
    pool.FindServiceByName("csi.v1.Controller")
    expected = protoc_pool()
    for name, want in expected.items():
        got = descriptor_pb2.FileDescriptorProto()
        pool.FindFileByName(name).CopyToProto(got)
        assert got == want, name


def test_every_listed_service_resolves(reflection):
    """What `grpcurl describe` does: list the services, then describe each one."""
    database, pool = reflection
    services = database.get_services()
    assert set(services) == {"csi.v1.Controller", "csi.v1.Identity", "csi.v1.Node", "grpc.health.v1.Health",
                             "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
    for name in services:
        assert pool.FindServiceByName(name).full_name == name


def test_symbols_fields_and_extensions(reflection):
    database, _ = reflection
    assert database.FindFileContainingSymbol("csi.v1.CreateVolumeRequest.name").name == "csi.proto"
    assert database.FindFileContainingSymbol("csi.v1.Node.NodeStageVolume").name == "csi.proto"
    assert database.FindFileContainingSymbol("google.protobuf.Timestamp").name == "google/protobuf/timestamp.proto"
    assert sorted(database.FindAllExtensionNumbers("google.protobuf.FieldOptions")) == [1059, 1060]
    with pytest.raises(KeyError):
        database.FindFileContainingSymbol("csi.v1.NoSuchThing")
    with pytest.raises(KeyError):
        database.FindAllExtensionNumbers("csi.v1.NoSuchThing")
    with pytest.raises(KeyError):
        database.FindFileByName("nope.proto")


def reflection_call(channel, version):
    return channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)


def test_file_containing_extension(driver):
    # grpcio-reflection's database leaves this question to its base class, which does not
    # answer it, so ask on the wire.
    ask = reflection_pb2.ExtensionRequest
    requests = [reflection_pb2.ServerReflectionRequest(file_containing_extension=ask(
                    containing_type="google.protobuf.FieldOptions", extension_number=1059)),
                reflection_pb2.ServerReflectionRequest(file_containing_extension=ask(
                    containing_type="google.protobuf.FieldOptions", extension_number=4242))]
    found, missing = list(reflection_call(driver, "v1")(iter(requests)))
    files = found.file_descriptor_response.file_descriptor_proto
    assert descriptor_pb2.FileDescriptorProto.FromString(files[0]).name == "csi.proto"
    assert missing.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "4242" in missing.error_response.error_message


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_one_stream_sends_each_import_once(driver, version):
    call = reflection_call(driver, version)
    requests = [reflection_pb2.ServerReflectionRequest(file_containing_symbol="csi.v1.Identity"),
                reflection_pb2.ServerReflectionRequest(file_by_filename="csi.proto"),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health")]
    names = [[descriptor_pb2.FileDescriptorProto.FromString(b).name
              for b in r.file_descriptor_response.file_descriptor_proto] for r in call(iter(requests))]
    assert names == [["csi.proto", "google/protobuf/descriptor.proto", "google/protobuf/timestamp.proto",
                      "google/protobuf/wrappers.proto"], ["csi.proto"], ["health.proto"]]


def test_calls_through_dynamic_messages(driver, reflection):
    """Build requests from the reflected descriptors alone and call the driver with them."""
    _, pool = reflection
    controller = pool.FindServiceByName("csi.v1.Controller")
    identity = pool.FindServiceByName("csi.v1.Identity")

    def call(service, method_name, **fields):
        method = service.methods_by_name[method_name]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        stub = driver.unary_unary(f"/{service.full_name}/{method.name}",
                                  request_serializer=request_class.SerializeToString,
                                  response_deserializer=response_class.FromString)
        return stub(request_class(**fields), timeout=10)

    info = call(identity, "GetPluginInfo")
    assert info.name == DRIVER_NAME

    capability_class = message_factory.GetMessageClass(pool.FindMessageTypeByName("csi.v1.VolumeCapability"))
    capability = capability_class()
    capability.mount.fs_type = "ext4"
    capability.access_mode.mode = pool.FindEnumTypeByName(
        "csi.v1.VolumeCapability.AccessMode.Mode").values_by_name["SINGLE_NODE_WRITER"].number
    created = call(controller, "CreateVolume", name="pvc-reflection-1",
                   capacity_range={"required_bytes": 5 * 1024 * 1024},
                   volume_capabilities=[capability], parameters={"fsType": "ext4"})
    assert created.volume.volume_id
    assert created.volume.capacity_bytes >= 5 * 1024 * 1024
    assert created.DESCRIPTOR.full_name == "csi.v1.CreateVolumeResponse"
    call(controller, "DeleteVolume", volume_id=created.volume.volume_id)
    with pytest.raises(grpc.RpcError) as missing_name:
        call(controller, "CreateVolume", volume_capabilities=[capability])
    assert missing_name.value.code() == grpc.StatusCode.INVALID_ARGUMENT
