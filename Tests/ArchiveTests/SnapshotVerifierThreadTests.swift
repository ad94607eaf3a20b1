// SPDX-License-Identifier: Apache-2.0
import Compression
import Foundation
import Synchronization
import Testing
import VaultKeeper

/// The verifier on its own thread (`SnapshotVerifierThread`) against the serial one
/// (`SnapshotGzipVerifier` fed directly): the same facts for intact archives whatever the
/// buffer layout, the same verdict for damaged ones, failures reported to the feeding side
/// while the stream is still coming, and a worker thread that always ends.
///
/// As in production the feeding side runs on a dedicated thread (it blocks when the queue is
/// full), never on the cooperative pool. Time limits here are liveness checks (a hang fails the
/// test instead of stalling the run), not performance assertions.
@Suite struct SnapshotVerifierThreadTests {
  struct Hang: Error, CustomStringConvertible {
    var description: String
  }

  /// What feeding an archive produced, carried back from the feeding thread with the verifier.
  /// @unchecked Sendable: made by the test task, moved to the feeding thread (which alone uses
  /// it), then moved back through a continuation: never in use by two threads at once, and each
  /// move is ordered (thread start, continuation resume).
  struct Fed: @unchecked Sendable {
    var verifier: SnapshotVerifierThread
    /// Bytes handed to `feed` before it threw, if it did.
    var bytesBeforeFailure: Int? = nil
    var failure: SnapshotVerificationError? = nil
  }

  func archive(_ fault: String = "none", stateBytes: Int) throws -> [UInt8] {
    try SnapshotVerifierTests().archive(fault, stateBytes: stateBytes)
  }

  /// Uneven pieces, like curl's (≤ 16 KiB, sometimes tiny), so pieces straddle buffer boundaries.
  static func pieces(_ count: Int) -> [Range<Int>] {
    var ranges: [Range<Int>] = []
    var offset = 0
    var size = 16384
    while offset < count {
      let end = min(offset + size, count)
      ranges.append(offset..<end)
      offset = end
      size = size == 16384 ? 7 : (size == 7 ? 5000 : 16384)
    }
    return ranges
  }

  /// `withUnsafeBytes` rethrows untyped errors: carries the typed one out by hand.
  static func withBytes(_ bytes: ArraySlice<UInt8>, _ body: (UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)
    throws(SnapshotVerificationError)
  {
    let outcome: Result<Void, SnapshotVerificationError> = bytes.withUnsafeBytes { raw in
      do throws(SnapshotVerificationError) {
        try body(raw)
        return .success(())
      } catch {
        return .failure(error)
      }
    }
    try outcome.get()
  }

  static func serial(_ bytes: [UInt8]) -> Result<SnapshotFacts, SnapshotVerificationError> {
    do throws(SnapshotVerificationError) {
      let verifier = SnapshotGzipVerifier(decompressor: try GzipInflater())
      for range in Self.pieces(bytes.count) {
        try withBytes(bytes[range]) { (raw) throws(SnapshotVerificationError) in try verifier.feed(raw) }
      }
      return .success(try verifier.finish())
    } catch {
      return .failure(error)
    }
  }

  /// Resumes a continuation once, whoever comes first.
  final class Once<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<Result<T, any Error>, Never>?>(nil)
    func resume(_ result: Result<T, any Error>) { continuation.withLock { $0.take() }?.resume(returning: result) }
  }

  /// What turns a deadlock into a failure: generous, since a full parallel run on two cores can
  /// hold a task back for seconds; nothing here asserts how fast anything is.
  static let hangCeiling = 120

  /// Runs `body` unless it takes longer than `seconds`, in which case the test fails at once,
  /// without waiting for `body` (a deadlocked thread would never let a task group end).
  static func within<T: Sendable>(_ seconds: Int, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = Once<T>()
    let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, any Error>, Never>) in
      once.continuation.withLock { $0 = continuation }
      Task {
        do { once.resume(.success(try await body())) } catch { once.resume(.failure(error)) }
      }
      Task {
        try? await Task.sleep(for: .seconds(seconds))
        once.resume(.failure(Hang(description: "\(what) took more than \(seconds) s")))
      }
    }
    return try result.get()
  }

  static func gzip() throws(SnapshotVerificationError) -> any StreamDecompressor { try GzipInflater() }

  /// Feeds `bytes` (up to `limit`) on a dedicated thread, as curl's transfer thread would; the
  /// verifier is made here, sent to that thread, and comes back with the result.
  static func feed(
    _ bytes: [UInt8], limit: Int? = nil, bufferSize: Int = SnapshotVerifierThread.defaultBufferSize, depth: Int = SnapshotVerifierThread.defaultDepth,
    decompressor: any StreamDecompressor, onWorkerExit: (@Sendable () -> Void)? = nil, onWorkerPark: (@Sendable (Int) -> Void)? = nil
  ) async -> Fed {
    let end = min(limit ?? bytes.count, bytes.count)
    let made = Fed(
      verifier: SnapshotVerifierThread(
        verifier: SnapshotGzipVerifier(decompressor: decompressor), bufferSize: bufferSize, depth: depth, onWorkerExit: onWorkerExit,
        onWorkerPark: onWorkerPark))
    return await withCheckedContinuation { (continuation: CheckedContinuation<Fed, Never>) in
      let started = DedicatedThread.start {
        let verifier = made.verifier
        var fed = 0
        for range in pieces(end) {
          do throws(SnapshotVerificationError) {
            try withBytes(bytes[range]) { (raw) throws(SnapshotVerificationError) in try verifier.feed(raw) }
          } catch {
            continuation.resume(returning: Fed(verifier: verifier, bytesBeforeFailure: fed, failure: error))
            return
          }
          fed += range.count
        }
        continuation.resume(returning: Fed(verifier: verifier, bytesBeforeFailure: nil, failure: nil))
      }
      precondition(started == 0, "no thread for the test")
    }
  }

  /// The pipelined verdict: the feeding failure, else `finish()`'s (within a time limit).
  static func pipelined(_ bytes: [UInt8], bufferSize: Int = SnapshotVerifierThread.defaultBufferSize, depth: Int = SnapshotVerifierThread.defaultDepth)
    async throws -> Result<SnapshotFacts, SnapshotVerificationError>
  {
    try await within(Self.hangCeiling, "pipelined verification") {
      let fed = await feed(bytes, bufferSize: bufferSize, depth: depth, decompressor: try gzip())
      if let failure = fed.failure { return .failure(failure) }
      do throws(SnapshotVerificationError) { return .success(try await fed.verifier.finish()) } catch { return .failure(error) }
    }
  }

  /// Smallest divisor of `n` from 2 on (n itself when prime).
  static func smallestDivisor(_ n: Int) -> Int {
    var d = 2
    while d * d <= n {
      if n % d == 0 { return d }
      d += 1
    }
    return n
  }

  /// An intact archive of about `stateBytes` whose length L and L - 1 are both composite, so it
  /// can be cut into exactly N ≥ 2 buffers, and into N' ≥ 2 buffers plus one byte.
  func divisibleArchive(stateBytes: Int) throws -> [UInt8] {
    for extra in 0..<40 {
      let bytes = try archive(stateBytes: stateBytes + extra)
      if Self.smallestDivisor(bytes.count) < bytes.count, Self.smallestDivisor(bytes.count - 1) < bytes.count - 1 { return bytes }
    }
    throw Hang(description: "no archive of a composite length near \(stateBytes) state bytes")
  }

  @Test(arguments: [0, 100_000, 3 << 20])
  func sameFactsAsTheSerialVerifier(stateBytes: Int) async throws {
    let bytes = try divisibleArchive(stateBytes: stateBytes)
    let expected = try Self.serial(bytes).get()
    #expect(expected.stateBytes >= Int64(stateBytes))
    let count = bytes.count
    let exactly = Self.smallestDivisor(count)
    let plusOne = Self.smallestDivisor(count - 1)
    let layouts: [(what: String, bufferSize: Int, depth: Int)] = [
      ("defaults", SnapshotVerifierThread.defaultBufferSize, SnapshotVerifierThread.defaultDepth),
      ("smaller than one buffer", count + 1, 4),
      ("exactly one buffer", count, 4),
      ("exactly \(exactly) buffers", count / exactly, 4),
      ("exactly \(exactly) buffers, one slot", count / exactly, 1),
      ("\(plusOne) buffers + 1 byte", (count - 1) / plusOne, 4),
      ("\(plusOne) buffers + 1 byte, two slots", (count - 1) / plusOne, 2),
      ("many small buffers", 4096, 2),
    ]
    for layout in layouts {
      let result = try await Self.pipelined(bytes, bufferSize: layout.bufferSize, depth: layout.depth)
      #expect(result == .success(expected), "\(layout.what) (archive \(count) bytes, buffer \(layout.bufferSize))")
    }
  }

  @Test func nothingFedIsAnEmptySnapshot() async throws {
    let verdict = try await Self.pipelined([])
    #expect(verdict == .failure(SnapshotVerificationError("empty snapshot")))
  }

  /// Messages may count bytes seen, which depends on how the stream was cut: compare without digits.
  static func verdict(_ result: Result<SnapshotFacts, SnapshotVerificationError>) -> String {
    switch result {
    case .success: return "accepted"
    case .failure(let error): return String(error.reason.filter { !$0.isNumber })
    }
  }

  @Test(arguments: ["beginning", "middle", "end", "truncated-half", "truncated-last-byte"])
  func rejectsWhatTheSerialVerifierRejects(damage: String) async throws {
    var bytes = try archive(stateBytes: 3 << 20)
    switch damage {
    case "beginning": bytes[0] ^= 0x40  // gzip magic
    case "middle": bytes[bytes.count / 2] ^= 0x40  // inside state.bin: the CRC-32 at the end disagrees
    case "end": bytes[bytes.count - 1] ^= 0x40  // gzip trailer (ISIZE)
    case "truncated-half": bytes.removeLast(bytes.count / 2)
    default: bytes.removeLast()
    }
    let expected = Self.serial(bytes)
    guard case .failure = expected else {
      Issue.record("the serial verifier accepted \(damage)")
      return
    }
    let result = try await Self.pipelined(bytes)
    #expect(Self.verdict(result) == Self.verdict(expected), "\(damage)")
  }

  @Test func stopsTheFeedingSoonAfterAFailure() async throws {
    // 3 MiB+ of archive, 64 KiB buffers, 4 slots: the worker fails on the first buffer, so the
    // feeding side learns it no later than when it needs a fifth slot.
    var bytes = try archive(stateBytes: 3 << 20)
    bytes[0] ^= 0x40
    let damaged = bytes
    let (before, failure, verdict) = try await Self.within(Self.hangCeiling, "damaged archive") {
      let fed = await Self.feed(damaged, bufferSize: 64 << 10, depth: 4, decompressor: try Self.gzip())
      // The verdict stays: finish reports the failure too.
      let verdict: Result<SnapshotFacts, SnapshotVerificationError>
      do throws(SnapshotVerificationError) { verdict = .success(try await fed.verifier.finish()) } catch { verdict = .failure(error) }
      return (fed.bytesBeforeFailure, fed.failure, verdict)
    }
    let fedBytes = try #require(before, "feed accepted the whole damaged archive")
    #expect(fedBytes <= 4 * (64 << 10))
    #expect(failure?.reason.contains("gzip") == true, "\(String(describing: failure))")
    #expect(verdict == .failure(try #require(failure)))
  }

  /// A stream that fails on its first piece, slowly: meanwhile the feeding side fills every
  /// slot and waits for one to come back, and must be woken by the failure.
  final class SlowFailure: StreamDecompressor {
    func decompress(_ input: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)
      throws(SnapshotVerificationError)
    {
      usleep(300_000)
      throw SnapshotVerificationError("slow failure")
    }
    func finish() throws(SnapshotVerificationError) {}
  }

  @Test func aFailureWakesTheFeedingSideWaitingForASlot() async throws {
    let bytes = [UInt8](repeating: 0x5A, count: 1 << 20)
    let exits = AsyncStream<Void>.makeStream()
    let (before, failure) = try await Self.within(Self.hangCeiling, "failure while waiting for a slot") {
      let fed = await Self.feed(bytes, bufferSize: 16 << 10, depth: 2, decompressor: SlowFailure(), onWorkerExit: { exits.continuation.yield() })
      for await _ in exits.stream { break }
      return (fed.bytesBeforeFailure, fed.failure)
    }
    #expect(failure == SnapshotVerificationError("slow failure"))
    // Two slots filled and queued, then the wait for a third ends with the failure.
    #expect((before ?? Int.max) <= 2 * (16 << 10))
  }

  /// gzip, slowly: keeps the queue full.
  final class SlowInflater: StreamDecompressor {
    let inner: GzipInflater
    init() throws(SnapshotVerificationError) { inner = try GzipInflater() }
    func decompress(_ input: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws(SnapshotVerificationError) -> Void)
      throws(SnapshotVerificationError)
    {
      usleep(50_000)
      try inner.decompress(input, into: sink)
    }
    func finish() throws(SnapshotVerificationError) { try inner.finish() }
  }

  @Test(arguments: [
    ("the worker waiting for data", 1000, false),  // less than a buffer: nothing queued yet
    ("the worker between buffers", 3 << 20, false),  // several buffers verified, one partly filled
    ("a full queue", 1 << 20, true),  // a slow worker: every slot queued or being verified
  ])
  func abandonedMidStreamTheWorkerEnds(what: String, fedBytes: Int, slow: Bool) async throws {
    let bytes = try archive(stateBytes: 8 << 20)
    let bufferSize = 64 << 10
    let exits = AsyncStream<Void>.makeStream()
    let parks = AsyncStream<Int>.makeStream()
    let exited = Atomic<Int>(0)
    let (failure, exitedBeforeDrop) = try await Self.within(Self.hangCeiling, "abandoning with \(what)") {
      var fed: Fed? = await Self.feed(
        bytes, limit: fedBytes, bufferSize: bufferSize, decompressor: slow ? try SlowInflater() : try Self.gzip(),
        onWorkerExit: {
          exited.add(1, ordering: .relaxed)
          exits.continuation.yield()
        },
        onWorkerPark: { parks.continuation.yield($0) })
      if !slow {
        // The drop must find the worker parked waiting for data, having verified every full
        // buffer fed (the partial one is never handed over before the end).
        for await verified in parks.stream where verified == min(fedBytes, bytes.count) / bufferSize { break }
      }  // slow: feeding waited for slots, so the queue is full and the worker busy right now
      let failure = fed?.failure
      let exitedBeforeDrop = exited.load(ordering: .relaxed)
      fed = nil  // the transfer was aborted: the attempt, and with it the verifier, is dropped
      for await _ in exits.stream { break }
      return (failure, exitedBeforeDrop)
    }
    #expect(failure == nil, "\(what)")
    #expect(exitedBeforeDrop == 0, "\(what): the worker ended before being abandoned")
    #expect(exited.load(ordering: .relaxed) == 1)
  }

  @Test func cancelEndsTheWorkerAndFailsWhatFollows() async throws {
    let bytes = try archive(stateBytes: 1 << 20)
    let exits = AsyncStream<Void>.makeStream()
    let (feedFailure, finishFailure) = try await Self.within(Self.hangCeiling, "cancel") {
      let fed = await Self.feed(bytes, limit: 300_000, decompressor: try Self.gzip(), onWorkerExit: { exits.continuation.yield() })
      fed.verifier.cancel()
      for await _ in exits.stream { break }
      let extra: [UInt8] = [1, 2, 3]
      var feedFailure: SnapshotVerificationError?
      do throws(SnapshotVerificationError) {
        try Self.withBytes(extra[...]) { (raw) throws(SnapshotVerificationError) in try fed.verifier.feed(raw) }
      } catch { feedFailure = error }
      var finishFailure: SnapshotVerificationError?
      do throws(SnapshotVerificationError) { _ = try await fed.verifier.finish() } catch { finishFailure = error }
      return (feedFailure, finishFailure)
    }
    #expect(feedFailure?.reason.contains("cancelled") == true)
    #expect(finishFailure?.reason.contains("cancelled") == true)
  }
}
