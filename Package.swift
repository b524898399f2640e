// swift-tools-version: 6.1
import PackageDescription

/// Settings shared by every Swift target of the package. In release builds on Linux each function
/// gets a section of its own, so that the linker can lay out the functions `Linker/order.txt`
/// names together (see `releaseLinking`) instead of whole objects that hold one of them.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .unsafeFlags(
        ["-Xfrontend", "-function-sections", "-Xfrontend", "-disable-llvm-merge-functions-pass"],
        .when(platforms: [.linux], configuration: .release)),
]

/// How release executables are linked on Linux (docs/PERFORMANCE.md, "Memory"; each of these cut idle RSS):
/// lld with packed relative relocations (DT_RELR, glibc 2.36+), so the loader reads a few KiB instead
/// of ~600 KiB of relocations; no exported symbol table beyond what shared libraries need (the
/// static Swift runtime's link arguments export every symbol); the C++ runtime linked in
/// (`Linker/static-cxx`) instead of mapping libstdc++ and libgcc_s; and the functions that run at
/// start-up and per call laid out together (`Linker/order.txt`, `Benchmarks/Memory/order.py`), so
/// they share pages instead of faulting in most of the text.
let releaseLinking: [LinkerSetting] = [
    .unsafeFlags(
        [
            "-use-ld=lld",
            "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
            "-Xlinker", "--no-export-dynamic",
            "-L\(Context.packageDirectory)/Linker/static-cxx", "-Xclang-linker", "-static-libgcc",
            "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Linker/order.txt",
            "-Xlinker", "--no-warn-symbol-ordering",
        ],
        .when(platforms: [.linux], configuration: .release)),
]

/// `make release` (`scripts/build-release.sh`) links `node-driver-registrar` as a static PIE, the C
/// library included, as upstream's Go binary is: it runs from an image with no C library, and idles in
/// about 1 MiB less (docs/PERFORMANCE.md, "The registrar's floor"). A static PIE's start-up refuses a
/// run path, so the build also needs SwiftPM's `--disable-local-rpath`; the script asks for both, and a
/// plain `swift build -c release` links the registrar like the driver.
let staticRegistrar: [LinkerSetting] =
    Context.environment["SWIFT_CSI_STATIC_REGISTRAR"] == "1"
    ? [.unsafeFlags(["-static-executable", "-Xclang-linker", "-static-pie"], .when(platforms: [.linux], configuration: .release))]
    : []

let package = Package(
    name: "swift-csi",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Platform", targets: ["Platform"]),
        .library(name: "ProtoWire", targets: ["ProtoWire"]),
        .library(name: "RPCCore", targets: ["RPCCore"]),
        .library(name: "H2", targets: ["H2"]),
        .library(name: "CSI", targets: ["CSI"]),
        .library(name: "Storage", targets: ["Storage"]),
        .library(name: "CSIDriverKit", targets: ["CSIDriverKit"]),
        .executable(name: "csi-lvm-driver", targets: ["csi-lvm-driver"]),
        .executable(name: "node-driver-registrar", targets: ["node-driver-registrar"]),
        .executable(name: "protoc-gen-protowire", targets: ["protoc-gen-protowire"]),
        .executable(name: "protowire", targets: ["protowire"]),
    ],
    // Only executables' modules (MetricsExport) use these; the libraries depend on the toolchain and
    // Debian's C libraries alone.
    dependencies: [
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C libraries, each behind one thin system-library shim.
        .systemLibrary(
            name: "CNGHTTP2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Linux system calls the event loop needs that Glibc's module does not export.
        .target(name: "CH2Sys"),
        // glibc's <malloc.h> and thread names, which Glibc's module does not export.
        .target(name: "CPlatform"),
        .systemLibrary(
            name: "CLVM2Cmd",
            providers: [.apt(["liblvm2-dev"])]
        ),

        // Libraries.
        .target(name: "Platform", dependencies: ["CPlatform", "ProtoWire"], swiftSettings: strict),
        .target(name: "ProtoWire", swiftSettings: strict),
        .target(name: "ProtoWireGenerator", dependencies: ["ProtoWire"], swiftSettings: strict),
        // gRPC without a transport: the contract generated code is written against, framing,
        // status and header rules, the per-stream state machine. No C.
        .target(name: "RPCCore", dependencies: ["ProtoWire"], swiftSettings: strict),
        .target(name: "H2", dependencies: ["CNGHTTP2", "CZlib", "CH2Sys", "Platform", "ProtoWire", "RPCCore"], exclude: ["Protos"], swiftSettings: strict),
        .target(
            name: "CSI",
            dependencies: ["ProtoWire", "RPCCore"],
            exclude: ["Protos"],
            swiftSettings: strict
        ),
        .target(name: "Storage", dependencies: ["CLVM2Cmd", "Platform"], swiftSettings: strict),
        .target(name: "CSIDriverKit", dependencies: ["CSI", "H2", "Platform", "ProtoWire", "RPCCore", "Storage"], swiftSettings: strict),
        .target(name: "Registrar", dependencies: ["CSI", "H2", "Platform", "RPCCore"], swiftSettings: strict),
        // The executables' flag parser.
        .target(name: "Flags", dependencies: ["Platform"], swiftSettings: strict),
        // The executables' Prometheus metrics (swift-prometheus): registry, process metrics, gRPC calls,
        // and the driver's /metrics server.
        .target(
            name: "MetricsExport", dependencies: ["H2", "Platform", .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: strict),

        // Executables: thin shells over the libraries.
        .executableTarget(
            name: "csi-lvm-driver",
            dependencies: [
                "CSIDriverKit", "CSI", "Flags", "H2", "MetricsExport", "Platform", "RPCCore", "Storage",
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "node-driver-registrar",
            dependencies: [
                "Registrar", "Flags", "H2", "MetricsExport", "Platform", "RPCCore",
            ],
            swiftSettings: strict,
            linkerSettings: staticRegistrar
        ),
        .executableTarget(
            name: "protoc-gen-protowire",
            dependencies: ["ProtoWireGenerator", "ProtoWire"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "protowire",
            dependencies: ["ProtoWire", "CSI"],
            swiftSettings: strict
        ),
        .executableTarget(name: "h2-interop", dependencies: ["H2", "Platform", "ProtoWire", "RPCCore"], swiftSettings: strict),
        .executableTarget(name: "deflate-bench", dependencies: ["H2", "RPCCore"], path: "Benchmarks/Deflate/deflate-bench", swiftSettings: strict),

        // Tests.
        .target(name: "TestSupport", dependencies: ["ProtoWire"], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "FlagsTests", dependencies: ["Flags"], swiftSettings: strict),
        .testTarget(name: "MetricsExportTests", dependencies: ["MetricsExport", "Platform", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "PlatformTests", dependencies: ["Platform", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "ProtoWireTests", dependencies: ["ProtoWire", "ProtoWireGenerator", "CSI", "RPCCore", "TestSupport"], exclude: ["Protos"], swiftSettings: strict),
        .testTarget(name: "RPCCoreTests", dependencies: ["RPCCore", "ProtoWire"], swiftSettings: strict),
        .testTarget(name: "H2Tests", dependencies: ["H2", "Platform", "ProtoWire", "RPCCore", "CSI", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "CSITests", dependencies: ["CSI", "ProtoWire", "RPCCore"], swiftSettings: strict),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "Platform", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "CSIDriverKitTests", dependencies: ["CSIDriverKit", "CSI", "H2", "Platform", "RPCCore", "Storage", "ProtoWire"], swiftSettings: strict),
        .testTarget(name: "RegistrarTests", dependencies: ["Registrar", "CSI", "H2", "Platform", "ProtoWire", "RPCCore", "TestSupport"], swiftSettings: strict),
    ]
)

for target in package.targets where target.type == .executable {
    target.linkerSettings = (target.linkerSettings ?? []) + releaseLinking
}
