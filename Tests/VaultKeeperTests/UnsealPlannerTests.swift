// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

@Suite struct UnsealPlannerTests {
  let t0 = ContinuousClock.now

  func sealed(progress: Int = 0, nonce: String = "", threshold: Int = 3, type: String = "shamir", recovery: Bool = false) -> SealStatus {
    SealStatus(type: type, sealed: true, threshold: threshold, shares: 5, progress: progress, nonce: nonce, recoverySeal: recovery)
  }

  @Test func submitsOneShareAtATimeUntilUnsealed() {
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .seconds(30))
    #expect(planner.next(sealed(), now: t0) == .submit(shareIndex: 0))
    planner.submitted(0, answer: sealed(progress: 1, nonce: "n1"), now: t0)
    #expect(planner.next(sealed(progress: 1, nonce: "n1"), now: t0) == .submit(shareIndex: 1))
    planner.submitted(1, answer: sealed(progress: 2, nonce: "n1"), now: t0)
    #expect(planner.next(sealed(progress: 2, nonce: "n1"), now: t0) == .submit(shareIndex: 2))
    let unsealed = SealStatus(sealed: false, threshold: 3, shares: 5, progress: 0, nonce: "")
    planner.submitted(2, answer: unsealed, now: t0)
    #expect(planner.next(unsealed, now: t0) == .unsealed)
  }

  @Test func duplicateShareMovesOnToTheNextOne() {
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .seconds(30))
    _ = planner.next(sealed(), now: t0)
    planner.submitted(0, answer: sealed(progress: 1, nonce: "n1"), now: t0)
    _ = planner.next(sealed(progress: 1, nonce: "n1"), now: t0)
    // Vault ignored share 1 (a duplicate): progress unchanged.
    planner.submitted(1, answer: sealed(progress: 1, nonce: "n1"), now: t0)
    #expect(planner.next(sealed(progress: 1, nonce: "n1"), now: t0) == .submit(shareIndex: 2))
  }

  @Test func neverMoreThanItHoldsAndResetsWhenExhausted() {
    var planner = UnsealPlanner(shareCount: 3, foreignProgressGrace: .seconds(30))
    _ = planner.next(sealed(), now: t0)
    for i in 0..<3 { planner.submitted(i, answer: sealed(progress: 1, nonce: "n1"), now: t0) }
    guard case .reset = planner.next(sealed(progress: 1, nonce: "n1"), now: t0) else {
      Issue.record("expected a reset once every share was sent")
      return
    }
  }

  @Test func foreignProgressIsLeftAloneForTheGraceThenReset() {
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .seconds(30))
    let foreign = sealed(progress: 1, nonce: "someone-else")
    #expect(planner.next(foreign, now: t0) == .wait(.seconds(30), reason: "an unseal attempt started elsewhere is at 1/3"))
    guard case .wait(let remaining, _) = planner.next(foreign, now: t0.advanced(by: .seconds(10))) else {
      Issue.record("expected to keep waiting")
      return
    }
    #expect(remaining == .seconds(20))
    guard case .reset = planner.next(foreign, now: t0.advanced(by: .seconds(30))) else {
      Issue.record("expected a reset after the grace period")
      return
    }
  }

  @Test func foreignProgressThatMovesRestartsTheGrace() {
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .seconds(30))
    _ = planner.next(sealed(progress: 1, nonce: "x"), now: t0)
    // The other operator is still typing: progress moved, so give them the full grace again.
    #expect(planner.next(sealed(progress: 2, nonce: "x"), now: t0.advanced(by: .seconds(29))) == .wait(.seconds(30), reason: "an unseal attempt started elsewhere is at 2/3"))
  }

  @Test func zeroGraceResetsAtOnce() {
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .zero)
    guard case .reset = planner.next(sealed(progress: 2, nonce: "x"), now: t0) else {
      Issue.record("expected an immediate reset")
      return
    }
  }

  @Test func autoUnsealIsNeverFed() {
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .seconds(30))
    #expect(planner.next(sealed(type: "awskms", recovery: true), now: t0) == .autoUnseal(sealType: "awskms"))
    #expect(planner.next(sealed(type: "shamir", recovery: true), now: t0) == .autoUnseal(sealType: "shamir"))
    #expect(planner.next(sealed(type: "transit"), now: t0) == .autoUnseal(sealType: "transit"))
  }

  @Test func tooFewShares() {
    var planner = UnsealPlanner(shareCount: 2, foreignProgressGrace: .seconds(30))
    #expect(planner.next(sealed(threshold: 3), now: t0) == .notEnoughShares(have: 2, need: 3))
  }

  @Test func uninitializedAndUnsealed() {
    var planner = UnsealPlanner(shareCount: 3, foreignProgressGrace: .seconds(30))
    #expect(planner.next(SealStatus(initialized: false, sealed: true, threshold: 0, shares: 0, progress: 0, nonce: ""), now: t0) == .notInitialized)
    #expect(planner.next(SealStatus(sealed: false, threshold: 3, shares: 5, progress: 0, nonce: ""), now: t0) == .unsealed)
  }

  @Test func thresholdShareAnsweredSealedWithTheAttemptClearedIsLeftToComplete() {
    // OpenBao/Vault on a Raft node still completing its retry_join: the share that completes the
    // threshold gets 200 {sealed: true, progress: 0, nonce: ""}, and the node unseals itself
    // a few seconds later. A new round would only disturb it.
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .seconds(30))
    #expect(planner.next(sealed(), now: t0) == .submit(shareIndex: 0))
    planner.submitted(0, answer: sealed(progress: 1, nonce: "n1"), now: t0)
    #expect(planner.next(sealed(progress: 1, nonce: "n1"), now: t0) == .submit(shareIndex: 1))
    planner.submitted(1, answer: sealed(progress: 2, nonce: "n1"), now: t0)
    #expect(planner.next(sealed(progress: 2, nonce: "n1"), now: t0) == .submit(shareIndex: 2))
    planner.submitted(2, answer: sealed(), now: t0)
    let reason = "took a full set of key shares and finishes the unseal itself (a Raft node completing its join)"
    #expect(planner.next(sealed(), now: t0) == .completing(UnsealPlanner.completionGrace, reason: reason))
    #expect(planner.next(sealed(), now: t0.advanced(by: .seconds(59))) == .completing(.seconds(1), reason: reason))
    // It did not finish within the grace: a new round.
    #expect(planner.next(sealed(), now: t0.advanced(by: UnsealPlanner.completionGrace)) == .submit(shareIndex: 0))
  }

  @Test func completionEndsWhenTheNodeIsSeenOtherwiseOrSomeoneStartsAnAttempt() {
    func completing() -> UnsealPlanner {
      var planner = UnsealPlanner(shareCount: 2, foreignProgressGrace: .seconds(30))
      _ = planner.next(sealed(threshold: 2), now: t0)
      planner.submitted(0, answer: sealed(progress: 1, nonce: "n1", threshold: 2), now: t0)
      _ = planner.next(sealed(progress: 1, nonce: "n1", threshold: 2), now: t0)
      planner.submitted(1, answer: sealed(threshold: 2), now: t0)
      return planner
    }
    var planner = completing()
    guard case .completing = planner.next(sealed(threshold: 2), now: t0) else {
      Issue.record("expected to wait for the completion")
      return
    }
    // Seen unsealed (or unreachable) in between: the supervisor forgets; the next seal is new.
    planner.forget()
    #expect(planner.next(sealed(threshold: 2), now: t0) == .submit(shareIndex: 0))
    // An operator begins an attempt meanwhile: ordinary foreign-progress handling.
    planner = completing()
    #expect(planner.next(sealed(progress: 1, nonce: "x", threshold: 2), now: t0) == .wait(.seconds(30), reason: "an unseal attempt started elsewhere is at 1/2"))
  }

  @Test func attemptClearedBeforeTheThresholdIsNotACompletion() {
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .seconds(30))
    _ = planner.next(sealed(), now: t0)
    planner.submitted(0, answer: sealed(progress: 1, nonce: "n1"), now: t0)
    _ = planner.next(sealed(progress: 1, nonce: "n1"), now: t0)
    // Progress 1 → 0 on the second of three shares: Vault cleared the attempt; start over.
    planner.submitted(1, answer: sealed(), now: t0)
    #expect(planner.next(sealed(), now: t0) == .submit(shareIndex: 0))
  }

  @Test func anEmptyKeyIsNotAWrongKey() {
    #expect(VaultClient.isWrongKeyMessage("cipher: message authentication failed"))
    #expect(VaultClient.isWrongKeyMessage("invalid key: failed to setup unseal key: crypto/aes: invalid key size 31"))
    // OpenBao, shares submitted while a Raft node completes its join: nothing about the shares.
    #expect(!VaultClient.isWrongKeyMessage("failed to create cipher: crypto/aes: invalid key size 0"))
  }

  @Test func vaultClearingProgressStartsOver() {
    var planner = UnsealPlanner(shareCount: 5, foreignProgressGrace: .seconds(30))
    _ = planner.next(sealed(), now: t0)
    planner.submitted(0, answer: sealed(progress: 1, nonce: "n1"), now: t0)
    // Someone reset: progress 0 again → start from the first share.
    #expect(planner.next(sealed(), now: t0) == .submit(shareIndex: 0))
  }
}
