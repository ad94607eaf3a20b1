// SPDX-License-Identifier: Apache-2.0
import VaultKeeper

/// A `[[notify]] webhook` target: one JSON POST per message over libcurl, on a transport thread
/// of this target's own (a receiver that hangs holds up nobody else). TLS is verified, against
/// `ca_file` alone when one is set; no proxy from the environment; no redirects followed.
public final class CurlWebhookSender: NotifySender, @unchecked Sendable {
  private let transport: CurlTransport
  private let webhook: WebhookConfig
  private let timeout: Duration
  private let host: String
  private let environment: [String: String]
  /// A receiver's answer is read for the journal only; anything longer is cut.
  static let bodyLimit = 64 * 1024

  public init(webhook: WebhookConfig, timeout: Duration, host: String, environment: [String: String], name: String) {
    self.webhook = webhook
    self.timeout = timeout
    self.host = host
    self.environment = environment
    let node = NodeConfig(address: webhook.url.origin, caFile: webhook.caFile, timeout: timeout, connectTimeout: min(timeout, .seconds(10)))
    transport = CurlTransport(settings: .init(node: node, bodyLimit: Self.bodyLimit), name: "notify \(name)")
  }

  public func send(_ message: AlertMessage) async -> DeliveryOutcome {
    let headers: [(name: String, value: SecretBytes)]
    switch await readHeaders() {
    case .success(let read): headers = read
    case .failure(let problem): return .failed(problem.message, retry: false)
    }
    let payload = AlertPayload.render(message, format: webhook.format, host: host, ntfyTopic: webhook.url.ntfyTopic)
    var options = CurlEasy.Options(
      url: webhook.postURL, method: .post, headers: [("Content-Type", payload.contentType), ("User-Agent", "vaultkeeper/\(VaultKeeperVersion.string)")],
      body: SecretBytes(payload.body), allowedProtocol: webhook.url.scheme, unixSocketPath: nil, connectTo: nil, caFile: webhook.caFile,
      clientCertFile: nil, clientKeyFile: nil, connectTimeout: min(timeout, .seconds(10)), totalTimeout: timeout, bodyLimit: Self.bodyLimit)
    options.secretHeaders = headers
    let response: HTTPResponse
    do throws(TransportError) {
      response = try await transport.perform(options)
    } catch {
      return .failed(error.description, retry: error.kind != .cancelled)
    }
    let said = Self.excerpt(response.body, hiding: webhook.url)
    switch response.status {
    case 200..<300: return .delivered("HTTP \(response.status)")
    // Too early, too many, or the receiver's own trouble: worth another try.
    case 408, 425, 429, 500...599: return .failed("HTTP \(response.status)\(said)", retry: true)
    // Refused as sent (a bad token, a wrong URL): the same message would be refused again.
    default: return .failed("HTTP \(response.status)\(said)", retry: false)
    }
  }

  /// `Name: value` lines from `headers_file` or `headers_credential`, read at each delivery (a
  /// rotated token is used at once). Off the cooperative pool: it is a file read.
  private func readHeaders() async -> Result<[(name: String, value: SecretBytes)], WebhookHeaders.Problem> {
    guard let source = webhook.headers else { return .success([]) }
    let environment = self.environment
    return await OffPool.run { WebhookHeaders.read(source, environment: environment) }
  }

  /// The start of a receiver's answer, one line, for the journal. A receiver may echo the
  /// request's path (`Cannot POST /hooks/abc…`), which is often the webhook's secret: it is cut
  /// out, like everywhere else.
  static func excerpt(_ body: [UInt8], hiding url: WebhookURL) -> String {
    // Cut out first, shorten after: an echo across the cut must not leave the secret's start.
    var text = String(decoding: body.prefix(4096), as: UTF8.self).split(whereSeparator: \.isNewline).joined(separator: " ")
    var secrets = [url.path]
    if let query = url.path.firstIndex(of: "?") { secrets += [String(url.path[..<query]), String(url.path[url.path.index(after: query)...])] }
    // As a JSON answer would quote it, too.
    secrets += secrets.map { $0.replacing("/", with: "\\/") }
    for secret in secrets.sorted(by: { $0.count > $1.count }) where secret.count > 1 {
      text = text.replacing(secret, with: "/…")
    }
    if text.count > 200 { text = String(text.prefix(200)) + "…" }
    return text.isEmpty ? "" : ": \(text)"
  }

  public func shutdown() {
    transport.shutdown()
  }
}
