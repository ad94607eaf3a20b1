// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import VaultKeeper

@Suite struct DrillConfigTests {
  func drill(_ table: String) throws(ConfigError) -> SnapshotDrillConfig? {
    let text = "[vault]\naddress = \"https://127.0.0.1:8200\"\n[snapshot]\ndirectory = \"/tmp\"\ntoken_credential = \"t\"\n" + table
    // Validated by the main loader, like every table (`config check`, start-up, reload).
    return try ConfigLoader().parse(text, path: "/etc/vk.toml").snapshot?.drill
  }

  func error(_ table: String) -> ConfigError? {
    do {
      _ = try drill(table)
      return nil
    } catch {
      return error
    }
  }

  /// `config show` prints the drill table, and what it prints reads back the same.
  @Test func effectiveConfigRoundTrips() throws {
    let text = "[vault]\naddress = \"https://127.0.0.1:8200\"\n[snapshot]\ndirectory = \"/tmp\"\ntoken_credential = \"t\"\n"
      + "[snapshot.drill]\ninterval = \"3d\"\ntimeout = \"5m\"\nenabled = false\n"
    let config = try ConfigLoader().parse(text, path: "/etc/vk.toml")
    let rendered = EffectiveConfig.render(config)
    #expect(rendered.contains("[snapshot.drill]\nenabled = false\ninterval = \"72h\"\n# binary: the one [vault] unit's ExecStart runs, else bao, then vault, on PATH\ntimeout = \"5m\""))
    var reparsed = try ConfigLoader().parse(rendered, path: "/etc/vk.toml")
    reparsed.sourcePath = config.sourcePath
    #expect(reparsed == config)
  }

  @Test func absentTableIsNil() throws {
    #expect(try drill("") == nil)
  }

  @Test func defaults() throws {
    let config = try #require(try drill("[snapshot.drill]\n"))
    #expect(config.enabled)
    #expect(config.interval == .seconds(7 * 86400))
    #expect(config.timeout == .seconds(600))
    #expect(config.binary == nil)
    #expect(config.staleAfter == .seconds(14 * 86400 + 600))
  }

  @Test func explicitValues() throws {
    let config = try #require(
      try drill("[snapshot.drill]\nenabled = false\ninterval = \"1d\"\ntimeout = \"2m\"\nstale_after = \"3d\"\nbinary = \"/bin/sh\"\n"))
    #expect(!config.enabled)
    #expect(config.interval == .seconds(86400))
    #expect(config.timeout == .seconds(120))
    #expect(config.staleAfter == .seconds(3 * 86400))
    #expect(config.binary == "/bin/sh")
  }

  @Test func errorsNameTheKeyAndLine() throws {
    let unknown = try #require(error("[snapshot.drill]\ninterval = \"1d\"\nbogus = 1\n"))
    #expect(unknown.key == "snapshot.drill.bogus")
    #expect(unknown.line == 8)
    let badDuration = try #require(error("[snapshot.drill]\ntimeout = \"soon\"\n"))
    #expect(badDuration.key == "snapshot.drill.timeout")
    #expect(badDuration.line == 7)
    let stale = try #require(error("[snapshot.drill]\ninterval = \"2d\"\nstale_after = \"1d\"\n"))
    #expect(stale.key == "snapshot.drill.stale_after")
    #expect(stale.message.contains("longer than interval"))
  }

  @Test func binaryMustBeAnExistingExecutable() throws {
    #expect(error("[snapshot.drill]\nbinary = \"bao\"\n")?.message.contains("absolute path") == true)
    #expect(error("[snapshot.drill]\nbinary = \"/nonexistent/bao\"\n")?.message.contains("does not exist") == true)
    let plain = NSTemporaryDirectory() + "vk-drill-plain-\(UUID().uuidString)"
    #expect(FileManager.default.createFile(atPath: plain, contents: Data(), attributes: [.posixPermissions: 0o644]))
    defer { try? FileManager.default.removeItem(atPath: plain) }
    #expect(error("[snapshot.drill]\nbinary = \"\(plain)\"\n")?.message.contains("not executable") == true)
    #expect(error("[snapshot.drill]\nbinary = \"/tmp\"\n")?.message.contains("not a regular file") == true)
  }

  @Test func binaryLookUpOnPath() throws {
    let directory = NSTemporaryDirectory() + "vk-drill-bin-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    #expect(DrillBinary.resolve(configured: nil, unit: nil, searchPath: directory) == .failure(DrillFailure(.start, .binary(
      "neither bao nor vault is on PATH (\(directory)); set [snapshot.drill] binary"))))
    #expect(FileManager.default.createFile(atPath: "\(directory)/vault", contents: Data(), attributes: [.posixPermissions: 0o755]))
    #expect(DrillBinary.resolve(configured: nil, unit: nil, searchPath: "relative:\(directory)")
      == .success(DrillBinary(path: "\(directory)/vault", source: .searchPath)))
    #expect(FileManager.default.createFile(atPath: "\(directory)/bao", contents: Data(), attributes: [.posixPermissions: 0o644]))
    #expect(DrillBinary.resolve(configured: nil, unit: nil, searchPath: directory)
      == .success(DrillBinary(path: "\(directory)/vault", source: .searchPath)), "a bao that is not executable is skipped")
  }

  /// The unit's `ExecStart` (`… server …`) comes before PATH, the configured binary before both,
  /// and a wrapper or an unreadable unit falls through to PATH, named in the failure.
  @Test func binaryFromTheVaultUnitsExecStart() throws {
    let directory = NSTemporaryDirectory() + "vk-drill-unit-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory + "/opt", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: directory + "/path", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let production = "\(directory)/opt/bao"
    let onPath = "\(directory)/path/vault"
    let noExec = "\(directory)/opt/vault-0640"
    #expect(FileManager.default.createFile(atPath: production, contents: Data(), attributes: [.posixPermissions: 0o755]))
    #expect(FileManager.default.createFile(atPath: noExec, contents: Data(), attributes: [.posixPermissions: 0o640]))
    func answer(_ commands: [UnitCommandLine]) -> DrillBinary.UnitAnswer { .init(unit: "openbao.service", commands: .success(commands)) }
    let server = UnitCommandLine(path: production, arguments: [production, "server", "-config=/etc/openbao/openbao.hcl"])
    let wrapper = UnitCommandLine(path: "/usr/bin/env", arguments: ["/usr/bin/env", "VAULT_LOG_LEVEL=warn", production, "server"])
    let emptyPath = "\(directory)/path"

    #expect(DrillBinary.resolve(configured: nil, unit: answer([wrapper, server]), searchPath: emptyPath)
      == .success(DrillBinary(path: production, source: .unit("openbao.service"))), "the first `server` command, past a wrapper")
    #expect(DrillBinary(path: production, source: .unit("openbao.service")).description == "\(production) (openbao.service's ExecStart)")
    #expect(DrillBinary.resolve(configured: noExec, unit: answer([server]), searchPath: emptyPath) == .failure(DrillFailure(.start, .binary(
      "\(noExec) is not an executable file ([snapshot.drill] binary)"))), "a configured binary is never second-guessed")

    #expect(DrillBinary.resolve(configured: nil, unit: answer([wrapper]), searchPath: emptyPath) == .failure(DrillFailure(.start, .binary(
      "openbao.service's ExecStart runs no `… server` command, and neither bao nor vault is on PATH (\(emptyPath)); set [snapshot.drill] binary"))))
    #expect(DrillBinary.resolve(configured: nil, unit: answer([]), searchPath: emptyPath) == .failure(DrillFailure(.start, .binary(
      "openbao.service has no ExecStart (is it installed?), and neither bao nor vault is on PATH (\(emptyPath)); set [snapshot.drill] binary"))))
    let unreadable = DrillBinary.UnitAnswer(unit: "openbao.service", commands: .failure(UnitWatchUnavailable(reason: "no system bus at /x: No such file or directory")))
    #expect(DrillBinary.resolve(configured: nil, unit: unreadable, searchPath: emptyPath) == .failure(DrillFailure(.start, .binary(
      "cannot read openbao.service's ExecStart (no system bus at /x: No such file or directory), and neither bao nor vault is on PATH (\(emptyPath)); set [snapshot.drill] binary"))))
    let notOurs = UnitCommandLine(path: noExec, arguments: ["vault", "server"])
    #expect(DrillBinary.resolve(configured: nil, unit: answer([notOurs]), searchPath: emptyPath) == .failure(DrillFailure(.start, .binary(
      "openbao.service's ExecStart runs \(noExec), which we cannot execute, and neither bao nor vault is on PATH (\(emptyPath)); set [snapshot.drill] binary"))))

    // Each of those falls back to PATH when something is there.
    #expect(FileManager.default.createFile(atPath: onPath, contents: Data(), attributes: [.posixPermissions: 0o755]))
    for fallback in [answer([wrapper]), answer([]), unreadable, answer([notOurs])] {
      #expect(DrillBinary.resolve(configured: nil, unit: fallback, searchPath: emptyPath) == .success(DrillBinary(path: onPath, source: .searchPath)))
    }
    #expect(DrillBinary.resolve(configured: nil, unit: answer([server]), searchPath: emptyPath)
      == .success(DrillBinary(path: production, source: .unit("openbao.service"))), "the unit's binary wins over PATH")
  }
}

@Suite struct DrillOutcomeTests {
  /// The journal entry says which binary ran and where it came from, so an operator can tell a
  /// drill of the production version from one of whatever was on PATH.
  @Test func passedEntryNamesTheServerBinary() {
    let report = DrillReport(
      facts: SnapshotFacts(id: "2-40", index: 40, term: 2, stateBytes: 100), appliedIndex: 41, sharesUsed: 3, loggedIn: true,
      duration: .milliseconds(8200), server: DrillBinary(path: "/usr/bin/bao", source: .unit("openbao.service")))
    let entry = DrillJournal.entry(path: "/s/a.snap", outcome: .success(report))
    #expect(entry.message == "restore drill passed: /s/a.snap restored (raft index 40, applied 41) and unsealed with 3 of the shares "
      + "vaultkeeper holds, AppRole login ok, in 9s, by /usr/bin/bao (openbao.service's ExecStart)")
    #expect(entry.fields["drill.binary"] == "/usr/bin/bao")
    #expect(entry.fields["snapshot.index"] == "40")
    var unnamed = report
    unnamed.server = nil
    #expect(DrillJournal.entry(path: "/s/a.snap", outcome: .success(unnamed)).fields["drill.binary"] == nil)
  }

  /// No unit or no watcher: nothing is asked. A watcher that cannot answer gives its reason.
  @Test func askingTheUnit() {
    struct Answering: UnitWatcher {
      var result: Result<[UnitCommandLine], UnitWatchUnavailable>
      func watch(unit: String) throws(UnitWatchUnavailable) -> AsyncStream<UnitSnapshot> { throw UnitWatchUnavailable(reason: "unused") }
      func commandLines(unit: String) throws(UnitWatchUnavailable) -> [UnitCommandLine] { try result.get() }
    }
    let commands = [UnitCommandLine(path: "/usr/bin/bao", arguments: ["bao", "server"])]
    #expect(DrillBinary.ask(nil, unit: "vault.service") == nil)
    #expect(DrillBinary.ask(Answering(result: .success(commands)), unit: nil) == nil)
    let answered = DrillBinary.ask(Answering(result: .success(commands)), unit: "openbao.service")
    #expect(answered?.unit == "openbao.service")
    #expect((try? answered?.commands.get()) == commands)
    let failed = DrillBinary.ask(Answering(result: .failure(UnitWatchUnavailable(reason: "no bus"))), unit: "vault.service")
    guard case .failure(let error)? = failed?.commands else {
      Issue.record("expected the watcher's failure, got \(String(describing: failed?.commands))")
      return
    }
    #expect(error.reason == "no bus")
  }

  @Test func sharesFailuresSayWhatTheyMean() {
    #expect(DrillFailureReason.sharesRejected.message
      == "the shares we hold do not unseal this snapshot: it was taken after a rekey, or from another cluster")
    #expect(DrillFailureReason.sharesRejected.isAboutShares)
    #expect(DrillFailureReason.tooFewShares(held: 2, threshold: 3).isAboutShares)
    #expect(DrillFailureReason.tooFewShares(held: 2, threshold: 3).message.contains("needs 3 unseal key shares and vaultkeeper holds 2"))
    #expect(!DrillFailureReason.badSnapshot("gzip").isAboutShares)
    #expect(!DrillFailureReason.timedOut(.seconds(1)).isAboutShares)
  }

  @Test func failureNamesItsStage() {
    let failure = DrillFailure(.unseal, .sharesRejected)
    #expect(failure.description == "unseal: " + DrillFailureReason.sharesRejected.message)
    #expect(DrillFailure(.start, .timedOut(.seconds(600))).description
      == "start: the drill took longer than \(DurationParsing.format(.seconds(600))) ([snapshot.drill] timeout)")
  }

  @Test func namesAreDistinct() {
    let reasons: [DrillFailureReason] = [
      .sharesRejected, .tooFewShares(held: 1, threshold: 2), .notShamir(sealType: "awskms"), .noShares, .binary(""), .badSnapshot(""),
      .serverExited(""), .server(""), .indexBehind(applied: 1, snapshot: 2), .loginFailed(""), .workspace(""), .timedOut(.seconds(1)),
      .cancelled,
    ]
    #expect(Set(reasons.map(\.name)).count == reasons.count)
    #expect(Set(DrillStage.allCases.map(\.title)).count == DrillStage.allCases.count)
  }
}

@Suite struct DrillServerConfigTests {
  @Test func listensOnTheSocketAndLoopbackOnly() {
    let hcl = DrillServerConfig(raftPath: "/s/raft", socketPath: "/s/api.sock", certificateFile: "/s/c.pem", keyFile: "/s/k.pem").hcl
    #expect(hcl.contains("listener \"unix\" {\n  address = \"/s/api.sock\"\n}"))
    #expect(hcl.contains("address = \"127.0.0.1:0\""))
    #expect(hcl.contains("cluster_address = \"127.0.0.1:0\""))
    #expect(hcl.contains("tls_require_and_verify_client_cert = true"))
    #expect(!hcl.contains("tls_disable"))
  }

  @Test func pathsCannotBreakOutOfTheirString() {
    #expect(DrillServerConfig.quoted("/a\"b\\c\nd") == "\"/a\\\"b\\\\c\\nd\"")
  }
}

@Suite struct DrillWorkspaceTests {
  let state: String

  init() throws {
    state = "/tmp/vk-dws-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
  }

  @Test func freshPrivateDirectoryAndLeftoversRemoved() throws {
    defer { try? FileManager.default.removeItem(atPath: state) }
    let leftover = DrillWorkspace.path(stateDirectory: state) + "/raft"
    try FileManager.default.createDirectory(atPath: leftover, withIntermediateDirectories: true)
    #expect(FileManager.default.createFile(atPath: leftover + "/junk", contents: Data("x".utf8)))
    let workspace = try DrillWorkspace(stateDirectory: state)
    #expect(!FileManager.default.fileExists(atPath: leftover))
    let mode = try #require(try FileManager.default.attributesOfItem(atPath: workspace.path)[.posixPermissions] as? Int)
    #expect(mode == 0o700)
    // A second drill meanwhile is refused, and leaves the first one's directory alone.
    #expect(throws: DrillFailure.self) { try DrillWorkspace(stateDirectory: state) }
    #expect(FileManager.default.fileExists(atPath: workspace.path))
    try workspace.remove()
    #expect(!FileManager.default.fileExists(atPath: workspace.path))
  }

  @Test func tooLongForASocketIsRefused() {
    defer { try? FileManager.default.removeItem(atPath: state) }
    let long = state + "/" + String(repeating: "d", count: 100)
    #expect(throws: DrillFailure.self) { try DrillWorkspace(stateDirectory: long) }
  }
}
