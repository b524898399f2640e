import CSI
import Glibc
import H2
import RPCCore
import Platform
import Testing

@testable import CSIDriverKit

/// The controller as a CSI caller sees it: the driver's own router over the loop-file backend in a
/// temporary directory, served on a Unix socket, called through the generated client.
@Suite struct ControllerSocketTests {
    static let mib: Int64 = 1 << 20

    /// Serves the controller of a loop-file driver on a fresh socket and runs `body` with a client;
    /// the directory (volume files, socket) is removed afterwards.
    static func withController(_ body: (ControllerClient) async throws -> Void) async throws {
        let dir = DriverProcessTests.temporaryDirectory()
        defer { removeTree(dir) }
        let process = DriverProcess(
            configuration: try DriverProcessTests.configuration(mode: "controller", kubeletDir: dir, loopfileDir: dir + "/loop"),
            logger: .disabled)
        let socket = dir + "/csi.sock"
        try await withGRPCServer(router: try process.makeRouter(), configuration: GRPCServerConfiguration(address: socket)) { _ in
            let channel = GRPCChannel(target: "unix://" + socket)
            defer { channel.close() }
            try await body(ControllerClient(channel: channel))
        }
    }

    static func createRequest(_ name: String, required: Int64, limit: Int64) -> CreateVolumeRequest {
        var request = CreateVolumeRequest()
        request.name = name
        request.volumeCapabilities = [RequestValidationTests.capability(.singleNodeWriter)]
        var range = CapacityRange()
        range.requiredBytes = required
        range.limitBytes = limit
        request.capacityRange = range
        return request
    }

    /// The loop-file backend allocates whole MiB: a range with no whole MiB in it is OUT_OF_RANGE
    /// (the CSI spec's code for an unsupported capacity range), and nothing is left behind.
    @Test func createRoundedPastTheLimitIsOutOfRange() async throws {
        try await Self.withController { controller in
            let mib = Self.mib
            let error = await #expect(throws: RPCError.self) {
                try await controller.createVolume(Self.createRequest("pvc-odd", required: 5 * mib + 1, limit: 5 * mib + 4096))
            }
            #expect(error?.code == .outOfRange)
            #expect(error?.message.contains("\(5 * mib + 4096)") == true, "\(error?.message ?? "")")
            #expect(try await controller.listVolumes(ListVolumesRequest()).entries.isEmpty)

            let volume = try await controller.createVolume(Self.createRequest("pvc-odd", required: 5 * mib + 1, limit: 6 * mib)).volume
            #expect(volume?.capacityBytes == 6 * mib)
            var delete = DeleteVolumeRequest()
            delete.volumeID = volume?.volumeID ?? ""
            _ = try await controller.deleteVolume(delete)
        }
    }

    /// With only limit_bytes, the driver may choose any size up to it: the largest whole MiB not
    /// above it. A limit below one MiB is OUT_OF_RANGE, naming the limit and the unit.
    @Test func createWithOnlyALimitRoundsDown() async throws {
        try await Self.withController { controller in
            let mib = Self.mib
            let request = Self.createRequest("pvc-limit", required: 0, limit: 5 * mib + 4096)
            let volume = try #require(try await controller.createVolume(request).volume)
            #expect(volume.capacityBytes == 5 * mib)
            let again = try await controller.createVolume(request).volume
            #expect(again?.volumeID == volume.volumeID)
            #expect(again?.capacityBytes == 5 * mib)

            let error = await #expect(throws: RPCError.self) {
                try await controller.createVolume(Self.createRequest("pvc-tiny", required: 0, limit: mib - 1))
            }
            #expect(error?.code == .outOfRange)
            #expect(error?.message.contains("\(mib - 1)") == true && error?.message.contains("\(mib)") == true, "\(error?.message ?? "")")

            // Expanding with only a limit the volume already satisfies changes nothing.
            var expand = ControllerExpandVolumeRequest()
            expand.volumeID = volume.volumeID
            var range = CapacityRange()
            range.limitBytes = 7 * mib + 4096
            expand.capacityRange = range
            #expect(try await controller.controllerExpandVolume(expand).capacityBytes == 5 * mib)

            var delete = DeleteVolumeRequest()
            delete.volumeID = volume.volumeID
            _ = try await controller.deleteVolume(delete)
            #expect(try await controller.listVolumes(ListVolumesRequest()).entries.isEmpty)
        }
    }

    /// ControllerExpandVolume checks the limit before growing: a refused expansion leaves the size as it was.
    @Test func expandRoundedPastTheLimitIsOutOfRangeAndGrowsNothing() async throws {
        try await Self.withController { controller in
            let mib = Self.mib
            let volume = try #require(try await controller.createVolume(Self.createRequest("pvc-grow", required: 8 * mib, limit: 0)).volume)
            var expand = ControllerExpandVolumeRequest()
            expand.volumeID = volume.volumeID
            var range = CapacityRange()
            range.requiredBytes = 9 * mib + 1
            range.limitBytes = 9 * mib + 4096
            expand.capacityRange = range
            let error = await #expect(throws: RPCError.self) { try await controller.controllerExpandVolume(expand) }
            #expect(error?.code == .outOfRange)
            var get = ControllerGetVolumeRequest()
            get.volumeID = volume.volumeID
            #expect(try await controller.controllerGetVolume(get).volume?.capacityBytes == 8 * mib)

            range.limitBytes = 10 * mib
            expand.capacityRange = range
            #expect(try await controller.controllerExpandVolume(expand).capacityBytes == 10 * mib)
            var delete = DeleteVolumeRequest()
            delete.volumeID = volume.volumeID
            _ = try await controller.deleteVolume(delete)
        }
    }
}
