// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `ObjectStore` over signed HTTP: builds S3 REST requests (path and canonical query), reads the
/// answers (`S3Responses`) and turns every failure into an `ObjectStoreError` that names the
/// operation, the status and S3's error code, never a credential.
public struct S3Client: ObjectStore {
  let transport: any ObjectTransport
  /// Most listing pages we follow (1000 keys each): a server that keeps answering "truncated"
  /// must not keep us busy forever.
  static let maxPages = 1000
  /// `max-keys` of each listing request; nil leaves S3's (and every compatible server's) 1000.
  let pageSize: Int?

  /// - Parameter pageSize: keys per listing page; nil for the server's default (1000).
  public init(transport: any ObjectTransport, pageSize: Int? = nil) {
    self.transport = transport
    self.pageSize = pageSize
  }

  public func put(key: String, file: FileSlice, contentMD5: [UInt8], metadata: [String: String]) async throws(ObjectStoreError) {
    var headers = [("Content-Type", "application/octet-stream"), ("Content-MD5", Data(contentMD5).base64EncodedString())]
    headers += Self.metadataHeaders(metadata)
    _ = try await send("PUT \(key)", ObjectRequest(method: .put, target: S3Encoding.path(key), headers: headers, body: .file(file), isTransfer: true))
  }

  public func head(key: String) async throws(ObjectStoreError) -> ObjectInfo? {
    let response = try await send("HEAD \(key)", ObjectRequest(method: .head, target: S3Encoding.path(key)), accept: [404])
    if response.status == 404 { return nil }
    guard let lengthText = response.header("Content-Length"), let size = Int64(lengthText), size >= 0 else {
      throw ObjectStoreError(.invalidResponse, "HEAD \(key): the answer has no Content-Length")
    }
    var metadata: [String: String] = [:]
    for header in response.headers where header.name.lowercased().hasPrefix("x-amz-meta-") {
      metadata[String(header.name.lowercased().dropFirst("x-amz-meta-".count))] = header.value
    }
    return ObjectInfo(key: key, size: size, etag: response.header("ETag").map(S3Responses.normalizeETag), metadata: metadata)
  }

  public func list(prefix: String) async throws(ObjectStoreError) -> [ObjectInfo] {
    try await list(prefix: prefix, beforePage: {})
  }

  public func list(prefix: String, beforePage: @Sendable () -> Void) async throws(ObjectStoreError) -> [ObjectInfo] {
    var objects: [ObjectInfo] = []
    var token: String?
    var seenTokens: Set<String> = []
    for _ in 0..<Self.maxPages {
      var parameters = [("list-type", "2"), ("prefix", prefix)]
      if let pageSize { parameters.append(("max-keys", "\(pageSize)")) }
      if let token { parameters.append(("continuation-token", token)) }
      beforePage()
      let response = try await send("listing \(prefix)", ObjectRequest(method: .get, target: "/" + S3Encoding.query(parameters)))
      let page: S3Responses.ListPage
      do {
        page = try S3Responses.listPage(response.body)
      } catch {
        throw ObjectStoreError(.invalidResponse, "listing \(prefix): unreadable answer: \(error.reason)")
      }
      // A key outside the prefix means the server ignored it: never act on such a listing.
      if let stray = page.objects.first(where: { !$0.key.hasPrefix(prefix) }) {
        throw ObjectStoreError(.invalidResponse, "listing \(prefix) returned \(stray.key), which is outside the prefix")
      }
      objects += page.objects
      guard let next = page.nextToken else { return objects }
      guard seenTokens.insert(next).inserted else { throw ObjectStoreError(.invalidResponse, "listing \(prefix): the server repeated a continuation token") }
      token = next
    }
    throw ObjectStoreError(.invalidResponse, "listing \(prefix): more than \(Self.maxPages) pages")
  }

  public func delete(key: String) async throws(ObjectStoreError) {
    _ = try await send("DELETE \(key)", ObjectRequest(method: .delete, target: S3Encoding.path(key)), accept: [404])
  }

  public func createMultipartUpload(key: String, metadata: [String: String]) async throws(ObjectStoreError) -> String {
    let headers = [("Content-Type", "application/octet-stream")] + Self.metadataHeaders(metadata)
    let response = try await send(
      "starting the multipart upload of \(key)",
      ObjectRequest(method: .post, target: S3Encoding.path(key) + S3Encoding.query([("uploads", "")]), headers: headers))
    do {
      return try S3Responses.uploadID(response.body)
    } catch {
      throw ObjectStoreError(.invalidResponse, "starting the multipart upload of \(key): \(error.reason)")
    }
  }

  public func uploadPart(key: String, uploadID: String, number: Int, file: FileSlice, contentMD5: [UInt8]) async throws(ObjectStoreError) -> String {
    let what = "part \(number) of \(key)"
    let response = try await send(
      what,
      ObjectRequest(
        method: .put, target: S3Encoding.path(key) + S3Encoding.query([("partNumber", "\(number)"), ("uploadId", uploadID)]),
        headers: [("Content-MD5", Data(contentMD5).base64EncodedString())], body: .file(file), isTransfer: true))
    guard let etag = response.header("ETag"), !etag.isEmpty else { throw ObjectStoreError(.invalidResponse, "\(what): the answer has no ETag") }
    return S3Responses.normalizeETag(etag)
  }

  public func completeMultipartUpload(key: String, uploadID: String, parts: [(number: Int, etag: String)]) async throws(ObjectStoreError) {
    let what = "completing the multipart upload of \(key)"
    let response = try await send(
      what,
      ObjectRequest(
        method: .post, target: S3Encoding.path(key) + S3Encoding.query([("uploadId", uploadID)]), headers: [("Content-Type", "application/xml")],
        body: .bytes(S3Responses.completeBody(parts)), isTransfer: true))
    // S3 answers 200 at once and may report a failure in the body later (it keeps the
    // connection alive with whitespace while it assembles the parts).
    if let failure = S3Responses.error(response.body) {
      throw ObjectStoreError(.http(status: response.status, code: failure.code), "\(what): \(failure.code): \(failure.message)")
    }
  }

  public func abortMultipartUpload(key: String, uploadID: String) async throws(ObjectStoreError) {
    _ = try await send(
      "aborting the multipart upload of \(key)", ObjectRequest(method: .delete, target: S3Encoding.path(key) + S3Encoding.query([("uploadId", uploadID)])),
      accept: [404])
  }

  static func metadataHeaders(_ metadata: [String: String]) -> [(String, String)] {
    metadata.sorted { $0.key < $1.key }.map { ("x-amz-meta-\($0.key)", $0.value) }
  }

  /// Sends, and accepts 2xx plus the statuses in `accept`; everything else becomes an error.
  private func send(_ what: String, _ request: ObjectRequest, accept: Set<Int> = []) async throws(ObjectStoreError) -> HTTPResponse {
    let response: HTTPResponse
    do {
      response = try await transport.send(request)
    } catch {
      throw ObjectStoreError(.transport(error.kind), "\(what): \(error)")
    }
    if (200..<300).contains(response.status) || accept.contains(response.status) { return response }
    let failure = S3Responses.error(response.body)
    var message = "\(what): HTTP \(response.status)"
    if let failure { message += " \(failure.code)" + (failure.message.isEmpty ? "" : ": \(failure.message)") }
    throw ObjectStoreError(.http(status: response.status, code: failure?.code), message + Self.hint(status: response.status, code: failure?.code))
  }

  /// What an operator should check, for the failures that have one obvious cause.
  static func hint(status: Int, code: String?) -> String {
    switch code {
    case "SignatureDoesNotMatch": return " (check the secret access key and the region)"
    case "InvalidAccessKeyId": return " (check the access key ID)"
    case "NoSuchBucket": return " (create the bucket first; vaultkeeper never creates buckets)"
    case "AccessDenied": return " (the key needs s3:PutObject, s3:GetObject, s3:ListBucket, s3:DeleteObject and s3:AbortMultipartUpload on the bucket/prefix)"
    case "AuthorizationHeaderMalformed": return " (check the region)"
    default: return status == 301 || status == 307 ? " (the bucket is in another region or needs path_style)" : ""
    }
  }
}
