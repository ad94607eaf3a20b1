// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

@Suite struct TransitionReportTests {
  func event(_ previous: NodeState?, _ state: NodeState, failures: Int = 0, escalate: Bool = false) -> OperatorEvent? {
    TransitionReport.event(
      node: "n1", previous: previous, observation: HealthObservation(state: state, version: "1.15.0", problem: state.isFailure ? "boom" : nil),
      consecutiveFailures: failures, escalate: escalate)
  }

  @Test func healthyPollsAreSilent() {
    #expect(event(.active, .active) == nil)
    #expect(event(.sealed, .sealed) == nil)
    #expect(event(.unreachable, .unreachable, failures: 5) == nil)
  }

  @Test func sealedIsAWarning() {
    #expect(event(.active, .sealed) == OperatorEvent(level: .warning, message: "vault at n1 is sealed (1.15.0)", id: .sealed))
  }

  @Test func unreachableWarnsThenEscalatesOnce() {
    #expect(event(.active, .unreachable, failures: 1)?.level == .warning)
    #expect(event(.active, .unreachable, failures: 1)?.id == .unreachable)
    #expect(event(.unreachable, .unreachable, failures: 4, escalate: true)?.level == .error)
    #expect(event(.protocolError, .protocolError, failures: 2)?.id == nil)
    #expect(event(.active, .protocolError, failures: 1)?.id == .protocolError)
  }

  @Test func recoveryIsANotice() {
    let e = event(.unreachable, .active)
    #expect(e?.level == .notice)
    #expect(e?.id == .recovered)
  }

  @Test func firstSightIsInfo() {
    #expect(event(nil, .standby)?.level == .info)
    #expect(event(.active, .standby)?.level == .notice)
    #expect(event(.active, .removed)?.level == .error)
  }
}

@Suite struct StatusLineTests {
  func report(_ nodes: [(String, NodeState)], unsealedAgo: Double? = nil) -> DaemonReport {
    DaemonReport(pid: 1, startedAt: 0, updatedAt: 1000, configPath: "/c", nodes: nodes.map { address, state in
      var node = NodeReport(address: address, state: state, since: 0, lastCheck: 1000)
      node.version = "1.15.0"
      if let ago = unsealedAgo, address == nodes[0].0 { node.lastUnsealTime = 1000 - ago }
      return node
    })
  }

  @Test func rendersTheExampleFromTheIssue() {
    #expect(StatusLine.render(report([("a", .active), ("b", .standby)], unsealedAgo: 180), now: 1000)
      == "vault active (1.15.0) · unsealed 3m ago · 2/2 nodes ok")
  }

  @Test func namesTroubledPeers() {
    #expect(StatusLine.render(report([("a", .active), ("b", .sealed), ("c", .unreachable)]), now: 1000)
      == "vault active (1.15.0) · 1/3 nodes ok (b sealed, +1 more)")
  }

  @Test func showsHold() {
    var r = report([("a", .sealed)])
    r.nodes[0].hold = .deliberateSeal
    #expect(StatusLine.render(r, now: 1000) == "vault sealed (1.15.0), deliberately sealed · 0/1 nodes ok")
  }
}

@Suite struct MetricsTextTests {
  @Test func rendersGaugesAndCounters() {
    var node = NodeReport(address: "https://127.0.0.1:8200", state: .active, since: 0, lastCheck: 1700000000)
    node.latencyMilliseconds = 3
    node.unsealAttempts = ["success": 3]
    node.lastUnsealTime = 1700000000
    let text = MetricsText.render(DaemonReport(pid: 1, startedAt: 0, updatedAt: 0, configPath: "/c", nodes: [node]))
    #expect(text.contains("# TYPE vaultkeeper_vault_up gauge\nvaultkeeper_vault_up{node=\"https://127.0.0.1:8200\"} 1\n"))
    #expect(text.contains("vaultkeeper_vault_sealed{node=\"https://127.0.0.1:8200\"} 0\n"))
    #expect(text.contains("vaultkeeper_vault_health_status{node=\"https://127.0.0.1:8200\",state=\"active\"} 1\n"))
    #expect(text.contains("vaultkeeper_vault_health_status{node=\"https://127.0.0.1:8200\",state=\"sealed\"} 0\n"))
    #expect(text.contains("vaultkeeper_health_check_duration_seconds{node=\"https://127.0.0.1:8200\"} 0.003\n"))
    #expect(text.contains("# TYPE vaultkeeper_unseal_attempts_total counter\n"))
    #expect(text.contains("vaultkeeper_unseal_attempts_total{node=\"https://127.0.0.1:8200\",result=\"success\"} 3\n"))
    #expect(text.contains("vaultkeeper_unseal_attempts_total{node=\"https://127.0.0.1:8200\",result=\"wrong_key\"} 0\n"))
    #expect(text.contains("vaultkeeper_last_unseal_timestamp_seconds{node=\"https://127.0.0.1:8200\"} 1700000000\n"))
  }

  @Test func escapesLabels() {
    #expect(MetricsText.escape("a\"b\\c\nd") == "a\\\"b\\\\c\\nd")
  }

  /// The notify queue's drops (systemd not reading the socket) are a counter once a queue counts
  /// them, and absent where none does (a report read back from an older state file).
  @Test func rendersDroppedNotifyDatagrams() {
    var report = DaemonReport(pid: 1, startedAt: 0, updatedAt: 0, configPath: "/c", nodes: [])
    #expect(!MetricsText.render(report).contains("vaultkeeper_notify_datagrams_dropped_total"))
    report.notifyDatagramsDropped = 0
    #expect(MetricsText.render(report).contains("# TYPE vaultkeeper_notify_datagrams_dropped_total counter\nvaultkeeper_notify_datagrams_dropped_total 0\n"))
    report.notifyDatagramsDropped = 7
    #expect(MetricsText.render(report).contains("\nvaultkeeper_notify_datagrams_dropped_total 7\n"))
  }
}

@Suite struct CheckVerdictTests {
  let ok: Set<String> = ["active", "standby", "perf-standby", "dr-secondary"]
  let warning: Set<String> = ["standby-unhealthy", "uninitialized"]

  func verdict(_ states: [NodeState], latency: Duration = .milliseconds(3)) -> CheckVerdict.Outcome {
    CheckVerdict.evaluate(
      states.enumerated().map { ("n\($0.offset)", HealthObservation(state: $0.element, version: "1.15.0", latency: latency)) },
      ok: ok, warning: warning, warnLatency: 1, critLatency: 3)
  }

  @Test func okWithPerfdata() {
    let outcome = verdict([.active, .standby])
    #expect(outcome.code == 0)
    #expect(outcome.text.hasPrefix("VAULT OK: active (1.15.0), 2/2 nodes ok | 'latency'=0.003s;1;3;0 'latency_1'=0.003s;1;3;0 'nodes_ok'=2;;;0;2\n"))
    #expect(outcome.text.contains("\nOK: n1 standby (1.15.0)"))
  }

  @Test func worstNodeDecides() {
    #expect(verdict([.active, .uninitialized]).code == 1)
    #expect(verdict([.active, .sealed]).code == 2)
    #expect(verdict([.unreachable]).code == 2)
    #expect(verdict([.sealed, .uninitialized]).text.hasPrefix("VAULT CRITICAL: sealed"))
  }

  @Test func latencyThresholds() {
    #expect(verdict([.active], latency: .milliseconds(1500)).code == 1)
    #expect(verdict([.active], latency: .seconds(4)).code == 2)
  }

  @Test func noNodesIsUnknown() {
    #expect(CheckVerdict.evaluate([], ok: ok, warning: warning, warnLatency: 1, critLatency: 3).code == 3)
  }

  @Test func formatsSeconds() {
    #expect(CheckVerdict.formatSeconds(0.0035) == "0.0035")
    #expect(CheckVerdict.formatSeconds(2) == "2")
  }
}
