import XCTest
import CPhi4Kernels
@testable import Phi4

/// The kernels' format table (formats.c), where each weight format's facts are written once, against
/// the `gguf` package's table of GGML types (tools/make_ggml_types.py): every type libphi4 reads has
/// an entry with gguf's name and block size, Swift's GGMLType and WeightFormat agree with it, and
/// each quantizer and dequantizer it lists round-trips a row within its format's error bound.
final class FormatTableTests: XCTestCase {
    struct Reference { let name: String; let values: Int; let bytes: Int }

    func reference() throws -> [UInt32: Reference] {
        let json = try JSONParser.parse(FileIO.readAll(fixturesDirectory + "/quant/ggml_types.json", limit: 1 << 20))
        var out: [UInt32: Reference] = [:]
        for t in json["types"]!.arrayValue! {
            out[UInt32(t["id"]!.intValue!)] = Reference(name: t["name"]!.stringValue!, values: t["block_values"]!.intValue!,
                                                        bytes: t["block_bytes"]!.intValue!)
        }
        XCTAssertGreaterThan(out.count, 30)
        return out
    }

    func testEveryEntryMatchesTheGGUFPackage() throws {
        let ref = try reference()
        var i = 0
        var ids: [UInt32] = []
        while let entry = p4k_format_at(i)?.pointee {
            let r = try XCTUnwrap(ref[entry.ggml_type], "type \(entry.ggml_type)")
            XCTAssertEqual(String(cString: entry.name), r.name)
            XCTAssertEqual(Int(entry.block_values), r.values, r.name)
            XCTAssertEqual(Int(entry.block_bytes), r.bytes, r.name)
            XCTAssertNotNil(GGMLType(rawValue: entry.ggml_type), "\(r.name) has no GGMLType case")
            if entry.in_place != 0 {
                XCTAssertEqual(p4k_row_bytes(Int32(entry.ggml_type), 512), 512 / Int(entry.block_values) * Int(entry.block_bytes))
            }
            ids.append(entry.ggml_type)
            i += 1
        }
        XCTAssertEqual(ids, ids.sorted(), "the table is in GGML type order")
        for t in GGMLType.allCases {
            XCTAssertNotNil(p4k_format(t.rawValue), "\(t) has no table entry")
            XCTAssertEqual(t.displayName, ref[t.rawValue]?.name)
        }
        for f in WeightFormat.allCases where f != .f32 {
            XCTAssertEqual(p4k_format(f.ggmlType.rawValue)!.pointee.in_place, 1, "\(f) runs in place")
            XCTAssertEqual(Int(f.kernelCode), Int(f.ggmlType.rawValue))
            XCTAssertEqual(f.rowBytes(5120), 5120 / ref[f.ggmlType.rawValue]!.values * ref[f.ggmlType.rawValue]!.bytes)
        }
    }

    /// Each listed quantizer and dequantizer: quantize a random row in [-1, 1], dequantize it, and
    /// the root-mean-square error stays below 2^-(b-2) for b whole bits per weight (one step of a
    /// b-bit grid over [-1, 1]: loose for the scale overhead and the lattice types' coarser
    /// points) and below 0.45, while an entry wired to another format's function errs by about
    /// the values' own RMS (0.58).
    func testListedConvertersRoundTrip() throws {
        var rng = QuantizationTests.LCG(state: 7)
        let n = 512
        let x = (0..<n).map { _ in rng.next() }  // in [-1, 1]
        var i = 0
        while let e = p4k_format_at(i)?.pointee {
            i += 1
            guard let q = e.quantize, let d = e.dequantize else { continue }
            var bytes = [UInt8](repeating: 0, count: n / Int(e.block_values) * Int(e.block_bytes))
            var y = [Float](repeating: 0, count: n)
            bytes.withUnsafeMutableBytes { q(x, $0.baseAddress, n) }
            bytes.withUnsafeBytes { d($0.baseAddress, &y, n) }
            let bits = Double(e.block_bytes * 8) / Double(e.block_values)
            let bound = min(Float(pow(2.0, -(bits.rounded(.down) - 2))), 0.45)
            let err = (zip(x, y).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Float(n)).squareRoot()
            XCTAssertLessThan(err, bound, String(cString: e.name))
        }
    }
}
