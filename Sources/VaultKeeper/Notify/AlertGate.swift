// SPDX-License-Identifier: Apache-2.0
/// Alert hygiene for one `[[notify]]` target: decides which messages the problems it is shown
/// are worth. Pure: the time comes in with each look, so it is tested in virtual time.
///
/// - A problem is reported once it has lasted `minDuration` and, for a node, shown in
///   `minFailures` health checks: a Vault restart that vaultkeeper unseals in 100 ms, or a
///   network blip, sends nothing.
/// - After that, one message per change of severity, and a reminder every `reminder` while it
///   lasts (the journal's interval for its own reminders).
/// - One `resolved` when a reported problem has stayed clear for `minDuration` (so a flapping
///   node sends one problem, not a pair per blip). A problem that clears before it was reported
///   is forgotten without a word.
/// - Single events (`unsealed`, `crashed`) go out at once when the target subscribes to them.
public struct AlertGate: Sendable {
  public struct Policy: Sendable, Equatable {
    public var events: Set<AlertEvent>
    /// Problems below this are not reported (single events are chosen by `events` alone).
    public var minSeverity: AlertSeverity
    public var minFailures: Int
    public var minDuration: Duration
    public var reminder: Duration

    public static let defaultMinFailures = 3
    public static let defaultMinDuration: Duration = .seconds(60)
    /// The journal repeats a standing problem (stale backups, an expiring certificate) daily.
    public static let defaultReminder: Duration = .seconds(86400)

    public init(
      events: Set<AlertEvent> = AlertEvent.defaultSubscription, minSeverity: AlertSeverity = .warning, minFailures: Int = defaultMinFailures,
      minDuration: Duration = defaultMinDuration, reminder: Duration = defaultReminder
    ) {
      self.events = events
      self.minSeverity = minSeverity
      self.minFailures = minFailures
      self.minDuration = minDuration
      self.reminder = reminder
    }
  }

  private struct Track: Sendable {
    var firstSeen: NodeTime
    var checks: Int
    var lastOccurrence: Double?
    var condition: AlertCondition
    /// The severity last reported, and when; nil while it waits for its thresholds.
    var reported: AlertSeverity?
    var reportedAt: ContinuousClock.Instant
    /// Since when a reported problem has been gone (it is resolved once that lasts).
    var clearedAt: ContinuousClock.Instant?
  }

  /// A new policy applies from the next look; problems of events no longer subscribed are
  /// forgotten without a word (unsubscribing is not the problem clearing).
  public var policy: Policy {
    didSet { tracks = tracks.filter { policy.events.contains($0.value.condition.event) } }
  }
  private var tracks: [String: Track] = [:]

  public init(policy: Policy) {
    self.policy = policy
  }

  /// Problems this gate has reported and not yet resolved.
  public var openProblems: [String] { tracks.filter { $0.value.reported != nil }.keys.sorted() }

  /// The same, as kept across a restart (`NotifyStateFile`).
  public var reportedProblems: [OpenProblem] {
    tracks.values.compactMap { track in
      track.reported.map {
        OpenProblem(
          key: track.condition.key, event: track.condition.event, severity: $0, summary: track.condition.summary,
          node: track.condition.node, since: track.firstSeen.wall)
      }
    }.sorted { $0.key < $1.key }
  }

  /// Takes back what was reported before a restart: still there, it is not reported again; gone,
  /// it is resolved (once the part it is read from has been judged, and after `min_duration`).
  /// The reminder counts from now.
  public mutating func restore(_ problems: [OpenProblem], now: NodeTime) {
    for problem in problems where policy.events.contains(problem.event) && tracks[problem.key] == nil {
      let age = Duration.seconds(max(now.wall - problem.since, 0))
      let condition = AlertCondition(
        key: problem.key, event: problem.event, severity: problem.severity, summary: problem.summary, node: problem.node)
      tracks[problem.key] = Track(
        firstSeen: NodeTime(monotonic: now.monotonic.advanced(by: .zero - age), wall: problem.since), checks: policy.minFailures,
        lastOccurrence: nil, condition: condition, reported: problem.severity, reportedAt: now.monotonic)
    }
  }

  /// The messages `look` is worth now. Durations are measured on the monotonic clock (a clock
  /// step must neither hold back nor hurry a report); the wall time only dates the messages.
  public mutating func pass(_ look: AlertConditions.Look, now: NodeTime) -> [AlertMessage] {
    var messages = look.events.filter { policy.events.contains($0.event) }
    // Every problem of a subscribed event is followed, whatever its severity: `min_severity`
    // decides whether one is reported, and once it is, a drop in severity is a change to say,
    // not a resolution.
    let followed = look.problems.filter { policy.events.contains($0.event) }
    let present = Set(followed.map(\.key))
    let minDuration = policy.minDuration
    for key in tracks.keys.sorted() where !present.contains(key) {
      guard var track = tracks[key], track.reported != nil else {
        tracks.removeValue(forKey: key)
        continue
      }
      // Its part has said nothing yet since start: silence is not a clearing.
      if look.unjudged.contains(track.condition.part) { continue }
      // Resolved once it has stayed away `min_duration`: a flapping node or a duty's first
      // report after a reload does not resolve and reopen a problem.
      let cleared = track.clearedAt ?? now.monotonic
      track.clearedAt = cleared
      if cleared.duration(to: now.monotonic) >= minDuration {
        tracks.removeValue(forKey: key)
        messages.append(
          AlertMessage(
            key: key, event: track.condition.event, status: .resolved, severity: track.condition.severity,
            summary: track.condition.summary, node: track.condition.node, since: track.firstSeen.wall, time: now.wall))
      } else {
        tracks[key] = track
      }
    }
    for condition in followed {
      var track =
        tracks[condition.key]
        ?? Track(firstSeen: now, checks: 0, lastOccurrence: nil, condition: condition, reported: nil, reportedAt: now.monotonic)
      if condition.occurrence == nil || condition.occurrence != track.lastOccurrence || track.checks == 0 {
        track.checks += 1
        track.lastOccurrence = condition.occurrence
      }
      track.condition = condition
      track.clearedAt = nil
      let status: AlertStatus?
      if let reported = track.reported {
        if reported != condition.severity {
          status = .problem
        } else if track.reportedAt.duration(to: now.monotonic) >= policy.reminder {
          status = .reminder
        } else {
          status = nil
        }
      } else {
        let enoughChecks = condition.occurrence == nil || track.checks >= policy.minFailures
        let longEnough = track.firstSeen.monotonic.duration(to: now.monotonic) >= minDuration
        status = enoughChecks && longEnough && condition.severity >= policy.minSeverity ? .problem : nil
      }
      if let status {
        track.reported = condition.severity
        track.reportedAt = now.monotonic
        messages.append(
          AlertMessage(
            key: condition.key, event: condition.event, status: status, severity: condition.severity, summary: condition.summary,
            node: condition.node, since: track.firstSeen.wall, time: now.wall))
      }
      tracks[condition.key] = track
    }
    return messages
  }
}
