// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// One certificate watch: the inotify instance, the debouncer and the gate, run by one
/// dedicated thread (`run`). Reading the files happens there too, so neither the blocking
/// `poll` nor the file I/O ever occupies the cooperative pool.
final class CertificateWatchSession {
  private let files: CertificateFileSet
  private var inotify: DirectoryInotify?
  private var debouncer: ChangeDebouncer
  private var gate = RenewalGate()
  private let pollInterval: Duration
  private let continuation: AsyncStream<CertificateWatchEvent>.Continuation
  private let control: WatchControl
  private let onInotifyFailure: (@Sendable (String) -> Void)?
  /// The debouncer's time: the monotonic clock, or a test's virtual one (`CertificateWatcher.start`).
  private let now: @Sendable () -> ContinuousClock.Instant
  private let probe: WatchProbe?

  init(
    files: CertificateFileSet, inotify: DirectoryInotify?, quietPeriod: Duration, recheckEvery: Duration,
    pollInterval: Duration, continuation: AsyncStream<CertificateWatchEvent>.Continuation, control: WatchControl,
    onInotifyFailure: (@Sendable (String) -> Void)? = nil,
    now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }, probe: WatchProbe? = nil
  ) {
    self.files = files
    self.inotify = inotify
    self.now = now
    self.probe = probe
    self.debouncer = ChangeDebouncer(quietPeriod: quietPeriod, recheckEvery: recheckEvery, now: now())
    self.pollInterval = pollInterval
    self.continuation = continuation
    self.control = control
    self.onInotifyFailure = onInotifyFailure
  }

  /// Watches first and reads second, so a change landing between the two is not missed
  /// (it only causes one read that finds nothing new).
  func run() {
    inotify?.watch(files.directoriesToWatch())
    look()
    while !control.isStopRequested {
      // Bounded by `pollInterval` so a stop request is seen soon even when nothing happens.
      // At least a millisecond: under a virtual clock the deadline may sit just ahead of a
      // frozen `now`, and a zero poll timeout would spin.
      let wait = min(max(debouncer.nextDeadline - now(), .milliseconds(1)), pollInterval)
      if let inotify {
        switch inotify.wait(timeout: wait) {
        case .changed:
          debouncer.changed(at: now())
          // A swapped symlink may point into another directory, and a replaced directory is a
          // new inode: the set is recomputed and re-added after every batch.
          inotify.watch(files.directoriesToWatch())
        case .quiet:
          break
        case .failed(let reason):
          self.inotify = nil  // the re-check timer goes on alone, and the caller is told
          onInotifyFailure?(reason)
        }
      } else {
        let microseconds = max(wait.milliseconds, 1) * 1000
        usleep(UInt32(clamping: microseconds))
      }
      let started = now()
      let looked = debouncer.due(at: started) != nil
      if looked { look() }
      probe?.record(at: started, looked: looked)
    }
    inotify = nil
    continuation.finish()
    control.markFinished()
  }

  private func look() {
    let read: Result<CertificateFileContents, CertificateReadFailure>
    do {
      read = .success(try CertificateFileContents.read(files))
    } catch {
      read = .failure(error)
    }
    if let event = gate.judge(read) { continuation.yield(event) }
  }
}

@available(*, unavailable) extension CertificateWatchSession: Sendable {}

/// What a watch thread did, for tests that run it in virtual time: they advance the clock, wait
/// until an iteration has seen the new time, and then know whether the files were read.
final class WatchProbe: Sendable {
  struct Record: Sendable {
    /// The time the latest iteration judged the debouncer at.
    var latest: ContinuousClock.Instant?
    /// Reads of the files after the initial one.
    var looks = 0
  }

  private let state = Mutex(Record())

  init() {}

  var record: Record { state.withLock { $0 } }

  func record(at instant: ContinuousClock.Instant, looked: Bool) {
    state.withLock {
      $0.latest = instant
      if looked { $0.looks += 1 }
    }
  }
}
