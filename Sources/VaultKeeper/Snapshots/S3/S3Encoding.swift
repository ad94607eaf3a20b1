// SPDX-License-Identifier: Apache-2.0
/// URI encoding as SigV4 wants it: RFC 3986 unreserved characters stay, everything else is
/// `%XX` (upper case). libcurl 7.88 signs the path and query exactly as we write them, so the
/// query is built in canonical order here (sorted by name, every name with `=`).
public enum S3Encoding {
  static func isUnreserved(_ byte: UInt8) -> Bool {
    (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D || byte == 0x2E
      || byte == 0x5F || byte == 0x7E
  }

  /// Encodes one query value or name (`/` too).
  public static func component(_ text: String) -> String {
    encode(text, keepSlash: false)
  }

  /// Encodes an object key for the path (`/` stays a separator).
  public static func path(_ key: String) -> String {
    "/" + encode(key, keepSlash: true)
  }

  /// `?a=1&b=2` sorted by name; empty for no parameters.
  public static func query(_ parameters: [(String, String)]) -> String {
    guard !parameters.isEmpty else { return "" }
    let sorted = parameters.map { (component($0.0), component($0.1)) }.sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
    return "?" + sorted.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
  }

  private static func encode(_ text: String, keepSlash: Bool) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    for byte in text.utf8 {
      if isUnreserved(byte) || (keepSlash && byte == 0x2F) {
        out.append(byte)
      } else {
        out += [0x25, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
      }
    }
    return String(decoding: out, as: UTF8.self)
  }
}
