// SPDX-License-Identifier: Apache-2.0
/// What the certificate watcher reports.
public enum CertificateWatchEvent: Sendable, CustomStringConvertible {
  /// The files as first read successfully (at start, or after they were unreadable from the
  /// start). Not a renewal: it tells what should be served now.
  case initial(CertificateFileContents)
  /// The bytes differ from the last successful read: a renewal (or a replacement by hand).
  case renewed(CertificateFileContents)
  /// The files could not be read; reported once per distinct reason. The last good contents
  /// still stand for what Vault should be serving.
  case unreadable(CertificateReadFailure)
  /// Readable again after `unreadable`, with the same bytes as before: nothing to reload, but
  /// an alert raised for `unreadable` can be cleared.
  case readableAgain(CertificateFileContents)

  public var description: String {
    switch self {
    case .initial(let contents): "initial \(contents.fingerprint)"
    case .renewed(let contents): "renewed \(contents.fingerprint)"
    case .unreadable(let failure): "unreadable: \(failure)"
    case .readableAgain(let contents): "readable again \(contents.fingerprint)"
    }
  }
}

/// Turns successive reads of the certificate files into events, leaving out reads that found
/// the same bytes as before (a `touch`, a rewrite with identical content, a re-check with
/// nothing new, a failure already reported). Pure.
public struct RenewalGate: Sendable {
  private var lastGood: CertificateFingerprint?
  private var lastFailure: CertificateReadFailure?

  public init() {}

  /// The event a read should produce, or nil when there is nothing new to tell.
  public mutating func judge(_ read: Result<CertificateFileContents, CertificateReadFailure>) -> CertificateWatchEvent? {
    switch read {
    case .failure(let failure):
      guard failure != lastFailure else { return nil }
      lastFailure = failure
      return .unreadable(failure)
    case .success(let contents):
      let wasFailing = lastFailure != nil
      lastFailure = nil
      guard let previous = lastGood else {
        lastGood = contents.fingerprint
        return .initial(contents)
      }
      lastGood = contents.fingerprint
      if previous != contents.fingerprint { return .renewed(contents) }
      return wasFailing ? .readableAgain(contents) : nil
    }
  }
}
