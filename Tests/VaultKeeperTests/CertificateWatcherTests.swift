// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing

@testable import VaultKeeper

/// "renewed 3": the kind of event and the generation the certificate file names.
private func summary(_ event: CertificateWatchEvent) -> String {
  func generation(_ contents: CertificateFileContents) -> String {
    let text = String(decoding: contents.certificate, as: UTF8.self)
    return text.split(separator: "\n").first { $0.hasPrefix("generation ") }.map { String($0.dropFirst(11)) } ?? "?"
  }
  switch event {
  case .initial(let contents): return "initial \(generation(contents))"
  case .renewed(let contents): return "renewed \(generation(contents))"
  case .readableAgain(let contents): return "readable again \(generation(contents))"
  case .unreadable(let failure): return "unreadable \(failure.path.split(separator: "/").last ?? "")"
  }
}

extension EventCollector where Element == CertificateWatchEvent {
  var summaries: [String] { elements.map(summary) }
}

/// The watch in virtual time: the quiet period and the re-check only pass when a test advances
/// this clock, so no file operation of a test can fall outside a quiet period however slow the
/// machine is, and nothing is read until the test says time has passed.
final class VirtualWatchTime: Sendable {
  private let base = ContinuousClock.now
  private let offset = Mutex(Duration.zero)

  var now: ContinuousClock.Instant { base + offset.withLock { $0 } }

  func advance(by step: Duration) { offset.withLock { $0 += step } }
}

/// The quiet period, in virtual time; the re-check is an hour unless a test is about it, so
/// any event must have come through inotify.
private let quiet = Duration.milliseconds(500)

@Suite struct CertificateWatcherTests {
  let layout: CertbotLayout
  let time = VirtualWatchTime()
  let probe = WatchProbe()

  init() throws { layout = try CertbotLayout() }

  private func watch(
    files: CertificateFileSet? = nil, recheckEvery: Duration = .seconds(3600), useInotify: Bool = true,
    control: WatchControl = WatchControl()
  ) throws -> EventCollector<CertificateWatchEvent> {
    let watcher = CertificateWatcher(
      files: files ?? layout.files, quietPeriod: quiet, recheckEvery: recheckEvery, useInotify: useInotify,
      pollInterval: .milliseconds(20))
    let time = self.time
    return EventCollector(try watcher.start(control: control, now: { time.now }, probe: probe))
  }

  /// Advances virtual time by `step` and waits until the watch thread has judged the new time
  /// (an iteration that read the clock after the advance).
  private func advance(by step: Duration) async -> Bool {
    time.advance(by: step)
    let target = time.now
    return await eventually { (probe.record.latest.map { $0 >= target }) ?? false }
  }

  /// Lets virtual time pass, a quiet period at a time, until the files have been read again
  /// after everything the test did before: every inotify event of it is queued by then, and
  /// nothing is read before the clock moves, so that read sees the final state.
  private func untilRead() async -> Bool {
    let looks = probe.record.looks
    return await eventually {
      time.advance(by: quiet)
      return probe.record.looks > looks
    }
  }

  @Test func certbotLayoutWatchesLiveAndArchiveDirectories() throws {
    defer { layout.remove() }
    let directories = layout.files.directoriesToWatch()
    let real = { (path: String) in URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
    #expect(directories.map(real) == [layout.live, layout.archive].map(real))
  }

  @Test func missingDirectoryIsStoodInForByItsNearestAncestor() {
    let files = CertificateFileSet(certificate: "/nonexistent-vk/a/cert.pem", key: "/tmp/nonexistent-vk-dir/key.pem")
    #expect(files.directoriesToWatch() == ["/", "/tmp"])
    #expect(CertificateFileSet.directory(of: "/a/b/") == "/a")
    #expect(CertificateFileSet.directory(of: "b") == ".")
    #expect(CertificateFileSet.directory(of: "/a") == "/")
  }

  @Test func symlinkSwapIsOneRenewal() async throws {
    defer { layout.remove() }
    let events = try watch()
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    try layout.renew(to: 2)
    #expect(await untilRead())
    #expect(await eventually { events.summaries.count == 2 })
    // Another read of the same files says nothing; a later renewal is the next event.
    try layout.pointLive(to: 2)
    #expect(await untilRead())
    try layout.renew(to: 3)
    #expect(await untilRead())
    #expect(await eventually { events.summaries.count == 3 })
    #expect(events.summaries == ["initial 1", "renewed 2", "renewed 3"])
  }

  @Test func rapidDoubleRenewalWithinTheQuietPeriodIsOneEvent() async throws {
    defer { layout.remove() }
    let events = try watch()
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    // No virtual time passes between the two: they are within one quiet period whatever the
    // machine's load.
    try layout.renew(to: 2)
    try layout.renew(to: 3)
    #expect(await untilRead())
    #expect(await eventually { events.summaries.count == 2 })
    try layout.renew(to: 4)  // the next event: nothing came between
    #expect(await untilRead())
    #expect(await eventually { events.summaries.count == 3 })
    #expect(events.summaries == ["initial 1", "renewed 3", "renewed 4"])
  }

  @Test func byteIdenticalRewriteIsNoRenewal() async throws {
    defer { layout.remove() }
    let events = try watch()
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    // New archive files and new symlinks, but the same bytes: certbot's `renew --force` with
    // a reused key and an unchanged certificate would look like this.
    try layout.writeArchive(2, contentOf: 1)
    try layout.pointLive(to: 2)
    #expect(await untilRead())  // the rewrite was read, and (below) reported nothing

    // Still watching: a real change after it is the next event.
    try layout.renew(to: 3)
    #expect(await untilRead())
    #expect(await eventually { events.summaries.count == 2 })
    #expect(events.summaries == ["initial 1", "renewed 3"])
  }

  @Test func touchingIsNoRenewal() async throws {
    defer { layout.remove() }
    let events = try watch()
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    for name in CertbotLayout.names {
      let path = "\(layout.archive)/\(name)1.pem"
      #expect(utimes(path, nil) == 0)  // IN_ATTRIB
      #expect(chmod(path, 0o640) == 0)
    }
    #expect(await untilRead())  // the touched files were read, and (below) reported nothing

    try layout.renew(to: 2)
    #expect(await untilRead())
    #expect(await eventually { events.summaries.count == 2 })
    #expect(events.summaries == ["initial 1", "renewed 2"])
  }

  @Test func replacedDirectoryIsStillWatched() async throws {
    defer { layout.remove() }
    let events = try watch()
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    // Replace live/example as a whole: the old inode goes away, the new one must be watched.
    try layout.writeArchive(2)
    let staged = layout.root + "/live/example.staged"
    try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: false)
    try layout.pointLive(to: 2, in: staged)
    #expect(rename(layout.live, layout.root + "/live/example.old") == 0)
    #expect(rename(staged, layout.live) == 0)
    #expect(await untilRead())
    #expect(await eventually { events.summaries == ["initial 1", "renewed 2"] })

    // Archive files for generation 3 appear first (nothing visible through the symlinks
    // changes), then only the symlinks in the *new* live directory move: only a watch on that
    // directory can see it, since the re-check is an hour away.
    try layout.writeArchive(3)
    #expect(await untilRead())
    try layout.pointLive(to: 3)
    #expect(await untilRead())
    #expect(await eventually { events.summaries.count == 3 })
    #expect(events.summaries == ["initial 1", "renewed 2", "renewed 3"])
  }

  @Test func plainFilesReplacedByRenameAreSeen() async throws {
    defer { layout.remove() }
    let directory = layout.root + "/plain"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    let files = CertificateFileSet(certificate: directory + "/cert.pem", key: directory + "/key.pem")
    try CertbotLayout.content("cert", 1).write(toFile: files.certificate, atomically: false, encoding: .utf8)
    try CertbotLayout.content("key", 1).write(toFile: files.key, atomically: false, encoding: .utf8)
    let events = try watch(files: files)
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    // `atomically: true` writes a temporary file and renames it over the old one.
    try CertbotLayout.content("cert", 2).write(toFile: files.certificate, atomically: true, encoding: .utf8)
    try CertbotLayout.content("key", 2).write(toFile: files.key, atomically: true, encoding: .utf8)
    #expect(await untilRead())
    #expect(await eventually { events.summaries == ["initial 1", "renewed 2"] })
  }

  @Test func fallbackTimerSeesChangesInotifyMissed() async throws {
    defer { layout.remove() }
    // No inotify at all stands in for a filesystem whose changes inotify never reports.
    let events = try watch(recheckEvery: .seconds(300), useInotify: false)
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    try layout.renew(to: 2)
    #expect(await advance(by: .seconds(299)))
    #expect(probe.record.looks == 0, "read before the re-check was due")
    #expect(await advance(by: .seconds(1)))
    #expect(probe.record.looks == 1)
    #expect(await eventually { events.summaries == ["initial 1", "renewed 2"] })
    for looks in 2...4 {  // more re-checks that find nothing new
      #expect(await advance(by: .seconds(300)))
      #expect(probe.record.looks == looks)
    }
    try layout.renew(to: 3)  // the next event: nothing came between
    #expect(await advance(by: .seconds(300)))
    #expect(await eventually { events.summaries.count == 3 })
    #expect(events.summaries == ["initial 1", "renewed 2", "renewed 3"])
  }

  @Test func withoutFallbackTimerAndInotifyNothingIsSeen() async throws {
    // The counterpart of the test above: proof that it is the timer that saw the change.
    defer { layout.remove() }
    let events = try watch(recheckEvery: .seconds(3600), useInotify: false)
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })
    try layout.renew(to: 2)
    // Many quiet periods pass, up to just before the re-check: the files are never read.
    for _ in 0..<10 { #expect(await advance(by: quiet)) }
    #expect(await advance(by: .seconds(3600) - quiet * 10 - .milliseconds(1)))
    #expect(probe.record.looks == 0)
    #expect(events.summaries == ["initial 1"])
  }

  @Test func unreadableKeyIsReportedOnceAndItsReturnToo() async throws {
    defer { layout.remove() }
    let events = try watch()
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    try FileManager.default.removeItem(atPath: layout.live + "/privkey.pem")
    #expect(await untilRead())
    #expect(await eventually { events.summaries == ["initial 1", "unreadable privkey.pem"] })
    try layout.pointLive(to: 1)
    #expect(await untilRead())
    #expect(await eventually { events.summaries == ["initial 1", "unreadable privkey.pem", "readable again 1"] })
  }

  @Test func keyIsHeldInSecretBytes() async throws {
    defer { layout.remove() }
    let contents = try CertificateFileContents.read(layout.files)
    #expect(contents.key.withUnsafeBytes { Array($0) } == Array(CertbotLayout.content("privkey", 1).utf8))
    #expect("\(contents.key)".hasPrefix("<redacted"))
    #expect(contents.fingerprint.hex.count == 64)
  }

  @Test func terminatingTheStreamStopsTheThread() async throws {
    defer { layout.remove() }
    let control = WatchControl()
    let events = try watch(control: control)
    #expect(await eventually { events.summaries.count == 1 })
    #expect(!control.isFinished)
    events.cancel()
    #expect(await eventually { control.isFinished })
    #expect(await eventually { events.isFinished })
  }
}
