// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing

@testable import VaultKeeper

/// When inotify fails during the watch (issue #10, item 8), the watcher says so, once, through
/// `onInotifyFailure`, and the re-check timer still finds renewals. The failure is real: the
/// watch's inotify descriptor is replaced (dup2) by a directory's, so its next read fails
/// with EISDIR, as a broken descriptor would.
@Suite struct CertificateWatchFallbackTests {
  @Test func aFailingInotifyIsReportedAndTheTimerTakesOver() async throws {
    let layout = try CertbotLayout()
    defer { layout.remove() }
    let failures = Mutex<[String]>([])
    let descriptor = Mutex<Int32>(-1)
    var watcher = CertificateWatcher(
      files: layout.files, quietPeriod: .milliseconds(150), recheckEvery: .milliseconds(400), pollInterval: .milliseconds(50))
    watcher.onInotifyFailure = { reason in failures.withLock { $0.append(reason) } }
    let events = EventCollector(try watcher.start(control: WatchControl(), inotifyDescriptor: { fd in descriptor.withLock { $0 = fd } }))
    defer { events.cancel() }
    #expect(await eventually { events.elements.count == 1 })
    #expect(failures.withLock { $0 }.isEmpty)

    let fd = descriptor.withLock { $0 }
    #expect(fd >= 0)
    let directory = open(layout.live, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    #expect(dup2(directory, fd) == fd)
    close(directory)
    #expect(await eventually { failures.withLock { $0 } == ["Is a directory"] })

    try layout.renew(to: 2)  // seen by the re-check timer now
    #expect(await eventually { events.elements.count == 2 })
    if case .renewed = events.elements.last {} else { Issue.record("expected a renewal, got \(events.elements)") }
    #expect(failures.withLock { $0 }.count == 1)  // said once
  }

  @Test func theMetricSaysHowTheFilesAreWatched() {
    func metric(_ watching: CertificateWatchMode?) -> String? {
      var report = DaemonReport(pid: 1, startedAt: 0, updatedAt: 0, configPath: "/c", nodes: [])
      var certificate = CertificateReport(state: .ok)
      certificate.watching = watching
      report.certificate = certificate
      let line = MetricsText.render(report).split(separator: "\n").first { $0.hasPrefix("vaultkeeper_certificate_watch_inotify ") }
      return line.map { String($0.dropFirst("vaultkeeper_certificate_watch_inotify ".count)) }
    }
    #expect(metric(.inotify) == "1")
    #expect(metric(.timer) == "0")
    #expect(metric(nil) == "0")
  }
}
