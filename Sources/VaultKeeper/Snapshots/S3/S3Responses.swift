// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The S3 answers we read, from their XML (`S3XML`). Each parser checks the root element and
/// the fields it relies on, so a proxy's HTML error page is never mistaken for an empty listing.
enum S3Responses {
  struct ListPage: Sendable, Equatable {
    var objects: [ObjectInfo]
    /// The token for the next page; nil on the last one.
    var nextToken: String?
  }

  /// `ListBucketResult` of ListObjectsV2.
  static func listPage(_ body: [UInt8]) throws(S3XML.Failure) -> ListPage {
    let root = try S3XML.parse(body)
    guard root.name == "ListBucketResult" else { throw S3XML.Failure(reason: "expected <ListBucketResult>, got <\(root.name)>") }
    var objects: [ObjectInfo] = []
    for entry in root.children("Contents") {
      guard let key = entry.child("Key")?.text, !key.isEmpty else { throw S3XML.Failure(reason: "<Contents> without <Key>") }
      guard let sizeText = entry.child("Size")?.text, let size = Int64(sizeText), size >= 0 else {
        throw S3XML.Failure(reason: "<Contents> for \(key) without a valid <Size>")
      }
      var lastModified: Date?
      if let text = entry.child("LastModified")?.text {
        guard let date = timestamp(text) else { throw S3XML.Failure(reason: "invalid <LastModified> \(text) for \(key)") }
        lastModified = date
      }
      objects.append(ObjectInfo(key: key, size: size, etag: entry.child("ETag").map { normalizeETag($0.text) }, lastModified: lastModified))
    }
    let truncated: Bool
    switch root.child("IsTruncated")?.text {
    case "true": truncated = true
    case "false": truncated = false
    default: throw S3XML.Failure(reason: "<ListBucketResult> without a valid <IsTruncated>")
    }
    guard truncated else { return ListPage(objects: objects, nextToken: nil) }
    guard let token = root.child("NextContinuationToken")?.text, !token.isEmpty else {
      throw S3XML.Failure(reason: "a truncated listing without <NextContinuationToken>")
    }
    return ListPage(objects: objects, nextToken: token)
  }

  /// `<Error><Code>…</Code><Message>…</Message></Error>`, or nil when the body is not one.
  static func error(_ body: [UInt8]) -> (code: String, message: String)? {
    guard let root = try? S3XML.parse(body), root.name == "Error", let code = root.child("Code")?.text, !code.isEmpty else { return nil }
    return (code, root.child("Message")?.text ?? "")
  }

  /// `InitiateMultipartUploadResult`'s `<UploadId>`. gofakes3 (the S3 layer of `rclone serve s3`)
  /// names the root `InitiateMultipartUpload`.
  static func uploadID(_ body: [UInt8]) throws(S3XML.Failure) -> String {
    let root = try S3XML.parse(body)
    guard root.name == "InitiateMultipartUploadResult" || root.name == "InitiateMultipartUpload", let id = root.child("UploadId")?.text,
      !id.isEmpty
    else {
      throw S3XML.Failure(reason: "expected <InitiateMultipartUploadResult> with an <UploadId>")
    }
    return id
  }

  /// The body of CompleteMultipartUpload. Part ETags are sent as S3 returned them, quoted.
  static func completeBody(_ parts: [(number: Int, etag: String)]) -> [UInt8] {
    var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    for part in parts {
      xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>&quot;\(escape(part.etag))&quot;</ETag></Part>"
    }
    return Array((xml + "</CompleteMultipartUpload>").utf8)
  }

  static func escape(_ text: String) -> String {
    var out = ""
    for c in text {
      switch c {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      default: out.append(c)
      }
    }
    return out
  }

  /// ETags arrive quoted (`"abc…"`, sometimes `W/"…"`); compared without quotes, lower case.
  static func normalizeETag(_ raw: String) -> String {
    var text = Substring(raw.trimmingWhitespace())
    if text.hasPrefix("W/") { text = text.dropFirst(2) }
    if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 { text = text.dropFirst().dropLast() }
    return text.lowercased()
  }

  /// `2026-11-22T14:23:51.000Z` (ISO 8601 in UTC, fraction optional), without locale or calendar.
  static func timestamp(_ text: String) -> Date? {
    let chars = Array(text.utf8)
    guard chars.count >= 20, chars.last == UInt8(ascii: "Z"), chars[4] == UInt8(ascii: "-"), chars[7] == UInt8(ascii: "-"),
      chars[10] == UInt8(ascii: "T"), chars[13] == UInt8(ascii: ":"), chars[16] == UInt8(ascii: ":")
    else { return nil }
    func number(_ range: Range<Int>) -> Int64? {
      guard chars[range].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
      return Int64(String(decoding: chars[range], as: UTF8.self))
    }
    guard let y = number(0..<4), let mo = number(5..<7), let d = number(8..<10), let h = number(11..<13), let mi = number(14..<16),
      let s = number(17..<19), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61
    else { return nil }
    if chars.count > 20 {
      guard chars[19] == UInt8(ascii: "."), chars.count > 21, number(20..<(chars.count - 1)) != nil else { return nil }
    }
    return Date(timeIntervalSince1970: Double(SnapshotName.daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s))
  }
}
