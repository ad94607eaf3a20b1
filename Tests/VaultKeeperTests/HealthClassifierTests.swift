// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import VaultKeeper

@Suite struct HealthClassifierTests {
  func body(initialized: Bool = true, sealed: Bool = false, standby: Bool = false, version: String = "1.15.0") -> [UInt8] {
    Array("{\"initialized\":\(initialized),\"sealed\":\(sealed),\"standby\":\(standby),\"performance_standby\":false,\"version\":\"\(version)\",\"cluster_name\":\"c1\",\"cluster_id\":\"id1\"}\n".utf8)
  }

  @Test(arguments: [
    (200, NodeState.active), (429, .standby), (472, .drSecondary), (473, .performanceStandby), (474, .standbyUnhealthy), (530, .removed),
  ])
  func unsealedStates(status: Int, state: NodeState) {
    let observation = HealthClassifier.classify(status: status, body: body(standby: status != 200), latency: .milliseconds(3), newConnection: false)
    #expect(observation.state == state)
    #expect(observation.version == "1.15.0")
    #expect(observation.clusterID == "id1")
    #expect(observation.state.healthCode == status)
  }

  @Test func sealed() {
    let o = HealthClassifier.classify(status: 503, body: body(sealed: true, standby: true), latency: .zero, newConnection: true)
    #expect(o.state == .sealed)
    #expect(o.newConnection)
  }

  @Test func uninitialized() {
    #expect(HealthClassifier.classify(status: 501, body: body(initialized: false, sealed: true, standby: true), latency: .zero, newConnection: false).state == .uninitialized)
  }

  @Test func unexpectedStatusIsProtocolError() {
    let o = HealthClassifier.classify(status: 500, body: Array("{\"errors\":[\"internal\"]}".utf8), latency: .zero, newConnection: false)
    #expect(o.state == .protocolError)
    #expect(o.problem?.contains("500") == true)
    #expect(o.problem?.contains("internal") == true)
  }

  @Test func garbageBodyIsProtocolError() {
    let o = HealthClassifier.classify(status: 200, body: Array("<html>hello</html>".utf8), latency: .zero, newConnection: false)
    #expect(o.state == .protocolError)
  }

  @Test func inconsistentBodyIsProtocolError() {
    // A 200 whose body says sealed: not Vault, or something rewriting answers.
    #expect(HealthClassifier.classify(status: 200, body: body(sealed: true), latency: .zero, newConnection: false).state == .protocolError)
    #expect(HealthClassifier.classify(status: 503, body: body(sealed: false), latency: .zero, newConnection: false).state == .protocolError)
  }

  @Test func queryGivesEveryStateItsOwnCode() {
    for parameter in ["activecode=200", "standbycode=429", "drsecondarycode=472", "performancestandbycode=473", "haunhealthycode=474",
      "uninitcode=501", "sealedcode=503", "removedcode=530"]
    {
      #expect(HealthClassifier.query.contains(parameter))
    }
    #expect(!HealthClassifier.query.contains("standbyok"))
  }

  @Test func stateNamesRoundTrip() throws {
    for state in NodeState.allCases {
      #expect(NodeState(rawValue: state.name) == state)
      let json = try JSONEncoder().encode([state])
      #expect(String(decoding: json, as: UTF8.self) == "[\"\(state.name)\"]")
      #expect(try JSONDecoder().decode([NodeState].self, from: json) == [state])
    }
    #expect(NodeState(rawValue: "bogus") == nil)
    // A state file from another version naming a state this one does not know stays readable.
    #expect(try JSONDecoder().decode([NodeState].self, from: Data("[\"future-state\"]".utf8)) == [NodeState.unknown])
  }

  @Test func holdReasonsRoundTripThroughTheirText() throws {
    for reason in [HoldReason.deliberateSeal, .wrongKey, .tooFewShares(have: 2, need: 3)] {
      #expect(HoldReason(description: reason.description) == reason)
      #expect(try JSONDecoder().decode([HoldReason].self, from: JSONEncoder().encode([reason])) == [reason])
    }
    #expect(HoldReason.tooFewShares(have: 2, need: 3).description == "too few shares (2/3)")
    for bogus in ["", "too few shares (2/)", "too few shares (a/3)", "sealed"] { #expect(HoldReason(description: bogus) == nil) }
  }
}

@Suite struct PollScheduleTests {
  let schedule = PollSchedule(HealthConfig(interval: .seconds(5), fastInterval: .milliseconds(250), maxBackoff: .seconds(30)))

  @Test func steadyWhenHealthy() {
    #expect(schedule.nextDelay(.init(state: .active), jitter: 0.5) == .seconds(5))
    #expect(schedule.nextDelay(.init(state: .standby), jitter: 0.5) == .seconds(5))
  }

  @Test func fastWhenChangedOrSealed() {
    #expect(schedule.nextDelay(.init(state: .active, changed: true), jitter: 0.5) == .milliseconds(250))
    #expect(schedule.nextDelay(.init(state: .sealed), jitter: 0.5) == .milliseconds(250))
    #expect(schedule.nextDelay(.init(state: .sealed, waitingOnOperator: true), jitter: 0.5) == .seconds(5))
  }

  @Test func reconnectsQuicklyRightAfterALoss() {
    #expect(schedule.nextDelay(.init(state: .unreachable, consecutiveFailures: 7, sinceConnectionLoss: .seconds(2)), jitter: 0.5) == .milliseconds(50))
  }

  @Test func backsOffExponentiallyUpToTheCap() {
    let delays = (1...10).map {
      schedule.nextDelay(.init(state: .unreachable, consecutiveFailures: $0, sinceConnectionLoss: .seconds(60)), jitter: 0.5)
    }
    #expect(delays.map(\.milliseconds) == [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
  }

  @Test func jitterStaysWithinTenPercent() {
    let low = schedule.nextDelay(.init(state: .protocolError, consecutiveFailures: 3), jitter: 0)
    let high = schedule.nextDelay(.init(state: .protocolError, consecutiveFailures: 3), jitter: 1)
    #expect(low.milliseconds == 900)
    #expect(high.milliseconds == 1100)
    #expect(schedule.nextDelay(.init(state: .unreachable, consecutiveFailures: 30), jitter: 1) == .seconds(30))
  }
}
