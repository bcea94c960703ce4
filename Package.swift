// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "clipserve",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "clipserve", targets: ["clipserve"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // C shims for the system libraries: declarations only, no logic.
        .target(name: "CCUDA", linkerSettings: [.linkedLibrary("dl")]),
        .target(
            name: "CImageCodecs",
            linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16"), .linkedLibrary("webp")]
        ),
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("openblas")]),
        // Pillow's fixed-point resampling passes, scalar plus AVX2 / AVX-512BW picked at run time.
        .target(name: "CImageKernels"),
        // The CPU backend's AVX-512 GEMM, attention and LayerNorm, selected at run time (OpenBLAS otherwise).
        .target(name: "CKernels"),
        // fp32 → fp16 / bf16 conversion of model inputs for GPU uploads (F16C picked at run time).
        .target(name: "CPixelEncoding"),

        .target(name: "InferenceCore", swiftSettings: strict),
        // Command options from CLIPSERVE_* variables and JSON config files, merged into the argument list.
        .target(name: "CommandConfig", swiftSettings: strict),
        .target(name: "SafeTensors", dependencies: ["InferenceCore"], swiftSettings: strict),
        .target(name: "CPUBackend", dependencies: ["InferenceCore", "CBLAS", "CKernels"], swiftSettings: strict),
        .target(
            name: "CUDABackend",
            dependencies: ["InferenceCore", "CCUDA", "CPixelEncoding"],
            exclude: ["Kernels"],  // embedded as KernelSources.swift (scripts/device/embed_kernels.sh)
            swiftSettings: strict
        ),
        .target(name: "CLIPModel", dependencies: ["InferenceCore", "SafeTensors"], swiftSettings: strict),
        .target(
            name: "ImageProcessing", dependencies: ["InferenceCore", "CImageCodecs", "CImageKernels"], swiftSettings: strict),
        .target(
            name: "InferenceRuntime",
            dependencies: [
                "InferenceCore", "ImageProcessing", "CPixelEncoding",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(name: "Tuning", swiftSettings: strict),
        .target(
            name: "ClipServeHTTP",
            dependencies: [
                "InferenceCore", "InferenceRuntime", "ImageProcessing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "clipserve",
            dependencies: [
                "InferenceCore", "SafeTensors", "CLIPModel", "ImageProcessing", "CPUBackend", "CUDABackend",
                "InferenceRuntime", "ClipServeHTTP", "CommandConfig", "Tuning",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),

        // Fixture paths and tolerance checks shared by the test targets; never linked into the product.
        .target(
            name: "TestSupport",
            dependencies: ["InferenceCore", "SafeTensors"],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .testTarget(name: "CommandConfigTests", dependencies: ["CommandConfig", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "ImageProcessingTests",
            dependencies: ["ImageProcessing", "SafeTensors", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CLIPModelTests",
            dependencies: ["CLIPModel", "CPUBackend", "SafeTensors", "ImageProcessing", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(name: "CPUBackendTests", dependencies: ["CPUBackend", "CKernels", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "CUDABackendTests", dependencies: ["CUDABackend", "CCUDA", "CPUBackend", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "InferenceRuntimeTests",
            dependencies: ["InferenceRuntime", "CPUBackend", "CLIPModel", "CPixelEncoding", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ClipServeHTTPTests",
            dependencies: [
                "ClipServeHTTP", "InferenceRuntime", "CPUBackend", "CLIPModel", "ImageProcessing", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TuningTests",
            dependencies: ["Tuning", "clipserve", "InferenceRuntime", "InferenceCore"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
