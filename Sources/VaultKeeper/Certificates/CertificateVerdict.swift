// SPDX-License-Identifier: Apache-2.0
/// The inspection of one set of certificate files: what they hold and everything wrong with
/// them. `problems` empty means Vault may be reloaded with them.
public struct CertificateVerdict: Sendable, Equatable {
  /// The leaf (first certificate of cert_file), when it parsed.
  public var leaf: CertificateFacts?
  /// The further certificates of cert_file (fullchain.pem's intermediates), in file order.
  public var intermediates: [CertificateFacts]
  /// Every reason not to reload, in the order found.
  public var problems: [CertificateProblem]
  /// Whether the key in key_file belongs to the leaf; nil when it could not be checked.
  public var keyMatches: Bool?
  /// Whether the chain validates to ca_file; nil without ca_file or when not checked.
  public var chainValid: Bool?
  /// The leaf's expiry state; nil without a leaf.
  public var expiry: ExpiryLevel?

  public init(leaf: CertificateFacts? = nil, intermediates: [CertificateFacts] = [], problems: [CertificateProblem] = [],
    keyMatches: Bool? = nil, chainValid: Bool? = nil, expiry: ExpiryLevel? = nil)
  {
    self.leaf = leaf
    self.intermediates = intermediates
    self.problems = problems
    self.keyMatches = keyMatches
    self.chainValid = chainValid
    self.expiry = expiry
  }

  /// Safe to reload Vault with: a leaf and not a single problem. A certificate inside the
  /// warning window is still better than an older one, so expiry warnings do not block.
  public var canReload: Bool { leaf != nil && problems.isEmpty }

  /// One line naming every problem, for the journal, STATUS and `cert check`.
  public var problemSummary: String { problems.map(\.description).joined(separator: "; ") }
}
