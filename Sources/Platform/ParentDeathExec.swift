// SPDX-License-Identifier: Apache-2.0
import CLinux
import VaultKeeper

#if canImport(Glibc)
import Glibc
#endif

/// The second half of `CommandRunner.spawn(_:output:parentDeathHelper:)`: runs in the freshly
/// spawned helper process (already in its own process group, with the clean environment and no
/// descriptor of the daemon's), asks the kernel to SIGKILL it when its parent goes away, and
/// becomes the real child with execve(). The pid stays the same, so the parent's bookkeeping
/// (the process group it signals, the pid it reaps) is unchanged.
public enum ParentDeathExec {
  /// Does not return when it worked.
  /// - Parameters:
  ///   - expectedParent: the pid that spawned us. When `getppid()` differs after the prctl, the
  ///     parent died before we could ask (we were reparented) and nobody would ever kill us.
  ///   - program: the path to execute.
  ///   - argv: the child's argv, `argv[0]` included.
  /// - Returns: why the child could not be started.
  public static func exec(expectedParent: Int32, program: String, argv: [String]) -> String {
    guard clinux_set_parent_death_signal(SIGKILL) == 0 else {
      return "prctl(PR_SET_PDEATHSIG): \(String(cString: strerror(errno)))"
    }
    // Checked after the prctl, not before: from here on a parent's death kills us, so a parent
    // still there now means we are covered.
    let parent = getppid()
    guard parent == expectedParent else {
      return "its parent \(expectedParent) is gone (now \(parent)); not starting \(program)"
    }
    var arguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
    arguments.append(nil)
    var variables: [UnsafeMutablePointer<CChar>?] = CommandRunner.environment.map { strdup($0) }
    variables.append(nil)
    defer { for pointer in arguments + variables { free(pointer) } }
    execve(program, arguments, variables)
    return "\(program): \(String(cString: strerror(errno)))"
  }
}
