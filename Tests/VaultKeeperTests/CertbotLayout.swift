// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import VaultKeeper

/// A certbot-like tree in a temp directory: `archive/example/{cert,privkey,chain,fullchain}N.pem`
/// and `live/example/*.pem` symlinks into it, renewed the way certbot does it (new archive
/// files, then a new symlink renamed over each old one).
struct CertbotLayout {
  static let names = ["cert", "privkey", "chain", "fullchain"]
  let root: String
  var live: String { root + "/live/example" }
  var archive: String { root + "/archive/example" }

  init() throws {
    root = NSTemporaryDirectory() + "vk-certbot-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: root + "/live/example", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: root + "/archive/example", withIntermediateDirectories: true)
    try writeArchive(1)
    try pointLive(to: 1)
  }

  /// The live paths, as a Vault listener config would name them.
  var files: CertificateFileSet {
    CertificateFileSet(certificate: live + "/cert.pem", key: live + "/privkey.pem", chain: live + "/chain.pem", ca: live + "/fullchain.pem")
  }

  /// Distinct content per generation, or the content of `sameAs` to write identical bytes.
  static func content(_ name: String, _ generation: Int) -> String {
    "-----BEGIN \(name.uppercased())-----\ngeneration \(generation)\n-----END \(name.uppercased())-----\n"
  }

  func writeArchive(_ generation: Int, contentOf contentGeneration: Int? = nil) throws {
    for name in Self.names {
      try Self.content(name, contentGeneration ?? generation).write(
        toFile: "\(archive)/\(name)\(generation).pem", atomically: false, encoding: .utf8)
    }
  }

  /// certbot's `update_symlinks`: a temporary symlink renamed over the live one.
  func pointLive(to generation: Int, in directory: String? = nil) throws {
    let directory = directory ?? live
    for name in Self.names {
      let temporary = "\(directory)/\(name).pem.new"
      try? FileManager.default.removeItem(atPath: temporary)
      try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: "../../archive/example/\(name)\(generation).pem")
      guard rename(temporary, "\(directory)/\(name).pem") == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
  }

  func renew(to generation: Int) throws {
    try writeArchive(generation)
    try pointLive(to: generation)
  }

  func remove() { try? FileManager.default.removeItem(atPath: root) }
}

/// Collects what an `AsyncStream` yields on a task of its own.
final class EventCollector<Element: Sendable>: Sendable {
  private final class Box: Sendable {
    let state = Mutex<(elements: [Element], finished: Bool)>(([], false))
  }
  private let box = Box()
  private let task: Task<Void, Never>

  init(_ stream: AsyncStream<Element>) {
    let box = self.box
    task = Task {
      for await element in stream { box.state.withLock { $0.elements.append(element) } }
      box.state.withLock { $0.finished = true }
    }
  }

  var elements: [Element] { box.state.withLock { $0.elements } }
  var isFinished: Bool { box.state.withLock { $0.finished } }
  func cancel() { task.cancel() }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes. The bound only turns a hang
/// into a failure (a full parallel run can keep a task from a cooperative thread for seconds),
/// so it is generous.
func eventually(timeout: Duration = .seconds(60), _ condition: () -> Bool) async -> Bool {
  let deadline = ContinuousClock.now + timeout
  while ContinuousClock.now < deadline {
    if condition() { return true }
    try? await Task.sleep(for: .milliseconds(10))
  }
  return condition()
}
