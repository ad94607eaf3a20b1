// SPDX-License-Identifier: Apache-2.0
import FuzzSupport
import VaultKeeper

/// The configuration file: TOML text → validated `Config` or a located `ConfigError`, as
/// `ConfigLoader.load` does after reading the file (`vaultkeeper config check`, startup, reload).
///
/// Property: what `config check` prints (`EffectiveConfig.render`) is itself a valid
/// configuration that means the same thing, so an operator can paste it back (all but a
/// `[[notify]]` webhook, whose URL is printed without its path).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let text = String(decoding: FuzzInput.bytes(data, size), as: UTF8.self)
  let path = "/fuzz/vaultkeeper.toml"
  let config: Config
  do {
    config = try ConfigLoader().parse(text, path: path)
  } catch {
    _ = error.description
    return 0
  }
  let rendered = EffectiveConfig.render(config)
  // A webhook's URL is shown without its path (often its secret): such an entry cannot read back.
  if config.notify.contains(where: { if case .webhook = $0.target { true } else { false } }) { return 0 }
  do {
    let again = try ConfigLoader().parse(rendered, path: path)
    guard again == config else { violated("the effective configuration parses to a different configuration") }
  } catch {
    violated("the effective configuration does not parse: \(error)")
  }
  return 0
}
