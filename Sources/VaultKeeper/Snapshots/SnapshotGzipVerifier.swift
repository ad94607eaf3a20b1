// SPDX-License-Identifier: Apache-2.0
/// Undoes a compression layer as bytes stream in (gzip over zlib in the `Compression` target).
public protocol StreamDecompressor: AnyObject {
  /// Feeds compressed bytes; decompressed output goes to `sink` in pieces.
  func decompress(_ input: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)
    throws(SnapshotVerificationError)
  /// The input is over: the compressed stream must have ended properly.
  func finish() throws(SnapshotVerificationError)
}

/// A snapshot as it arrives (gzip of a tar): undoes the gzip layer with a `StreamDecompressor`
/// and hands the tar stream to a `SnapshotTarVerifier`. The layers above it:
/// `SnapshotVerifierThread` runs one on a thread of its own while a download streams in, and
/// `SnapshotDecryptingVerifier` undoes age encryption in front of one for a file on disk.
public final class SnapshotGzipVerifier {
  private let decompressor: any StreamDecompressor
  private var archive = SnapshotTarVerifier()
  public private(set) var compressedBytes: Int64 = 0

  public init(decompressor: any StreamDecompressor) {
    self.decompressor = decompressor
  }

  public func feed(_ bytes: UnsafeRawBufferPointer) throws(SnapshotVerificationError) {
    compressedBytes += Int64(bytes.count)
    try decompressor.decompress(bytes) { (chunk) throws(SnapshotVerificationError) in try archive.consume(chunk) }
  }

  public func finish() throws(SnapshotVerificationError) -> SnapshotFacts {
    guard compressedBytes > 0 else { throw SnapshotVerificationError("empty snapshot") }
    try decompressor.finish()
    return try archive.finish()
  }
}
