// swift-tools-version: 6.1
import PackageDescription

/// Hot paths are plain unsafe-pointer loops; these flags keep the optimiser from
/// inserting exclusivity checks into them. They change no semantics.
let performance: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"]),
]

let package = Package(
    name: "ChurnGrid",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "churngrid", targets: ["churngrid"]),
        .library(name: "TreeModel", targets: ["TreeModel"]),
        // For the fuzz targets (Fuzz/, a package of its own that depends on this one).
        .library(name: "WireFormat", targets: ["WireFormat"]),
        .library(name: "FeatureTable", targets: ["FeatureTable"]),
        .library(name: "ClusterSystem", targets: ["ClusterSystem"]),
        .library(name: "SubscriberProfiles", targets: ["SubscriberProfiles"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Tree ensembles: loading XGBoost/LightGBM files, compiling, scoring, explaining.
        .target(name: "TreeModel", dependencies: ["CTreeKernels"], swiftSettings: performance),
        // The tree engine's vector kernels (AVX-512 or AVX2, chosen at run time; portable Swift otherwise).
        // Optimised in debug builds too, so that tests scoring through them stay quick.
        .target(name: "CTreeKernels", cSettings: [.unsafeFlags(["-O2"])]),
        // Columnar tables read from and written to CSV.
        .target(name: "FeatureTable", swiftSettings: performance),
        // libzmq, from Debian's libzmq3-dev.
        .systemLibrary(name: "CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        // ZeroMQ for Swift: context, sockets, multipart messages, polling, CURVE.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"], swiftSettings: performance),
        // ChurnGrid's binary wire format for remote calls (the actor system's serialization).
        .target(name: "WireFormat", swiftSettings: performance),
        // ChurnGrid's DistributedActorSystem over ZeroMQ: identities, handshake, calls, heartbeats, backpressure.
        .target(
            name: "ClusterSystem",
            dependencies: ["WireFormat", "ZeroMQ", .product(name: "Logging", package: "swift-log"),
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "UnixSignals", package: "swift-service-lifecycle")],
            swiftSettings: performance
        ),
        // A probe actor, probe nodes and the RPC benchmark: what checks and measures the transport.
        .target(name: "ClusterDiagnostics", dependencies: ["ClusterSystem", "WireFormat", "ZeroMQ"]),
        // libpq, from Debian's libpq-dev.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // PostgreSQL through libpq: statements, binary COPY in and out, errors with SQLSTATE.
        .target(name: "Postgres", dependencies: ["CLibPQ"], swiftSettings: performance),
        // The subscriber feature catalogue, in-memory columnar profiles, the synthetic base.
        .target(name: "SubscriberProfiles", swiftSettings: performance),
        // Subscriber events: the catalogue, the NDJSON wire form, windowed per-subscriber state, a synthetic stream.
        .target(name: "SubscriberEvents", dependencies: ["SubscriberProfiles", "WireFormat"], swiftSettings: performance),
        // Profiles in PostgreSQL: schema migrations, loading shards, writing a generated base.
        .target(name: "ProfileDatabase", dependencies: ["Postgres", "SubscriberProfiles", "FeatureTable"], swiftSettings: performance),
        // Retention decisions: CLV, campaign files, next-best action, contact policy, control groups (pure).
        .target(name: "Retention", dependencies: ["SubscriberProfiles"], swiftSettings: performance),
        // Measuring retention: outcomes, uplift with its confidence interval, Qini and uplift@k (pure).
        .target(name: "Uplift", dependencies: ["FeatureTable"], swiftSettings: performance),
        // A synthetic world to prove retention strategies in: hidden responses to offers, month-by-month runs (`churngrid simulate`).
        .target(name: "Simulation", dependencies: ["SubscriberProfiles", "TreeModel", "Retention", "Uplift"], swiftSettings: performance),
        // The cluster: coordinator, workers, shard actors, rescoring jobs into PostgreSQL, live queries.
        .target(
            name: "ChurnCluster",
            dependencies: [
                "ClusterSystem", "WireFormat", "TreeModel", "SubscriberProfiles", "SubscriberEvents", "ProfileDatabase", "Postgres", "ZeroMQ", "Retention", "Uplift", "FeatureTable",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: performance
        ),
        // The HTTP side: the API with bearer tokens and sessions, the dashboard, /metrics, /healthz, /readyz.
        .target(
            name: "ChurnHTTP",
            dependencies: [
                "ChurnCluster", "ClusterSystem", "Postgres", "SubscriberEvents", "WireFormat", "Retention", "Uplift",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Scoring whole files and measuring the engine: what `churngrid model` does.
        .target(
            name: "BatchScoring",
            dependencies: [
                "TreeModel", "FeatureTable",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "churngrid",
            dependencies: [
                "BatchScoring", "TreeModel", "FeatureTable", "SubscriberProfiles", "SubscriberEvents", "ProfileDatabase", "Postgres",
                "ClusterSystem", "ClusterDiagnostics", "ZeroMQ", "ChurnCluster", "ChurnHTTP", "Retention", "Uplift", "Simulation",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "TestSupport", dependencies: ["Postgres"], path: "Tests/TestSupport"),
        .testTarget(name: "TreeModelTests", dependencies: ["TreeModel"]),
        .testTarget(name: "FeatureTableTests", dependencies: ["FeatureTable"]),
        .testTarget(name: "SubscriberProfilesTests", dependencies: ["SubscriberProfiles", "TestSupport"]),
        .testTarget(name: "SubscriberEventsTests", dependencies: ["SubscriberEvents", "SubscriberProfiles", "TestSupport", "WireFormat"]),
        .testTarget(name: "RetentionTests", dependencies: ["Retention", "SubscriberProfiles", "TestSupport"]),
        .testTarget(name: "SimulationTests", dependencies: ["Simulation", "Retention", "TestSupport"]),
        // Against scikit-uplift (python3) on the same data.
        .testTarget(name: "UpliftTests", dependencies: ["Uplift", "TestSupport"]),
        // Real libzmq sockets over tcp://127.0.0.1.
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "WireFormatTests", dependencies: ["WireFormat"]),
        .testTarget(name: "ClusterSystemTests", dependencies: ["ClusterSystem", "WireFormat", "ZeroMQ"]),
        // Several `churngrid` processes on 127.0.0.1 calling each other through the actor system.
        .testTarget(
            name: "ClusterIntegrationTests",
            dependencies: ["ClusterSystem", "ClusterDiagnostics", "WireFormat", "ZeroMQ", "TestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        // Against a real PostgreSQL started by the test harness (Deploy/local/pg.sh).
        .testTarget(name: "ProfileDatabaseTests", dependencies: ["ProfileDatabase", "Postgres", "SubscriberProfiles", "FeatureTable", "TestSupport"]),
        // A coordinator and workers as real processes, a real PostgreSQL: jobs, exactly-once, failover, queries.
        .testTarget(
            name: "ChurnClusterTests",
            dependencies: ["ChurnCluster", "ChurnHTTP", "ClusterSystem", "ProfileDatabase", "Postgres", "SubscriberEvents", "SubscriberProfiles", "TreeModel", "TestSupport", "WireFormat", "ZeroMQ",
                           "Retention", "Uplift", .product(name: "Logging", package: "swift-log")],
            exclude: ["api_check.py", "dashboard_check.py"]
        ),
        // Parity with the real XGBoost/LightGBM (trained by the tests through python3).
        .testTarget(name: "ParityTests", dependencies: ["TreeModel", "FeatureTable", "BatchScoring", "SubscriberProfiles", "TestSupport"], path: "Tests/Parity", exclude: ["make_fixtures.py", "make_categorical_fixtures.py"]),
    ],
    swiftLanguageModes: [.v6]
)
