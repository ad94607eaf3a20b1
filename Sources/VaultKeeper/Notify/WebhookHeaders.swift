// SPDX-License-Identifier: Apache-2.0
/// The extra headers of a webhook (`headers_file` or `headers_credential`): one `Name: value`
/// per line, blank lines and `#` comments ignored. Values stay `SecretBytes` (a bearer token,
/// an ntfy access token): they are never logged, and the errors name lines, not contents.
public enum WebhookHeaders {
  /// Why the headers cannot be used: names the line, never its content.
  public struct Problem: Error, Sendable, Equatable {
    public var message: String
    init(_ message: String) { self.message = message }
  }

  /// Headers curl sets itself from the request; one from a file would contradict it.
  static let reserved: Set<String> = ["host", "content-length", "transfer-encoding", "connection", "expect"]

  public static func read(_ source: SnapshotConfig.Credential, environment: [String: String]) -> Result<[(name: String, value: SecretBytes)], WebhookHeaders.Problem> {
    let secret: SecretBytes
    do throws(SnapshotError) {
      secret = try CredentialReader.read(source, what: "webhook headers", environment: environment)
    } catch {
      return .failure(Problem(error.message))
    }
    return secret.withUnsafeBytes { raw in
      var bytes = Array(raw)
      defer { SecretBytes.wipe(&bytes) }
      return parse(bytes)
    }
  }

  /// Parses the file's bytes; the error names the line.
  public static func parse(_ bytes: [UInt8]) -> Result<[(name: String, value: SecretBytes)], WebhookHeaders.Problem> {
    var headers: [(name: String, value: SecretBytes)] = []
    for (index, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
      var content = line[...]
      if content.last == 0x0D { content = content.dropLast() }
      let trimmed = content.drop { $0 == 0x20 || $0 == 0x09 }
      if trimmed.isEmpty || trimmed.first == UInt8(ascii: "#") { continue }
      guard let colon = trimmed.firstIndex(of: UInt8(ascii: ":")) else {
        return .failure(Problem("webhook headers, line \(index + 1): expected Name: value"))
      }
      let name = trimmed[..<colon]
      let isToken: (UInt8) -> Bool = { byte in
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
      }
      guard !name.isEmpty, name.allSatisfy(isToken) else {
        return .failure(Problem("webhook headers, line \(index + 1): not a header name"))
      }
      let nameText = String(decoding: name, as: UTF8.self)
      guard !reserved.contains(nameText.lowercased()) else {
        return .failure(Problem("webhook headers, line \(index + 1): \(nameText) is set by vaultkeeper itself"))
      }
      var value = trimmed[trimmed.index(after: colon)...]
      while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
      while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
      guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }) else {
        return .failure(Problem("webhook headers, line \(index + 1): the value of \(nameText) holds a control character"))
      }
      headers.append((nameText, SecretBytes(value)))
    }
    return .success(headers)
  }
}
