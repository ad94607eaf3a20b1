// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The object-storage edges, in the style of Ports.swift: `ObjectStore` is what the uploader and
// remote retention need (faked in unit tests); `S3Client` implements it over `ObjectTransport`,
// the signed-HTTP port the libcurl adapter (`Curl.CurlObjectTransport`) provides.

/// A byte range of a local file, read by the transport while it sends (never held in memory).
public struct FileSlice: Sendable, Equatable {
  /// The file's path; with `descriptor` set only a name for messages, never opened.
  public var path: String
  /// An open descriptor to read from instead of opening `path` (the transport reads a
  /// duplicate of it with `pread` and never closes the caller's). A restore sends exactly the
  /// file it verified this way: a path may name another file by the time it is opened again.
  /// The caller keeps it open until the transfer has returned.
  public var descriptor: Int32?
  public var offset: Int64
  public var length: Int64

  public init(path: String, offset: Int64, length: Int64) {
    self.path = path
    self.descriptor = nil
    self.offset = offset
    self.length = length
  }

  public init(descriptor: Int32, name: String, offset: Int64, length: Int64) {
    self.path = name
    self.descriptor = descriptor
    self.offset = offset
    self.length = length
  }
}

/// What a listing or HEAD reports about one object.
public struct ObjectInfo: Sendable, Equatable {
  public var key: String
  public var size: Int64
  /// Without quotes, lower case.
  public var etag: String?
  public var lastModified: Date?
  /// `x-amz-meta-*` headers (HEAD only), names lower case without the prefix.
  public var metadata: [String: String]

  public init(key: String, size: Int64, etag: String? = nil, lastModified: Date? = nil, metadata: [String: String] = [:]) {
    self.key = key
    self.size = size
    self.etag = etag
    self.lastModified = lastModified
    self.metadata = metadata
  }
}

/// Why an object-storage request failed. Never carries credentials or signatures: only the
/// status, S3's error code and message, or the transport's reason.
public struct ObjectStoreError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Kind: Sendable, Equatable {
    case transport(TransportError.Kind)
    /// A non-2xx answer (or a 200 carrying an `<Error>`, as CompleteMultipartUpload may send).
    case http(status: Int, code: String?)
    /// An answer we could not understand.
    case invalidResponse
  }
  public var kind: Kind
  public var message: String

  public init(_ kind: Kind, _ message: String) {
    self.kind = kind
    self.message = message
  }

  public var description: String { message }
}

/// Object operations on one bucket. Keys are full keys (prefix included).
public protocol ObjectStore: Sendable {
  /// Single PUT, streamed from the file. `contentMD5` lets the server reject corrupted bytes.
  func put(key: String, file: FileSlice, contentMD5: [UInt8], metadata: [String: String]) async throws(ObjectStoreError)
  /// nil when there is no such object.
  func head(key: String) async throws(ObjectStoreError) -> ObjectInfo?
  /// Every object under `prefix`, following continuation tokens.
  func list(prefix: String) async throws(ObjectStoreError) -> [ObjectInfo]
  /// The same, calling `beforePage` before each page's request: a listing of many pages is
  /// many requests, each bounded by the small-request timeout, and a heartbeat promised per
  /// request must be renewed per page.
  func list(prefix: String, beforePage: @Sendable () -> Void) async throws(ObjectStoreError) -> [ObjectInfo]
  /// Deleting a missing key succeeds (S3 semantics).
  func delete(key: String) async throws(ObjectStoreError)

  func createMultipartUpload(key: String, metadata: [String: String]) async throws(ObjectStoreError) -> String
  /// Returns the part's ETag.
  func uploadPart(key: String, uploadID: String, number: Int, file: FileSlice, contentMD5: [UInt8]) async throws(ObjectStoreError) -> String
  func completeMultipartUpload(key: String, uploadID: String, parts: [(number: Int, etag: String)]) async throws(ObjectStoreError)
  func abortMultipartUpload(key: String, uploadID: String) async throws(ObjectStoreError)
}

extension ObjectStore {
  /// A store whose listing is one request (a test's, in memory): one call before it.
  public func list(prefix: String, beforePage: @Sendable () -> Void) async throws(ObjectStoreError) -> [ObjectInfo] {
    beforePage()
    return try await list(prefix: prefix)
  }
}

/// One signed request to the bucket. The transport adds the endpoint, the signature
/// (SigV4 with the credentials it holds) and `x-amz-content-sha256`.
public struct ObjectRequest: Sendable {
  public enum Body: Sendable, Equatable {
    case none
    case bytes([UInt8])
    case file(FileSlice)
  }
  public var method: HTTPRequest.Method
  /// Path and query below the bucket URL, already encoded (`S3Encoding`): `/KEY?partNumber=1&uploadId=…`.
  public var target: String
  public var headers: [(name: String, value: String)]
  public var body: Body
  /// Uploads and multipart completion: bounded by a transfer deadline (`totalTimeout`), not by
  /// the small-request timeout, and cut earlier by the low-speed limit when they stall.
  public var isTransfer: Bool

  public init(method: HTTPRequest.Method, target: String, headers: [(name: String, value: String)] = [], body: Body = .none, isTransfer: Bool = false) {
    self.method = method
    self.target = target
    self.headers = headers
    self.body = body
    self.isTransfer = isTransfer
  }
}

extension ObjectRequest {
  /// The total time this request may take: a transfer with a body of N bytes gets
  /// `transfers.deadline(bytes: N)` (multipart completion, whose small body S3 may answer
  /// slowly, thereby `transfers.minimum`); anything else `smallRequest` (`[snapshot.s3] timeout`).
  public func totalTimeout(transfers: TransferDeadline, smallRequest: Duration) -> Duration {
    guard isTransfer else { return smallRequest }
    switch body {
    case .file(let slice): return transfers.deadline(bytes: slice.length)
    case .bytes(let bytes): return transfers.deadline(bytes: Int64(bytes.count))
    case .none: return transfers.minimum
    }
  }
}

/// Sends signed requests to one bucket, on its own thread (never the cooperative pool).
public protocol ObjectTransport: Sendable {
  func send(_ request: ObjectRequest) async throws(TransportError) -> HTTPResponse
  func shutdown()
}
