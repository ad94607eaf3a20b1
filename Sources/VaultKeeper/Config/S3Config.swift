// SPDX-License-Identifier: Apache-2.0

/// `[snapshot.s3]`: every verified snapshot is also uploaded to an S3-compatible bucket (AWS,
/// Hetzner Object Storage, MinIO, Ceph RGW) and the same retention is applied there.
public struct S3Config: Sendable, Equatable {
  public var endpoint: S3Endpoint
  public var region: String
  public var bucket: String
  /// Prepended to every snapshot's file name to form its key (may be empty; usually ends in "/").
  public var prefix: String
  /// `https://host/bucket/key` instead of `https://bucket.host/key` (MinIO, IP endpoints).
  public var pathStyle: Bool
  public var accessKeyID: SnapshotConfig.Credential
  public var secretAccessKey: SnapshotConfig.Credential
  public var caFile: String?
  /// Total time for one small request (HEAD, list, delete, multipart bookkeeping). Uploads are
  /// bounded by `transfers` instead (and cut earlier by the low-speed limit when they stall).
  public var timeout: Duration
  /// Remote retention: the local `[snapshot]` policy unless `[snapshot.s3]` sets its own keys.
  public var retention: RetentionPolicy
  /// Whether `retention` came from `[snapshot.s3]` itself (for `config check` output).
  public var ownRetention: Bool
  /// Compare the ETag S3 reports with the MD5 we computed. Buckets with SSE-KMS or SSE-C
  /// encryption return ETags that are not content MD5s and need this off.
  public var verifyETag: Bool
  /// Files larger than this go up as a multipart upload, in parts of `partSize`.
  public var multipartThreshold: Int64
  public var partSize: Int64
  /// The forward proxy for the object storage, when the operator names one. Never taken from
  /// the environment (`https_proxy` and the like are ignored), and never used for Vault.
  public var proxy: S3Proxy? = nil
  /// The deadline of each upload request, from its size: `[snapshot]`'s `transfer_timeout` and
  /// `transfer_min_rate` (copied here when the configuration is loaded).
  public var transfers: TransferDeadline = .standard

  public static let defaultPrefix = "vaultkeeper/"
  /// S3's limits: parts are 5 MiB to 5 GiB (except the last), a single PUT at most 5 GiB.
  public static let minPartSize: Int64 = 5 << 20
  public static let maxPartSize: Int64 = 5 << 30
}

/// Where the object storage listens: `https://HOST[:PORT]`, or `http://` on loopback only.
public struct S3Endpoint: Sendable, Equatable {
  public var address: VaultAddress
  /// The endpoint as the operator wrote it.
  public var display: String { address.display }

  /// Parses an endpoint; the port defaults to 443/80 (not Vault's 8200).
  public static func parse(_ text: String) -> Result<S3Endpoint, VaultAddress.AddressError> {
    guard !text.hasPrefix("unix:") else { return .failure(.init(reason: "object storage is reached over https://")) }
    switch VaultAddress.parse(text) {
    case .failure(let error): return .failure(error)
    case .success(var address):
      if !hasExplicitPort(text) { address.port = address.scheme == .https ? 443 : 80 }
      return .success(S3Endpoint(address: address))
    }
  }

  /// Whether a `scheme://host[:port][/]` text names its port (VaultAddress.parse defaults it).
  static func hasExplicitPort(_ text: String) -> Bool {
    var rest = Substring(text[(text.firstRange(of: "://")?.upperBound ?? text.startIndex)...])
    if rest.hasSuffix("/") { rest = rest.dropLast() }
    return rest.hasPrefix("[") ? rest.contains("]:") : rest.contains(":")
  }

  /// Whether the host is an IP literal, which cannot carry a bucket as a subdomain.
  var hostIsIPLiteral: Bool {
    address.host.contains(":") || address.host.split(separator: ".").allSatisfy { UInt8($0) != nil }
  }

  /// The URL objects are addressed under (no trailing slash): keys follow as `/KEY`.
  public func bucketURL(bucket: String, pathStyle: Bool) -> String {
    let host = address.host.contains(":") ? "[\(address.host)]" : address.host
    let defaultPort = address.scheme == .https ? 443 : 80
    let port = address.port == defaultPort ? "" : ":\(address.port)"
    if pathStyle { return "\(address.scheme.rawValue)://\(host)\(port)/\(bucket)" }
    return "\(address.scheme.rawValue)://\(bucket).\(host)\(port)"
  }
}

/// `[snapshot.s3] proxy`: an `http://` or `https://` forward proxy, `scheme://HOST:PORT`. An
/// https:// endpoint is reached through it with CONNECT, so TLS (and `ca_file`) stays end to
/// end; an `https://` proxy's own certificate is verified against the system trust store.
public struct S3Proxy: Sendable, Equatable {
  public var address: VaultAddress
  /// The proxy as the operator wrote it.
  public var display: String { address.display }
  /// What libcurl is given (CURLOPT_PROXY): the scheme picks an HTTP or HTTPS proxy.
  public var url: String { address.baseURL }

  public static func parse(_ text: String) -> Result<S3Proxy, VaultAddress.AddressError> {
    guard !text.hasPrefix("unix:") else { return .failure(.init(reason: "a proxy is an http:// or https:// URL")) }
    guard !text.contains("@") else {
      return .failure(.init(reason: "must not hold credentials (user:password@): proxy authentication is not supported"))
    }
    switch VaultAddress.parse(text) {
    case .failure(let error): return .failure(error)
    case .success(let address):
      // No default port: proxies listen on many (3128, 8080), and libcurl's 1080 would surprise.
      guard S3Endpoint.hasExplicitPort(text) else {
        return .failure(.init(reason: "needs a port, e.g. http://proxy.example.com:3128"))
      }
      return .success(S3Proxy(address: address))
    }
  }
}

extension TableReaderKeys {
  static let s3 = [
    "endpoint", "region", "bucket", "prefix", "path_style", "access_key_id_file", "access_key_id_credential", "secret_access_key_file",
    "secret_access_key_credential", "ca_file", "timeout", "verify_etag", "multipart_threshold", "part_size", "keep_last", "keep_daily",
    "keep_weekly", "keep_monthly", "max_age", "proxy",
  ]
}

extension TableReader {
  /// `[snapshot.s3]`. `local` is the `[snapshot]` retention, the default for the bucket too.
  func s3(_ table: TOMLTable?, local: RetentionPolicy) throws(ConfigError) -> S3Config? {
    guard let table else { return nil }
    let at = "snapshot.s3"
    try allowOnly(table, keys: TableReaderKeys.s3, at: at)
    func required(_ key: String, _ example: String) throws(ConfigError) -> String {
      guard let value = try string(table, key, at: at), !value.isEmpty else { throw error("\(at).\(key)", "is required, e.g. \(example)") }
      return value
    }
    let endpointText = try required("endpoint", "\"https://fsn1.your-objectstorage.com\" or \"https://s3.eu-central-1.amazonaws.com\"")
    let endpoint: S3Endpoint
    switch S3Endpoint.parse(endpointText) {
    case .success(let parsed): endpoint = parsed
    case .failure(let failure): throw error("\(at).endpoint", "\"\(endpointText)\": \(failure.reason)")
    }
    if endpoint.address.scheme == .http && !endpoint.address.isLocal {
      throw error("\(at).endpoint", "plain http is only allowed for loopback addresses; credentials and snapshots go elsewhere only over verified TLS (use https://)")
    }
    var proxy: S3Proxy?
    if let proxyText = try string(table, "proxy", at: at) {
      switch S3Proxy.parse(proxyText) {
      case .success(let parsed): proxy = parsed
      case .failure(let failure):
        // Not repeated when it holds credentials: the password would end up in logs.
        throw error("\(at).proxy", proxyText.contains("@") ? failure.reason : "\"\(proxyText)\": \(failure.reason)")
      }
    }
    if let proxy, endpoint.address.scheme == .http && !proxy.address.isLocal {
      throw error("\(at).proxy", "the endpoint is plain http, so this proxy would carry the snapshots unencrypted to another machine; use a loopback proxy or an https:// endpoint")
    }
    let region = try required("region", "\"us-east-1\", \"eu-central-1\" or \"fsn1\"")
    guard region.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
      throw error("\(at).region", "must be a region name such as \"eu-central-1\"")
    }
    let bucket = try required("bucket", "\"vault-snapshots\"")
    guard (3...63).contains(bucket.count), bucket.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }),
      bucket.first?.isLetter == true || bucket.first?.isNumber == true
    else {
      throw error("\(at).bucket", "\"\(bucket)\" is not a valid bucket name (3 to 63 characters: a-z, 0-9, '-' and '.')")
    }
    let pathStyle = try bool(table, "path_style", at: at) ?? false
    if !pathStyle && endpoint.hostIsIPLiteral {
      throw error("\(at).path_style", "must be true for an IP address endpoint (the bucket cannot be a subdomain of \(endpoint.address.host))")
    }
    let prefix = try string(table, "prefix", at: at) ?? S3Config.defaultPrefix
    // Keys are signed as written, so keep them to characters that need no URI encoding.
    guard prefix.count <= 512, !prefix.hasPrefix("/"), !prefix.contains("//"),
      prefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) })
    else {
      throw error("\(at).prefix", "\"\(prefix)\" must be letters, digits, '-', '_', '.' and '/' (no leading '/'), e.g. \"vaultkeeper/prod/\"")
    }
    guard let accessKey = try credential(table, "access_key_id_file", "access_key_id_credential", at: at) else {
      throw error("\(at).access_key_id_file", "is required (or access_key_id_credential for a systemd credential)")
    }
    guard let secretKey = try credential(table, "secret_access_key_file", "secret_access_key_credential", at: at) else {
      throw error("\(at).secret_access_key_file", "is required (or secret_access_key_credential for a systemd credential)")
    }
    func size(_ key: String, default value: Int64) throws(ConfigError) -> Int64 {
      guard let text = try string(table, key, at: at) else { return value }
      guard let bytes = SizeParsing.parse(text) else { throw error("\(at).\(key)", "\"\(text)\" is not a size (use e.g. \"64MiB\")") }
      guard (S3Config.minPartSize...S3Config.maxPartSize).contains(bytes) else {
        throw error("\(at).\(key)", "must be between 5MiB and 5GiB (S3's limits for a part and a single upload)")
      }
      return bytes
    }
    let ownPolicy = try retention(table, at: at)
    let ownRetention = ownPolicy != RetentionPolicy()
    return S3Config(
      endpoint: endpoint, region: region, bucket: bucket, prefix: prefix, pathStyle: pathStyle, accessKeyID: accessKey, secretAccessKey: secretKey,
      caFile: try trustedFile(table, "ca_file", at: at, decides: "which servers get the snapshots and the S3 credentials"), timeout: try duration(table, "timeout", at: at, minimum: .seconds(1)) ?? .seconds(30),
      retention: ownRetention ? ownPolicy : local, ownRetention: ownRetention, verifyETag: try bool(table, "verify_etag", at: at) ?? true,
      multipartThreshold: try size("multipart_threshold", default: 256 << 20), partSize: try size("part_size", default: 64 << 20),
      proxy: proxy)
  }
}
