// SPDX-License-Identifier: Apache-2.0
import CZlib
import VaultKeeper

/// Undoes gzip as bytes stream in, in constant memory, with zlib. zlib checks the gzip trailer
/// (CRC-32 and length), so a corrupted byte or a cut-off stream is an error here, before the tar
/// layer even looks.
public final class GzipInflater: StreamDecompressor {
  private var stream = z_stream()
  private var finished = false
  private var output = [UInt8](repeating: 0, count: 64 * 1024)

  public init() throws(SnapshotVerificationError) {
    guard czlib_inflate_init_gzip(&stream) == Z_OK else { throw SnapshotVerificationError("cannot initialise zlib") }
  }

  deinit { inflateEnd(&stream) }

  public func decompress(_ input: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)
    throws(SnapshotVerificationError)
  {
    guard input.count > 0 else { return }
    guard !finished else {
      throw SnapshotVerificationError("data after the end of the gzip stream")
    }
    guard let base = input.baseAddress else { return }
    stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
    stream.avail_in = uInt(input.count)
    while stream.avail_in > 0 && !finished {
      let result: Int32 = output.withUnsafeMutableBytes { out in
        stream.next_out = out.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(out.count)
        return inflate(&stream, Z_NO_FLUSH)
      }
      let produced = output.count - Int(stream.avail_out)
      if produced > 0 {
        // withUnsafeBytes only rethrows untyped errors: carry the typed one out by hand.
        let outcome: Result<Void, SnapshotVerificationError> = output.withUnsafeBytes { raw in
          do throws(SnapshotVerificationError) {
            try sink(UnsafeRawBufferPointer(rebasing: raw[0..<produced]))
            return .success(())
          } catch {
            return .failure(error)
          }
        }
        try outcome.get()
      }
      switch result {
      case Z_OK: continue
      case Z_STREAM_END:
        finished = true
        if stream.avail_in > 0 { throw SnapshotVerificationError("data after the end of the gzip stream") }
      case Z_BUF_ERROR where produced > 0: continue
      default:
        let message = stream.msg.map { String(cString: $0) } ?? "error \(result)"
        throw SnapshotVerificationError("not a valid gzip stream: \(message)")
      }
    }
  }

  public func finish() throws(SnapshotVerificationError) {
    guard finished else { throw SnapshotVerificationError("truncated gzip stream (no end of stream)") }
  }
}
