// swift-tools-version: 6.1
// SPDX-License-Identifier: Apache-2.0
//
// libFuzzer targets for every parser of vaultkeeper that reads bytes from outside: the
// configuration and the TOML parser under it, the unseal key file, Vault's JSON answers,
// PEM/X.509, the snapshot archive (tar, gzip), age files and identities, S3's XML. See
// docs/security.md#fuzzing and scripts/fuzz.sh, which builds them with
//
//   swift build -c release --sanitize fuzzer --sanitize address -Xswiftc -enable-testing
//
// A package of its own so the root package's `swift build --build-tests` never sees the
// sanitizer flags or these targets. Sources/VaultKeeper, Compression and CZlib are symlinks to
// the root package's directories: the code under test is compiled here, instrumented, from the
// very same files. (The root package exports only the executable, so it cannot be depended on
// as a library.) The targets reach internal parsers through `@testable import`, which is what
// `-enable-testing` is for. Keep the dependencies below in step with ../Package.swift.
import PackageDescription

/// One libFuzzer executable per parser; each defines `LLVMFuzzerTestOneInput`.
let fuzzTargets: [(name: String, needsCompression: Bool)] = [
  ("fuzz-config", false),
  ("fuzz-toml", false),
  ("fuzz-keyshares", false),
  ("fuzz-vault-json", false),
  ("fuzz-certificates", false),
  ("fuzz-snapshot-tar", false),
  ("fuzz-snapshot-gzip", true),
  ("fuzz-age-file", false),
  ("fuzz-age-keys", false),
  ("fuzz-s3-xml", false),
]

let package = Package(
  name: "vaultkeeper-fuzz",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "4.0.0"),
    .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-asn1.git", from: "1.1.0"),
  ],
  targets: [
    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    .target(name: "Compression", dependencies: ["CZlib", "VaultKeeper"]),
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
    .target(name: "FuzzSupport", dependencies: ["VaultKeeper"]),
  ]
    + fuzzTargets.map { target in
      .executableTarget(
        name: target.name,
        dependencies: ["VaultKeeper", "FuzzSupport"] + (target.needsCompression ? ["Compression"] : []))
    },
  swiftLanguageModes: [.v6]
)
