// SPDX-License-Identifier: Apache-2.0
/// A configuration mistake, located as precisely as the file allows: which file, which key
/// (dotted path, `peer[2].address` for the third `[[peer]]`), and which line.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
  public var file: String
  public var key: String?
  public var line: Int?
  public var message: String
  /// A file that decides where shares or backups go can be written by others (`TrustedFile`):
  /// refused like an insecure key file (exit 77), not as a mistake in the text (78).
  public var insecure: Bool

  public init(file: String, key: String?, line: Int?, message: String, insecure: Bool = false) {
    self.file = file
    self.key = key
    self.line = line
    self.message = message
    self.insecure = insecure
  }

  /// `FILE:LINE: KEY: MESSAGE`, the shape compilers use, so editors can jump to it.
  public var description: String {
    var text = file
    if let line { text += ":\(line)" }
    text += ": "
    if let key { text += "\(key): " }
    return text + message
  }
}
