// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Synchronization
import Testing

/// The root of every suite that changes the process environment (`NOTIFY_SOCKET`,
/// `WATCHDOG_*`, `JOURNAL_STREAM`, `DBUS_SYSTEM_BUS_ADDRESS`). `.serialized` applies to the
/// nested suites too, so no two of them race on `setenv`.
@Suite(.serialized) struct ProcessEnvironmentTests {
  @Test func withEnvironmentRestoresPreviousValues() {
    let name = "VAULTKEEPER_SYSTEMD_TEST_VARIABLE"
    unsetenv(name)
    let inside = withEnvironment([name: "set"]) { getenv(name).map { String(cString: $0) } }
    #expect(inside == "set")
    #expect(getenv(name) == nil)
  }
}

/// Sets (or, for nil, unsets) environment variables for the duration of `body`, then restores
/// the previous values.
func withEnvironment<T>(_ values: [String: String?], _ body: () throws -> T) rethrows -> T {
  var saved: [String: String?] = [:]
  for (name, value) in values {
    // `updateValue`, not subscript assignment: assigning nil through the subscript would drop
    // the entry and the variable would not be unset again afterwards.
    saved.updateValue(getenv(name).map { String(cString: $0) }, forKey: name)
    if let value { setenv(name, value, 1) } else { unsetenv(name) }
  }
  defer {
    for (name, value) in saved {
      if let value { setenv(name, value, 1) } else { unsetenv(name) }
    }
  }
  return try body()
}

func withEnvironment<T>(_ values: [String: String?], _ body: () async throws -> T) async rethrows -> T {
  var saved: [String: String?] = [:]
  for (name, value) in values {
    // `updateValue`, not subscript assignment: assigning nil through the subscript would drop
    // the entry and the variable would not be unset again afterwards.
    saved.updateValue(getenv(name).map { String(cString: $0) }, forKey: name)
    if let value { setenv(name, value, 1) } else { unsetenv(name) }
  }
  defer {
    for (name, value) in saved {
      if let value { setenv(name, value, 1) } else { unsetenv(name) }
    }
  }
  return try await body()
}

struct TestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// A fresh directory under `$TMPDIR` (or /tmp), removed with `remove()`.
struct TemporaryDirectory {
  let path: String

  init() throws {
    let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    var template = Array("\(base)/vk-systemd-tests.XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw TestFailure("mkdtemp failed: errno \(errno)") }
    path = String(cString: made)
  }

  func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A pipe whose read end is non-blocking, so tests can drain what was written without hanging.
struct TestPipe {
  let readEnd: Int32
  let writeEnd: Int32

  init() throws {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw TestFailure("pipe failed: errno \(errno)") }
    readEnd = fds[0]
    writeEnd = fds[1]
    _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
  }

  /// Everything written so far.
  func drain() -> String {
    var collected: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = read(readEnd, &chunk, chunk.count)
      if count <= 0 { break }
      collected.append(contentsOf: chunk[0..<count])
    }
    return String(decoding: collected, as: UTF8.self)
  }

  func close() {
    _ = Glibc.close(readEnd)
    _ = Glibc.close(writeEnd)
  }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes. The bound only turns a hang
/// into a failure (a full parallel run can keep a task from a cooperative thread for seconds),
/// so it is generous.
func eventually(timeout: Duration = .seconds(60), _ condition: () -> Bool) async -> Bool {
  let deadline = ContinuousClock.now + timeout
  while ContinuousClock.now < deadline {
    if condition() { return true }
    try? await Task.sleep(for: .milliseconds(10))
  }
  return condition()
}

/// Collects what an `AsyncStream` yields, on a task of its own, so tests can wait for values
/// with a deadline instead of blocking on the iterator.
final class StreamCollector<Element: Sendable>: Sendable {
  private struct State {
    var elements: [Element] = []
    var finished = false
  }

  private final class Box: Sendable {
    let state = Mutex(State())
  }

  private let box = Box()
  private let task: Task<Void, Never>

  init(_ stream: AsyncStream<Element>) {
    let box = self.box
    task = Task {
      for await element in stream {
        box.state.withLock { $0.elements.append(element) }
      }
      box.state.withLock { $0.finished = true }
    }
  }

  var elements: [Element] { box.state.withLock { $0.elements } }
  var isFinished: Bool { box.state.withLock { $0.finished } }

  /// Cancels the consuming task, which terminates the stream.
  func cancel() { task.cancel() }
}
