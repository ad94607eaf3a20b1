// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A buffer for key material: page-aligned, locked in RAM (`mlock`, so it is never swapped out),
/// excluded from core dumps (`MADV_DONTDUMP`) and wiped when released.
///
/// The bytes are written once at creation and never change, which is what makes the class
/// safe to share between tasks. Its `description` never shows the content, so a stray
/// interpolation into a log line prints `<redacted N bytes>` instead of a key.
public final class SecretBytes: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
  private let base: UnsafeMutableRawPointer
  private let capacity: Int
  public let count: Int
  /// Whether `mlock` succeeded. It can fail under a low `RLIMIT_MEMLOCK`; the buffer is still
  /// excluded from core dumps and wiped, and the daemon reports the condition once.
  public let isLocked: Bool

  /// Copies `bytes` into locked memory. The caller should wipe its own copy (see `wipe(_:)`).
  public init<C: Collection>(_ bytes: C) where C.Element == UInt8 {
    let pageSize = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)
    let wanted = max(bytes.count, 1)
    let capacity = (wanted + pageSize - 1) / pageSize * pageSize
    var raw: UnsafeMutableRawPointer?
    if posix_memalign(&raw, pageSize, capacity) != 0 || raw == nil {
      // Allocation of a few pages failing means the process is out of memory; there is no
      // meaningful recovery, and continuing without the buffer would be worse.
      preconditionFailure("out of memory allocating \(capacity) bytes for key material")
    }
    let base = raw.unsafelyUnwrapped
    #if os(Linux)
    _ = madvise(base, capacity, MADV_DONTDUMP)
    #endif
    self.isLocked = mlock(base, capacity) == 0
    memset(base, 0, capacity)
    var offset = 0
    for byte in bytes {
      base.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
      offset += 1
    }
    self.base = base
    self.capacity = capacity
    self.count = bytes.count
  }

  /// Convenience for building a secret from UTF-8 text (e.g. a JSON body holding a share).
  public convenience init(utf8 string: String) {
    var bytes = Array(string.utf8)
    self.init(bytes)
    SecretBytes.wipe(&bytes)
  }

  deinit {
    SecretBytes.zero(base, count: capacity)
    munlock(base, capacity)
    #if os(Linux)
    // Give the pages back as they were taken: `mlock` and `MADV_DONTDUMP` each split the heap
    // mapping around them, and only undoing both lets the kernel merge it again. Otherwise every
    // buffer at a new address leaves a mapping behind; under ASan (which rarely reuses an
    // address) a few hundred thousand of them reach vm.max_map_count (found by fuzzing).
    _ = madvise(base, capacity, MADV_DODUMP)
    #endif
    free(base)
  }

  /// Lends the bytes for the duration of `body`. Do not let the pointer escape.
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try body(UnsafeRawBufferPointer(start: base, count: count))
  }

  /// Whether two secrets hold the same bytes, compared in constant time.
  public func constantTimeEquals(_ other: SecretBytes) -> Bool {
    guard count == other.count else { return false }
    var diff: UInt8 = 0
    withUnsafeBytes { a in
      other.withUnsafeBytes { b in
        for i in 0..<count { diff |= a[i] ^ b[i] }
      }
    }
    return diff == 0
  }

  public var description: String { "<redacted \(count) bytes>" }
  public var debugDescription: String { description }

  /// Overwrites an ordinary array that held key material before it is released.
  ///
  /// Copy-on-write: when another copy of the array shares its storage, this zeroes a fresh
  /// copy and the shared storage keeps the secret. Drop the other references first, or use
  /// `wipeStorage(of:)`.
  public static func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { buffer in
      if let base = buffer.baseAddress { zero(base, count: buffer.count) }
    }
    bytes.removeAll()
  }

  /// Zeroes the storage of `bytes` where it is, however many copies of the array share it:
  /// every copy reads zeros afterwards. For a buffer that several copies share and none can be
  /// made the only one, such as an HTTP response body holding a token (the transport's thread
  /// may still hold a copy when the caller wipes it).
  ///
  /// - Important: only for arrays filled at run time (a receive buffer). An array built from a
  ///   literal may share static storage with every other use of that literal.
  public static func wipeStorage(of bytes: [UInt8]) {
    bytes.withUnsafeBufferPointer { buffer in
      if let base = buffer.baseAddress { zero(UnsafeMutableRawPointer(mutating: base), count: buffer.count) }
    }
  }

  /// Zeroes memory in a way the optimiser cannot drop (the write is through a volatile-like
  /// opaque call: `explicit_bzero` from glibc).
  static func zero(_ pointer: UnsafeMutableRawPointer, count: Int) {
    #if os(Linux)
    explicit_bzero(pointer, count)
    #else
    memset_s(pointer, count, 0, count)
    #endif
  }
}
