// SPDX-License-Identifier: Apache-2.0
import FuzzSupport
@testable import VaultKeeper

/// age key material from files: even selectors parse an identity file
/// (`AgeIdentity.parseFile`, what `--identity FILE` reads: `AGE-SECRET-KEY-1…` lines in
/// Bech32), odd ones a recipients file (`AgeRecipient.parseFile`, `[snapshot.encryption]
/// recipients_file`: `age1…` lines).
///
/// Property: an accepted recipient prints back (`description`) as a string that parses to the
/// same key, as age's canonical lower-case Bech32.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAgeKeys(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let input = FuzzInput(data, size)
  if input.selector % 2 == 0 {
    do {
      let identities = try AgeIdentity.parseFile(input.payload)
      if identities.isEmpty { violated("an identity file was accepted without identities") }
      for identity in identities { roundTrip(identity.recipient) }
    } catch {
      _ = error.message
    }
  } else {
    do {
      for recipient in try AgeRecipient.parseFile(String(decoding: input.payload, as: UTF8.self)) { roundTrip(recipient) }
    } catch {
      _ = error.message
    }
  }
  return 0
}

private func roundTrip(_ recipient: AgeRecipient) {
  let text = recipient.description
  guard let again = try? AgeRecipient(text), again == recipient, text == text.lowercased(), text.hasPrefix("age1") else {
    violated("a recipient does not round-trip through its age1… form")
  }
}
