// SPDX-License-Identifier: Apache-2.0
/// How dealing with a sealed node ended; it sets the next poll delay.
enum UnsealOutcome: Sendable, Equatable {
  /// Vault answered "unsealed" (our shares, or someone else's just before ours).
  case unsealed
  /// Left sealed for an operator: deliberate seal, wrong key, too few shares, auto-unseal,
  /// not initialized, unsealing disabled. Polled at the ordinary interval.
  case waitingOnOperator
  /// A request failed on an error (not a wrong key): backs off like a failing node.
  case failed
  /// Nothing settled yet (someone else's attempt, a Raft join finishing, not sealed at all):
  /// looked at again on the ordinary schedule, quickly while sealed.
  case undecided
}
