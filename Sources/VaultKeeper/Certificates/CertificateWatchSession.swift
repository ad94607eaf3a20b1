#if canImport(Glibc)
import Glibc
#endif

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
  private let clock = ContinuousClock()

  init(
    files: CertificateFileSet, inotify: DirectoryInotify?, quietPeriod: Duration, recheckEvery: Duration,
    pollInterval: Duration, continuation: AsyncStream<CertificateWatchEvent>.Continuation, control: WatchControl,
    onInotifyFailure: (@Sendable (String) -> Void)? = nil
  ) {
    self.files = files
    self.inotify = inotify
    self.debouncer = ChangeDebouncer(quietPeriod: quietPeriod, recheckEvery: recheckEvery, now: clock.now)
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
      let wait = min(max(debouncer.nextDeadline - clock.now, .zero), pollInterval)
      if let inotify {
        switch inotify.wait(timeout: wait) {
        case .changed:
          debouncer.changed(at: clock.now)
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
      if debouncer.due(at: clock.now) != nil { look() }
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
