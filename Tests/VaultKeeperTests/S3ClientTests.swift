// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
@testable import VaultKeeper

/// Replays canned answers and records what was sent.
final class ScriptedObjectTransport: ObjectTransport, @unchecked Sendable {
  private let state: Mutex<(answers: [Result<HTTPResponse, TransportError>], sent: [ObjectRequest])>

  init(_ answers: [Result<HTTPResponse, TransportError>]) {
    state = Mutex((answers, []))
  }

  var sent: [ObjectRequest] { state.withLock { $0.sent } }

  func send(_ request: ObjectRequest) async throws(TransportError) -> HTTPResponse {
    let next = state.withLock { s -> Result<HTTPResponse, TransportError> in
      s.sent.append(request)
      return s.answers.isEmpty ? .failure(TransportError(.local, "no more answers")) : s.answers.removeFirst()
    }
    return try next.get()
  }

  func shutdown() {}

}

extension Result where Success == HTTPResponse, Failure == TransportError {
  static func ok(_ body: String = "", status: Int = 200, headers: [(name: String, value: String)] = []) -> Self {
    .success(HTTPResponse(status: status, headers: headers, body: Array(body.utf8), newConnection: false, duration: .zero))
  }
}

@Suite struct S3EncodingTests {
  @Test func pathKeepsSlashesAndEncodesTheRest() {
    #expect(S3Encoding.path("vaultkeeper/prod/vaultkeeper-a-20260101T000000Z-1.snap") == "/vaultkeeper/prod/vaultkeeper-a-20260101T000000Z-1.snap")
    #expect(S3Encoding.path("a b+c~d") == "/a%20b%2Bc~d")
    #expect(S3Encoding.path("ü") == "/%C3%BC")
  }

  /// libcurl 7.88 signs the query exactly as written, so it must already be SigV4's canonical form.
  @Test func queryIsCanonical() {
    #expect(S3Encoding.query([("prefix", "vaultkeeper/"), ("list-type", "2"), ("continuation-token", "1/a+b=")])
      == "?continuation-token=1%2Fa%2Bb%3D&list-type=2&prefix=vaultkeeper%2F")
    #expect(S3Encoding.query([("uploads", "")]) == "?uploads=")
    #expect(S3Encoding.query([("uploadId", "x"), ("partNumber", "2")]) == "?partNumber=2&uploadId=x")
    #expect(S3Encoding.query([]) == "")
  }
}

@Suite struct S3ClientTests {
  func page(_ keys: [String], token: String?) -> String {
    var xml = "<ListBucketResult>"
    for key in keys { xml += "<Contents><Key>\(key)</Key><Size>\(key.count)</Size></Contents>" }
    xml += "<IsTruncated>\(token != nil)</IsTruncated>"
    if let token { xml += "<NextContinuationToken>\(token)</NextContinuationToken>" }
    return xml + "</ListBucketResult>"
  }

  @Test func listingFollowsContinuationTokens() async throws {
    let transport = ScriptedObjectTransport([
      .ok(page(["p/a", "p/b"], token: "t/1")), .ok(page(["p/c"], token: "t+2")), .ok(page(["p/d"], token: nil)),
    ])
    let objects = try await S3Client(transport: transport).list(prefix: "p/")
    #expect(objects.map(\.key) == ["p/a", "p/b", "p/c", "p/d"])
    #expect(transport.sent.map(\.target) == [
      "/?list-type=2&prefix=p%2F", "/?continuation-token=t%2F1&list-type=2&prefix=p%2F", "/?continuation-token=t%2B2&list-type=2&prefix=p%2F",
    ])
    #expect(transport.sent.allSatisfy { $0.method == .get && !$0.isTransfer })
  }

  @Test func aRepeatedTokenStopsTheListing() async {
    let transport = ScriptedObjectTransport([.ok(page(["p/a"], token: "same")), .ok(page(["p/b"], token: "same"))])
    await #expect(throws: ObjectStoreError.self) { _ = try await S3Client(transport: transport).list(prefix: "p/") }
  }

  @Test func aKeyOutsideThePrefixMakesTheListingUnusable() async {
    let transport = ScriptedObjectTransport([.ok(page(["p/a", "q/b"], token: nil))])
    do throws(ObjectStoreError) {
      _ = try await S3Client(transport: transport).list(prefix: "p/")
      Issue.record("accepted a listing that ignored the prefix")
    } catch {
      #expect(error.kind == .invalidResponse && error.message.contains("outside the prefix"))
    }
  }

  @Test func httpErrorsNameTheCodeAndAHint() async {
    let body = "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>"
    let transport = ScriptedObjectTransport([.ok(body, status: 403)])
    do throws(ObjectStoreError) {
      try await S3Client(transport: transport).delete(key: "p/a")
      Issue.record("403 accepted")
    } catch {
      #expect(error.kind == .http(status: 403, code: "SignatureDoesNotMatch"))
      #expect(error.message == "DELETE p/a: HTTP 403 SignatureDoesNotMatch: The request signature we calculated does not match (check the secret access key and the region)")
    }
  }

  @Test func transportErrorsKeepTheirKind() async {
    let transport = ScriptedObjectTransport([.failure(TransportError(.connect, "Couldn't connect to server"))])
    do throws(ObjectStoreError) {
      _ = try await S3Client(transport: transport).head(key: "p/a")
      Issue.record("no error")
    } catch {
      #expect(error.kind == .transport(.connect))
      #expect(error.message.contains("Couldn't connect"))
    }
  }

  @Test func headReadsSizeETagAndMetadata() async throws {
    let transport = ScriptedObjectTransport([
      .ok(headers: [("Content-Length", "42"), ("ETag", "\"ABC\""), ("x-amz-meta-vaultkeeper-sha256", "ff")]), .ok(status: 404),
    ])
    let client = S3Client(transport: transport)
    let info = try #require(try await client.head(key: "p/a"))
    #expect(info.size == 42 && info.etag == "abc" && info.metadata == ["vaultkeeper-sha256": "ff"])
    #expect(try await client.head(key: "p/missing") == nil)
  }

  @Test func putSendsContentMD5AndStreamsTheFile() async throws {
    let transport = ScriptedObjectTransport([.ok()])
    let slice = FileSlice(path: "/x", offset: 0, length: 6)
    try await S3Client(transport: transport).put(key: "p/a", file: slice, contentMD5: Array(Data(base64Encoded: "6AtQFwmJUPxYqtg8jBSXjg==")!), metadata: ["vaultkeeper-sha256": "ab"])
    let sent = try #require(transport.sent.first)
    #expect(sent.method == .put && sent.target == "/p/a" && sent.body == .file(slice) && sent.isTransfer)
    #expect(sent.headers.contains { $0.name == "Content-MD5" && $0.value == "6AtQFwmJUPxYqtg8jBSXjg==" })
    #expect(sent.headers.contains { $0.name == "x-amz-meta-vaultkeeper-sha256" && $0.value == "ab" })
  }

  @Test func completionFailingInsideA200IsAnError() async {
    let transport = ScriptedObjectTransport([.ok("<Error><Code>InternalError</Code><Message>try again</Message></Error>")])
    do throws(ObjectStoreError) {
      try await S3Client(transport: transport).completeMultipartUpload(key: "p/a", uploadID: "u", parts: [(1, "e")])
      Issue.record("accepted a failed completion")
    } catch {
      #expect(error.kind == .http(status: 200, code: "InternalError"))
    }
    #expect(transport.sent.first?.target == "/p/a?uploadId=u")
  }
}
