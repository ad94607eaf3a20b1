// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import VaultKeeper

import Curl

extension CurlTransportTests {
  /// Timeouts, cancellation, shutdown, connection-closed events and per-node threads. Nothing
  /// here asserts how fast anything is: "promptly" is shown by ordering (an answer arrives while
  /// something slower is still pending) and by the kind of error (a cancellation or a server's
  /// close, not a timeout), and every wait has a generous ceiling that only turns a hang into a
  /// failure.
  @Suite struct Timing {
    @Test func hungRequestTimesOut() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        try simulator.fault(#"{"kind":"hang"}"#)
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let started = ContinuousClock.now
          let error = await expectFailure(transport, timeout: .milliseconds(500))
          let elapsed = started.duration(to: .now)
          #expect(error?.kind == .timeout, "\(String(describing: error))")
          #expect(error?.serverAction == nil, "a timeout says nothing about the server process")
          // A lower bound only (load can only make it longer): the timeout was waited for.
          #expect(elapsed >= .milliseconds(400), "returned before the timeout could have elapsed")
        }
      }
    }

    @Test func handshakeThatNeverStartsTimesOut() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        // The server accepts TCP and then never speaks TLS.
        try simulator.fault(#"{"kind":"hang","stage":"accept"}"#)
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let error = await expectFailure(transport, timeout: .milliseconds(500))
          #expect(error?.kind == .timeout, "\(String(describing: error))")
          #expect(error?.serverAction == nil)
        }
      }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        try simulator.fault(#"{"kind":"hang"}"#)
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          // The transfer's own timeout is far away: ending it any other way than by the
          // cancellation would be a timeout error, not the `.cancelled` checked below.
          let task = Task { try await transport.send(.health, timeout: requestCeiling) }
          try await simulator.waitForState { ($0["connections_open"] as? Int ?? 0) >= 1 }  // the transfer is under way
          task.cancel()
          let result = await task.result
          #expect((result.error as? TransportError)?.kind == .cancelled, "\(result)")

          // The transport is still usable afterwards, on a fresh connection.
          try simulator.clearFaults()
          let response = try await transport.send(.health, timeout: requestCeiling)
          #expect(response.status == 503)
          #expect(response.newConnection)
        }
      }
    }

    @Test func alreadyCancelledTaskSendsNothing() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await transport.send(.health, timeout: requestCeiling)
          }
          let result = await task.result
          #expect((result.error as? TransportError)?.kind == .cancelled, "\(result)")
          let seen = try simulator.requests()
          #expect(seen.isEmpty)
        }
      }
    }

    /// A request waiting behind a hung one should also end promptly when its task is cancelled:
    /// its answer comes while the hung one is still pending, i.e. it did not wait its turn.
    @Test func cancellingAQueuedRequestReturnsPromptly() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        try simulator.fault(#"{"kind":"hang"}"#)
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let hungDone = Flag()
          let hung = Task {
            defer { hungDone.set() }
            return try await transport.send(.health, timeout: requestCeiling)
          }
          try await simulator.waitForState { ($0["connections_open"] as? Int ?? 0) >= 1 }  // the hung one runs
          let queued = Task { try await transport.send(.health, timeout: requestCeiling) }
          try await waitForQueuedJobs(transport, 1)  // queued behind the hung one, not yet cancelled
          queued.cancel()
          let result = await queued.result
          #expect((result.error as? TransportError)?.kind == .cancelled, "\(result)")
          #expect(!hungDone.isSet, "the cancelled request waited for the hung one to end")
          #expect(transport.pendingJobCount == 0, "the cancelled request left the queue")
          hung.cancel()
          _ = await hung.result
        }
      }
    }

    @Test func shutdownFailsQueuedRequestsAndLaterOnes() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        try simulator.fault(#"{"kind":"hang"}"#)
        let transport = CurlTransport(settings: CurlTransport.Settings(node: try makeNode(simulator.url(), caFile: pki.ca)))
        defer { transport.shutdown() }  // idempotent; covers early exits
        let hung = Task { try await transport.send(.health, timeout: requestCeiling) }
        try await simulator.waitForState { ($0["connections_open"] as? Int ?? 0) >= 1 }  // the hung one runs
        let queued = Task { try await transport.send(.health, timeout: requestCeiling) }
        try await waitForQueuedJobs(transport, 1)  // queued behind the hung one before the shutdown
        transport.shutdown()
        let queuedResult = await queued.result
        // Failed by shutdown itself while still queued (not run after the hung transfer, which
        // would end in a timeout): shutdown answers queued jobs before it waits for the thread.
        // (No wall-clock bound here: shutdown then waits up to ~1 s for the running transfer.)
        #expect(queuedResult.error as? TransportError == TransportError(.cancelled, "transport is shut down"), "\(queuedResult)")

        let after = await expectFailure(transport)
        #expect(after?.kind == .cancelled)

        hung.cancel()
        let hungResult = await hung.result
        #expect(hungResult.error is TransportError)
      }
    }

    @Test func connectionClosedByTheServerIsReported() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let events = EventCounter(transport.connectionClosedEvents())
          let first = try await transport.send(.health, timeout: requestCeiling)
          #expect(first.status == 503)

          // An idle, healthy connection produces no event (TLS session tickets and the like
          // must not look like a close). An observation window, not a precondition: load can
          // only delay a wrong event past it, never make a right run fail.
          try await Task.sleep(for: .milliseconds(400))
          #expect(events.count == 0)

          try simulator.control("POST", "/restart", #"{"down_ms":100}"#)
          let reported = await events.wait { $0.count >= 1 }
          #expect(reported, "no connection-closed event after the server dropped the connection")

          try await simulator.waitForState { $0["down"] as? Bool == false }
          let again = try await transport.send(.health, timeout: requestCeiling)
          #expect(again.status == 503)
          #expect(again.newConnection)
          // One close, one event: the dead socket is not reported again and again (an
          // observation window, as above).
          try await Task.sleep(for: .milliseconds(200))
          #expect(events.count == 1)
        }
      }
    }

    /// A frozen server (SIGSTOP) still has its listening socket: the kernel accepts our TCP
    /// connection into the queue and nothing answers. That is a timeout, never a sign of a new
    /// process. When the frozen process is killed, the kernel resets the queued connection: the
    /// server's doing, reported as such. A listener that never accepts stands in for both.
    @Test func frozenServerTimesOutAndItsDeathResetsTheConnection() async throws {
      let listener = try FrozenListener()
      defer { listener.close() }
      try await withTransport(try makeNode("https://127.0.0.1:\(listener.port)")) { transport in
        let timedOut = await expectFailure(transport, timeout: .milliseconds(300))
        #expect(timedOut?.kind == .timeout, "\(String(describing: timedOut))")
        #expect(timedOut?.serverAction == nil, "\(String(describing: timedOut))")

        let pending = Task { await expectFailure(transport, timeout: requestCeiling) }
        try await listener.waitForQueued(2)  // our second connection waits in the queue
        listener.close()  // what the kernel does to the queue of a process that dies
        let reset = await pending.value
        #expect(reset?.serverAction == .closed, "\(String(describing: reset))")
        // Which step the reset lands in depends on whether libcurl had seen its connect complete
        // (then the TLS handshake fails) or not yet (then the connect does): either way the
        // server's kernel reset it, never a timeout.
        #expect(reset?.kind == .tls || reset?.kind == .connect, "\(String(describing: reset))")
      }
    }

    /// Bytes arriving on an idle kept-alive connection are not a close. Over HTTP/2 libcurl
    /// keeps the connection after a request timed out, and a server that was frozen (SIGSTOP)
    /// answers those requests late when it resumes: that must not read as a Vault restart.
    /// Only the server shutting its side (or resetting) is.
    @Test func lateDataOnAnIdleConnectionIsNotAClose() async throws {
      let server = try RawHTTPServer()
      defer { server.stop() }
      try await withTransport(try makeNode("http://127.0.0.1:\(server.port)")) { transport in
        let events = EventCounter(transport.connectionClosedEvents())
        let first = try await transport.send(.health, timeout: requestCeiling)
        #expect(first.status == 200)
        try server.sendOnIdleConnection("late")
        // The claim is that nothing happens: an observation window (the transport's idle poll
        // wakes on the bytes at once if it takes them for a close). Load can only delay a wrong
        // event past it, never make a right run fail.
        try await Task.sleep(for: .milliseconds(400))
        #expect(events.count == 0, "late data on an idle connection was taken for a close")

        server.closeConnection()
        let reported = await events.wait { $0.count >= 1 }
        #expect(reported, "no connection-closed event after the server closed the connection")
      }
    }

    @Test func connectionClosedEventsFinishOnShutdown() async throws {
      let port = try unusedLoopbackPort()
      let transport = CurlTransport(settings: CurlTransport.Settings(node: try makeNode("http://127.0.0.1:\(port)")))
      let events = EventCounter(transport.connectionClosedEvents())
      transport.shutdown()
      let finished = await events.wait { $0.finished }
      #expect(finished)
      #expect(events.count == 0)
    }

    /// Each transport has its own thread: four nodes stuck in blocking transfers (more than
    /// the cooperative pool has threads) do not hold up a fifth. Shown by order: the fifth's
    /// answers all come while the stuck transfers are still pending.
    @Test func hungNodesDoNotBlockOtherNodes() async throws {
      let pki = try await testPKI()
      try await withSimulator { stuck in
        try await withSimulator { healthy in
          try stuck.fault(#"{"kind":"hang"}"#)
          let stuckTransports = try (0..<4).map { _ in
            CurlTransport(settings: CurlTransport.Settings(node: try makeNode(stuck.url(), caFile: pki.ca)))
          }
          defer { for transport in stuckTransports { transport.shutdown() } }
          let stuckDone = Flag()
          let stuckTasks = stuckTransports.map { transport in
            Task {
              defer { stuckDone.set() }
              return try await transport.send(.health, timeout: requestCeiling)
            }
          }
          try await stuck.waitForState { ($0["connections_open"] as? Int ?? 0) >= 4 }

          try await withTransport(try makeNode(healthy.url(), caFile: pki.ca)) { transport in
            for _ in 0..<5 {
              let status = try await transport.send(.health, timeout: requestCeiling).status
              #expect(status == 503)
            }
          }
          #expect(!stuckDone.isSet, "the hung requests should still be hanging")

          // Clearing the fault makes the simulator drop the hung connections without an answer:
          // each stuck request ends then with that error (its own timeout, far away, would be a
          // timeout error).
          try stuck.clearFaults()
          for task in stuckTasks {
            let result = await task.result
            #expect((result.error as? TransportError)?.kind == .protocolError, "\(result)")
            #expect((result.error as? TransportError)?.serverAction == .closed, "\(result)")
          }
        }
      }
    }
  }
}

/// A loopback listener that never accepts: the kernel completes TCP handshakes into its queue
/// and nothing ever answers, like a stopped (SIGSTOP) server. `close()` is what the kernel does
/// to that queue when the process dies: it resets every queued connection.
final class FrozenListener: Sendable {
  let port: Int
  private let fd = Mutex<Int32>(-1)

  init() throws {
    let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socketFD >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(socketFD, $0, length) == 0 && getsockname(socketFD, $0, &length) == 0
      }
    }
    guard ok, listen(socketFD, 16) == 0 else {
      Glibc.close(socketFD)
      throw TestFailure("bind/listen: errno \(errno)")
    }
    port = Int(UInt16(bigEndian: address.sin_port))
    fd.withLock { $0 = socketFD }
  }

  /// Connections completed into the queue and not accepted (TCP_INFO of a listening socket).
  var queued: Int {
    fd.withLock { socketFD in
      guard socketFD >= 0 else { return 0 }
      var info = tcp_info()
      var length = socklen_t(MemoryLayout<tcp_info>.size)
      guard getsockopt(socketFD, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return 0 }
      return Int(info.tcpi_unacked)
    }
  }

  func waitForQueued(_ count: Int, within limit: Duration = .seconds(60)) async throws {
    let deadline = ContinuousClock.now + limit
    while queued < count {
      guard ContinuousClock.now < deadline else { throw TestFailure("only \(queued) of \(count) connections queued") }
      try await Task.sleep(for: .milliseconds(10))
    }
  }

  func close() {
    fd.withLock { socketFD in
      if socketFD >= 0 { Glibc.close(socketFD) }
      socketFD = -1
    }
  }

  deinit { close() }
}

extension Result {
  var error: Failure? {
    if case .failure(let error) = self { return error }
    return nil
  }
}
