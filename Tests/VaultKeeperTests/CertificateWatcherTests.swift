import Foundation
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

/// Timings short enough for tests; the re-check is an hour unless a test is about it, so any
/// event must have come through inotify.
private let quiet = Duration.milliseconds(150)

@Suite struct CertificateWatcherTests {
  let layout: CertbotLayout

  init() throws { layout = try CertbotLayout() }

  private func watch(recheckEvery: Duration = .seconds(3600), useInotify: Bool = true) throws -> EventCollector<CertificateWatchEvent> {
    let watcher = CertificateWatcher(
      files: layout.files, quietPeriod: quiet, recheckEvery: recheckEvery, useInotify: useInotify, pollInterval: .milliseconds(50))
    return EventCollector(try watcher.events())
  }

  /// Waits long enough for a change to have been reported if it were going to be (quiet period,
  /// poll slack and scheduling on a loaded two-core machine).
  private func settle() async throws { try await Task.sleep(for: quiet * 6) }

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
    #expect(await eventually { events.summaries.count == 2 })
    try await settle()
    #expect(events.summaries == ["initial 1", "renewed 2"])
  }

  @Test func rapidDoubleRenewalWithinTheQuietPeriodIsOneEvent() async throws {
    defer { layout.remove() }
    let events = try watch()
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    try layout.renew(to: 2)
    try layout.renew(to: 3)
    #expect(await eventually { events.summaries.count == 2 })
    try await settle()
    #expect(events.summaries == ["initial 1", "renewed 3"])
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
    try await settle()
    #expect(events.summaries == ["initial 1"])

    // Still watching: a real change after it is reported.
    try layout.renew(to: 3)
    #expect(await eventually { events.summaries == ["initial 1", "renewed 3"] })
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
    try await settle()
    #expect(events.summaries == ["initial 1"])

    try layout.renew(to: 2)
    #expect(await eventually { events.summaries == ["initial 1", "renewed 2"] })
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
    #expect(await eventually { events.summaries == ["initial 1", "renewed 2"] })

    // Archive files for generation 3 appear first (nothing visible through the symlinks
    // changes), then only the symlinks in the *new* live directory move: only a watch on that
    // directory can see it, since the re-check is an hour away.
    try layout.writeArchive(3)
    try await settle()
    #expect(events.summaries == ["initial 1", "renewed 2"])
    try layout.pointLive(to: 3)
    #expect(await eventually { events.summaries == ["initial 1", "renewed 2", "renewed 3"] })
  }

  @Test func plainFilesReplacedByRenameAreSeen() async throws {
    defer { layout.remove() }
    let directory = layout.root + "/plain"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    let files = CertificateFileSet(certificate: directory + "/cert.pem", key: directory + "/key.pem")
    try CertbotLayout.content("cert", 1).write(toFile: files.certificate, atomically: false, encoding: .utf8)
    try CertbotLayout.content("key", 1).write(toFile: files.key, atomically: false, encoding: .utf8)
    let watcher = CertificateWatcher(files: files, quietPeriod: quiet, recheckEvery: .seconds(3600), pollInterval: .milliseconds(50))
    let events = EventCollector(try watcher.events())
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    // `atomically: true` writes a temporary file and renames it over the old one.
    try CertbotLayout.content("cert", 2).write(toFile: files.certificate, atomically: true, encoding: .utf8)
    try CertbotLayout.content("key", 2).write(toFile: files.key, atomically: true, encoding: .utf8)
    #expect(await eventually { events.summaries == ["initial 1", "renewed 2"] })
  }

  @Test func fallbackTimerSeesChangesInotifyMissed() async throws {
    defer { layout.remove() }
    // No inotify at all stands in for a filesystem whose changes inotify never reports.
    let events = try watch(recheckEvery: .milliseconds(300), useInotify: false)
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    try layout.renew(to: 2)
    #expect(await eventually { events.summaries == ["initial 1", "renewed 2"] })
    try await Task.sleep(for: .milliseconds(900))  // several re-checks that find nothing new
    #expect(events.summaries == ["initial 1", "renewed 2"])
  }

  @Test func withoutFallbackTimerAndInotifyNothingIsSeen() async throws {
    // The counterpart of the test above: proof that it is the timer that saw the change.
    defer { layout.remove() }
    let events = try watch(recheckEvery: .seconds(3600), useInotify: false)
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })
    try layout.renew(to: 2)
    try await settle()
    #expect(events.summaries == ["initial 1"])
  }

  @Test func unreadableKeyIsReportedOnceAndItsReturnToo() async throws {
    defer { layout.remove() }
    let events = try watch()
    defer { events.cancel() }
    #expect(await eventually { events.summaries == ["initial 1"] })

    try FileManager.default.removeItem(atPath: layout.live + "/privkey.pem")
    #expect(await eventually { events.summaries == ["initial 1", "unreadable privkey.pem"] })
    try layout.pointLive(to: 1)
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
    let watcher = CertificateWatcher(files: layout.files, quietPeriod: quiet, pollInterval: .milliseconds(50))
    let events = EventCollector(try watcher.start(control: control))
    #expect(await eventually { events.summaries.count == 1 })
    #expect(!control.isFinished)
    events.cancel()
    #expect(await eventually { control.isFinished })
    #expect(await eventually { events.isFinished })
  }
}
