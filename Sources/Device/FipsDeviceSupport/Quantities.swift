/// Sizes and durations as every program reads them from its command line
/// (`--budget 26MB`, `--max-body 8M`, `--http-timeout 10s`, `--latency 120ms`):
/// one parser, so a unit means the same thing in fips-plan and in fipsd.
/// Integer arithmetic on UTF-8 bytes only: Embedded Swift has no
/// `Double(String)` and no Unicode tables for Character comparisons.

/// A non-negative decimal number with at most 6 digits after the point, as
/// (value × 10⁶); nil for anything else or past 2⁴⁰.
func parseMicroUnits(_ s: ArraySlice<UInt8>) -> Int? {
    var whole = 0, frac = 0, fracDigits = 0, digits = 0
    var afterPoint = false
    for b in s {
        if b == 46 && !afterPoint { afterPoint = true; continue }   // '.'
        guard b >= 48 && b <= 57 else { return nil }
        digits += 1
        if afterPoint {
            guard fracDigits < 6 else { return nil }
            frac = frac * 10 + Int(b - 48)
            fracDigits += 1
        } else {
            whole = whole * 10 + Int(b - 48)
            if whole > (1 << 40) { return nil }
        }
    }
    guard digits > 0 else { return nil }
    while fracDigits < 6 { frac *= 10; fracDigits += 1 }
    return whole * 1_000_000 + frac
}

/// The number before `unit` (spaces between allowed) in micro-units, or nil.
private func number(_ s: ArraySlice<UInt8>, droppingSuffix unit: String) -> Int? {
    var t = s.dropLast(unit.utf8.count)
    while t.last == 32 { t = t.dropLast() }
    return parseMicroUnits(t)
}

private func hasSuffix(_ s: ArraySlice<UInt8>, _ unit: String) -> Bool {
    let u = Array(unit.utf8)
    return s.count >= u.count && s.suffix(u.count).elementsEqual(u)
}

/// Byte-size units, longest first so "MiB" is not read as "B".
/// "M", "G", "K" are binary, as systemd's MemoryMax= and dd read them; "MB" decimal.
private let byteUnits: [(String, Int)] = [
    ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000),
    ("kB", 1_000), ("KB", 1_000), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("k", 1 << 10), ("B", 1),
]

/// "50MB" (10⁶), "48MiB" and "48M" (2²⁰), "900kB", "1.5G" … → bytes (rounded down).
/// A bare number is bytes, unless `requireUnit` (--budget: "26" is far more
/// likely a forgotten "MB" than 26 bytes). Nil for zero, a negative or unreadable value.
public func parseByteCount(_ s: String, requireUnit: Bool = false) -> Int? {
    let t = trimmedSpaces(s)
    if let counted = withUnit(t, byteUnits) { return counted }
    if requireUnit { return nil }
    guard let v = parseMicroUnits(t), v > 0, v % 1_000_000 == 0 else { return nil }   // no "1.5" bytes
    return v / 1_000_000
}

/// Duration units in microseconds, longest first so "ms" is not read as "s".
private let durationUnits: [(String, Int)] = [
    ("min", 60_000_000), ("us", 1), ("µs", 1), ("ms", 1_000), ("s", 1_000_000), ("m", 60_000_000), ("h", 3_600_000_000),
]

/// "120ms", "0.12s", "10s", "2min", "1h", "500us" → microseconds. A bare
/// number is refused when `requireUnit` (is "10" seconds or milliseconds?),
/// else read as `bareUnitMicroseconds`. Nil for zero or an unreadable value.
public func parseDurationMicroseconds(_ s: String, requireUnit: Bool = true, bareUnitMicroseconds: Int = 1_000) -> Int? {
    let t = trimmedSpaces(s)
    if let counted = withUnit(t, durationUnits) { return counted }
    if requireUnit { return nil }
    guard let v = parseMicroUnits(t), v > 0 else { return nil }
    return v / 1_000_000 * bareUnitMicroseconds + (v % 1_000_000) * bareUnitMicroseconds / 1_000_000
}

/// For the first of `units` that `t` ends with: the number before it times the unit's factor,
/// rounded down (.some(nil) when unreadable, zero or past 2⁴⁰). Nil when no unit matches.
private func withUnit(_ t: ArraySlice<UInt8>, _ units: [(String, Int)]) -> Int?? {
    for (unit, factor) in units where hasSuffix(t, unit) {
        guard let v = number(t, droppingSuffix: unit), v > 0, v / 1_000_000 <= (1 << 40) / factor else { return .some(nil) }
        let scaled = v / 1_000_000 * factor + (v % 1_000_000) * factor / 1_000_000
        return .some(scaled > 0 ? scaled : nil)
    }
    return nil
}

private func trimmedSpaces(_ s: String) -> ArraySlice<UInt8> {
    var t = Array(s.utf8)[...]
    while t.first == 32 { t = t.dropFirst() }
    while t.last == 32 { t = t.dropLast() }
    return t
}
