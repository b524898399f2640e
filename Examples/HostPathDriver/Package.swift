// swift-tools-version: 6.1
import PackageDescription

/// swift-csi from its releases, or from a checkout when SWIFT_CSI_PATH names one (`make example`
/// in swift-csi sets it to the working tree).
let localCheckout = Context.environment["SWIFT_CSI_PATH"].flatMap { $0.isEmpty ? nil : $0 }
let swiftCSI: Package.Dependency =
    localCheckout.map { .package(path: $0) }
    ?? .package(url: "https://github.com/swift-csi/swift-csi.git", from: "0.1.0")
/// The package identity products are looked up by: a local checkout's is its directory's name.
let swiftCSIIdentity = localCheckout.map { String($0.split(separator: "/").last ?? "swift-csi") } ?? "swift-csi"

let package = Package(
    name: "HostPathDriver",
    platforms: [.macOS(.v15)],
    dependencies: [swiftCSI],
    targets: [
        .executableTarget(
            name: "hostpath-driver",
            dependencies: [
                .product(name: "CSIDriverKit", package: swiftCSIIdentity),
                .product(name: "Storage", package: swiftCSIIdentity),
                .product(name: "Platform", package: swiftCSIIdentity),
            ],
            swiftSettings: [
                .swiftLanguageMode(.v6),
                .enableUpcomingFeature("InternalImportsByDefault"),
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ]
        )
    ]
)
