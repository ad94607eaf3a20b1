import Foundation
import Synchronization
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
          }
          #expect(released.duration(to: .now) < .seconds(5))
        }
      }
    }
  }
}

extension Result {
  var error: Failure? {
    if case .failure(let error) = self { return error }
    return nil
  }
}
