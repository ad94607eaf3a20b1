// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Watches Vault's certificate files and reports renewals (issue #5).
///
/// inotify on the directories holding the files and their symlink targets, a quiet period so
/// that certificate and key are read together, a slow re-check for filesystems where inotify
/// sees nothing, and a SHA-256 over all the bytes so that only a real change is a renewal.
/// See `CertificateFileSet.directoriesToWatch()` and `ChangeDebouncer` for the reasons.
public struct CertificateWatcher: Sendable {
  public var files: CertificateFileSet
  public var quietPeriod: Duration
  public var recheckEvery: Duration
  /// False: no inotify at all, the re-check timer alone (for filesystems known to miss events,
  /// or when inotify cannot be had).
  public var useInotify: Bool
  /// The longest the watch thread sleeps before noticing the stream was terminated.
  public var pollInterval: Duration
  /// Called on the watch thread, once, when inotify fails during the watch (the descriptor
  /// errs on poll or read): from then on only the `recheckEvery` timer follows the files.
  /// The caller says so (an entry, a metric) instead of slowing down without a word.
  public var onInotifyFailure: (@Sendable (String) -> Void)?

  /// - Parameters:
  ///   - files: the configured paths (symlinks are followed).
  ///   - quietPeriod: how long the files must be left alone before they are read (default
  ///     500 ms; certbot writes the four files within a few milliseconds).
  ///   - recheckEvery: the fallback timer (default 5 minutes).
  public init(
    files: CertificateFileSet, quietPeriod: Duration = .milliseconds(500), recheckEvery: Duration = .seconds(300),
    useInotify: Bool = true, pollInterval: Duration = .milliseconds(250)
  ) {
    self.files = files
    self.quietPeriod = quietPeriod
    self.recheckEvery = recheckEvery
    self.useInotify = useInotify
    self.pollInterval = pollInterval
  }

  /// Starts the watch. The stream yields `.initial` (or `.unreadable`) at once, then one event
  /// per renewal that has settled, and the read failures; see `CertificateWatchEvent`.
  /// Terminating the stream (cancelling the consuming task, or dropping it) stops the thread
  /// within `pollInterval` and closes the inotify descriptor.
  ///
  /// - Throws: `CertificateWatchUnavailable` when inotify or the thread cannot be had; the
  ///   caller may start again with `useInotify: false`.
  public func events() throws(CertificateWatchUnavailable) -> AsyncStream<CertificateWatchEvent> {
    try start(control: WatchControl())
  }

  /// `events()` with the control exposed, so tests can see the thread end, the inotify
  /// descriptor's number, so tests can break it, and the clock and a probe, so tests can run the
  /// quiet period and the re-check in virtual time.
  func start(
    control: WatchControl, inotifyDescriptor: ((Int32) -> Void)? = nil,
    now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }, probe: WatchProbe? = nil
  ) throws(CertificateWatchUnavailable) -> AsyncStream<CertificateWatchEvent> {
    var inotify: DirectoryInotify?
    if useInotify {
      do throws(FileAccess.Failure) {
        inotify = try DirectoryInotify()
      } catch {
        throw CertificateWatchUnavailable(reason: "cannot watch the certificate files: \(error)")
      }
      if let inotify { inotifyDescriptor?(inotify.fd) }
    }
    // Events are rare and each is a whole read of the files; if the consumer stalls, the newest
    // ones are what matters.
    let (stream, continuation) = AsyncStream.makeStream(of: CertificateWatchEvent.self, bufferingPolicy: .bufferingNewest(16))
    let session = CertificateWatchSession(
      files: files, inotify: inotify, quietPeriod: quietPeriod, recheckEvery: recheckEvery,
      pollInterval: pollInterval, continuation: continuation, control: control, onInotifyFailure: onInotifyFailure,
      now: now, probe: probe)
    continuation.onTermination = { _ in control.requestStop() }
    let started = DedicatedThread.start { session.run() }
    guard started == 0 else {
      continuation.finish()
      throw CertificateWatchUnavailable(reason: "cannot start the certificate watch thread: \(String(cString: strerror(started)))")
    }
    return stream
  }
}

public struct CertificateWatchUnavailable: Error, Sendable, CustomStringConvertible {
  public var reason: String
  public init(reason: String) { self.reason = reason }
  public var description: String { reason }
}
