// SPDX-License-Identifier: Apache-2.0
import FuzzSupport
@testable import VaultKeeper

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// S3's XML answers, from the bucket's endpoint (or a proxy in front of it): the selector
/// picks what `S3Client` reads from a body: a ListObjectsV2 page (`S3Responses.listPage`, then
/// `RemoteSnapshots.ours`, which parses each key's snapshot name for retention), an
/// `<Error>` (`S3Responses.error`) or a multipart `<UploadId>` (`S3Responses.uploadID`).
/// All three go through `S3XML`.
///
/// Properties: a listing never yields an object without a key or with a negative size, and a
/// key counted as ours lies directly under the prefix with a name we write.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzS3XML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let input = FuzzInput(data, size)
  switch input.selector % 3 {
  case 0:
    guard let page = try? S3Responses.listPage(input.payload) else { return 0 }
    for object in page.objects where object.key.isEmpty || object.size < 0 { violated("a listed object without key or size") }
    if let token = page.nextToken, token.isEmpty { violated("an empty continuation token") }
    let prefix = "vaultkeeper/"
    for snapshot in RemoteSnapshots.ours(page.objects, prefix: prefix) {
      let rest = snapshot.key.dropFirst(prefix.count)
      guard snapshot.key.hasPrefix(prefix), !rest.contains("/"), SnapshotName(fileName: String(rest)) == snapshot.name else {
        violated("\(snapshot.key) was counted as one of our snapshots")
      }
      if snapshot.name.fileName != String(rest) { violated("\(snapshot.key) does not print back as the same name") }
    }
    _ = RemoteSnapshots.deletions(
      RemoteSnapshots.ours(page.objects, prefix: prefix), policy: RetentionPolicy(keepLast: 2), now: Date(timeIntervalSince1970: 1_780_272_000))
  case 1:
    if let failure = S3Responses.error(input.payload), failure.code.isEmpty { violated("an S3 error without a code") }
  default:
    if let id = try? S3Responses.uploadID(input.payload), id.isEmpty { violated("an empty upload ID") }
  }
  return 0
}
