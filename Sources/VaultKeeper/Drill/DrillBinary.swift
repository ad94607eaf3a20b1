// SPDX-License-Identifier: Apache-2.0

#if canImport(Glibc)
import Glibc
#endif

/// The server binary a restore drill runs, and where it was found.
///
/// The order, most deliberate first: `[snapshot.drill] binary`; the binary the Vault unit's
/// `ExecStart` runs as `… server …` (the production version, so the drill restores with the
/// binary a real restore would use); `bao`, then `vault`, on PATH.
public struct DrillBinary: Sendable, Equatable {
  public enum Source: Sendable, Equatable {
    case configured
    /// The `ExecStart` of this unit.
    case unit(String)
    case searchPath
  }

  public var path: String
  public var source: Source

  public init(path: String, source: Source) {
    self.path = path
    self.source = source
  }

  /// `/usr/bin/bao (openbao.service's ExecStart)`, for the journal and the terminal.
  public var description: String {
    switch source {
    case .configured: "\(path) ([snapshot.drill] binary)"
    case .unit(let unit): "\(path) (\(unit)'s ExecStart)"
    case .searchPath: "\(path) (on PATH)"
    }
  }

  /// What systemd answered when asked for the Vault unit's start commands.
  public struct UnitAnswer: Sendable {
    public var unit: String
    public var commands: Result<[UnitCommandLine], UnitWatchUnavailable>

    public init(unit: String, commands: Result<[UnitCommandLine], UnitWatchUnavailable>) {
      self.unit = unit
      self.commands = commands
    }
  }

  /// Asks `watcher` for `unit`'s start commands (one blocking D-Bus call: off the pool).
  public static func ask(_ watcher: (any UnitWatcher)?, unit: String?) -> UnitAnswer? {
    guard let watcher, let unit else { return nil }
    do throws(UnitWatchUnavailable) {
      return UnitAnswer(unit: unit, commands: .success(try watcher.commandLines(unit: unit)))
    } catch {
      return UnitAnswer(unit: unit, commands: .failure(error))
    }
  }

  /// Picks the binary (see the type's order). `unit` is nil when no unit is configured or no
  /// bus was asked; `searchPath` is the `$PATH` to look in. Files are checked here (regular,
  /// executable by us), so this runs off the pool.
  public static func resolve(configured: String?, unit: UnitAnswer?, searchPath: String) -> Result<DrillBinary, DrillFailure> {
    if let configured {
      guard isExecutableFile(configured) else {
        return .failure(DrillFailure(.start, .binary("\(configured) is not an executable file ([snapshot.drill] binary)")))
      }
      return .success(DrillBinary(path: configured, source: .configured))
    }
    var unitNote: String?
    if let unit {
      switch unit.commands {
      case .failure(let error):
        unitNote = "cannot read \(unit.unit)'s ExecStart (\(error.reason))"
      case .success(let commands):
        // argv[1] == "server": `vault server -config=…`, `bao server …`. A wrapper (`env`, a
        // shell script) says nothing about which binary it ends up running, so it is passed over.
        let servers = commands.filter { $0.arguments.count >= 2 && $0.arguments[1] == "server" && $0.path.hasPrefix("/") }
        if let usable = servers.first(where: { isExecutableFile($0.path) }) {
          return .success(DrillBinary(path: usable.path, source: .unit(unit.unit)))
        }
        if let server = servers.first {
          unitNote = "\(unit.unit)'s ExecStart runs \(server.path), which we cannot execute"
        } else if commands.isEmpty {
          unitNote = "\(unit.unit) has no ExecStart (is it installed?)"
        } else {
          unitNote = "\(unit.unit)'s ExecStart runs no `… server` command"
        }
      }
    }
    for name in ["bao", "vault"] {
      for directory in searchPath.split(separator: ":") where directory.hasPrefix("/") {
        let candidate = "\(directory)/\(name)"
        if isExecutableFile(candidate) { return .success(DrillBinary(path: candidate, source: .searchPath)) }
      }
    }
    let prefix = unitNote.map { "\($0), and " } ?? ""
    return .failure(DrillFailure(.start, .binary("\(prefix)neither bao nor vault is on PATH (\(searchPath)); set [snapshot.drill] binary")))
  }

  private static func isExecutableFile(_ path: String) -> Bool {
    FileAccess.kind(path: path) == .regular && access(path, X_OK) == 0
  }
}
