// SPDX-License-Identifier: Apache-2.0
/// Integers (decimal, 0x, 0o, 0b; underscores between digits; 64-bit, overflow refused) and
/// floats (fraction and/or exponent, inf, nan).
extension TOMLScanner {
  /// Whether a number (or inf/nan) starts here.
  var atNumber: Bool {
    guard let byte = peek() else { return false }
    return Self.isDigit(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") || next(is: "inf") || next(is: "nan")
  }

  mutating func number() throws(TOMLError) -> TOMLValue.Kind {
    let start = offset
    while let byte = peek(), Self.isBareKey(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".") { offset += 1 }
    let token = Array(bytes[start..<offset])
    let text = String(decoding: token, as: UTF8.self)
    func invalid(_ why: String) -> TOMLError { error(at: start, "\(text) is not a number: \(why)") }

    var body = token[...]
    var negative = false
    if let sign = body.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
      negative = sign == UInt8(ascii: "-")
      body = body.dropFirst()
    }
    if body.elementsEqual("inf".utf8) { return .float(negative ? -.infinity : .infinity) }
    if body.elementsEqual("nan".utf8) { return .float(.nan) }

    if body.count > 2, body.first == UInt8(ascii: "0"), let radix = Self.radix(body[body.startIndex + 1]) {
      guard body.count == token.count else { throw invalid("hexadecimal, octal and binary integers take no sign") }
      let digits = body.dropFirst(2)
      guard Self.underscoresBetweenDigits(digits, radix: radix) else {
        throw invalid("digits of base \(radix) expected, with underscores only between digits")
      }
      guard let value = Int64(String(decoding: digits.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self), radix: radix) else {
        throw invalid("it does not fit in 64 bits")
      }
      return .integer(value)
    }

    let exponentIndex = body.firstIndex { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
    let dotIndex = body.firstIndex(of: UInt8(ascii: "."))
    let integerPart = body[..<(dotIndex ?? exponentIndex ?? body.endIndex)]
    guard Self.underscoresBetweenDigits(integerPart, radix: 10) else {
      throw invalid("digits expected, with underscores only between digits")
    }
    guard integerPart.count == 1 || integerPart.first != UInt8(ascii: "0") else { throw invalid("leading zeros are not allowed") }
    if dotIndex == nil && exponentIndex == nil {
      let digits = String(decoding: body.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)
      guard let value = Int64((negative ? "-" : "") + digits) else { throw invalid("it does not fit in 64 bits") }
      return .integer(value)
    }
    if let dotIndex {
      guard exponentIndex.map({ $0 > dotIndex }) ?? true else { throw invalid("the fraction comes before the exponent") }
      let fraction = body[(dotIndex + 1)..<(exponentIndex ?? body.endIndex)]
      guard Self.underscoresBetweenDigits(fraction, radix: 10) else { throw invalid("a '.' needs digits on both sides") }
    }
    if let exponentIndex {
      var exponent = body[(exponentIndex + 1)...]
      if let sign = exponent.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { exponent = exponent.dropFirst() }
      guard Self.underscoresBetweenDigits(exponent, radix: 10) else { throw invalid("the exponent needs digits") }
    }
    guard let value = Double(String(decoding: token.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self)) else {
      throw invalid("not a floating-point number")
    }
    return .float(value)
  }

  private static func radix(_ byte: UInt8) -> Int? {
    switch byte {
    case UInt8(ascii: "x"): 16
    case UInt8(ascii: "o"): 8
    case UInt8(ascii: "b"): 2
    default: nil
    }
  }

  /// Non-empty digits of `radix`, each underscore between two digits.
  static func underscoresBetweenDigits(_ text: ArraySlice<UInt8>, radix: Int) -> Bool {
    guard !text.isEmpty else { return false }
    var previousWasDigit = false
    for byte in text {
      if byte == UInt8(ascii: "_") {
        guard previousWasDigit else { return false }
        previousWasDigit = false
        continue
      }
      guard let value = hexValue(byte), Int(value) < radix else { return false }
      previousWasDigit = true
    }
    return previousWasDigit
  }
}
