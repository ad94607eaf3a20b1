// SPDX-License-Identifier: Apache-2.0
/// Vault never echoes keys in errors, but a proxy in between might: strips any share's text
/// from a message before it is logged. Works on bytes so the share is never copied into a String
/// we cannot wipe.
enum ShareRedaction {
  static let replacement = Array("<redacted>".utf8)

  static func redact(_ text: String, _ keys: KeyShares) -> String {
    var bytes = Array(text.utf8)
    var changed = false
    for share in keys.shares {
      share.withUnsafeBytes { needle in
        guard needle.count > 0, bytes.count >= needle.count else { return }
        var i = 0
        while i + needle.count <= bytes.count {
          if bytes[i..<(i + needle.count)].elementsEqual(needle) {
            bytes.replaceSubrange(i..<(i + needle.count), with: replacement)
            changed = true
            i += replacement.count
          } else {
            i += 1
          }
        }
      }
    }
    return changed ? String(decoding: bytes, as: UTF8.self) : text
  }
}
