import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif
import Testing
import VaultKeeper

import Curl

extension CurlTransportTests {
  /// Timeouts, cancellation, shutdown, connection-closed events and per-node threads. Time
  /// bounds here are generous sanity limits, not performance requirements.
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
          #expect(elapsed >= .milliseconds(400), "returned before the timeout could have elapsed")
          #expect(elapsed < .seconds(10))
        }
      }
    }

    @Test func handshakeThatNeverStartsTimesOut() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        // The server accepts TCP and then never speaks TLS.
        try simulator.fault(#"{"kind":"hang","stage":"accept"}"#)
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca, connectTimeout: .seconds(5))) { transport in
          let started = ContinuousClock.now
          let error = await expectFailure(transport, timeout: .milliseconds(500))
          #expect(error?.kind == .timeout, "\(String(describing: error))")
          #expect(error?.serverAction == nil)
          #expect(started.duration(to: .now) < .seconds(10))
        }
      }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        try simulator.fault(#"{"kind":"hang"}"#)
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let task = Task { try await transport.send(.health, timeout: .seconds(30)) }
          try await Task.sleep(for: .milliseconds(200))
          let cancelled = ContinuousClock.now
          task.cancel()
          let result = await task.result
          #expect(cancelled.duration(to: .now) < .seconds(5))
          #expect((result.error as? TransportError)?.kind == .cancelled, "\(result)")

          // The transport is still usable afterwards, on a fresh connection.
          try simulator.clearFaults()
          let response = try await transport.send(.health, timeout: .seconds(5))
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
            return try await transport.send(.health, timeout: .seconds(5))
          }
          let result = await task.result
          #expect((result.error as? TransportError)?.kind == .cancelled, "\(result)")
          let seen = try simulator.requests()
          #expect(seen.isEmpty)
        }
      }
    }

    /// A request waiting behind a hung one should also end promptly when its task is cancelled.
    @Test func cancellingAQueuedRequestReturnsPromptly() async throws {
      let pki = try await testPKI()
      try await withSimulator { simulator in
        try simulator.fault(#"{"kind":"hang"}"#)
        try await withTransport(try makeNode(simulator.url(), caFile: pki.ca)) { transport in
          let hung = Task { try await transport.send(.health, timeout: .seconds(3)) }
          try await Task.sleep(for: .milliseconds(100))
          let queued = Task { try await transport.send(.health, timeout: .seconds(3)) }
          try await Task.sleep(for: .milliseconds(100))
          let cancelled = ContinuousClock.now
          queued.cancel()
          let result = await queued.result
          let elapsed = cancelled.duration(to: .now)
          #expect((result.error as? TransportError)?.kind == .cancelled, "\(result)")
          #expect(elapsed < .seconds(1), "took \(elapsed)")
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
        let hung = Task { try await transport.send(.health, timeout: .seconds(2)) }
        try await Task.sleep(for: .milliseconds(100))
        let queued = Task { try await transport.send(.health, timeout: .seconds(2)) }
        try await Task.sleep(for: .milliseconds(100))
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
          let first = try await transport.send(.health, timeout: .seconds(5))
          #expect(first.status == 503)

          // An idle, healthy connection produces no event (TLS session tickets and the like
          // must not look like a close).
          try await Task.sleep(for: .milliseconds(400))
          #expect(events.count == 0)

          try simulator.control("POST", "/restart", #"{"down_ms":100}"#)
          let reported = await events.wait(within: .seconds(5)) { $0.count >= 1 }
          #expect(reported, "no connection-closed event after the server dropped the connection")

          try await simulator.waitForState { $0["down"] as? Bool == false }
          let again = try await transport.send(.health, timeout: .seconds(5))
          #expect(again.status == 503)
          #expect(again.newConnection)
          // One close, one event: the dead socket is not reported again and again.
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
      try await withTransport(try makeNode("https://127.0.0.1:\(listener.port)", connectTimeout: .seconds(10))) { transport in
        let timedOut = await expectFailure(transport, timeout: .milliseconds(300))
        #expect(timedOut?.kind == .timeout, "\(String(describing: timedOut))")
        #expect(timedOut?.serverAction == nil, "\(String(describing: timedOut))")

        let pending = Task { await expectFailure(transport, timeout: .seconds(10)) }
        try await listener.waitForQueued(2)  // our second connection waits in the queue
        listener.close()  // what the kernel does to the queue of a process that dies
        let reset = await pending.value
        #expect(reset?.serverAction == .closed, "\(String(describing: reset))")
        #expect(reset?.kind == .tls, "\(String(describing: reset))")
      }
    }

    /// Bytes arriving on an idle kept-alive connection are not a close. Over HTTP/2 libcurl
    /// keeps the connection after a request timed out, and a server that was frozen (SIGSTOP)
    /// answers those requests late when it resumes: that must not read as a Vault restart.
    /// Only the server shutting its side (or resetting) is.
    @Test func lateDataOnAnIdleConnectionIsNotAClose() async throws {
      let server = try LateAnswerServer()
      defer { server.stop() }
      try await withTransport(try makeNode("http://127.0.0.1:\(server.port)")) { transport in
        let events = EventCounter(transport.connectionClosedEvents())
        let first = try await transport.send(.health, timeout: .seconds(5))
        #expect(first.status == 200)
        server.sendLateBytes()
        try await server.waitForLateBytesSent()
        // The claim is that nothing happens: a bounded window, 40 idle polls' worth of time.
        try await Task.sleep(for: .milliseconds(400))
        #expect(events.count == 0, "late data on an idle connection was taken for a close")

        server.closeConnection()
        let reported = await events.wait(within: .seconds(5)) { $0.count >= 1 }
        #expect(reported, "no connection-closed event after the server closed the connection")
      }
    }

    @Test func connectionClosedEventsFinishOnShutdown() async throws {
      let port = try unusedLoopbackPort()
      let transport = CurlTransport(settings: CurlTransport.Settings(node: try makeNode("http://127.0.0.1:\(port)")))
      let events = EventCounter(transport.connectionClosedEvents())
      transport.shutdown()
      let finished = await events.wait(within: .seconds(5)) { $0.finished }
      #expect(finished)
      #expect(events.count == 0)
    }

    /// Each transport has its own thread: four nodes stuck in blocking transfers (more than
    /// the cooperative pool has threads) do not hold up a fifth.
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
              return try await transport.send(.health, timeout: .seconds(20))
            }
          }
          try await stuck.waitForState { ($0["connections_open"] as? Int ?? 0) >= 4 }

          try await withTransport(try makeNode(healthy.url(), caFile: pki.ca)) { transport in
            let started = ContinuousClock.now
            for _ in 0..<5 {
              let status = try await transport.send(.health, timeout: .seconds(5)).status
              #expect(status == 503)
            }
            #expect(started.duration(to: .now) < .seconds(5))
          }
          #expect(!stuckDone.isSet, "the hung requests should still be hanging")

          // Clearing the fault makes the simulator drop the hung connections without an answer:
          // each stuck request ends then (long before its own 20 s timeout) with that error.
          let released = ContinuousClock.now
          try stuck.clearFaults()
          for task in stuckTasks {
            let result = await task.result
            #expect((result.error as? TransportError)?.kind == .protocolError, "\(result)")
            #expect((result.error as? TransportError)?.serverAction == .closed, "\(result)")
          }
          #expect(released.duration(to: .now) < .seconds(5))
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

  func waitForQueued(_ count: Int, within limit: Duration = .seconds(5)) async throws {
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

/// A plain HTTP/1.1 server for one connection: answers the first request, then on request
/// writes stray bytes on the idle connection (as a resumed server answering stale requests
/// does), then on request shuts the connection (FIN).
final class LateAnswerServer: Sendable {
  let port: Int
  private let listener: Int32
  private let connection = Mutex<Int32>(-1)
  private let lateSent = Flag()

  init() throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard ok else {
      Glibc.close(fd)
      throw TestFailure("bind/listen: errno \(errno)")
    }
    listener = fd
    port = Int(UInt16(bigEndian: address.sin_port))
    let thread = Thread { [self] in serveOne() }
    thread.start()
  }

  private func serveOne() {
    let accepted = accept(listener, nil, nil)
    guard accepted >= 0 else { return }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(accepted, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var request: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while !request.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)) {
      let n = recv(accepted, &buffer, buffer.count, 0)
      guard n > 0 else {
        Glibc.close(accepted)
        return
      }
      request += buffer[..<n]
    }
    let answer = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".utf8)
    _ = answer.withUnsafeBytes { send(accepted, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    connection.withLock { $0 = accepted }
  }

  func sendLateBytes() {
    Task.detached { [self] in
      while connection.withLock({ $0 }) < 0 { try? await Task.sleep(for: .milliseconds(5)) }
      let late = Array("late".utf8)
      _ = connection.withLock { fd in late.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
      lateSent.set()
    }
  }

  func waitForLateBytesSent(within limit: Duration = .seconds(5)) async throws {
    let deadline = ContinuousClock.now + limit
    while !lateSent.isSet {
      guard ContinuousClock.now < deadline else { throw TestFailure("the late bytes were never sent") }
      try await Task.sleep(for: .milliseconds(5))
    }
  }

  /// FIN on the connection, without reading what is pending (no reset).
  func closeConnection() {
    connection.withLock { fd in
      if fd >= 0 { shutdown(fd, Int32(SHUT_WR)) }
    }
  }

  func stop() {
    shutdown(listener, Int32(SHUT_RDWR))
    Glibc.close(listener)
    connection.withLock { fd in
      if fd >= 0 { Glibc.close(fd) }
      fd = -1
    }
  }
}

extension Result {
  var error: Failure? {
    if case .failure(let error) = self { return error }
    return nil
  }
}
