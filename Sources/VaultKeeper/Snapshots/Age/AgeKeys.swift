// SPDX-License-Identifier: Apache-2.0
import Crypto

/// An age X25519 recipient, `age1…`: the public half of an identity. Not secret.
public struct AgeRecipient: Sendable, Equatable, CustomStringConvertible {
  /// The 32-byte Curve25519 public key.
  public let publicKey: [UInt8]

  public init(_ text: String) throws(AgeError) {
    let decoded: (hrp: String, data: [UInt8])
    do {
      decoded = try Bech32.decode(text)
    } catch {
      throw AgeError(.key, "not an age recipient: \(error.message)")
    }
    guard decoded.hrp == "age" else { throw AgeError(.key, "not an age X25519 recipient (expected \"age1…\")") }
    guard decoded.data.count == 32 else { throw AgeError(.key, "not an age recipient: the key is \(decoded.data.count) bytes, not 32") }
    publicKey = decoded.data
  }

  init(publicKey: [UInt8]) {
    self.publicKey = publicKey
  }

  /// The canonical `age1…` form.
  public var description: String { Bech32.encode(hrp: "age", data: publicKey) }

  /// Parses an age recipients file: one `age1…` per line, `#` comments and blank lines
  /// ignored. Errors carry the 1-based line number.
  public static func parseFile(_ text: String) throws(AgeRecipientFileError) -> [AgeRecipient] {
    var recipients: [AgeRecipient] = []
    for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = raw.trimmingWhitespace()
      if line.isEmpty || line.hasPrefix("#") { continue }
      do {
        recipients.append(try AgeRecipient(line))
      } catch {
        throw AgeRecipientFileError(line: index + 1, message: error.message)
      }
    }
    return recipients
  }
}

/// A bad line in a recipients file (the file names are added by the caller).
public struct AgeRecipientFileError: Error, Sendable, Equatable {
  public var line: Int
  public var message: String
}

/// An age X25519 identity, `AGE-SECRET-KEY-1…`. The private key lives in swift-crypto's key
/// type (its storage is zeroed when released); the description never shows it.
public struct AgeIdentity: CustomStringConvertible {
  let privateKey: Curve25519.KeyAgreement.PrivateKey

  /// Parses one identity from bytes (never from a `String`, which could not be wiped).
  public init(bytes: ArraySlice<UInt8>) throws(AgeError) {
    var decoded: (hrp: String, data: [UInt8])
    do {
      decoded = try Bech32.decode(bytes)
    } catch {
      throw AgeError(.key, "not an age identity: \(error.message)")
    }
    defer { SecretBytes.wipe(&decoded.data) }
    guard decoded.hrp == "age-secret-key-" else { throw AgeError(.key, "not an age X25519 identity (expected \"AGE-SECRET-KEY-1…\")") }
    guard decoded.data.count == 32 else { throw AgeError(.key, "not an age identity: the key is \(decoded.data.count) bytes, not 32") }
    do {
      privateKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: decoded.data)
    } catch {
      throw AgeError(.key, "not a usable X25519 private key")
    }
  }

  init(privateKey: Curve25519.KeyAgreement.PrivateKey) {
    self.privateKey = privateKey
  }

  /// A fresh random identity (tests, and anyone wanting a throwaway key pair).
  public static func generate() -> AgeIdentity {
    AgeIdentity(privateKey: Curve25519.KeyAgreement.PrivateKey())
  }

  /// The recipient that encrypts to this identity.
  public var recipient: AgeRecipient { AgeRecipient(publicKey: Array(privateKey.publicKey.rawRepresentation)) }

  public var description: String { "age identity for \(recipient)" }

  /// Parses an identity file as `age-keygen` writes it: `AGE-SECRET-KEY-1…` lines, `#`
  /// comments, blank lines. Errors name the line number only, never its content. At least
  /// one identity is required.
  public static func parseFile(_ bytes: [UInt8]) throws(AgeError) -> [AgeIdentity] {
    var identities: [AgeIdentity] = []
    var lineNumber = 0
    for raw in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      lineNumber += 1
      var line = raw[...]
      while let last = line.last, last == 0x0D || last == 0x20 || last == 0x09 { line = line.dropLast() }
      while let first = line.first, first == 0x20 || first == 0x09 { line = line.dropFirst() }
      if line.isEmpty || line.first == UInt8(ascii: "#") { continue }
      do {
        identities.append(try AgeIdentity(bytes: line))
      } catch {
        throw AgeError(.key, "line \(lineNumber): \(error.message)")
      }
    }
    guard !identities.isEmpty else { throw AgeError(.key, "holds no AGE-SECRET-KEY-1… identity") }
    return identities
  }
}
