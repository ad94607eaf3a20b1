// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// IP literals as text and as the 4 or 16 bytes a certificate's iPAddress SAN holds.
enum IPAddressText {
  /// The address bytes of an IPv4 or IPv6 literal (no brackets), nil for anything else.
  static func parse(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
  }

  /// The conventional text of 4 or 16 address bytes (`127.0.0.1`, `::1`); hex otherwise.
  static func format(_ bytes: some Collection<UInt8>) -> String {
    let raw = Array(bytes)
    var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
    let family: Int32
    switch raw.count {
    case 4: family = AF_INET
    case 16: family = AF_INET6
    default: return raw.map { String($0, radix: 16) }.joined(separator: ":")
    }
    let ok = raw.withUnsafeBytes { source in
      inet_ntop(family, source.baseAddress, &buffer, socklen_t(buffer.count)) != nil
    }
    guard ok else { return raw.map { String($0, radix: 16) }.joined(separator: ":") }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}

/// Matching the names vaultkeeper expects against a certificate's subject alternative names,
/// as TLS clients do (RFC 6125 §6.4): DNS names case-insensitively, a wildcard only as the
/// whole left-most label and covering exactly one label; IP literals only against iPAddress
/// SANs. The subject CN is ignored, as browsers and Go's crypto/tls do.
public enum CertificateNames {
  /// Whether an expected name is a DNS name or an IP literal (no wildcards: we expect names
  /// clients use, the certificate may cover them with a wildcard).
  static func isValidExpectedName(_ name: String) -> Bool {
    if IPAddressText.parse(name) != nil { return true }
    let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
    guard !trimmed.isEmpty, trimmed.utf8.count <= 253 else { return false }
    return trimmed.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
      !label.isEmpty && label.utf8.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
        && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" || $0 == "_" }
    }
  }

  /// Whether `name` is covered by the DNS SANs or IP SANs (text form, as in `CertificateFacts`).
  public static func covers(_ name: String, dnsNames: [String], ipAddresses: [String]) -> Bool {
    if let wanted = IPAddressText.parse(name) {
      return ipAddresses.contains { IPAddressText.parse($0) == wanted }
    }
    return dnsNames.contains { matches(pattern: $0, name: name) }
  }

  /// One DNS SAN against one name.
  static func matches(pattern: String, name: String) -> Bool {
    let pattern = normalized(pattern)
    let name = normalized(name)
    guard !pattern.isEmpty, !name.isEmpty else { return false }
    guard pattern.hasPrefix("*.") else { return pattern == name }
    // "*.example.com": exactly one more label, never the bare "example.com", and at least two
    // labels after the wildcard so "*.com" matches nothing.
    let suffix = pattern.dropFirst(2)
    guard suffix.contains("."), let dot = name.firstIndex(of: ".") else { return false }
    let firstLabel = name[..<dot]
    return !firstLabel.isEmpty && name[name.index(after: dot)...] == suffix
  }

  private static func normalized(_ text: String) -> String {
    let lower = text.lowercased()
    return lower.hasSuffix(".") ? String(lower.dropLast()) : lower
  }
}
