import CPhi4Kernels
import XCTest
@testable import Phi4

/// `p4k_attend_tile`, the decode / small-batch attention kernel, against a double-precision
/// softmax attention computed here.
final class AttentionKernelTests: XCTestCase {
    /// The cache element types the kernel reads.
    enum Element { case f32, f16, q8_0 }

    /// One case: `nq` queries over `tiles` consecutive key tiles of the given sizes.
    func run(isa: Int32, type: Element, hd: Int, nq: Int, tiles: [Int], seed: UInt64) {
        var rng = QuantizationTests.LCG(state: seed)
        let count = tiles.reduce(0, +)
        let ld = hd + 32  // rows lie apart (Q8_0 rows must stay whole blocks of 32)
        // Queries scaled so that scores span about ±8: a peaked softmax, where the running
        // maximum and the rescaling of earlier tiles matter.
        let q = (0..<(nq * hd)).map { _ in rng.next() * 1.5 }
        var k32 = (0..<(count * ld)).map { _ in rng.next() }
        var v32 = (0..<(count * ld)).map { _ in rng.next() }
        // The bytes the kernel reads, and the reference sees exactly the values they hold.
        var kBytes: [UInt8], vBytes: [UInt8]
        let code: Int32
        switch type {
        case .f32:
            kBytes = k32.withUnsafeBytes { Array($0) }
            vBytes = v32.withUnsafeBytes { Array($0) }
            code = Int32(P4K_KV_F32)
        case .f16:
            let k16 = k32.map { p4k_f32_to_fp16($0) }, v16 = v32.map { p4k_f32_to_fp16($0) }
            k32 = k16.map { p4k_fp16_to_f32($0) }
            v32 = v16.map { p4k_fp16_to_f32($0) }
            kBytes = k16.withUnsafeBytes { Array($0) }
            vBytes = v16.withUnsafeBytes { Array($0) }
            code = Int32(P4K_KV_F16)
        case .q8_0:
            kBytes = [UInt8](repeating: 0, count: count * ld / 32 * 34)
            vBytes = kBytes
            p4k_quantize_q8_0(k32, &kBytes, count * ld)
            p4k_quantize_q8_0(v32, &vBytes, count * ld)
            p4k_dequantize_q8_0(kBytes, &k32, count * ld)
            p4k_dequantize_q8_0(vBytes, &v32, count * ld)
            code = Int32(P4K_KV_Q8_0)
        }
        let rowBytes = kBytes.count / count
        let scale = 1 / Float(hd).squareRoot()

        /// The kernel over all tiles for queries `first ..< first + n`, normalized outputs.
        func kernel(_ first: Int, _ n: Int) -> [Float] {
            var runMax = [Float](repeating: -.infinity, count: n), runSum = [Float](repeating: 0, count: n)
            var acc = [Float](repeating: 0, count: n * hd)
            var scores = [Float](repeating: 0, count: n * (tiles.max() ?? 1))
            var k0 = 0
            for kn in tiles {
                q.withUnsafeBufferPointer { qp in
                    kBytes.withUnsafeBytes { kp in
                        vBytes.withUnsafeBytes { vp in
                            p4k_attend_tile(isa, code, qp.baseAddress! + first * hd, hd, n, kp.baseAddress! + k0 * rowBytes,
                                            vp.baseAddress! + k0 * rowBytes, ld, kn, hd, scale, &scores, &runMax, &runSum, &acc)
                        }
                    }
                }
                k0 += kn
            }
            return (0..<(n * hd)).map { acc[$0] / runSum[$0 / hd] }
        }

        let together = kernel(0, nq)
        for r in 0..<nq {
            // Reference: softmax(scale · q·k) · v in double.
            var s = [Double](repeating: 0, count: count)
            for j in 0..<count {
                var dot = 0.0
                for d in 0..<hd { dot += Double(q[r * hd + d]) * Double(k32[j * ld + d]) }
                s[j] = dot * Double(scale)
            }
            let m = s.max()!
            let e = s.map { exp($0 - m) }
            let sum = e.reduce(0, +)
            // Outputs are weighted means of values in [-1, 1]; f32 sums of a few hundred terms and
            // a polynomial exp (relative error ~2e-7) stay within 2e-5 of the exact result.
            for d in 0..<hd {
                var o = 0.0
                for j in 0..<count { o += e[j] * Double(v32[j * ld + d]) }
                o /= sum
                XCTAssertEqual(Double(together[r * hd + d]), o, accuracy: 2e-5,
                               "isa \(isa) \(type) hd \(hd) tiles \(tiles) query \(r) dim \(d)")
            }
            // A query alone gives bit for bit what it gives among others (so a verification pass,
            // which calls the kernel for several queries, equals one-token decoding).
            let alone = kernel(r, 1)
            XCTAssertEqual(alone, Array(together[(r * hd)..<((r + 1) * hd)]), "query \(r) alone, isa \(isa)")
        }
    }

    func testAttentionTileMatchesDoublePrecisionReference() {
        for isa in [Int32(P4K_ISA_SCALAR), Int32(-1)] {
            for type in [Element.f32, .f16, .q8_0] {
                run(isa: isa, type: type, hd: 128, nq: 6, tiles: [1], seed: 1)
                run(isa: isa, type: type, hd: 128, nq: 4, tiles: [256, 37], seed: 2)
                run(isa: isa, type: type, hd: 64, nq: 3, tiles: [9, 2, 130], seed: 3)
                if type != .q8_0 {  // 40: not a multiple of 16 (scalar loops), nor of Q8_0's 32
                    run(isa: isa, type: type, hd: 40, nq: 5, tiles: [33, 7], seed: 4)
                }
            }
        }
    }
}
