// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct S3ConfigTests {
  let directory: String

  init() throws {
    directory = NSTemporaryDirectory() + "vk-s3cfg-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for name in ["id", "secret", "ca.pem"] { _ = FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data("x".utf8)) }
  }

  func text(_ s3: String, snapshotExtra: String = "") -> String {
    """
    [vault]
    address = "https://127.0.0.1:8200"

    [snapshot]
    directory = "\(directory)"
    token_credential = "vault-token"
    keep_last = 5
    \(snapshotExtra)
    [snapshot.s3]
    \(s3)
    """
  }

  func parse(_ s3: String, snapshotExtra: String = "") throws(ConfigError) -> S3Config? {
    try ConfigLoader().parse(text(s3, snapshotExtra: snapshotExtra), path: "/etc/vk.toml").snapshot?.s3
  }

  var minimal: String {
    """
    endpoint = "https://fsn1.your-objectstorage.com"
    region = "fsn1"
    bucket = "vault-snapshots"
    access_key_id_file = "\(directory)/id"
    secret_access_key_credential = "s3-secret"
    """
  }

  @Test func defaults() throws {
    let s3 = try #require(try parse(minimal))
    #expect(s3.endpoint.address.port == 443 && s3.endpoint.address.host == "fsn1.your-objectstorage.com")
    #expect(s3.prefix == "vaultkeeper/" && !s3.pathStyle && s3.verifyETag)
    #expect(s3.accessKeyID == .file("\(directory)/id") && s3.secretAccessKey == .credential("s3-secret"))
    #expect(s3.timeout == .seconds(30) && s3.multipartThreshold == 256 << 20 && s3.partSize == 64 << 20)
    // Remote retention follows [snapshot] unless the table has its own rules.
    #expect(s3.retention == RetentionPolicy(keepLast: 5) && !s3.ownRetention)
    #expect(s3.endpoint.bucketURL(bucket: s3.bucket, pathStyle: false) == "https://vault-snapshots.fsn1.your-objectstorage.com")
    #expect(s3.endpoint.bucketURL(bucket: s3.bucket, pathStyle: true) == "https://fsn1.your-objectstorage.com/vault-snapshots")
  }

  @Test func everythingSetAndRenderedBack() throws {
    let config = try ConfigLoader().parse(text("""
      endpoint = "http://127.0.0.1:9000"
      region = "us-east-1"
      bucket = "b.1-x"
      prefix = "prod/vault/"
      path_style = true
      access_key_id_credential = "s3-id"
      secret_access_key_file = "\(directory)/secret"
      ca_file = "\(directory)/ca.pem"
      timeout = "1m"
      verify_etag = false
      multipart_threshold = "100MiB"
      part_size = "16MiB"
      keep_daily = 30
      keep_monthly = 12
      """), path: "/etc/vk.toml")
    let s3 = try #require(config.snapshot?.s3)
    #expect(s3.endpoint.address.port == 9000 && s3.endpoint.bucketURL(bucket: "b.1-x", pathStyle: true) == "http://127.0.0.1:9000/b.1-x")
    #expect(s3.retention == RetentionPolicy(keepDaily: 30, keepMonthly: 12) && s3.ownRetention)
    #expect(s3.caFile == "\(directory)/ca.pem" && s3.timeout == .seconds(60) && !s3.verifyETag)
    #expect(s3.multipartThreshold == 100 << 20 && s3.partSize == 16 << 20)
    let rendered = EffectiveConfig.render(config)
    #expect(rendered.contains("[snapshot.s3]"))
    var reparsed = try ConfigLoader().parse(rendered, path: "/etc/vk.toml")
    reparsed.sourcePath = config.sourcePath
    #expect(reparsed == config)
    // Inherited retention renders as a comment and reparses to the same thing.
    let inherited = try ConfigLoader().parse(text(minimal), path: "/etc/vk.toml")
    var again = try ConfigLoader().parse(EffectiveConfig.render(inherited), path: "/etc/vk.toml")
    again.sourcePath = inherited.sourcePath
    #expect(again == inherited)
  }

  func failure(_ s3: String) -> ConfigError? {
    do {
      _ = try parse(s3)
      return nil
    } catch {
      return error
    }
  }

  func replacing(_ key: String, with line: String?) -> String {
    minimal.split(separator: "\n").map { $0.hasPrefix("\(key) =") ? (line ?? "") : String($0) }.joined(separator: "\n")
  }

  @Test(arguments: [
    ("endpoint", "endpoint = \"http://s3.example.com\"", "plain http is only allowed for loopback"),
    ("endpoint", "endpoint = \"s3.example.com\"", "expected https://"),
    ("endpoint", "endpoint = \"https://s3.example.com/bucket\"", "no path"),
    ("endpoint", "endpoint = \"unix:///run/s3.sock\"", "https://"),
    ("endpoint", nil, "is required"),
    ("region", "region = \"eu central\"", "region name"),
    ("bucket", "bucket = \"Vault_Snapshots\"", "not a valid bucket name"),
    ("bucket", "bucket = \"ab\"", "not a valid bucket name"),
    ("access_key_id_file", nil, "is required"),
    ("access_key_id_file", "access_key_id_file = \"relative/id\"", "absolute path"),
    ("secret_access_key_credential", "secret_access_key_credential = \"a/b\"", "not a path"),
  ] as [(String, String?, String)])
  func errorsNameFileLineAndKey(key: String, line: String?, needle: String) throws {
    let error = try #require(failure(replacing(key, with: line)))
    #expect(error.key == "snapshot.s3.\(key)", "\(error)")
    #expect(error.message.contains(needle), "\(error)")
    #expect(error.file == "/etc/vk.toml" && error.line != nil, "\(error)")
  }

  @Test func moreErrors() throws {
    func key(_ extra: String) -> String? { failure(minimal + "\n" + extra)?.key }
    #expect(key("secret_access_key_file = \"\(directory)/secret\"") == "snapshot.s3.secret_access_key_credential")
    #expect(key("prefix = \"/abs/\"") == "snapshot.s3.prefix")
    #expect(key("prefix = \"a b/\"") == "snapshot.s3.prefix")
    #expect(key("prefix = \"a//b/\"") == "snapshot.s3.prefix")
    #expect(key("part_size = \"4MiB\"") == "snapshot.s3.part_size")
    #expect(key("multipart_threshold = \"6GiB\"") == "snapshot.s3.multipart_threshold")
    #expect(key("timeout = \"0s\"") == "snapshot.s3.timeout")
    #expect(key("ca_file = \"\(directory)/missing.pem\"") == "snapshot.s3.ca_file")
    #expect(key("keep_last = -1") == "snapshot.s3.keep_last")
    #expect(key("max_age = \"1m\"") == "snapshot.s3.max_age")
    #expect(key("buckt = \"x\"") == "snapshot.s3.buckt")
    // An IP endpoint cannot carry the bucket as a subdomain.
    let ip = failure(replacing("endpoint", with: "endpoint = \"https://10.0.0.5:9000\""))
    #expect(ip?.key == "snapshot.s3.path_style")
    #expect(try parse(replacing("endpoint", with: "endpoint = \"https://10.0.0.5:9000\"") + "\npath_style = true")?.endpoint.address.port == 9000)
    // The line is the key's own line.
    let located = try #require(failure(minimal + "\npart_size = \"1MiB\""))
    #expect(located.line == text(minimal).split(separator: "\n", omittingEmptySubsequences: false).count + 1)
  }

  @Test func proxyIsOnlyWhatTheTableNames() throws {
    // None unless named: the environment's https_proxy and the like are never consulted.
    #expect(try parse(minimal)?.proxy == nil)
    for (text, url) in [
      ("http://proxy.example.com:3128", "http://proxy.example.com:3128"), ("https://10.0.0.1:8443/", "https://10.0.0.1:8443"),
      ("http://[fd00::1]:3128", "http://[fd00::1]:3128"),
    ] {
      let s3 = try #require(try parse(minimal + "\nproxy = \"\(text)\""))
      #expect(s3.proxy?.url == url && s3.proxy?.display == text)
    }
    // Rendered by `config check` and read back to the same configuration.
    let config = try ConfigLoader().parse(text(minimal + "\nproxy = \"http://proxy.example.com:3128\""), path: "/etc/vk.toml")
    let rendered = EffectiveConfig.render(config)
    #expect(rendered.contains("proxy = \"http://proxy.example.com:3128\""))
    var reparsed = try ConfigLoader().parse(rendered, path: "/etc/vk.toml")
    reparsed.sourcePath = config.sourcePath
    #expect(reparsed == config)
    // A loopback proxy may carry a loopback http endpoint's traffic.
    let local = replacing("endpoint", with: "endpoint = \"http://127.0.0.1:9000\"") + "\npath_style = true\nproxy = \"http://127.0.0.1:3128\""
    #expect(try parse(local)?.proxy?.address.port == 3128)
  }

  @Test(arguments: [
    ("proxy = \"proxy.example.com:3128\"", "expected https://"),
    ("proxy = \"socks5://proxy.example.com:1080\"", "unsupported scheme"),
    ("proxy = \"unix:///run/proxy.sock\"", "http:// or https://"),
    ("proxy = \"http://proxy.example.com\"", "needs a port"),
    ("proxy = \"http://user:pass@proxy.example.com:3128\"", "proxy authentication is not supported"),
    ("proxy = \"http://proxy.example.com:3128/path\"", "no path"),
    ("proxy = \"\"", "expected https://"),
    ("proxy = 3128", "must be a string"),
  ])
  func proxyErrorsNameTheKey(line: String, needle: String) throws {
    let error = try #require(failure(minimal + "\n" + line))
    #expect(error.key == "snapshot.s3.proxy", "\(error)")
    #expect(error.message.contains(needle), "\(error)")
    #expect(error.file == "/etc/vk.toml" && error.line != nil, "\(error)")
    #expect(!error.message.contains("pass@"), "a proxy password is never repeated: \(error)")
  }

  @Test func plainHTTPEndpointOnlyThroughALoopbackProxy() throws {
    let remote = replacing("endpoint", with: "endpoint = \"http://127.0.0.1:9000\"") + "\npath_style = true\nproxy = \"http://proxy.example.com:3128\""
    let error = try #require(failure(remote))
    #expect(error.key == "snapshot.s3.proxy" && error.message.contains("unencrypted"), "\(error)")
  }

  @Test func loopbackHTTPIsAllowed() throws {
    for endpoint in ["http://127.0.0.1:9000", "http://localhost:9000", "http://[::1]:9000"] {
      let s3 = try #require(try parse(replacing("endpoint", with: "endpoint = \"\(endpoint)\"") + "\npath_style = true"))
      #expect(s3.endpoint.address.scheme == .http)
    }
    #expect(try parse(replacing("endpoint", with: "endpoint = \"http://localhost\"") + "\npath_style = true")?.endpoint.address.port == 80)
  }
}
