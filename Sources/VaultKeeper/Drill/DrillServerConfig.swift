// SPDX-License-Identifier: Apache-2.0
/// The throwaway server's configuration file. Its API is a Unix socket inside the drill's 0700
/// directory: only this user reaches it, and the shares never cross a network. Raft needs a
/// cluster listener, which only a TCP listener can carry: it binds loopback on a port the
/// kernel picks (so it never collides with production's ports), and its API side demands a
/// client certificate from a CA that signs nothing, so nobody can use it.
public struct DrillServerConfig: Sendable, Equatable {
  public var raftPath: String
  public var socketPath: String
  public var certificateFile: String
  public var keyFile: String

  public init(raftPath: String, socketPath: String, certificateFile: String, keyFile: String) {
    self.raftPath = raftPath
    self.socketPath = socketPath
    self.certificateFile = certificateFile
    self.keyFile = keyFile
  }

  /// `disable_mlock`: Vault needs it without CAP_IPC_LOCK (the daemon's user has none);
  /// OpenBao no longer knows it and only warns. `api_addr` is only advertised to standbys, of
  /// which a one-node cluster has none; port 1 is no one's, and it must differ from
  /// `cluster_addr`. The cluster port is the kernel's pick. `performance_multiplier = 1`: Raft's
  /// tightest timing (the default, 5, is for shared cloud machines); a one-node cluster on
  /// loopback has no peer to mistake for dead, and every election and leadership check of the
  /// drill (after init, after the restore, after the restart) is that much shorter.
  public var hcl: String {
    """
    # A vaultkeeper restore drill's throwaway server; removed when the drill ends.
    ui = false
    disable_mlock = true
    log_level = "info"
    storage "raft" {
      path = \(Self.quoted(raftPath))
      node_id = "vaultkeeper-restore-drill"
      performance_multiplier = 1
    }
    listener "unix" {
      address = \(Self.quoted(socketPath))
    }
    listener "tcp" {
      address = "127.0.0.1:0"
      cluster_address = "127.0.0.1:0"
      tls_cert_file = \(Self.quoted(certificateFile))
      tls_key_file = \(Self.quoted(keyFile))
      tls_require_and_verify_client_cert = true
      tls_client_ca_file = \(Self.quoted(certificateFile))
    }
    api_addr = "https://127.0.0.1:1"
    cluster_addr = "https://127.0.0.1:0"

    """
  }

  /// An HCL string literal. Paths come from our own state directory, but a quote or a
  /// backslash in one must not end the string.
  static func quoted(_ text: String) -> String {
    var out = "\""
    for character in text {
      switch character {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      default: out.append(character)
      }
    }
    return out + "\""
  }
}
