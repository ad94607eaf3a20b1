// SPDX-License-Identifier: Apache-2.0
import FuzzSupport
@testable import VaultKeeper

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// PEM and X.509 input: the certificate, key and CA files of `[certificate]` (written by
/// certbot, an ACME client or a person) and the chain a Vault node serves over TLS. The payload
/// is up to three files separated by NUL bytes (which PEM text never holds): certificate, key,
/// CA bundle. Even selectors run `CertificateInspector.inspect` (PEMBlocks, X.509 parsing,
/// `PrivateKeyCheck`, chain validation, names, expiry), as the certificate duty does on the
/// files' bytes; odd ones run `ServedCertificate.parse`, as the served-certificate probe does on
/// the PEM libcurl reports, each part one certificate of the chain.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCertificates(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
  let input = FuzzInput(data, size)
  let parts = input.payload.split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false).map(Array.init)
  if input.selector % 2 == 0 {
    let cert = parts[0]
    let key = parts.count > 1 ? parts[1] : nil
    let ca = parts.count > 2 ? parts[2] : nil
    let verdict = runBlocking {
      await CertificateInspector.inspect(
        certPEM: cert, keyPEM: key, caPEM: ca, names: ["vault.example.test", "127.0.0.1"], now: fixedNow)
    }
    // A certificate is only ever judged healthy with a parsed leaf and a matching key.
    if verdict.problems.isEmpty, key != nil, verdict.keyMatches != true { violated("no problem reported, yet the key was not matched") }
    if verdict.problems.isEmpty, verdict.leaf == nil { violated("no problem reported, yet no certificate was parsed") }
  } else {
    let pems = parts.map { String(decoding: $0, as: UTF8.self) }
    switch ServedCertificate.parse(pems: pems, verificationError: nil) {
    case .success(let served):
      if served.chain.count + 1 != pems.count { violated("the served chain lost or gained certificates") }
    case .failure(let error):
      _ = error.description
    }
  }
  return 0
}

/// A fixed "now" (2026-06-01), so a run does not depend on the day it is made.
private let fixedNow = Date(timeIntervalSince1970: 1_780_272_000)
