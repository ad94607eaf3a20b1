// SPDX-License-Identifier: Apache-2.0
import Glibc

/// An `AF_UNIX` datagram socket bound to a path or an abstract name: the receiving end of
/// `sd_notify` (and, in the native-journal child, of `sd_journal_sendv`).
final class DatagramSocket {
  let fd: Int32

  /// - Parameter address: a filesystem path, or `@name` for the abstract namespace (the form
  ///   `$NOTIFY_SOCKET` uses).
  init(address: String) throws {
    fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket failed: errno \(errno)") }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    var bytes = Array(address.utf8)
    let abstract = bytes.first == UInt8(ascii: "@")
    if abstract { bytes[0] = 0 }
    let capacity = MemoryLayout.size(ofValue: addr.sun_path)
    guard bytes.count < capacity else { throw TestFailure("socket path too long: \(address)") }
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
      for (index, byte) in bytes.enumerated() { raw[index] = byte }
    }
    let length = MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1)
    let bound = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
    }
    guard bound == 0 else {
      let code = errno
      Glibc.close(fd)
      throw TestFailure("bind(\(address)) failed: errno \(code)")
    }
  }

  deinit { Glibc.close(fd) }

  /// One datagram, or nil if none arrives within `timeout`.
  func receive(timeout: Duration = .seconds(2)) -> [UInt8]? {
    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    let millis = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
    guard poll(&poller, 1, millis) == 1 else { return nil }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    let count = recv(fd, &buffer, buffer.count, 0)
    guard count >= 0 else { return nil }
    return Array(buffer[0..<count])
  }
}
