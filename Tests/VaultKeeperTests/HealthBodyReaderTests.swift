// SPDX-License-Identifier: Apache-2.0
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
@testable import VaultKeeper

/// `HealthBodyReader` must read every health body exactly as `JSONDecoder` reads it into
/// `HealthBody` (the classifier used JSONDecoder before): the same value for a body both accept,
/// nil where JSONDecoder throws. Real bodies, hand-made damage, and random damage.
@Suite struct HealthBodyReaderTests {
  private func decoded(_ body: [UInt8]) -> HealthBody? {
    try? JSONDecoder().decode(HealthBody.self, from: Data(body))
  }

  private func expectSame(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
    expectSame(Array(text.utf8), sourceLocation: sourceLocation)
  }

  private func expectSame(_ body: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
    let expected = decoded(body)
    let read = HealthBodyReader.read(body)
    #expect(read == expected, "\(String(decoding: body, as: UTF8.self).debugDescription)", sourceLocation: sourceLocation)
  }

  /// OpenBao 2.7's answer (`bao` dev server), and Vault 1.19's with the newer fields.
  static let openBao = """
    {"initialized":true,"sealed":false,"standby":false,"performance_standby":false,"replication_performance_mode":"disabled",\
    "replication_dr_mode":"disabled","server_time_utc":1765100000,"version":"2.7.2","cluster_name":"vault-cluster-5e1c2d2b",\
    "cluster_id":"0c7f1f3e-1b8e-3a44-2f50-8f2b3c6c2d11"}
    """
  static let vault119 = """
    {"initialized":true,"sealed":true,"standby":true,"performance_standby":false,"replication_performance_mode":"disabled",\
    "replication_dr_mode":"disabled","server_time_utc":1765100000,"version":"1.19.0","enterprise":false,\
    "echo_duration_ms":0,"clock_skew_ms":0,"replication_primary_canary_age_ms":0,"removed_from_cluster":false,\
    "ha_connection_healthy":true,"last_request_forwarding_heartbeat_ms":12.5e-1,"extra":{"a":[1,-2.0,3E+2,null,"x\\u00e9"]}}

    """

  @Test func realBodiesReadAsJSONDecoderReadsThem() throws {
    for text in [Self.openBao, Self.vault119] {
      let read = try #require(HealthBodyReader.read(Array(text.utf8)))
      #expect(read == decoded(Array(text.utf8)))
    }
    let bao = try #require(HealthBodyReader.read(Array(Self.openBao.utf8)))
    #expect(bao.version == "2.7.2" && bao.clusterName == "vault-cluster-5e1c2d2b" && !bao.sealed && bao.performanceStandby == false)
    let vault = try #require(HealthBodyReader.read(Array(Self.vault119.utf8)))
    #expect(vault.sealed && vault.standby && vault.removedFromCluster == false && vault.haConnectionHealthy == true)
  }

  @Test func typesNullsAndMissingFields() {
    expectSame(#"{"initialized":true,"sealed":false,"standby":false}"#)
    expectSame(#"{"initialized":true,"sealed":false}"#)  // standby missing
    expectSame(#"{"initialized":null,"sealed":false,"standby":false}"#)  // required field null
    expectSame(#"{"initialized":1,"sealed":false,"standby":false}"#)  // a number is no Bool
    expectSame(#"{"initialized":"true","sealed":false,"standby":false}"#)
    expectSame(#"{"initialized":true,"sealed":false,"standby":false,"version":null,"performance_standby":null}"#)
    expectSame(#"{"initialized":true,"sealed":false,"standby":false,"version":2}"#)  // optional of the wrong type
    expectSame(#"{"initialized":true,"sealed":false,"standby":false,"performance_standby":"no"}"#)
    expectSame(#"{"initialized":true,"sealed":false,"standby":false,"cluster_id":["x"]}"#)
    expectSame(#"{"initialized":true,"initialized":false,"sealed":false,"standby":false}"#)  // given twice
    expectSame(#"{"initialized":true,"sealed":false,"standby":false,"version":"1","version":"2"}"#)
    expectSame(#"{"init\u0069alized":true,"sealed":false,"standby":false}"#)  // an escaped key
  }

  @Test func stringsAndEscapes() {
    for version in [#"1.2\"3"#, #"\\"#, #"\/\b\f\n\r\t"#, #"\u00e9\u4e2d"#, #"\ud83d\ude00"#, "caf\u{e9} \u{1F600}",
                    #"\ud83d"#, #"\ude00"#, #"\ud83dx"#, #"\ud83d\u0041"#, #"\x"#, #"\u12"#, #"\u12G4"#, "tab\there", "nl\nhere", #"\"#] {
      expectSame(#"{"initialized":true,"sealed":false,"standby":false,"version":""# + version + #""}"#)
    }
  }

  @Test func grammar() {
    let base = #""initialized":true,"sealed":false,"standby":false"#
    for text in [
      "{\(base)}", " \n\t{ \(base) } \r\n", "{\(base)} x", "{\(base)},", "{\(base),}", "{,\(base)}", "[{\(base)}]", "",
      "{", "{\(base)", "{\(base)}}", "\u{FEFF}{\(base)}", "{} ", "null", "true",
      #"{\#(base),"n":0}"#, #"{\#(base),"n":-0}"#, #"{\#(base),"n":01}"#, #"{\#(base),"n":1.}"#, #"{\#(base),"n":.5}"#,
      #"{\#(base),"n":1e}"#, #"{\#(base),"n":1e-7}"#, #"{\#(base),"n":-}"#, #"{\#(base),"n":+1}"#, #"{\#(base),"n":1.5E+3}"#,
      #"{\#(base),"n":NaN}"#, #"{\#(base),"n":Infinity}"#, #"{\#(base),"n":tru}"#, #"{\#(base),"n":nulls}"#,
      #"{\#(base),"a":[]}"#, #"{\#(base),"a":[1,]}"#, #"{\#(base),"a":[,1]}"#, #"{\#(base),"a":{}}"#, #"{\#(base),"a":{"b"}}"#,
      #"{\#(base),"a":{"b":1,}}"#, #"{\#(base),"a":{1:2}}"#, #"{\#(base) "a":1}"#, #"{\#(base),"a" 1}"#, #"{'initialized':true}"#,
      // What JSONDecoder lets through in values it only skips, and what it does not.
      #"{\#(base),"n":1-2}"#, #"{\#(base),"n":--1}"#, #"{\#(base),"n":1e5e5}"#, #"{\#(base),"n":0x10}"#, #"{\#(base),"n":12ab}"#,
      #"{\#(base),"n":-a}"#, #"{\#(base),"n":1 2}"#, #"{\#(base),"s":"a\#u{01}b"}"#, #"{\#(base),"s":"a\xb"}"#,
      #"{\#(base),"s":"\ud83d"}"#, #"{\#(base),"s":"ab\"}"#, #"{\#(base),"s":"abc}"#, #"{\#(base),"x\yz":1}"#,
      #"{\#(base),"\u12G4":1}"#, #"{\#(base),"\#u{01}":1}"#, "{\(base)}\u{0}", "{\(base)\u{0C}}",
      #"{,\#(base)}"#, #"{\#(base),,"x":1}"#, #"{\#(base),"a":[1,,2]}"#, #"{\#(base),"a":{,}}"#, #"{\#(base),"a":[,]}"#,
      #"{\#(base),"n":trueX}"#, #"{\#(base),"n":[truex]}"#, #"{\#(base),"a":[true,false,null,{"b":[]},]}"#,
      #"{"initialized":5,\#(base)}"#, #"{\#(base),"version":"a","version":5}"#, #"{\#(base),"version":null,"version":"x"}"#,
      #"{\#(base),"version":"a\u0000b"}"#,
    ] {
      expectSame(text)
    }
  }

  @Test func nestingDepth() {
    let base = #""initialized":true,"sealed":false,"standby":false"#
    for depth in [10, 510, 511, 512, 513, 600] {
      expectSame("{\(base),\"deep\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}")
      expectSame("{\(base),\"deep\":" + String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth) + "}")
      expectSame("{\(base),\"deep\":" + String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth) + "}")
    }
  }

  @Test func invalidUTF8() {
    let base = Array(#"{"initialized":true,"sealed":false,"standby":false,"#.utf8)
    for bad: [UInt8] in [[0xFF], [0xC3], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xC0, 0xAF]] {
      expectSame(base + Array(#""version":""#.utf8) + bad + Array(#""}"#.utf8))
      expectSame(base + Array(#""other":""#.utf8) + bad + Array(#""}"#.utf8))
    }
  }

  /// Random damage to real bodies: single bytes replaced, dropped or inserted, and cuts. A
  /// fixed seed, so a failure is repeatable.
  @Test func randomDamageReadsAsJSONDecoderReadsIt() {
    var random = SplitMix64(seed: 0x5EED_11)
    let alphabet = Array(#"{}[]:,"\ 0123456789.eE+-truefalsnl\u00ab"#.utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xA9, 0xFF]
    for template in [Self.openBao, Self.vault119].map({ Array($0.utf8) }) {
      for _ in 0..<3000 {
        var body = template
        for _ in 0..<Int(random.next() % 3 + 1) {
          let at = Int(random.next() % UInt64(body.count + 1))
          switch random.next() % 4 {
          case 0 where at < body.count: body[at] = alphabet[Int(random.next() % UInt64(alphabet.count))]
          case 1 where at < body.count: body.remove(at: at)
          case 2: body.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: at)
          default: body = Array(body[..<at])
          }
        }
        expectSame(body)
      }
    }
  }
}

/// A small deterministic generator (SplitMix64) for repeatable random tests.
private struct SplitMix64 {
  private var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
