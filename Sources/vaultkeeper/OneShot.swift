// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Curl
import Logging
import VaultKeeper

/// Helpers for the one-shot commands (`check`, `unseal`): a client per node over libcurl.
enum OneShot {
  static func withClients<R>(_ config: Config, _ body: ([(NodeConfig, VaultClient)]) async -> R) async -> R {
    let transports = config.nodes.map { CurlTransport(settings: .init(node: $0), name: "curl \($0.name)") }
    defer { transports.forEach { $0.shutdown() } }
    return await body(zip(config.nodes, transports).map { ($0, VaultClient(transport: $1, timeout: $0.timeout)) })
  }
}

/// Writes to stderr without going through logging (for one-shot command output).
func printError(_ text: String) {
  var line = text
  if !line.hasSuffix("\n") { line += "\n" }
  FileStream.standardError.write(line)
}

enum FileStream {
  struct StandardError {
    func write(_ text: String) {
      var bytes = Array(text.utf8)
      var offset = 0
      while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { break }
        offset += n
      }
    }
  }
  static let standardError = StandardError()
}
