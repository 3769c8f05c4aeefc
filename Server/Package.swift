// swift-tools-version:6.2
// phi4-server: an OpenAI-compatible HTTP server over the libphi4 engine. A package of its own, so
// that the engine, libphi4.so and `make demo` never depend on the HTTP stack.
import PackageDescription

let package = Package(
    name: "phi4-server",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "phi4-server", targets: ["Phi4Server"]),
    ],
    dependencies: [
        .package(name: "libphi4", path: ".."),
        // No default traits: the server needs neither swift-configuration nor full Foundation.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        .executableTarget(
            name: "Phi4Server",
            dependencies: [
                .product(name: "Phi4", package: "libphi4"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
