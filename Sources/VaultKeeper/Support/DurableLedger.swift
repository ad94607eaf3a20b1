// SPDX-License-Identifier: Apache-2.0
/// A small state file a duty keeps across restarts (the snapshot ledger, the drill ledger),
/// written atomically and fsynced by `save(path:)`.
public protocol DurableLedger: Sendable {
  func save(path: String) throws(FileAccess.Failure)
}

/// Saves a duty's ledger and remembers whether the last save failed, so that a disk that keeps
/// refusing is reported once, not at every save.
struct LedgerSaver {
  let path: String
  private(set) var failing = false

  init(path: String, failing: Bool = false) {
    self.path = path
    self.failing = failing
  }

  /// Writes `ledger` off the cooperative pool (fsync). Returns the error when this save failed
  /// and the previous one did not: the caller reports it, once per run of failures.
  mutating func save(_ ledger: some DurableLedger) async -> FileAccess.Failure? {
    let path = path
    let saved: Result<Void, FileAccess.Failure> = await OffPool.run {
      do throws(FileAccess.Failure) { return .success(try ledger.save(path: path)) } catch { return .failure(error) }
    }
    switch saved {
    case .success:
      failing = false
      return nil
    case .failure(let error):
      defer { failing = true }
      return failing ? nil : error
    }
  }
}
