import XCTest
import FipsDeviceSupport

/// Sizes and durations as the command lines read them (one parser for fips-plan, fips-run and fipsd).
final class QuantitiesTests: XCTestCase {
    func testSizesTakeUnits() {
        XCTAssertEqual(parseByteCount("26MB"), 26_000_000)
        XCTAssertEqual(parseByteCount("26MiB"), 26 << 20)
        XCTAssertEqual(parseByteCount("26M"), 26 << 20)
        XCTAssertEqual(parseByteCount("900kB"), 900_000)
        XCTAssertEqual(parseByteCount("1.5G"), 3 << 29)
        XCTAssertEqual(parseByteCount("48.5MiB"), 48 << 20 + 1 << 19)
        XCTAssertEqual(parseByteCount("4096"), 4096)
        XCTAssertEqual(parseByteCount(" 7 B "), 7)
        XCTAssertNil(parseByteCount("26", requireUnit: true), "--budget 26: a forgotten unit, not 26 bytes")
        XCTAssertEqual(parseByteCount("26 MB", requireUnit: true), 26_000_000)
        for bad in ["MB", "-3MB", "0MB", "1.5", "3 parsecs", "1..5M", "", "0.0000001M", "99999999999999GiB"] {
            XCTAssertNil(parseByteCount(bad), bad)
        }
    }

    func testDurationsTakeUnits() {
        XCTAssertEqual(parseDurationMicroseconds("120ms"), 120_000)
        XCTAssertEqual(parseDurationMicroseconds("0.12s"), 120_000)
        XCTAssertEqual(parseDurationMicroseconds("10s"), 10_000_000)
        XCTAssertEqual(parseDurationMicroseconds("2min"), 120_000_000)
        XCTAssertEqual(parseDurationMicroseconds("2m"), 120_000_000)
        XCTAssertEqual(parseDurationMicroseconds("1h"), 3_600_000_000)
        XCTAssertEqual(parseDurationMicroseconds("500us"), 500)
        XCTAssertEqual(parseDurationMicroseconds("12.5 ms"), 12_500)
        XCTAssertNil(parseDurationMicroseconds("700"), "a bare number: seconds or milliseconds?")
        XCTAssertEqual(parseDurationMicroseconds("700", requireUnit: false), 700_000, "bare: milliseconds unless told")
        for bad in ["ms", "0s", "-1s", "5 fortnights", "1.2.3s"] {
            XCTAssertNil(parseDurationMicroseconds(bad), bad)
        }
    }
}
