// SPDX-License-Identifier: Apache-2.0
/// What has been said once already, so a condition that persists is logged once per episode
/// rather than on every check. Every episode but the start-up share-count check ends when the
/// node is seen in a state other than sealed, or is unsealed.
struct EpisodeLog: Sendable, Equatable {
  enum Episode: Sendable, Hashable {
    /// The start-up look at the threshold against our share count (once per process).
    case shareCountChecked
    case tooFewShares
    /// A Raft node finishing the unseal by itself after taking our shares.
    case completing
    case autoUnseal
    /// Someone else's unseal attempt, by its nonce: a new attempt is news again.
    case foreignProgress(nonce: String)
    case sealStatusError
    case resetError
    case submitError
  }

  private var said: Set<Episode> = []

  /// True the first time `episode` is noted since it last ended.
  mutating func first(_ episode: Episode) -> Bool {
    said.insert(episode).inserted
  }

  /// The node is no longer sealed (or we unsealed it): every sealed episode is over.
  mutating func sealEnded() {
    said = said.filter { $0 == .shareCountChecked }
  }
}
