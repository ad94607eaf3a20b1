// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import VaultKeeper

@Suite struct VaultAddressTests {
  @Test func parsesHTTPS() throws {
    let address = try VaultAddress.parse("https://Vault.Example.com:8201").get()
    #expect(address.scheme == .https)
    #expect(address.host == "vault.example.com")
    #expect(address.port == 8201)
    #expect(address.baseURL == "https://vault.example.com:8201")
    #expect(!address.isLocal)
  }

  @Test func defaultsPortTo8200() throws {
    #expect(try VaultAddress.parse("https://10.0.0.2").get().port == 8200)
    #expect(try VaultAddress.parse("https://10.0.0.2/").get().port == 8200)
  }

  @Test func parsesIPv6() throws {
    let address = try VaultAddress.parse("http://[::1]:8200").get()
    #expect(address.host == "::1")
    #expect(address.isLocal)
    #expect(address.baseURL == "http://[::1]:8200")
  }

  @Test func parsesUnixSockets() throws {
    let address = try VaultAddress.parse("unix:///run/vault/vault.sock").get()
    #expect(address.scheme == .unix)
    #expect(address.socketPath == "/run/vault/vault.sock")
    #expect(address.isLocal)
  }

  @Test(arguments: ["127.0.0.1", "127.1.2.3", "localhost", "::1"])
  func loopbackHosts(host: String) {
    #expect(VaultAddress.isLoopbackHost(host))
  }

  @Test(arguments: ["10.0.0.1", "128.0.0.1", "localhost.evil.com", "127.0.0.1.nip.io", "::2"])
  func nonLoopbackHosts(host: String) {
    #expect(!VaultAddress.isLoopbackHost(host))
  }

  @Test(arguments: ["vault:8200", "ftp://x", "https://", "https://host:0", "https://host:99999", "https://host/v1", "https://u:p@host",
    "unix://relative.sock", "https://host?x=1"])
  func rejectsBadAddresses(text: String) {
    guard case .failure = VaultAddress.parse(text) else {
      Issue.record("accepted \(text)")
      return
    }
  }
}
