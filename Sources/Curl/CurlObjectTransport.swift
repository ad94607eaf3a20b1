// SPDX-License-Identifier: Apache-2.0
import VaultKeeper

/// `ObjectTransport` over libcurl: SigV4-signed requests to one bucket (CURLOPT_AWS_SIGV4 with
/// the key pair as user name and password), bodies streamed from files, on a `CurlTransport`
/// thread of its own (blocking curl calls never run on the cooperative pool).
///
/// libcurl 7.88 (Debian 12) signs the payload hash it finds in `x-amz-content-sha256`, and
/// without that header signs a hash S3 does not expect for a streamed upload, so every request
/// says `UNSIGNED-PAYLOAD`: the signature covers method, path, query and headers, and the body's
/// integrity comes from Content-MD5 (checked by the server) and our check after the upload.
public final class CurlObjectTransport: ObjectTransport, @unchecked Sendable {
  private let transport: CurlTransport
  private let config: S3Config
  private let credentials: S3Credentials
  private let bucketURL: String
  /// Listing pages of 1000 keys are a few hundred KiB.
  static let bodyLimit = 8 << 20

  public init(config: S3Config, credentials: S3Credentials) {
    self.config = config
    self.credentials = credentials
    self.bucketURL = config.endpoint.bucketURL(bucket: config.bucket, pathStyle: config.pathStyle)
    let node = NodeConfig(address: config.endpoint.address, caFile: config.caFile, timeout: config.timeout, connectTimeout: min(config.timeout, .seconds(10)))
    self.transport = CurlTransport(settings: .init(node: node, bodyLimit: Self.bodyLimit), name: "s3")
  }

  public func send(_ request: ObjectRequest) async throws(TransportError) -> HTTPResponse {
    var body: SecretBytes?
    var upload: FileSlice?
    switch request.body {
    case .none: break
    case .bytes(let bytes): body = SecretBytes(bytes)
    case .file(let slice): upload = slice
    }
    var options = CurlEasy.Options(
      url: bucketURL + request.target, method: request.method, headers: request.headers + [("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
      body: body, allowedProtocol: config.endpoint.address.scheme == .https ? "https" : "http", unixSocketPath: nil, connectTo: nil,
      caFile: config.caFile, clientCertFile: nil, clientKeyFile: nil, connectTimeout: min(config.timeout, .seconds(10)),
      totalTimeout: request.totalTimeout(transfers: config.transfers, smallRequest: config.timeout), bodyLimit: Self.bodyLimit)
    if request.isTransfer {
      // Within its deadline (from its size), a transfer stalled below 1 KiB/s for a minute is dead.
      options.lowSpeed = (1024, .seconds(60))
    }
    options.upload = upload
    // Only the proxy named in the configuration; nil means none, whatever the environment says.
    options.proxy = config.proxy?.url
    options.allowExpectContinue = true
    options.awsSigV4 = "aws:amz:\(config.region):s3"
    options.username = credentials.accessKeyID
    options.password = credentials.secretAccessKey
    return try await transport.perform(options)
  }

  public func shutdown() {
    transport.shutdown()
  }
}
