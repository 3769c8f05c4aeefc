// swift-tools-version:6.2
// phi4-server: an OpenAI-compatible HTTP server over the libphi4 engine. A package of its own, so
// that the engine, libphi4.so and `make demo` never depend on the HTTP stack.
import PackageDescription

let package = Package(
    name: "phi4-server",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "phi4-server", targets: ["Phi4Server"]),
        // The model downloader: Hugging Face Hub → the cache huggingface_hub and llama.cpp share.
        .executable(name: "phi4-hub", targets: ["Phi4HubTool"]),
    ],
    dependencies: [
        .package(name: "libphi4", path: ".."),
        // No default traits: the server needs neither swift-configuration nor full Foundation.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // SHA-256 for verifying downloads (SHA extensions where the CPU has them).
        .target(name: "CSHA256"),
        .target(
            name: "Phi4Hub",
            dependencies: [
                "CSHA256",
                .product(name: "Phi4", package: "libphi4"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .executableTarget(name: "Phi4HubTool", dependencies: ["Phi4Hub", .product(name: "Phi4", package: "libphi4")]),
        .executableTarget(
            name: "Phi4Server",
            dependencies: [
                .product(name: "Phi4", package: "libphi4"),
                .product(name: "Hummingbird", package: "hummingbird"),
                "Phi4Hub",
            ]),
    ],
    swiftLanguageModes: [.v6]
)
