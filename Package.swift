// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "libphi4",
    products: [
        // The Swift engine, for Swift programs that depend on this package.
        .library(name: "Phi4", targets: ["Phi4"]),
        // The C ABI as a dynamic library; `make lib` links it statically against the Swift
        // runtime and installs it as libphi4.so (it cannot be named `phi4`: SwiftPM silently drops one
        // of two products with the same name, and the executable is `phi4`).
        .library(name: "Phi4Shared", type: .dynamic, targets: ["Phi4CAPI"]),
        // The command-line tool.
        .executable(name: "phi4", targets: ["Phi4CLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CPhi4Kernels"),
        // include/phi4.h as a module: the C exports use its exact types, and the Swift library
        // takes its version from the header's macros (the one source of the version).
        .target(name: "CPhi4ABI"),
        // OpenBLAS (sgemm for prefill), from Debian's libopenblas-dev. On Apple platforms the same
        // CBLAS calls go to Accelerate instead (untested: this package is built and tested on
        // Linux only).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .target(
            name: "Phi4",
            dependencies: ["CPhi4Kernels", .target(name: "COpenBLAS", condition: .when(platforms: [.linux])), "CPhi4ABI"],
            linkerSettings: [.linkedFramework("Accelerate", .when(platforms: [.macOS, .iOS, .visionOS]))]),
        .target(name: "Phi4CAPI", dependencies: ["Phi4", "CPhi4ABI", "CPhi4Kernels"]),
        .executableTarget(
            name: "Phi4CLI",
            dependencies: ["Phi4", "CPhi4Kernels", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "Phi4Tests", dependencies: ["Phi4"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
