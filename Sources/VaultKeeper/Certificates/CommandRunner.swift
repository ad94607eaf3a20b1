// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command (an argv array, no shell) with a timeout and collects its output: the
/// `command` reload mode. posix_spawn rather than Foundation's `Process`, which would link all
/// of Foundation into the daemon.
///
/// The child gets stdin from /dev/null, one pipe for stdout and stderr (so the journal shows
/// them in the order written), a process group of its own (so a timeout kills whatever it
/// started too), an empty signal mask and default dispositions (the daemon blocks SIGTERM and
/// friends for its own signal handling; a child inheriting that could not be stopped), no
/// descriptor of ours beyond 0–2, and a clean environment (`environment`), not the daemon's.
public struct CommandRunner: Sendable {
  /// The child's whole environment. Nothing of the daemon's own reaches it: not
  /// `CREDENTIALS_DIRECTORY` (the unseal keys), `NOTIFY_SOCKET`, `WATCHDOG_*`, `INVOCATION_ID`,
  /// nor whatever a drop-in put there. A bare program name is looked up in this `PATH` too.
  /// A command that needs more sets it itself (`["/usr/bin/env", "NAME=value", "cmd", …]`).
  public static let environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]

  public var argv: [String]
  public var timeout: Duration
  /// How long the process group gets between SIGTERM and SIGKILL.
  public var killGrace: Duration
  /// Output kept, in bytes; the rest is read (so the child never blocks on a full pipe) and
  /// counted, not kept.
  public var outputLimit: Int

  /// Written to the child's stdin while it runs, under the same timeout, then closed; nil: stdin
  /// is /dev/null. Meant for small input (a notification's JSON): cut at `inputLimit`.
  public var input: [UInt8]?
  /// Variables added to the clean `environment` (`NAME=value`), e.g. `VAULTKEEPER_EVENT=…`.
  public var extraEnvironment: [String]

  /// The most input a child is given; the rest is cut.
  public static let inputLimit = 60 * 1024

  public init(
    argv: [String], timeout: Duration, killGrace: Duration = .seconds(2), outputLimit: Int = 64 * 1024, input: [UInt8]? = nil,
    extraEnvironment: [String] = []
  ) {
    self.input = input
    self.extraEnvironment = extraEnvironment
    self.argv = argv
    self.timeout = timeout
    self.killGrace = killGrace
    self.outputLimit = outputLimit
  }

  public struct Result: Sendable, Equatable {
    public enum Termination: Sendable, Equatable {
      case exited(Int32)
      /// Killed by a signal we did not send.
      case signaled(Int32)
      /// Still running at the timeout; the last signal we had to send (SIGTERM, or SIGKILL when
      /// SIGTERM was not enough).
      case timedOut(lastSignal: Int32)
      /// posix_spawn failed: the reason, e.g. `No such file or directory`.
      case couldNotStart(String)
    }
    public var termination: Termination
    /// The first `outputLimit` bytes of stdout and stderr, as UTF-8 (invalid bytes replaced).
    public var output: String
    /// How many bytes of output were read beyond `outputLimit`.
    public var droppedBytes: Int
    public var duration: Duration
  }

  /// Runs the command on a thread of its own; the cooperative pool never waits for it.
  public func run() async -> Result {
    let runner = self
    return await OffPool.run { runner.runBlocking() }
  }

  /// Runs the command on the calling thread, blocking until it ended or was killed.
  func runBlocking() -> Result {
    let clock = ContinuousClock()
    let start = clock.now
    func finished(_ termination: Result.Termination, _ output: OutputCollector = OutputCollector(limit: 0)) -> Result {
      Result(termination: termination, output: output.text, droppedBytes: output.dropped, duration: clock.now - start)
    }
    guard let program = argv.first, !program.isEmpty else { return finished(.couldNotStart("no command given")) }

    var ends: [Int32] = [-1, -1]
    // pipe2(O_CLOEXEC) is not visible without _GNU_SOURCE. The window until fcntl matters only
    // for a spawn on another thread meanwhile, and only without posix_spawn's closefrom (glibc
    // before 2.34), which closes every descriptor from 3 in the child anyway.
    guard pipe(&ends) == 0 else { return finished(.couldNotStart("pipe: \(String(cString: strerror(errno)))")) }
    let (readEnd, writeEnd) = (ends[0], ends[1])
    defer { close(readEnd) }
    _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
    _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
    _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)

    var inputRead: Int32?
    var feeder: InputFeeder?
    if let input {
      var inputEnds: [Int32] = [-1, -1]
      guard pipe(&inputEnds) == 0 else {
        close(writeEnd)
        return finished(.couldNotStart("pipe: \(String(cString: strerror(errno)))"))
      }
      _ = fcntl(inputEnds[0], F_SETFD, FD_CLOEXEC)
      _ = fcntl(inputEnds[1], F_SETFD, FD_CLOEXEC)
      // Non-blocking: what does not fit into the pipe now is written while the child reads,
      // under the same deadline (a pipe can be one page when the user's pipe budget is spent).
      _ = fcntl(inputEnds[1], F_SETFL, fcntl(inputEnds[1], F_GETFL) | O_NONBLOCK)
      inputRead = inputEnds[0]
      feeder = InputFeeder(fd: inputEnds[1], bytes: Array(input.prefix(Self.inputLimit)))
      feeder?.feed()
    }
    defer { feeder?.close() }
    let spawned = Self.spawn(argv, output: writeEnd, input: inputRead, environment: Self.environment + extraEnvironment)
    close(writeEnd)  // the child holds its own copy; EOF comes when every writer is gone
    if let inputRead { close(inputRead) }
    let pid: pid_t
    switch spawned {
    case .failure(let failure): return finished(.couldNotStart(failure.reason))
    case .success(let child): pid = child
    }

    var output = OutputCollector(limit: outputLimit)
    var outputOpen = true
    var status: Int32?
    var exitedAt: ContinuousClock.Instant?
    var lastSignal: Int32?
    var signalledAt = start
    let deadline = start + timeout
    while true {
      feeder?.feed()
      if outputOpen { outputOpen = output.drain(readEnd, waitingUpTo: .milliseconds(20)) } else { usleep(10_000) }
      if status == nil {
        var raw: Int32 = 0
        if waitpid(pid, &raw, WNOHANG) == pid {
          status = raw
          exitedAt = clock.now
        }
      }
      if let status, let exitedAt {
        // Something it started may still hold the pipe; its output is not worth waiting long for.
        if !outputOpen || clock.now - exitedAt > .milliseconds(200) {
          if let lastSignal { return finished(.timedOut(lastSignal: lastSignal), output) }
          return finished(Self.termination(status), output)
        }
        continue
      }
      let now = clock.now
      if lastSignal == nil, now >= deadline {
        kill(-pid, SIGTERM)
        lastSignal = SIGTERM
        signalledAt = now
      } else if lastSignal == SIGTERM, now >= signalledAt + killGrace {
        kill(-pid, SIGKILL)
        lastSignal = SIGKILL
        signalledAt = now
      } else if lastSignal == SIGKILL, now >= signalledAt + .seconds(5) {
        // Not dead five seconds after SIGKILL: stuck in the kernel (D state, a hung NFS
        // mount). Give up waiting rather than hang the reload; it stays a zombie child.
        return finished(.timedOut(lastSignal: SIGKILL), output)
      }
    }
  }

  /// Starts `argv` in a process group of its own, with the clean `environment`, stdin from
  /// /dev/null, stdout and stderr on `output`, no other descriptor of ours, and default signal
  /// handling. Shared by every child the daemon starts (reload commands, the restore drill's
  /// server).
  ///
  /// With `parentDeathHelper` (the path of a vaultkeeper executable, normally
  /// `ownExecutable`), the child is started through that binary's hidden
  /// `parentDeathSubcommand`, which asks the kernel for SIGKILL when its parent goes away and
  /// then execs `argv` (same pid, same group, same clean environment): the child dies with us
  /// even when we are SIGKILLed or crash. posix_spawn has no way to set PR_SET_PDEATHSIG itself.
  /// The kernel sends it when the *thread* that spawned the child exits, so a caller opting in
  /// must call this from a thread that outlives the child (`DrillServerProcess` does).
  /// - Returns: the child's pid, or why it could not be started.
  static func spawn(
    _ argv: [String], output: Int32, input: Int32? = nil, environment: [String] = CommandRunner.environment, parentDeathHelper: String? = nil
  ) -> Swift.Result<pid_t, SpawnFailure> {
    var actions = posix_spawn_file_actions_t()
    var attributes = posix_spawnattr_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawnattr_init(&attributes)
    defer {
      posix_spawn_file_actions_destroy(&actions)
      posix_spawnattr_destroy(&attributes)
    }
    if let input {
      posix_spawn_file_actions_adddup2(&actions, input, 0)
    } else {
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    }
    posix_spawn_file_actions_adddup2(&actions, output, 1)
    posix_spawn_file_actions_adddup2(&actions, output, 2)
    if let closeFrom = Self.addCloseFrom {
      _ = closeFrom(&actions, 3)
    } else {
      for fd in inheritableDescriptors() where fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
    }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    posix_spawnattr_setpgroup(&attributes, 0)
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    var allSignals = sigset_t()
    sigfillset(&allSignals)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)

    // A bare name (`systemctl`) is looked up in the child's PATH, as a shell would; not in the
    // daemon's (posix_spawnp would use ours).
    guard let program = argv[0].contains("/") ? argv[0] : Self.lookUp(argv[0]) else {
      return .failure(SpawnFailure(reason: "\(argv[0]): not found in \(Self.environment[0])"))
    }
    var executable = program
    var childArgv = argv
    if let helper = parentDeathHelper {
      executable = helper
      childArgv = [helper, Self.parentDeathSubcommand, "\(getpid())", program, "--"] + argv
    }
    var arguments: [UnsafeMutablePointer<CChar>?] = childArgv.map { strdup($0) }
    arguments.append(nil)
    var variables: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) }
    variables.append(nil)
    defer { for pointer in arguments + variables { free(pointer) } }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, executable, &actions, &attributes, arguments, variables)
    guard result == 0 else { return .failure(SpawnFailure(reason: String(cString: strerror(result)))) }
    return .success(pid)
  }

  /// The hidden `vaultkeeper` subcommand that execs a child dying with its parent:
  /// `vaultkeeper exec-dying-with-parent PARENT-PID PROGRAM -- ARGV…`.
  public static let parentDeathSubcommand = "exec-dying-with-parent"

  /// The running vaultkeeper binary, for `parentDeathHelper`. The kernel's link to our own
  /// image: it works even after a package upgrade replaced or removed the file on disk.
  public static let ownExecutable = "/proc/self/exe"

  /// The first executable regular file called `name` in the directories of `environment`'s PATH.
  static func lookUp(_ name: String) -> String? {
    let directories = environment[0].dropFirst("PATH=".count).split(separator: ":")
    for directory in directories {
      let candidate = "\(directory)/\(name)"
      var info = stat()
      if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
  }

  /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+): the child closes every
  /// descriptor from 3 up, whatever other threads open meanwhile. Swift's Glibc module does not
  /// declare it (it needs _GNU_SOURCE), so it is looked up by name once; the core imports no C
  /// module of its own to declare it.
  static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
  }()

  /// Without `addclosefrom_np` (older glibc): our descriptors without FD_CLOEXEC, which the
  /// child would otherwise inherit (every descriptor the daemon opens itself has it; this
  /// guards against a library that forgot). A descriptor opened by another thread after this
  /// look can still slip through. glibc ignores a close action for one closed meanwhile.
  static func inheritableDescriptors() -> [Int32] {
    guard let directory = opendir("/proc/self/fd") else { return [] }
    defer { closedir(directory) }
    let own = dirfd(directory)
    var found: [Int32] = []
    while let entry = readdir(directory) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      guard let fd = Int32(name), fd != own else { continue }
      let flags = fcntl(fd, F_GETFD)
      if flags >= 0, flags & FD_CLOEXEC == 0 { found.append(fd) }
    }
    return found
  }

  struct SpawnFailure: Error {
    var reason: String
  }

  /// WIFEXITED/WEXITSTATUS/WTERMSIG are macros Swift cannot import; this is their glibc
  /// definition.
  static func termination(_ status: Int32) -> Result.Termination {
    let signal = status & 0x7f
    if signal == 0 { return .exited((status >> 8) & 0xff) }
    return .signaled(signal)
  }
}

/// Writes a child's stdin through a non-blocking pipe, as far as the child reads it; closes it
/// once everything is written (the child sees EOF) or the child closed its end.
struct InputFeeder {
  private var fd: Int32
  private let bytes: [UInt8]
  private var offset = 0

  init(fd: Int32, bytes: [UInt8]) {
    self.fd = fd
    self.bytes = bytes
  }

  mutating func feed() {
    guard fd >= 0 else { return }
    while offset < bytes.count {
      let written = bytes.withUnsafeBytes { raw in raw.baseAddress.map { write(fd, $0 + offset, raw.count - offset) } ?? -1 }
      if written > 0 {
        offset += written
        continue
      }
      if written < 0 && errno == EINTR { continue }
      if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
      break  // EPIPE: the child closed its stdin; the rest is not wanted
    }
    close()
  }

  mutating func close() {
    guard fd >= 0 else { return }
    Glibc.close(fd)
    fd = -1
  }
}

/// Keeps the first `limit` bytes read from a pipe and counts the rest.
struct OutputCollector {
  let limit: Int
  private(set) var bytes: [UInt8] = []
  private(set) var dropped = 0

  init(limit: Int) { self.limit = limit }

  var text: String { String(decoding: bytes, as: UTF8.self) }

  /// Waits up to `timeout` for output and reads what is there.
  /// - Returns: false once the pipe is at EOF (or broken).
  mutating func drain(_ fd: Int32, waitingUpTo timeout: Duration) -> Bool {
    var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    let ready = poll(&descriptor, 1, Int32(clamping: timeout.milliseconds))
    if ready <= 0 { return ready == 0 || errno == EINTR }
    var chunk = [UInt8](repeating: 0, count: 16 * 1024)
    while true {
      let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if count > 0 {
        let kept = min(count, limit - bytes.count)
        bytes.append(contentsOf: chunk[0..<kept])
        dropped += count - kept
        continue
      }
      if count == 0 { return false }
      if errno == EINTR { continue }
      return errno == EAGAIN || errno == EWOULDBLOCK
    }
  }
}
