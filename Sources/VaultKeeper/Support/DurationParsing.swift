// SPDX-License-Identifier: Apache-2.0
/// Parses the duration strings used throughout the configuration: a sequence of
/// `<number><unit>` groups such as `"250ms"`, `"5s"`, `"1h"` or `"1m30s"`.
/// Units: `ms`, `s`, `m`, `h`, `d`. Fractions are allowed (`"1.5s"`). Zero and negative values
/// are left to the caller to judge (some settings allow `"0s"`).
public enum DurationParsing {
  public static func parse(_ text: String) -> Duration? {
    let trimmed = text.trimmingWhitespace()
    guard !trimmed.isEmpty else { return nil }
    var total = 0.0
    var chars = Substring(trimmed)
    while !chars.isEmpty {
      let numberPart = chars.prefix { $0.isNumber || $0 == "." }
      guard !numberPart.isEmpty, let value = Double(numberPart) else { return nil }
      chars = chars.dropFirst(numberPart.count)
      let unitPart = chars.prefix { $0.isLetter }
      chars = chars.dropFirst(unitPart.count)
      let seconds: Double
      switch unitPart {
      case "ms": seconds = value / 1000
      case "s": seconds = value
      case "m": seconds = value * 60
      case "h": seconds = value * 3600
      case "d": seconds = value * 86400
      default: return nil
      }
      total += seconds
    }
    guard total.isFinite, total < 10 * 365 * 86400 else { return nil }
    return .milliseconds(Int64((total * 1000).rounded()))
  }

  /// Formats a duration the way the configuration accepts it, for `config check` output and
  /// log lines: the largest exact unit (`"250ms"`, `"5s"`, `"2m"`, `"1h"`).
  public static func format(_ duration: Duration) -> String {
    let ms = duration.milliseconds
    if ms == 0 { return "0s" }
    if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
    if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
    if ms % 1000 == 0 { return "\(ms / 1000)s" }
    return "\(ms)ms"
  }

  /// A compact human form for STATUS lines: "3m ago" style, rounded down.
  public static func humanize(_ duration: Duration) -> String {
    let s = max(duration.milliseconds / 1000, 0)
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m" }
    if s < 86400 { return "\(s / 3600)h\(s % 3600 / 60 > 0 ? "\(s % 3600 / 60)m" : "")" }
    return "\(s / 86400)d\(s % 86400 / 3600 > 0 ? "\(s % 86400 / 3600)h" : "")"
  }
}

extension Duration {
  /// Whole milliseconds, truncated.
  public var milliseconds: Int64 {
    let (seconds, attoseconds) = components
    return seconds * 1000 + attoseconds / 1_000_000_000_000_000
  }

  public var seconds: Double {
    let (seconds, attoseconds) = components
    return Double(seconds) + Double(attoseconds) / 1e18
  }
}

extension StringProtocol {
  func trimmingWhitespace() -> String {
    let scalars = unicodeScalars
    guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
      let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
    else { return "" }
    return String(String.UnicodeScalarView(scalars[first...last]))
  }
}
