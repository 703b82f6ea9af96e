// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "paywatch",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "paywatch", targets: ["paywatch"]),
        .executable(name: "paywatch-bench", targets: ["paywatch-bench"]),
        .executable(name: "fake-gateway", targets: ["fake-gateway"]),
        .executable(name: "fuzz-config", targets: ["fuzz-config"]),
        .executable(name: "fuzz-planner", targets: ["fuzz-planner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", exact: "0.6.0"),
        .package(url: "https://github.com/apple/swift-collections", exact: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", exact: "2.1.1"),
        .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
        // RS256 for FCM's OAuth2 service-account assertion (_CryptoExtras: RSA PKCS#1 v1.5 signatures).
        .package(url: "https://github.com/apple/swift-crypto", exact: "3.12.3"),
        // The PostgreSQL store (several replicas on one database): connection pool, LISTEN/NOTIFY, TLS.
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", exact: "2.37.6"),
    ],
    targets: [
        // Pure domain: statuses, ledger, planner, message templates (compiled Mustache). No I/O, no clock reads.
        .target(
            name: "PaywatchCore",
            dependencies: [.product(name: "Mustache", package: "swift-mustache")],
            swiftSettings: strict
        ),
        // TOML -> typed configuration; errors name file, line and key.
        .target(
            name: "PaywatchConfig",
            dependencies: [.product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: strict
        ),
        // OrderStore protocol and its SQLite implementation.
        .target(
            name: "PaywatchStore",
            dependencies: ["PaywatchCore", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift")],
            swiftSettings: strict
        ),
        // The same OrderStore on PostgreSQL, for replicas sharing one database (postgres-nio).
        .target(
            name: "PaywatchPostgres",
            dependencies: [
                "PaywatchCore", "PaywatchStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The store conformance suite (issue 10): the OrderStore contract's checks written once,
        // run against every backend through a harness of its own. No Testing: usable from any test target.
        .target(name: "PaywatchStoreConformance", dependencies: ["PaywatchStore", "PaywatchCore"], swiftSettings: strict),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        // libcurl multi transport (completions one by one), retry classification, and the pure
        // delivery state machine (slots, lanes, group commit, leases).
        .target(
            name: "PaywatchDelivery",
            dependencies: [
                "CCurl", "PaywatchCore", .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"), .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // The service: sweep loop, delivery loop, logging.
        .target(
            name: "PaywatchDaemon",
            dependencies: [
                "PaywatchCore", "PaywatchConfig", "PaywatchStore", "PaywatchPostgres", "PaywatchDelivery", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "paywatch",
            dependencies: [
                "PaywatchDaemon", "PaywatchCore", "PaywatchConfig", "PaywatchStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // OpenSSL's C API (libssl, libcrypto): the server side of TLS for the test fakes only.
        .systemLibrary(
            name: "CTLS",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // Test support shared by tests and benchmarks: real HTTP(S) and SMTP servers on 127.0.0.1,
        // and the certificates of a private test CA.
        .target(name: "PaywatchTestSupport", dependencies: ["CTLS"], swiftSettings: strict),
        .executableTarget(name: "fake-gateway", dependencies: ["PaywatchTestSupport"], swiftSettings: strict),
        .executableTarget(
            name: "paywatch-bench",
            dependencies: [
                "PaywatchDaemon", "PaywatchCore", "PaywatchConfig", "PaywatchStore", "PaywatchDelivery", "PaywatchPostgres",
                "PaywatchTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        // libFuzzer targets: scripts/fuzz.sh builds them with -sanitize=fuzzer -D PAYWATCH_FUZZ. A plain
        // build gives commands that replay input files through the same checks (no fuzzer needed).
        .systemLibrary(name: "CLibFuzzer"),  // a header only: LLVMFuzzerRunDriver (libFuzzer, linked by -sanitize=fuzzer)
        .target(name: "FuzzDriver", dependencies: ["CLibFuzzer"], swiftSettings: strict),
        .executableTarget(name: "fuzz-config", dependencies: ["PaywatchConfig", "FuzzDriver"], swiftSettings: strict),
        .executableTarget(name: "fuzz-planner", dependencies: ["PaywatchCore", "FuzzDriver"], swiftSettings: strict),
        .testTarget(name: "PaywatchCoreTests", dependencies: ["PaywatchCore"]),
        .testTarget(name: "PaywatchConfigTests", dependencies: ["PaywatchConfig"]),
        .testTarget(
            name: "PaywatchStoreTests",
            dependencies: ["PaywatchStore", "PaywatchStoreConformance", "PaywatchCore", "PaywatchTestSupport",
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            // The PostgreSQL store against a real server the tests start (initdb + pg_ctl).
            name: "PaywatchPostgresTests",
            dependencies: ["PaywatchPostgres", "PaywatchStore", "PaywatchStoreConformance", "PaywatchCore", "PaywatchTestSupport",
                           .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "PaywatchDeliveryTests",
            dependencies: ["PaywatchDelivery", "PaywatchCore", "PaywatchTestSupport",
                           .product(name: "_CryptoExtras", package: "swift-crypto")]),
        .testTarget(
            name: "PaywatchDaemonTests",
            // The whole service in-process: a real SQLite file, a real HTTP gateway, a fake clock.
            dependencies: [
                "PaywatchDaemon", "PaywatchCore", "PaywatchConfig", "PaywatchStore", "PaywatchDelivery", "PaywatchTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            // Runs the real `paywatch` binary (built because of this dependency) against a
            // fake gateway, and reads the SQLite file as the shop would.
            dependencies: ["paywatch", "PaywatchTestSupport", .product(name: "GRDB", package: "GRDB.swift")]
        ),
    ]
)
