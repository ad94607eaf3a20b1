// SPDX-License-Identifier: Apache-2.0
/// What the certificate duty reports (`DaemonReport.certificate`): the files' verdict, what
/// Vault serves, the last reload. Rendered into STATUS, the state file and metrics.
public struct CertificateReport: Sendable, Equatable, Codable {
  public var state: CertificateState
  public var problems: [String]
  public var problemCodes: [String]
  public var fileSHA256: String?
  public var fileNotAfter: Double?
  public var fileSubject: String?
  public var servedSHA256: String?
  public var servedNotAfter: Double?
  public var servedError: String?
  public var lastReload: Double?
  public var lastReloadResult: CertificateReloadResult?
  /// Reloads since start, by result.
  public var reloads: [CertificateReloadResult: Int]
  /// How close the file's and the served certificate are to their end.
  public var fileExpiry: ExpiryLevel?
  public var servedExpiry: ExpiryLevel?
  /// How changes to the files are noticed. nil before the watch starts.
  public var watching: CertificateWatchMode?

  public init(state: CertificateState) {
    self.state = state
    self.problems = []
    self.problemCodes = []
    self.reloads = [:]
  }

  enum CodingKeys: String, CodingKey {
    case state, problems, reloads
    case problemCodes = "problem_codes"
    case fileSHA256 = "file_sha256"
    case fileNotAfter = "file_not_after"
    case fileSubject = "file_subject"
    case servedSHA256 = "served_sha256"
    case servedNotAfter = "served_not_after"
    case servedError = "served_error"
    case lastReload = "last_reload"
    case lastReloadResult = "last_reload_result"
    case fileExpiry = "file_expiry"
    case servedExpiry = "served_expiry"
    case watching
  }

  /// The STATUS fragment: only when something needs attention.
  public func statusFragment(now: Double) -> String? {
    switch state {
    case .invalid: return "certificate INVALID: " + (problems.first ?? "see the journal")
    case .reloadFailed: return "certificate reload FAILED"
    case .notServed: return "Vault serves the OLD certificate"
    case .ok, .unknown: break
    }
    // The served one is what clients see; the file's when Vault could not be asked.
    let notAfter = servedNotAfter ?? fileNotAfter
    let level = servedNotAfter != nil ? servedExpiry : fileExpiry
    guard let notAfter, let level, level != .ok else { return nil }
    if level == .expired { return "certificate EXPIRED" }
    let days = Int(((notAfter - now) / 86400).rounded(.down))
    return "certificate expires in \(days)d"
  }
}

/// The certificate duty's verdict, as written to the state file.
public enum CertificateState: String, Sendable, Equatable, Codable {
  /// Not read yet.
  case unknown
  case ok
  /// The files fail a check; Vault is not reloaded.
  case invalid
  case reloadFailed = "reload-failed"
  /// Reloaded, but Vault still serves another certificate.
  case notServed = "not-served"
}

/// How a reload for a renewed certificate ended: the reloader's own result, or reloaded but
/// the new certificate not served. The raw value is the metric label and the state file's.
public enum CertificateReloadResult: String, Sendable, Equatable, Hashable, CaseIterable, Codable, CodingKeyRepresentable {
  case succeeded
  case failed
  case timedOut
  case notServed = "not_served"

  public init(_ result: ReloadOutcome.Result) {
    switch result {
    case .succeeded: self = .succeeded
    case .failed: self = .failed
    case .timedOut: self = .timedOut
    }
  }
}

/// How changes to the certificate files are noticed.
public enum CertificateWatchMode: String, Sendable, Equatable, Codable {
  case inotify
  /// Only the `check_interval` re-check: inotify could not be had, or failed during the run.
  case timer
}

/// Written out by name (`ok`, `warning`, `critical`, `expired`), like every state.
extension ExpiryLevel: Codable {
  public init(from decoder: any Decoder) throws {
    let name = try decoder.singleValueContainer().decode(String.self)
    guard let level = [ExpiryLevel.ok, .warning, .critical, .expired].first(where: { $0.description == name }) else {
      throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown expiry level \"\(name)\""))
    }
    self = level
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }
}
