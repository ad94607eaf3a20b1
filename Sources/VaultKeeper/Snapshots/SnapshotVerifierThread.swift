// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Runs a `SnapshotGzipVerifier` (inflate, tar checks, SHA-256) on a thread of its own, so the
/// thread that receives a snapshot only copies the bytes aside and goes on receiving and writing.
///
/// The receiving ("producer") side batches the pieces it is fed (libcurl hands out ≤ 16 KiB)
/// into fixed buffers and passes full ones, in order, to the verifier ("worker") thread through
/// a bounded queue. There are `depth` buffers in all, allocated once and reused (a free list):
/// memory is `depth × bufferSize` whatever the snapshot size. When all of them are queued or
/// being verified, `feed` waits for one to come back (back-pressure; inside a curl write
/// callback that simply slows the download).
///
/// A verification failure on the worker is reported by the next `feed` (or by `finish`), and
/// ends the worker. `finish` hands over the partial buffer, lets the worker drain the queue and
/// finish the verifier, and suspends (without blocking a thread) until it has. `cancel`, or
/// dropping the last reference, ends the worker promptly wherever it is waiting.
///
/// Threads: `feed` blocks, so call it only on a dedicated thread (libcurl's transfer thread, a
/// `DedicatedThread`), never on Swift's cooperative pool. `feed` and `finish` belong to one
/// owner at a time (the transfer thread, then the task that awaits the result); `cancel` may
/// be called from anywhere. If no thread can be started, it verifies inline in `feed` instead.
public final class SnapshotVerifierThread {
  public static let defaultBufferSize = 256 << 10
  public static let defaultDepth = 4

  private enum Mode {
    /// Nothing fed yet; no thread.
    case idle
    case threaded
    /// `pthread_create` failed: verify in `feed`, on the caller's thread.
    case inline
    case finished
  }

  private let core: Core
  // The owner's state (never touched by the worker).
  private var mode = Mode.idle
  /// The buffer being filled, if any, and how many bytes it holds.
  private var current: (slot: Int, count: Int)?

  /// - Parameters:
  ///   - bufferSize, depth: the queue: `depth` buffers of `bufferSize` bytes (at least 1 each).
  ///   - onWorkerExit: called on the worker thread as its last act (for tests and diagnostics).
  ///   - onWorkerPark: called on the worker thread each time it waits for data, with the number
  ///     of buffers verified so far (tests wait on it instead of on the clock).
  public init(
    verifier: SnapshotGzipVerifier, bufferSize: Int = SnapshotVerifierThread.defaultBufferSize, depth: Int = SnapshotVerifierThread.defaultDepth,
    onWorkerExit: (@Sendable () -> Void)? = nil, onWorkerPark: (@Sendable (Int) -> Void)? = nil
  ) {
    core = Core(verifier: verifier, bufferSize: max(bufferSize, 1), depth: max(depth, 1), onExit: onWorkerExit, onPark: onWorkerPark)
  }

  deinit { core.cancel() }

  /// Takes the next piece of the stream (copied; `bytes` may be reused after the call). Throws
  /// the worker's verification failure as soon as it is known, or when cancelled.
  public func feed(_ bytes: UnsafeRawBufferPointer) throws(SnapshotVerificationError) {
    switch mode {
    case .finished:
      throw SnapshotVerificationError("snapshot data after the end of verification")
    case .inline:
      return try core.verifier.feed(bytes)
    case .idle:
      guard !bytes.isEmpty else { return }
      // The worker only holds `core`, never `self`: dropping the owner's reference cancels it.
      let started = DedicatedThread.start { [core] in core.runWorker() }
      mode = started == 0 ? .threaded : .inline
      if mode == .inline { return try feed(bytes) }
    case .threaded:
      break
    }
    try core.checkFailure()
    var offset = 0
    while offset < bytes.count {
      let (slot, filled): (Int, Int)
      if let current { (slot, filled) = current } else { (slot, filled) = (try core.acquire(), 0) }
      let take = min(core.bufferSize - filled, bytes.count - offset)
      UnsafeMutableRawBufferPointer(rebasing: core.buffer(slot)[filled..<(filled + take)])
        .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
      offset += take
      if filled + take == core.bufferSize {
        core.submit(slot: slot, count: core.bufferSize)
        current = nil
      } else {
        current = (slot, filled + take)
      }
    }
  }

  /// The stream is complete: verifies what is still queued, then the archive as a whole.
  /// Suspends until the worker is done (a few buffers' worth of hashing); never blocks a thread.
  public func finish() async throws(SnapshotVerificationError) -> SnapshotFacts {
    let previous = mode
    mode = .finished
    switch previous {
    case .finished:
      throw SnapshotVerificationError("snapshot verification already finished")
    case .idle, .inline:
      // No worker ever saw the verifier: it is still ours.
      return try core.verifier.finish()
    case .threaded:
      if let (slot, count) = current {
        current = nil
        core.submit(slot: slot, count: count)
      }
      return try await core.close().get()
    }
  }

  /// Ends the worker (it finishes at most the buffer it is verifying): the next `feed`, or a
  /// pending `finish`, fails. Idempotent; never blocks; callable from any thread.
  public func cancel() { core.cancel() }
}

extension SnapshotVerifierThread {
  /// What the owner and the worker share.
  ///
  /// @unchecked Sendable, because the compiler cannot see the confinement that makes it safe:
  /// - `state` is a `Mutex`; everything the two threads exchange goes through it, so each
  ///   hand-over (a slot submitted, freed; the verifier's result) is ordered by the lock.
  /// - The bytes of buffer slot `i` are written only by the owner while it holds `i` (taken
  ///   from `free`, not yet in `filled`), and read only by the worker while it holds `i` (taken
  ///   from `filled`, not yet back in `free`). A slot is in exactly one of those places at a
  ///   time, and it moves between them under the mutex.
  /// - `verifier` (not Sendable) is used by the worker thread only, from its start (thread
  ///   creation orders everything before it) to its exit, whose result goes through the mutex.
  ///   Without a worker (nothing fed, or no thread to be had) only the owner uses it.
  /// - The rest is immutable; `storage` is freed in deinit, when neither side holds `self`.
  final class Core: @unchecked Sendable {
    struct Filled: Sendable {
      var slot: Int
      var count: Int
    }

    struct State: Sendable {
      /// Slots the owner may fill; slots that were never used yet come first.
      var free: [Int]
      /// Slots with data for the worker, in stream order (at most `depth`: a plain array).
      var filled: [Filled] = []
      /// The owner has submitted everything: drain, then finish.
      var closed = false
      var cancelled = false
      /// The worker's verification failure, for the owner's next `feed`.
      var failure: SnapshotVerificationError?
      /// The worker's final word, set as it exits.
      var outcome: Result<SnapshotFacts, SnapshotVerificationError>?
      /// `finish` waiting for `outcome`.
      var waiter: CheckedContinuation<Result<SnapshotFacts, SnapshotVerificationError>, Never>?
    }

    let verifier: SnapshotGzipVerifier
    let bufferSize: Int
    let depth: Int
    private let storage: UnsafeMutableRawBufferPointer
    private let state: Mutex<State>
    /// Wakes the worker: a slot was submitted, the stream was closed, or cancelled.
    private let workerWakeup = WakeupEvent()
    /// Wakes the owner blocked in `acquire`: a slot came back, the worker failed or exited, or cancelled.
    private let ownerWakeup = WakeupEvent()
    private let onExit: (@Sendable () -> Void)?
    private let onPark: (@Sendable (Int) -> Void)?

    static let cancelled = SnapshotVerificationError("snapshot verification cancelled")

    init(verifier: SnapshotGzipVerifier, bufferSize: Int, depth: Int, onExit: (@Sendable () -> Void)?, onPark: (@Sendable (Int) -> Void)?) {
      self.verifier = verifier
      self.bufferSize = bufferSize
      self.depth = depth
      self.onExit = onExit
      self.onPark = onPark
      // Address space only: pages are touched (and count as resident) once a slot is filled.
      storage = .allocate(byteCount: bufferSize * depth, alignment: 64)
      state = Mutex(State(free: Array((0..<depth).reversed())))
    }

    deinit { storage.deallocate() }

    func buffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
      UnsafeMutableRawBufferPointer(rebasing: storage[(slot * bufferSize)..<((slot + 1) * bufferSize)])
    }

    // MARK: owner side

    func checkFailure() throws(SnapshotVerificationError) {
      let failure = state.withLock { s -> SnapshotVerificationError? in s.failure ?? (s.cancelled ? Self.cancelled : nil) }
      if let failure { throw failure }
    }

    /// A free slot for the owner to fill; waits while all are queued or being verified.
    func acquire() throws(SnapshotVerificationError) -> Int {
      while true {
        let next = state.withLock { s -> Result<Int, SnapshotVerificationError>? in
          if let failure = s.failure { return .failure(failure) }
          if s.cancelled || s.outcome != nil { return .failure(Self.cancelled) }
          return s.free.popLast().map { .success($0) }
        }
        // No free slot means every slot is queued or in the worker's hands: the worker has
        // work, so it will free one, fail, or exit, and each of those signals `ownerWakeup`.
        guard let next else {
          ownerWakeup.wait()
          continue
        }
        return try next.get()
      }
    }

    /// Queues a filled slot for the worker (never blocks: the owner held the slot, so there is room).
    func submit(slot: Int, count: Int) {
      state.withLock { $0.filled.append(Filled(slot: slot, count: count)) }
      workerWakeup.signal()
    }

    /// No more data: the worker drains the queue and finishes the verifier; returns its result.
    func close() async -> Result<SnapshotFacts, SnapshotVerificationError> {
      state.withLock { $0.closed = true }
      workerWakeup.signal()
      return await withCheckedContinuation { continuation in
        let ready = state.withLock { s -> Result<SnapshotFacts, SnapshotVerificationError>? in
          if let outcome = s.outcome { return outcome }
          s.waiter = continuation
          return nil
        }
        if let ready { continuation.resume(returning: ready) }
      }
    }

    func cancel() {
      state.withLock { $0.cancelled = true }
      workerWakeup.signal()
      ownerWakeup.signal()
    }

    // MARK: worker side

    private enum Step {
      case verify(Filled)
      case wait
      case drained
      case stop
    }

    /// The worker thread's body: verify queued slots in order until the stream is closed and
    /// drained, verification fails, or the verifier is cancelled; then publish the outcome.
    func runWorker() {
      var outcome: Result<SnapshotFacts, SnapshotVerificationError>?
      var verified = 0
      while outcome == nil {
        let step = state.withLock { s -> Step in
          if s.cancelled { return .stop }
          if !s.filled.isEmpty { return .verify(s.filled.removeFirst()) }
          return s.closed ? .drained : .wait
        }
        switch step {
        case .wait:
          // Nothing queued and not closed: the owner is not waiting for a slot (it holds one
          // or has one free), and its next submit, close or cancel signals `workerWakeup`.
          onPark?(verified)
          workerWakeup.wait()
        case .stop:
          outcome = .failure(Self.cancelled)
        case .drained:
          do throws(SnapshotVerificationError) {
            outcome = .success(try verifier.finish())
          } catch {
            outcome = .failure(error)
          }
        case .verify(let filled):
          do throws(SnapshotVerificationError) {
            try verifier.feed(UnsafeRawBufferPointer(rebasing: buffer(filled.slot)[0..<filled.count]))
            verified += 1
            state.withLock { $0.free.append(filled.slot) }
          } catch {
            state.withLock { $0.failure = error }
            outcome = .failure(error)
          }
          ownerWakeup.signal()
        }
      }
      let result = outcome ?? .failure(Self.cancelled)
      let waiter = state.withLock { s -> CheckedContinuation<Result<SnapshotFacts, SnapshotVerificationError>, Never>? in
        s.outcome = result
        defer { s.waiter = nil }
        return s.waiter
      }
      ownerWakeup.signal()
      waiter?.resume(returning: result)
      onExit?()
    }
  }
}
