// SPDX-License-Identifier: Apache-2.0
import ServiceLifecycle

/// One duty of a generation: a ServiceLifecycle `Service`, with the name its stop is logged
/// under (`node https://…`, `snapshot`, `certificate`).
public struct NamedDuty: Sendable {
  public enum OnStop: Sendable, Equatable {
    /// The duty handles graceful shutdown itself: it finishes the work in hand (bounded), then
    /// ends.
    case graceful
    /// The duty has no graceful stop of its own: it is cancelled as soon as the stop begins.
    case cancelAtOnce
  }

  public var name: String
  public var service: any Service
  public var onStop: OnStop

  public init(_ name: String, _ service: any Service, onStop: OnStop = .graceful) {
    self.name = name
    self.service = service
    self.onStop = onStop
  }

  /// Runs the service as `onStop` says.
  func run() async throws {
    switch onStop {
    case .graceful:
      try await service.run()
    case .cancelAtOnce:
      let service = service
      try await cancelWhenGracefulShutdown { try await service.run() }
    }
  }
}
