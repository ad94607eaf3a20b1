// SPDX-License-Identifier: Apache-2.0
import FuzzSupport
import VaultKeeper

/// The TOML parser under the configuration: any bytes either parse or give a `TOMLError` at a
/// line and column inside the document, never a crash, trap or runaway recursion.
///
/// Property: a parsed document written back (`TOMLWriter`) parses to the same value tree.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTOML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let bytes = FuzzInput.bytes(data, size)
  let table: TOMLTable
  do throws(TOMLError) {
    table = try TOMLParser.parse(bytes)
  } catch {
    let lines = bytes.reduce(1) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    guard error.line >= 1, error.line <= lines, error.column >= 1 else {
      violated("the error \(error) lies outside the document (\(lines) lines)")
    }
    return 0
  }
  let written = TOMLWriter.write(table)
  do throws(TOMLError) {
    let again = try TOMLParser.parse(written)
    guard again.sameValue(as: table) else { violated("the written document parses to a different tree") }
  } catch {
    violated("the written document does not parse: \(error)")
  }
  return 0
}
