// SPDX-License-Identifier: Apache-2.0
/// The `command` reload mode: runs the configured argv (e.g. `["/usr/local/bin/vault-reload"]`)
/// and judges the reload by its exit status.
public struct CommandReloader: VaultReloader {
  public var runner: CommandRunner

  public init(runner: CommandRunner) { self.runner = runner }

  public var summary: String { "reload command \(runner.argv.joined(separator: " "))" }

  public func reload() async -> ReloadOutcome {
    Self.outcome(of: await runner.run(), timeout: runner.timeout)
  }

  /// Pure: how a finished command reads in the journal.
  static func outcome(of result: CommandRunner.Result, timeout: Duration) -> ReloadOutcome {
    var output = result.output
    if result.droppedBytes > 0 { output += "\n[\(result.droppedBytes) more bytes of output not kept]" }
    let (verdict, detail): (ReloadOutcome.Result, String) =
      switch result.termination {
      case .exited(0): (.succeeded, "exit status 0")
      case .exited(let code): (.failed, "exit status \(code)")
      case .signaled(let signal): (.failed, "killed by \(signalName(signal))")
      case .timedOut(let signal): (.timedOut, "still running after \(DurationParsing.format(timeout)), killed with \(signalName(signal))")
      case .couldNotStart(let reason): (.failed, "could not be started: \(reason)")
      }
    return ReloadOutcome(result: verdict, detail: detail, output: output, duration: result.duration)
  }
}
