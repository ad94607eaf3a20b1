// SPDX-License-Identifier: Apache-2.0
import Logging

/// A swift-log backend that writes to the systemd journal when we run under systemd, and
/// readable lines to stderr otherwise.
///
/// The sink is decided once by `JournalOutput.detect` (see `JournalSink.select`); every handler
/// created by the bootstrap factory shares that one `JournalOutput`:
///
/// ```swift
/// let output = JournalOutput.detect(syslogIdentifier: "vaultkeeper")
/// LoggingSystem.bootstrap { label, provider in
///   JournalLogHandler(label: label, output: output, metadataProvider: provider)
/// }
/// ```
///
/// Natively, metadata becomes journal fields (`vault.addr` → `VAULT_ADDR`, see
/// `journalFieldName`), so `journalctl VAULT_ADDR=https://127.0.0.1:8200` works; `message_id`
/// becomes `MESSAGE_ID` for catalog lookups.
public struct JournalLogHandler: LogHandler {
  /// The logger's label; sent as `LOGGER=` natively and shown in plain stderr lines.
  public let label: String
  public var logLevel: Logger.Level
  public var metadata: Logger.Metadata = [:]
  public var metadataProvider: Logger.MetadataProvider?
  private let output: JournalOutput

  /// - Parameters:
  ///   - label: the logger's label.
  ///   - output: the shared destination created once at bootstrap.
  ///   - logLevel: the initial level; `.info` keeps debug chatter out of the journal by default.
  ///   - metadataProvider: task-local metadata merged into each entry (swift-log API).
  public init(
    label: String,
    output: JournalOutput,
    logLevel: Logger.Level = .info,
    metadataProvider: Logger.MetadataProvider? = nil
  ) {
    self.label = label
    self.output = output
    self.logLevel = logLevel
    self.metadataProvider = metadataProvider
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    output.emit(record(for: event))
  }

  /// The event reduced to strings, with all metadata layers merged; separate for tests.
  func record(for event: LogEvent) -> JournalRecord {
    let merged = mergeMetadata(
      handler: metadata, provider: metadataProvider, explicit: event.metadata, error: event.error)
    return JournalRecord(
      level: event.level, message: event.message.description, label: label,
      metadata: flattenMetadata(merged), file: event.file, function: event.function, line: event.line)
  }
}
