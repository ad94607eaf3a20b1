// SPDX-License-Identifier: Apache-2.0
import Glibc
import Testing

@testable import Systemd

@Test func notifyPayloadJoinsLinesAndNeutralisesEmbeddedNewlines() {
  #expect(SystemdNotifier.payload(["READY=1", "STATUS=ok"]) == "READY=1\nSTATUS=ok")
  // A status line carrying text from elsewhere must not be able to add a second key.
  #expect(SystemdNotifier.payload(["STATUS=sealed\nREADY=1"]) == "STATUS=sealed READY=1")
  #expect(SystemdNotifier.payload(["STATUS=a\r\nb"]) == "STATUS=a b")
}

extension ProcessEnvironmentTests {
  @Suite struct NotifierTests {
    @Test func sendsOneDatagramToFilesystemSocket() throws {
      let directory = try TemporaryDirectory()
      defer { directory.remove() }
      let path = directory.path + "/notify"
      let socket = try DatagramSocket(address: path)
      let notifier = SystemdNotifier()
      withEnvironment(["NOTIFY_SOCKET": path]) {
        notifier.send(["READY=1", "STATUS=Watching vault.service"])
      }
      let datagram = try #require(socket.receive())
      #expect(String(decoding: datagram, as: UTF8.self) == "READY=1\nSTATUS=Watching vault.service")
      #expect(notifier.failureCount == 0)
      #expect(notifier.lastError == nil)
    }

    @Test func sendsToAbstractSocket() throws {
      let name = "@vaultkeeper-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
      let socket = try DatagramSocket(address: name)
      let notifier = SystemdNotifier()
      withEnvironment(["NOTIFY_SOCKET": name]) {
        notifier.send(["WATCHDOG=1"])
        notifier.send(["RELOADING=1", "MONOTONIC_USEC=12345"])
      }
      #expect(socket.receive().map { String(decoding: $0, as: UTF8.self) } == "WATCHDOG=1")
      let reload = try #require(socket.receive().map { String(decoding: $0, as: UTF8.self) })
      #expect(reload == "RELOADING=1\nMONOTONIC_USEC=12345")
    }

    @Test func isSilentWithoutNotifySocket() throws {
      let notifier = SystemdNotifier()
      withEnvironment(["NOTIFY_SOCKET": nil]) {
        notifier.send(["READY=1"])
      }
      #expect(notifier.failureCount == 0)
      #expect(notifier.lastError == nil)
    }

    @Test func countsFailuresInsteadOfThrowing() throws {
      let directory = try TemporaryDirectory()
      defer { directory.remove() }
      let notifier = SystemdNotifier()
      withEnvironment(["NOTIFY_SOCKET": directory.path + "/nobody-listens"]) {
        notifier.send(["READY=1"])
        notifier.send(["STATUS=still trying"])
      }
      #expect(notifier.failureCount == 2)
      let error = try #require(notifier.lastError)
      #expect(error.function == "sd_notify")
      #expect(error.errno == ENOENT || error.errno == ECONNREFUSED)
    }

    @Test func watchdogTimeoutWhenArmedForThisProcess() {
      let notifier = SystemdNotifier()
      let timeout = withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": String(getpid())]) {
        notifier.watchdogTimeout
      }
      #expect(timeout == .seconds(30))
      let withoutPID = withEnvironment(["WATCHDOG_USEC": "1500000", "WATCHDOG_PID": nil]) {
        notifier.watchdogTimeout
      }
      #expect(withoutPID == .milliseconds(1500))
    }

    @Test func noWatchdogWhenArmedForAnotherProcessOrUnset() {
      let notifier = SystemdNotifier()
      let otherPID = getpid() == 1 ? 2 : 1
      let forOther = withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": String(otherPID)]) {
        notifier.watchdogTimeout
      }
      #expect(forOther == nil)
      let unset = withEnvironment(["WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) {
        notifier.watchdogTimeout
      }
      #expect(unset == nil)
    }
  }
}
