// swift-tools-version: 6.1
// SPDX-License-Identifier: Apache-2.0
//
// vaultkeeper: keeps a HashiCorp Vault / OpenBao node available, recoverable and trusted.
//
// Layering (see docs/architecture.md):
//   CCurl, CSystemd, CZlib, CLinux   system libraries with typed static-inline shims (C stays here)
//   Curl, Systemd, Compression, Platform   thin Swift adapters over them; the only importers of
//                                          the C modules
//   VaultKeeper       the core: config, pure decisions, duties; imports no C
//   vaultkeeper       the executable: argument parsing and wiring
import PackageDescription

let package = Package(
  name: "vaultkeeper",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "vaultkeeper", targets: ["vaultkeeper"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
    .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-asn1.git", from: "1.1.0"),
  ],
  targets: [
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
    // Linux process and thread calls (prctl, mallopt): header only, glibc provides them.
    .systemLibrary(name: "CLinux"),
    .systemLibrary(
      name: "CZlib",
      pkgConfig: "zlib",
      providers: [.apt(["zlib1g-dev"])]
    ),
    .target(
      name: "Compression",
      dependencies: ["CZlib", "VaultKeeper"]
    ),
    .target(
      name: "Platform",
      dependencies: ["CLinux", "VaultKeeper"]
    ),
    .target(
      name: "Curl",
      dependencies: ["CCurl", "Platform", "VaultKeeper"]
    ),
    .target(
      name: "Systemd",
      dependencies: [
        "CSystemd", "Platform", "VaultKeeper",
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .target(
      name: "VaultKeeper",
      dependencies: [
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
      ]
    ),
    .executableTarget(
      name: "vaultkeeper",
      dependencies: [
        "VaultKeeper", "Curl", "Systemd", "Compression", "Platform",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "UnixSignals", package: "swift-service-lifecycle"),
      ]
    ),
    .testTarget(
      name: "VaultKeeperTests",
      dependencies: [
        "VaultKeeper",
        // Test certificates (CA, leaves, RSA/EC/Ed25519 keys) are made at test time.
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "_CryptoExtras", package: "swift-crypto"),
      ],
      // toml-test's TOML 1.0 cases, read from the source tree by TOMLConformanceTests.
      exclude: ["TOMLCorpus"]),
    .testTarget(name: "CurlTests", dependencies: ["Curl", "VaultKeeper"]),
    .testTarget(name: "SystemdTests", dependencies: ["Systemd", "Platform", "VaultKeeper"]),
    // make_snapshot.py writes the test archives at test time (read from the source tree).
    .testTarget(name: "ArchiveTests", dependencies: ["Compression", "VaultKeeper"], exclude: ["make_snapshot.py"]),
  ],
  swiftLanguageModes: [.v6]
)

// Members are visible only from modules a file imports itself (SE-0444). Besides tidiness this
// keeps Foundation's String overloads (which would link all of Foundation, CoreFoundation and
// ICU into the daemon) from leaking in through a dependency's imports.
// Not for the core target: glibc's headers are not modular, so `struct stat` is attributed to
// whichever Clang module included <sys/stat.h> first (Glibc, CDispatch or, since
// swift-certificates, CoreFoundation), which varies with build order and would make every
// `stat()` in the core demand an import of one of them. The core imports FoundationEssentials
// explicitly and is kept honest by review; the adapters and the executable keep the check.
for target in package.targets where (target.type == .regular && target.name != "VaultKeeper") || target.type == .executable {
  target.swiftSettings = (target.swiftSettings ?? []) + [.enableUpcomingFeature("MemberImportVisibility")]
}
