// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Snapshot file names: `vaultkeeper-CLUSTER-YYYYMMDDTHHMMSSZ-INDEX.snap`, plus `.age` when
/// encrypted. They sort by time within a cluster, carry the Raft index, and are the only files
/// retention will ever touch (anything else in the directory is left alone).
public struct SnapshotName: Sendable, Equatable, Comparable {
  public var cluster: String
  public var time: Date
  public var raftIndex: UInt64
  public var encrypted: Bool

  public init(cluster: String, time: Date, raftIndex: UInt64, encrypted: Bool) {
    self.cluster = SnapshotName.sanitize(cluster)
    self.time = Date(timeIntervalSince1970: time.timeIntervalSince1970.rounded(.down))
    self.raftIndex = raftIndex
    self.encrypted = encrypted
  }

  /// Cluster names become `[a-z0-9-]`, never empty, so the name stays one path component.
  static func sanitize(_ cluster: String) -> String {
    let mapped = String(cluster.lowercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "-" })
    let trimmed = mapped.split(separator: "-").joined(separator: "-")
    return trimmed.isEmpty ? "vault" : String(trimmed.prefix(64))
  }

  public var fileName: String {
    "vaultkeeper-\(cluster)-\(Self.stamp(time))-\(raftIndex).snap" + (encrypted ? ".age" : "")
  }

  public static func < (a: SnapshotName, b: SnapshotName) -> Bool {
    (a.time, a.raftIndex, a.fileName) < (b.time, b.raftIndex, b.fileName)
  }

  /// Parses a file name we wrote; nil for anything else.
  public init?(fileName: String) {
    var rest = Substring(fileName)
    var encrypted = false
    if rest.hasSuffix(".age") {
      encrypted = true
      rest = rest.dropLast(4)
    }
    guard rest.hasPrefix("vaultkeeper-"), rest.hasSuffix(".snap") else { return nil }
    rest = rest.dropFirst("vaultkeeper-".count).dropLast(".snap".count)
    let parts = rest.split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count >= 3, let index = UInt64(parts[parts.count - 1]), let time = Self.parseStamp(parts[parts.count - 2]) else { return nil }
    let cluster = parts[0..<(parts.count - 2)].joined(separator: "-")
    guard !cluster.isEmpty, cluster == Self.sanitize(cluster) else { return nil }
    self.cluster = cluster
    self.time = time
    self.raftIndex = index
    self.encrypted = encrypted
    // Only the name we would write: `-0007`, `-+7` or a year written `+999` parse to the same
    // values, but retention deletes (and uploads look for) the canonical `fileName`, which
    // would then be another file or none. Found by fuzzing (Fuzz/Corpus/fuzz-s3-xml).
    guard self.fileName == fileName else { return nil }
  }

  static func stamp(_ date: Date) -> String {
    var seconds = Int64(date.timeIntervalSince1970.rounded(.down))
    let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
    seconds -= days * 86400
    let (y, m, d) = civil(fromDays: days)
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(y)\(two(m))\(two(d))T\(two(seconds / 3600))\(two(seconds % 3600 / 60))\(two(seconds % 60))Z"
  }

  static func parseStamp(_ text: Substring) -> Date? {
    let chars = Array(text)
    guard chars.count == 16, chars[8] == "T", chars[15] == "Z" else { return nil }
    func number(_ range: Range<Int>) -> Int64? { Int64(String(chars[range])) }
    guard let y = number(0..<4), let mo = number(4..<6), let d = number(6..<8), let h = number(9..<11), let mi = number(11..<13),
      let s = number(13..<15), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 60
    else { return nil }
    let days = daysFromCivil(y, mo, d)
    return Date(timeIntervalSince1970: Double(days * 86400 + h * 3600 + mi * 60 + s))
  }

  // Howard Hinnant's civil-from-days algorithms: exact proleptic Gregorian arithmetic with no
  // dependence on the process's time zone or locale.
  static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146097 + doe - 719468
  }

  static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
    let z = z0 + 719468
    let era = (z >= 0 ? z : z - 146096) / 146097
    let doe = z - era * 146097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
  }
}
