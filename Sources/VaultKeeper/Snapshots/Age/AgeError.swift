// SPDX-License-Identifier: Apache-2.0
/// Why an age operation failed. Messages describe the file, never key material: no identity,
/// file key or derived key ever appears here (callers print these to the terminal and journal).
public struct AgeError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    /// A recipient (`age1…`) or identity (`AGE-SECRET-KEY-1…`) string or file is malformed.
    case key
    /// The header is not a well-formed age v1 header.
    case header
    /// None of the given identities opens any recipient stanza.
    case noMatch
    /// The header MAC does not verify: the header was changed, or the file key is wrong.
    case headerMAC
    /// The payload is damaged, truncated or has extra bytes.
    case payload
    /// The consumer of the plaintext refused it (e.g. the snapshot verifier found a problem).
    case consumer
  }

  public var kind: Kind
  public var message: String
  public var description: String { message }

  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }
}
