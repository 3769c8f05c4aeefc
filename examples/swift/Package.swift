// swift-tools-version:6.0
// A program that embeds libphi4 as a Swift package dependency and runs one chat turn.
import PackageDescription

let package = Package(
    name: "ChatTurn",
    dependencies: [.package(name: "libphi4", path: "../..")],
    targets: [
        .executableTarget(name: "ChatTurn", dependencies: [.product(name: "Phi4", package: "libphi4")]),
    ],
    swiftLanguageModes: [.v5]
)
