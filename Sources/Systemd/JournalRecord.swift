// SPDX-License-Identifier: Apache-2.0
import Logging

/// One log event reduced to plain strings, the common input of all three sinks.
///
/// Building it once per event keeps the sinks pure string functions (easy to test) and makes
/// sure the journal and stderr show the same metadata in the same order.
struct JournalRecord: Sendable, Equatable {
  var level: Logger.Level
  var message: String
  /// The logger's label, e.g. `vaultkeeper.unseal`.
  var label: String
  /// Flattened metadata, sorted by key (see `flattenMetadata`).
  var metadata: [MetadataPair]
  var file: String
  var function: String
  var line: UInt
}

/// One flattened metadata entry. A struct rather than a tuple so records stay `Equatable`.
struct MetadataPair: Sendable, Equatable {
  var key: String
  var value: String
}

/// Merges the metadata layers the way swift-log's own handlers do: the handler's metadata, then
/// the metadata provider's (task-local context), then the log call's, each overriding the one
/// before; an attached error adds `error.message` and `error.type`.
func mergeMetadata(
  handler: Logger.Metadata,
  provider: Logger.MetadataProvider?,
  explicit: Logger.Metadata?,
  error: (any Error)?
) -> Logger.Metadata {
  var merged = handler
  if let provided = provider?.get(), !provided.isEmpty {
    merged.merge(provided) { _, new in new }
  }
  if let explicit, !explicit.isEmpty {
    merged.merge(explicit) { _, new in new }
  }
  if let error {
    merged["error.message"] = "\(error)"
    merged["error.type"] = "\(String(reflecting: type(of: error)))"
  }
  return merged
}

/// Flattens swift-log metadata into sorted `key=value` pairs.
///
/// A dictionary value is expanded into one pair per entry with a dotted key
/// (`["http": ["status": "200"]]` → `http.status=200`), matching the project's dotted-key
/// convention so the journal gets a real `HTTP_STATUS` field instead of a rendered dictionary.
/// An array stays one value, rendered as `[a, b]`: journald would accept a repeated field, but
/// most tools show only one of the copies.
func flattenMetadata(_ metadata: Logger.Metadata) -> [MetadataPair] {
  var pairs: [MetadataPair] = []
  func add(_ key: String, _ value: Logger.MetadataValue) {
    switch value {
    case .dictionary(let nested) where !nested.isEmpty:
      for (subKey, subValue) in nested { add("\(key).\(subKey)", subValue) }
    default:
      pairs.append(MetadataPair(key: key, value: renderMetadataValue(value)))
    }
  }
  for (key, value) in metadata { add(key, value) }
  return pairs.sorted { $0.key < $1.key }
}

/// Renders one value as text: strings as they are, `stringConvertible` through `description`,
/// arrays as `[a, b]` and (nested in arrays) dictionaries as `[k: v]`, with sorted keys so the
/// output is stable.
func renderMetadataValue(_ value: Logger.MetadataValue) -> String {
  switch value {
  case .string(let text):
    return text
  case .stringConvertible(let convertible):
    return convertible.description
  case .array(let elements):
    return "[" + elements.map(renderMetadataValue).joined(separator: ", ") + "]"
  case .dictionary(let nested):
    let body = nested.sorted { $0.key < $1.key }
      .map { "\($0.key): \(renderMetadataValue($0.value))" }
      .joined(separator: ", ")
    return "[" + (body.isEmpty ? ":" : body) + "]"
  }
}
