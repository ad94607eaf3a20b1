// SPDX-License-Identifier: Apache-2.0
import Glibc
import Platform
import Testing

/// Threads started by the adapters carry their name (what `top -H` and `ps -L` show), cut to
/// the kernel's 15 bytes.
@Suite struct NamedThreadTests {
  /// The calling thread's name as the kernel reports it.
  static func currentThreadName() -> String {
    let file = fopen("/proc/thread-self/comm", "r")
    defer { if let file { fclose(file) } }
    var buffer = [CChar](repeating: 0, count: 64)
    guard let file, fgets(&buffer, 64, file) != nil else { return "" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      .trimmingSuffix("\n")
  }

  @Test(arguments: [("vk-unit-watch", "vk-unit-watch"), ("curl 127.0.0.1:8200", "curl 127.0.0.1:")])
  func theThreadCarriesItsName(requested: String, shown: String) async {
    let name = await withCheckedContinuation { continuation in
      let result = NamedThread.start(name: requested) { continuation.resume(returning: Self.currentThreadName()) }
      if result != 0 { continuation.resume(returning: "pthread_create failed: \(result)") }
    }
    #expect(name == shown)
  }
}

extension String {
  fileprivate func trimmingSuffix(_ suffix: String) -> String {
    hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
  }
}
