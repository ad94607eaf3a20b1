// SPDX-License-Identifier: Apache-2.0
/// How long one transfer (a snapshot download from Vault, an upload to object storage, a
/// restore) may take: `minimum`, or the time its bytes need at `minBytesPerSecond` when that is
/// longer. Pure.
///
/// Without a total deadline a peer that reads or sends just above curl's low-speed limit
/// (1 KiB/s over 60 s) keeps a transfer alive for weeks. With one, a transfer of N bytes ends,
/// one way or the other, within `deadline(bytes: N)`: an upload knows N beforehand and hands the
/// deadline to curl as its total timeout; a download from Vault, whose size is not announced,
/// is checked as its bytes arrive (`isBehind`), which is the same bound.
public struct TransferDeadline: Sendable, Equatable {
  /// `[snapshot] transfer_timeout`: the least time any transfer is given (connection set-up,
  /// TLS, a server that thinks before it answers).
  public var minimum: Duration
  /// `[snapshot] transfer_min_rate`: the slowest average a transfer may keep up.
  public var minBytesPerSecond: Int64

  /// 5 minutes, then 256 KiB/s (2 Mbit/s): a 4 GiB snapshot may take about 4.5 hours.
  public static let standard = TransferDeadline(minimum: .seconds(300), minBytesPerSecond: 256 << 10)

  public init(minimum: Duration, minBytesPerSecond: Int64) {
    self.minimum = minimum
    self.minBytesPerSecond = max(minBytesPerSecond, 1)
  }

  /// The deadline of a transfer of `bytes` bytes.
  public func deadline(bytes: Int64) -> Duration {
    let bytes = max(bytes, 0)
    // Whole seconds, then the remainder rounded up to a millisecond (no overflow for any size).
    let rest = Double(bytes % minBytesPerSecond) / Double(minBytesPerSecond)
    let needed = Duration.seconds(bytes / minBytesPerSecond) + .milliseconds(Int64((rest * 1000).rounded(.up)))
    return max(minimum, needed)
  }

  /// Whether a transfer of unknown size that has moved `bytes` after `elapsed` is past its
  /// deadline: it ran longer than `minimum` and averaged less than the minimum rate.
  public func isBehind(bytes: Int64, elapsed: Duration) -> Bool {
    elapsed > deadline(bytes: bytes)
  }
}
