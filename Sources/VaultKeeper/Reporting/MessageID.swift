/// Fixed journal `MESSAGE_ID`s, one per event an operator may alert on. They never change once
/// released: alerting rules and the journal catalog (deploy/) match on them.
/// `docs/operations.md` lists each with its meaning and what to do.
public enum MessageID: String, Sendable, CaseIterable {
  case started = "49e81896291f47b191a6fe71add851d3"
  case stopping = "4ea8d8b9b0154f9d8949debde1f5a0ec"
  case sealed = "73e6171de4dc4fdb9dc3d43cd1189dd8"
  case unsealed = "7128e551b505414cbe85725495e8fad8"
  case unsealFailed = "7f2fda94236f49128aa0d7bcac60b505"
  case wrongKey = "fa12a65c7df74152bd862a36bab0efba"
  case deliberateSeal = "978f6bbf58354cbb9115621df492a3be"
  case tooFewShares = "f6e97d8e02b448409a07feca005b0282"
  case unreachable = "ea4e16d4e27348e3ba29bf43ecbb0059"
  case protocolError = "40b50cc0a96e423f9226587364788faf"
  case recovered = "fb258f3c210a42d3b94b33a939b36bcc"
  case stateChanged = "5824bcf4280d48f99aabe41b3c8db0b5"
  case autoUnseal = "d7c54e25357d445091756abc702fbb57"
  case foreignProgress = "d2b164477fd046fda8bfc330078aab1e"
  case foreignProgressReset = "d76b27e92c04427db7ce4ef601c54adb"
  case configReloaded = "1d5490b5bcfe4a5bb26d67e2746dcbc2"
  case configRejected = "e976abdc5c5b4c99bfcd535883e26905"

  /// A short name used in docs and the catalog.
  public var name: String {
    switch self {
    case .started: "started"
    case .stopping: "stopping"
    case .sealed: "sealed"
    case .unsealed: "unsealed"
    case .unsealFailed: "unseal-failed"
    case .wrongKey: "wrong-key"
    case .deliberateSeal: "deliberate-seal"
    case .tooFewShares: "too-few-shares"
    case .unreachable: "unreachable"
    case .protocolError: "protocol-error"
    case .recovered: "recovered"
    case .stateChanged: "state-changed"
    case .autoUnseal: "auto-unseal"
    case .foreignProgress: "foreign-progress"
    case .foreignProgressReset: "foreign-progress-reset"
    case .configReloaded: "config-reloaded"
    case .configRejected: "config-rejected"
    }
  }
}
