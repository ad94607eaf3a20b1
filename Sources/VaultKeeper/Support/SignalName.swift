// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#endif

/// `SIGTERM` rather than `15` in log lines. Only the signals a reload can meet are named.
public func signalName(_ signal: Int32) -> String {
  switch signal {
  case SIGHUP: "SIGHUP"
  case SIGINT: "SIGINT"
  case SIGTERM: "SIGTERM"
  case SIGKILL: "SIGKILL"
  case SIGSEGV: "SIGSEGV"
  case SIGABRT: "SIGABRT"
  case SIGPIPE: "SIGPIPE"
  case SIGUSR1: "SIGUSR1"
  case SIGUSR2: "SIGUSR2"
  default: "signal \(signal)"
  }
}
