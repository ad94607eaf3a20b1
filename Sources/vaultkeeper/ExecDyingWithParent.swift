// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Platform
import VaultKeeper

/// `vaultkeeper exec-dying-with-parent PARENT-PID PROGRAM -- ARGV…`, hidden: how the restore
/// drill starts its throwaway server so that it never outlives vaultkeeper, even a SIGKILLed or
/// crashed one (`CommandRunner.spawn`'s `parentDeathHelper`, `ParentDeathExec`). Not for people.
struct ExecDyingWithParent: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: CommandRunner.parentDeathSubcommand,
    abstract: "Internal: exec a program that the kernel kills when its parent dies.",
    shouldDisplay: false)

  @Argument(help: "The pid of the process that must outlive the program.")
  var parent: Int32

  @Argument(help: "The program to execute.")
  var program: String

  @Argument(parsing: .postTerminator, help: "Its argv, argv[0] included.")
  var command: [String] = []

  func run() throws {
    guard !command.isEmpty else {
      printError("\(Self.configuration.commandName ?? ""): no argv after --")
      throw Exit.usage
    }
    let reason = ParentDeathExec.exec(expectedParent: parent, program: program, argv: command)
    // Its output is the child's log (the drill directory's server.log).
    printError("\(Self.configuration.commandName ?? ""): \(reason)")
    // 127, as a shell reports a command it could not execute.
    throw ExitCode(127)
  }
}
