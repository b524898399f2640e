// swift-tools-version: 6.1
// Benchmarks for swift-csi: our gRPC stack and codec beside their peers, measured in one run.
// A separate package so that the peers (grpc-swift-2, SwiftNIO, swift-protobuf) never become
// dependencies of the library. `make bench` (or `bash run.sh`) builds and runs everything.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// The release linking of the main package's executables (its Package.swift, `releaseLinking`), for
/// `rpc-bench-server` so that its memory figures are those of a deployed binary.
let releaseLinking: [LinkerSetting] = [
    .unsafeFlags(
        [
            "-use-ld=lld",
            "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
            "-Xlinker", "--no-export-dynamic",
            "-L\(Context.packageDirectory)/../Linker/static-cxx", "-Xclang-linker", "-static-libgcc",
            "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/../Linker/order.txt",
            "-Xlinker", "--no-warn-symbol-ordering",
        ],
        .when(platforms: [.linux], configuration: .release)),
]

let package = Package(
    name: "swift-csi-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "swift-csi", path: "../"),
        .package(url: "https://github.com/grpc/grpc-swift-2", exact: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", exact: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/ordo-one/package-benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // swift-protobuf messages for the peers: generated from peers/csi_bench.proto, committed.
        .target(
            name: "PeerMessages",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "peers/PeerMessages",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The same message built for the codec comparison, once per codec.
        .target(
            name: "CodecWorkloads",
            dependencies: [
                "PeerMessages",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ProtoWire", package: "swift-csi"),
                .product(name: "CSI", package: "swift-csi"),
            ],
            path: "Codec/CodecWorkloads",
            swiftSettings: strict
        ),

        // Servers of `/csi.v1.Node/NodeGetInfo` on a Unix socket.
        .executableTarget(
            name: "rpc-bench-server",
            dependencies: [
                .product(name: "H2", package: "swift-csi"),
                .product(name: "RPCCore", package: "swift-csi"),
                .product(name: "CSI", package: "swift-csi"),
                .product(name: "ProtoWire", package: "swift-csi"),
            ],
            path: "RPC/rpc-bench-server",
            swiftSettings: strict,
            linkerSettings: releaseLinking
        ),
        .executableTarget(
            name: "grpc-swift-bench-server",
            dependencies: [
                "PeerMessages",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "peers/grpc-swift-bench-server",
            swiftSettings: strict
        ),
        // The floor: a raw Unix-socket ping-pong, server and client in one C tool.
        .executableTarget(name: "uds-pingpong", path: "RPC/uds-pingpong"),

        // Codec: encode/decode of one NodePublishVolumeRequest, ProtoWire against swift-protobuf.
        .executableTarget(
            name: "codec-bench",
            dependencies: ["CodecWorkloads", "PeerMessages", .product(name: "CSI", package: "swift-csi")],
            path: "Codec/codec-bench",
            swiftSettings: strict
        ),
        // The same workloads under package-benchmark (wall clock, mallocs): `swift package benchmark`.
        .executableTarget(
            name: "CodecBenchmarks",
            dependencies: [
                "CodecWorkloads",
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "CodecBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
