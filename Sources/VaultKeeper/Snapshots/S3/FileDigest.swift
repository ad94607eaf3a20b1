// SPDX-License-Identifier: Apache-2.0
import Crypto

#if canImport(Glibc)
import Glibc
#endif

/// One pass over a file before it is uploaded, in 1 MiB pieces (constant memory): its size,
/// MD5 (Content-MD5 for a single PUT, and the ETag S3 reports for it), the MD5 of every part
/// (their Content-MD5s, and the multipart ETag `md5(part md5s)-N`), and SHA-256 (stored as
/// object metadata so a restore can check a downloaded copy with `sha256sum`).
struct FileDigest: Sendable, Equatable {
  var size: Int64
  var md5: [UInt8]
  var sha256: [UInt8]
  /// Empty unless computed for a multipart upload.
  var partMD5s: [[UInt8]]
  var partSize: Int64

  /// The ETag S3 (and MinIO, Ceph RGW, moto) reports for the object as uploaded: the hex MD5 for
  /// a single PUT, `hex(md5(concatenated part MD5s))-N` for a multipart upload.
  var expectedETag: String {
    guard !partMD5s.isEmpty else { return Self.hex(md5) }
    return Self.hex(Array(Insecure.MD5.hash(data: partMD5s.flatMap { $0 }))) + "-\(partMD5s.count)"
  }

  /// The ETags that prove the bucket holds the file's bytes: `expectedETag`, and for a multipart
  /// upload also the whole file's MD5, which some servers (`rclone serve s3`) report for every
  /// object however it was uploaded.
  var acceptedETags: [String] { partMD5s.isEmpty ? [expectedETag] : [expectedETag, Self.hex(md5)] }

  var sha256Hex: String { Self.hex(sha256) }

  static func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] }, as: UTF8.self)
  }

  struct Failure: Error, Sendable {
    var message: String
  }

  /// Reads `path` whole (blocking: call it off the cooperative pool). `partSize` nil: no parts.
  static func compute(path: String, partSize: Int64?) throws(Failure) -> FileDigest {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw Failure(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    return try compute(descriptor: fd, name: path, partSize: partSize)
  }

  /// Reads the file `fd` is open on whole, from offset 0 with `pread` (its file offset is left
  /// alone), blocking. `name` is for messages.
  static func compute(descriptor fd: Int32, name path: String, partSize: Int64?) throws(Failure) -> FileDigest {
    var md5 = Insecure.MD5()
    var sha = SHA256()
    var part = Insecure.MD5()
    var partFilled: Int64 = 0
    var parts: [[UInt8]] = []
    var size: Int64 = 0
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(size)) }
      if n < 0 {
        if errno == EINTR { continue }
        throw Failure(message: "cannot read \(path): \(String(cString: strerror(errno)))")
      }
      if n == 0 { break }
      size += Int64(n)
      buffer.withUnsafeBytes { raw in
        let piece = UnsafeRawBufferPointer(rebasing: raw[0..<n])
        md5.update(bufferPointer: piece)
        sha.update(bufferPointer: piece)
        guard let partSize else { return }
        // Parts can end inside a read: split the piece at part boundaries.
        var offset = 0
        while offset < n {
          let take = Int(min(Int64(n - offset), partSize - partFilled))
          part.update(bufferPointer: UnsafeRawBufferPointer(rebasing: piece[offset..<(offset + take)]))
          partFilled += Int64(take)
          offset += take
          if partFilled == partSize {
            parts.append(Array(part.finalize()))
            part = Insecure.MD5()
            partFilled = 0
          }
        }
      }
    }
    if partSize != nil && (partFilled > 0 || parts.isEmpty) { parts.append(Array(part.finalize())) }
    return FileDigest(size: size, md5: Array(md5.finalize()), sha256: Array(sha.finalize()), partMD5s: parts, partSize: partSize ?? size)
  }
}
