// SPDX-License-Identifier: Apache-2.0
/// TOML's four date-time kinds as plain values (no calendar, no time zone database): an offset
/// date-time has a date, a time and an offset; a local date-time lacks the offset; a local date
/// is only a date; a local time only a time.
public struct TOMLDateTime: Sendable, Equatable, CustomStringConvertible {
  public struct Date: Sendable, Equatable {
    public var year: Int
    public var month: Int
    public var day: Int
  }

  public struct Time: Sendable, Equatable {
    public var hour: Int
    public var minute: Int
    public var second: Int
    /// The fraction of the second, in nanoseconds (digits past the ninth are dropped).
    public var nanosecond: Int
  }

  public var date: Date?
  public var time: Time?
  /// Minutes east of UTC; `Z` is 0. Only with both a date and a time.
  public var offsetMinutes: Int?

  public var kindName: String {
    switch (date != nil, time != nil, offsetMinutes != nil) {
    case (true, true, true): "date-time"
    case (true, true, false): "local date-time"
    case (true, false, _): "local date"
    default: "local time"
    }
  }

  /// RFC 3339 as TOML writes it: `1979-05-27T07:32:00.5-07:00`, `07:32:00`, `1979-05-27`.
  public var description: String {
    func pad(_ value: Int, _ width: Int) -> String {
      let digits = String(value)
      return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
    var text = ""
    if let date { text += "\(pad(date.year, 4))-\(pad(date.month, 2))-\(pad(date.day, 2))" }
    if let time {
      if date != nil { text += "T" }
      text += "\(pad(time.hour, 2)):\(pad(time.minute, 2)):\(pad(time.second, 2))"
      if time.nanosecond > 0 {
        var fraction = pad(time.nanosecond, 9)
        while fraction.hasSuffix("0") { fraction.removeLast() }
        text += "." + fraction
      }
    }
    if let offsetMinutes {
      if offsetMinutes == 0 {
        text += "Z"
      } else {
        let magnitude = abs(offsetMinutes)
        text += (offsetMinutes < 0 ? "-" : "+") + "\(pad(magnitude / 60, 2)):\(pad(magnitude % 60, 2))"
      }
    }
    return text
  }

  static func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: 30
    default: 31
    }
  }
}

extension TOMLScanner {
  /// Whether a date (`DDDD-`) or a time (`DD:`) starts here, rather than a number.
  func startsDateOrTime() -> Bool {
    func digit(_ i: Int) -> Bool { peek(i).map(TOMLScanner.isDigit) ?? false }
    return (digit(0) && digit(1) && digit(2) && digit(3) && peek(4) == UInt8(ascii: "-"))
      || (digit(0) && digit(1) && peek(2) == UInt8(ascii: ":"))
  }

  /// One of the four date-time kinds; `startsDateOrTime()` was true.
  mutating func dateTime() throws(TOMLError) -> TOMLDateTime {
    let start = offset
    var result = TOMLDateTime()
    if peek(2) != UInt8(ascii: ":") {
      let year = try digits(4), _ = try expect("-", "a date is written YYYY-MM-DD")
      let month = try digits(2), _ = try expect("-", "a date is written YYYY-MM-DD")
      let day = try digits(2)
      guard (1...12).contains(month), (1...TOMLDateTime.daysIn(month: month, year: year)).contains(day) else {
        throw error(at: start, "\(String(decoding: bytes[start..<offset], as: UTF8.self)) is not a date of the calendar")
      }
      result.date = .init(year: year, month: month, day: day)
      // A time follows after `T` or a space, but only a space followed by `HH:` belongs to it.
      let separator = peek(0)
      if separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") {
        offset += 1
        guard peek(0).map(TOMLScanner.isDigit) == true else { throw error("a time must follow the 'T' of a date-time") }
      } else if separator == UInt8(ascii: " "), peek(1).map(TOMLScanner.isDigit) == true, peek(2).map(TOMLScanner.isDigit) == true,
        peek(3) == UInt8(ascii: ":")
      {
        offset += 1
      } else {
        return result
      }
    }
    let timeStart = offset
    let hour = try digits(2), _ = try expect(":", "a time is written HH:MM:SS")
    let minute = try digits(2), _ = try expect(":", "a time is written HH:MM:SS (TOML 1.0 needs the seconds)")
    let second = try digits(2)
    guard hour < 24, minute < 60, second < 60 else {
      throw error(at: timeStart, "\(String(decoding: bytes[timeStart..<offset], as: UTF8.self)) is not a time of day")
    }
    var nanosecond = 0
    if peek(0) == UInt8(ascii: ".") {
      offset += 1
      var count = 0
      while let byte = peek(0), TOMLScanner.isDigit(byte) {
        if count < 9 { nanosecond = nanosecond * 10 + Int(byte - UInt8(ascii: "0")) }
        count += 1
        offset += 1
      }
      guard count > 0 else { throw error("a fraction of a second needs digits after the '.'") }
      for _ in min(count, 9)..<9 { nanosecond *= 10 }
    }
    result.time = .init(hour: hour, minute: minute, second: second, nanosecond: nanosecond)
    guard result.date != nil else { return result }
    switch peek(0) {
    case UInt8(ascii: "Z"), UInt8(ascii: "z"):
      offset += 1
      result.offsetMinutes = 0
    case UInt8(ascii: "+"), UInt8(ascii: "-"):
      let negative = peek(0) == UInt8(ascii: "-")
      let offsetStart = offset
      offset += 1
      let hours = try digits(2), _ = try expect(":", "a time offset is written +HH:MM")
      let minutes = try digits(2)
      guard hours < 24, minutes < 60 else {
        throw error(at: offsetStart, "\(String(decoding: bytes[offsetStart..<offset], as: UTF8.self)) is not a time offset")
      }
      result.offsetMinutes = (negative ? -1 : 1) * (hours * 60 + minutes)
    default:
      break
    }
    return result
  }

  /// Exactly `count` decimal digits.
  private mutating func digits(_ count: Int) throws(TOMLError) -> Int {
    var value = 0
    for _ in 0..<count {
      guard let byte = peek(0), TOMLScanner.isDigit(byte) else { throw error("a date or time needs \(count) digits here") }
      value = value * 10 + Int(byte - UInt8(ascii: "0"))
      offset += 1
    }
    return value
  }

  private mutating func expect(_ character: Unicode.Scalar, _ message: String) throws(TOMLError) {
    guard peek(0) == UInt8(ascii: character) else { throw error(message) }
    offset += 1
  }
}
