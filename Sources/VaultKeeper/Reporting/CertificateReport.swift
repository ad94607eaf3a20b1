/// What the certificate duty reports (`DaemonReport.certificate`): the files' verdict, what
/// Vault serves, the last reload. Rendered into STATUS, the state file and metrics.
public struct CertificateReport: Sendable, Equatable, Codable {
  /// `ok`, `invalid` (the files fail a check; Vault is not reloaded), `reload-failed`,
  /// `not-served` (reloaded, but Vault still serves another certificate), `unknown` (not read yet).
  public var state: String
  public var problems: [String]
  public var problemCodes: [String]
  public var fileSHA256: String?
  public var fileNotAfter: Double?
  public var fileSubject: String?
  public var servedSHA256: String?
  public var servedNotAfter: Double?
  public var servedError: String?
  public var lastReload: Double?
  public var lastReloadResult: String?
  /// Reloads since start, by result (`succeeded`, `failed`, `timedOut`, `not_served`).
  public var reloads: [String: Int]
  /// `ok`, `warning`, `critical`, `expired` for the file and the served certificate.
  public var fileExpiry: String?
  public var servedExpiry: String?
  /// How changes to the files are noticed: `inotify`, or `timer` (only the `check_interval`
  /// re-check: inotify could not be had, or failed during the run). nil before the watch starts.
  public var watching: String?

  public init(state: String) {
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
    case "invalid": return "certificate INVALID: " + (problems.first ?? "see the journal")
    case "reload-failed": return "certificate reload FAILED"
    case "not-served": return "Vault serves the OLD certificate"
    default: break
    }
    // The served one is what clients see; the file's when Vault could not be asked.
    let notAfter = servedNotAfter ?? fileNotAfter
    let level = servedNotAfter != nil ? servedExpiry : fileExpiry
    guard let notAfter, let level, level != "ok" else { return nil }
    if level == "expired" { return "certificate EXPIRED" }
    let days = Int(((notAfter - now) / 86400).rounded(.down))
    return "certificate expires in \(days)d"
  }
}
