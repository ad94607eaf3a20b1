// SPDX-License-Identifier: Apache-2.0
/// Decides the next unseal step from Vault's seal status. Pure: no I/O, time is passed in.
///
/// Rules (issue #2, vault-api.md §3):
/// - Only Shamir seals get shares; auto-unseal types are watched, never fed.
/// - Shares go one at a time, and we stop the moment Vault reports `sealed: false`, so we never
///   send more than the threshold needs.
/// - A share Vault already had (progress unchanged) is a duplicate: move on to the next share.
/// - Progress begun by someone else (a nonce we did not start or join) is left alone while it
///   keeps moving; once it has stood still for `foreignProgressGrace`, we reset and start over.
/// - A share that completes the threshold but is answered "sealed" with the attempt cleared
///   (progress 0, no nonce) rather than with an error or "unsealed" was taken: the node unseals
///   on its own once it can. OpenBao and Vault answer so on a Raft node whose `retry_join` is
///   still completing; a new round would only disturb it. We wait up to `completionGrace`.
public struct UnsealPlanner: Sendable, Equatable {
  public enum Step: Sendable, Equatable {
    case submit(shareIndex: Int)
    case reset(reason: String)
    case wait(Duration, reason: String)
    case unsealed
    case autoUnseal(sealType: String)
    case notInitialized
    case notEnoughShares(have: Int, need: Int)
    /// The node took a full set of shares and finishes the unseal itself (a Raft join).
    case completing(Duration, reason: String)
  }

  /// How long a node that took a full set of shares may stay sealed before a new round starts.
  public static let completionGrace = Duration.seconds(60)

  public let shareCount: Int
  public let foreignProgressGrace: Duration

  /// The attempt we contribute to: its nonce and the shares we sent into it.
  private var nonce: String?
  private var sent: Set<Int> = []
  /// A foreign attempt we are giving time: nonce, progress when last changed, and when.
  private var foreign: (nonce: String, progress: Int, since: ContinuousClock.Instant)?
  /// The progress and threshold the last `.submit` went into.
  private var submittingInto: (progress: Int, threshold: Int)?
  /// When the node took a full set of shares and began finishing the unseal by itself.
  private var completingSince: ContinuousClock.Instant?

  public init(shareCount: Int, foreignProgressGrace: Duration) {
    self.shareCount = shareCount
    self.foreignProgressGrace = foreignProgressGrace
  }

  public static func == (a: UnsealPlanner, b: UnsealPlanner) -> Bool {
    a.shareCount == b.shareCount && a.nonce == b.nonce && a.sent == b.sent
  }

  public mutating func next(_ status: SealStatus, now: ContinuousClock.Instant) -> Step {
    guard status.initialized else { forget(); return .notInitialized }
    guard status.sealed else { forget(); return .unsealed }
    guard status.acceptsUnsealShares else { return .autoUnseal(sealType: status.type) }
    guard shareCount >= status.threshold else { return .notEnoughShares(have: shareCount, need: status.threshold) }

    if let since = completingSince {
      let waited = since.duration(to: now)
      if waited < Self.completionGrace, status.progress == 0 {
        return .completing(
          Self.completionGrace - waited,
          reason: "took a full set of key shares and finishes the unseal itself (a Raft node completing its join)")
      }
      completingSince = nil  // it did not finish in time, or someone began a new attempt
    }
    if status.progress == 0 || status.nonce.isEmpty {
      // A fresh attempt (ours or nobody's yet).
      nonce = nil
      sent = []
      foreign = nil
      submittingInto = (status.progress, status.threshold)
      return .submit(shareIndex: 0)
    }
    if status.nonce == nonce {
      guard let index = (0..<shareCount).first(where: { !sent.contains($0) }) else {
        // Every share we hold went into this attempt and Vault still wants more: someone
        // else's wrong shares must be in it. Start over.
        return .reset(reason: "all \(shareCount) shares were submitted and Vault still reports progress \(status.progress)/\(status.threshold)")
      }
      submittingInto = (status.progress, status.threshold)
      return .submit(shareIndex: index)
    }
    // Progress that someone else started.
    if let f = foreign, f.nonce == status.nonce, f.progress == status.progress {
      let waited = f.since.duration(to: now)
      if waited >= foreignProgressGrace {
        return .reset(reason: "an unseal attempt started elsewhere stood at \(status.progress)/\(status.threshold) for \(DurationParsing.format(waited))")
      }
      return .wait(foreignProgressGrace - waited, reason: "an unseal attempt started elsewhere is at \(status.progress)/\(status.threshold)")
    }
    foreign = (status.nonce, status.progress, now)
    if foreignProgressGrace == .zero {
      return .reset(reason: "an unseal attempt started elsewhere is at \(status.progress)/\(status.threshold) (foreign_progress_grace is 0)")
    }
    return .wait(foreignProgressGrace, reason: "an unseal attempt started elsewhere is at \(status.progress)/\(status.threshold)")
  }

  /// Records that share `index` was submitted and what Vault answered.
  public mutating func submitted(_ index: Int, answer: SealStatus, now: ContinuousClock.Instant) {
    let into = submittingInto
    submittingInto = nil
    sent.insert(index)
    if answer.sealed, !answer.nonce.isEmpty {
      nonce = answer.nonce
      return
    }
    forget()
    if answer.sealed, answer.progress == 0, let into, into.threshold > 0, into.progress + 1 >= into.threshold {
      completingSince = now
    }
  }

  /// After a reset (by us) or a failed combination (Vault cleared the attempt itself), and
  /// whenever the node is seen in a state other than sealed.
  public mutating func forget() {
    nonce = nil
    sent = []
    foreign = nil
    submittingInto = nil
    completingSince = nil
  }
}
