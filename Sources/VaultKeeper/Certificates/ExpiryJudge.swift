// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// How close a certificate is to its end.
public enum ExpiryLevel: Int, Sendable, Comparable, CustomStringConvertible {
  case ok = 0
  /// Fewer than `warn_days` days left.
  case warning
  /// Fewer than `critical_days` days left.
  case critical
  /// Past `notAfter`.
  case expired

  public static func < (lhs: ExpiryLevel, rhs: ExpiryLevel) -> Bool { lhs.rawValue < rhs.rawValue }

  public var description: String {
    switch self {
    case .ok: return "ok"
    case .warning: return "warning"
    case .critical: return "critical"
    case .expired: return "expired"
    }
  }

  /// "Fewer than N days left" is measured in exact seconds: a certificate ending in 20 days
  /// and 23 hours is inside a 21-day warning.
  public static func of(notAfter: Date, now: Date, warnDays: Int, criticalDays: Int) -> ExpiryLevel {
    let left = notAfter.timeIntervalSince(now)
    if left <= 0 { return .expired }
    if left < Double(criticalDays) * 86400 { return .critical }
    if left < Double(warnDays) * 86400 { return .warning }
    return .ok
  }

  /// Whole days left, rounded down (negative once expired): the value printed and graphed.
  public static func daysLeft(notAfter: Date, now: Date) -> Int {
    Int((notAfter.timeIntervalSince(now) / 86400).rounded(.down))
  }
}

/// Decides when an expiry state is worth a journal entry: on every poll would flood the
/// journal, never again would let a warning scroll away. So: a worse state at once, a better
/// one (renewed) at once, a different certificate at once, the same non-ok state again once a
/// day. Pure: the caller keeps the `Memory` between polls, one per source (file, served).
public enum ExpiryJudge {
  /// What was last reported.
  public struct Memory: Sendable, Equatable {
    public var level: ExpiryLevel
    public var notAfter: Date
    public var reportedAt: Date

    public init(level: ExpiryLevel, notAfter: Date, reportedAt: Date) {
      self.level = level
      self.notAfter = notAfter
      self.reportedAt = reportedAt
    }
  }

  public enum Report: Sendable, Equatable {
    /// Nothing new: stay quiet.
    case none
    /// Entered a worse state (or the first look found a non-ok one, or a new certificate is
    /// in a non-ok state).
    case escalated(ExpiryLevel)
    /// Still in the same non-ok state a day later.
    case reminder(ExpiryLevel)
    /// Better than before: renewed, or back to ok.
    case improved(from: ExpiryLevel, to: ExpiryLevel)
  }

  public struct Decision: Sendable, Equatable {
    public var level: ExpiryLevel
    public var report: Report
    /// Keep this for the next call.
    public var memory: Memory
  }

  public static let reminderInterval: TimeInterval = 86400

  public static func judge(notAfter: Date, now: Date, warnDays: Int, criticalDays: Int, last: Memory?) -> Decision {
    let level = ExpiryLevel.of(notAfter: notAfter, now: now, warnDays: warnDays, criticalDays: criticalDays)
    let fresh = Memory(level: level, notAfter: notAfter, reportedAt: now)
    guard let last else {
      // The first look: an ok certificate is not news; anything else is.
      return Decision(level: level, report: level == .ok ? .none : .escalated(level), memory: fresh)
    }
    if level > last.level { return Decision(level: level, report: .escalated(level), memory: fresh) }
    if level < last.level { return Decision(level: level, report: .improved(from: last.level, to: level), memory: fresh) }
    if level == .ok {
      // Keep the memory current (a renewal from ok to ok is not news).
      return Decision(level: level, report: .none, memory: fresh)
    }
    if notAfter != last.notAfter {
      // Another certificate in the same state (renewed with a short lifetime, or replaced by
      // an equally old one): the operator should hear it was looked at.
      return Decision(level: level, report: .escalated(level), memory: fresh)
    }
    if now.timeIntervalSince(last.reportedAt) >= reminderInterval {
      return Decision(level: level, report: .reminder(level), memory: fresh)
    }
    return Decision(level: level, report: .none, memory: last)
  }
}
