// SPDX-License-Identifier: Apache-2.0
/// A document that is not TOML 1.0, located at the line and column where reading stopped.
public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
  public var line: Int
  public var column: Int
  public var message: String

  public init(line: Int, column: Int, message: String) {
    self.line = line
    self.column = column
    self.message = message
  }

  init(_ position: TOMLPosition, _ message: String) {
    self.init(line: position.line, column: position.column, message: message)
  }

  /// `LINE:COLUMN: MESSAGE`.
  public var description: String { "\(line):\(column): \(message)" }
}
