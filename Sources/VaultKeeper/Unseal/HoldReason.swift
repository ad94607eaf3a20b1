// SPDX-License-Identifier: Apache-2.0
/// Why a sealed node is left sealed. Written out (STATUS, the state file) as its description;
/// everywhere else it is this enum.
public enum HoldReason: Sendable, Equatable, Hashable, CustomStringConvertible, Codable {
  /// Sealed while its process kept running: the operator's emergency brake.
  case deliberateSeal
  /// Vault refused our shares (another cluster's, or rekeyed); retried after a backoff.
  case wrongKey
  /// The key file holds fewer shares than the threshold.
  case tooFewShares(have: Int, need: Int)

  public var description: String {
    switch self {
    case .deliberateSeal: "deliberately sealed"
    case .wrongKey: "wrong unseal key"
    case .tooFewShares(let have, let need): "too few shares (\(have)/\(need))"
    }
  }

  /// Reads what `description` wrote; nil for anything else (a state file from another version).
  public init?(description text: String) {
    switch text {
    case "deliberately sealed": self = .deliberateSeal
    case "wrong unseal key": self = .wrongKey
    default:
      guard text.hasPrefix("too few shares ("), text.hasSuffix(")") else { return nil }
      let counts = text.dropFirst("too few shares (".count).dropLast().split(separator: "/")
      guard counts.count == 2, let have = Int(counts[0]), let need = Int(counts[1]) else { return nil }
      self = .tooFewShares(have: have, need: need)
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    guard let reason = HoldReason(description: text) else {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown hold reason \"\(text)\""))
    }
    self = reason
  }
}
