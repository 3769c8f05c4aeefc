import CPhi4Kernels
import XCTest
@testable import Phi4

/// `p4k_attend_tile`, the decode / small-batch attention kernel, against a double-precision
/// softmax attention computed here.
final class AttentionKernelTests: XCTestCase {
    /// One case: `nq` queries over `tiles` consecutive key tiles of the given sizes.
    func run(isa: Int32, half: Bool, hd: Int, nq: Int, tiles: [Int], seed: UInt64) {
        var rng = QuantizationTests.LCG(state: seed)
        let count = tiles.reduce(0, +)
        let ld = hd + 24  // rows of one head lie apart, as in a cache holding several heads
        // Queries scaled so that scores span about ±8: a peaked softmax, where the running
        // maximum and the rescaling of earlier tiles matter.
        let q = (0..<(nq * hd)).map { _ in rng.next() * 1.5 }
        var k32 = (0..<(count * ld)).map { _ in rng.next() }
        var v32 = (0..<(count * ld)).map { _ in rng.next() }
        let k16 = k32.map { p4k_f32_to_fp16($0) }, v16 = v32.map { p4k_f32_to_fp16($0) }
        if half {  // the reference sees exactly the values the kernel reads
            k32 = k16.map { p4k_fp16_to_f32($0) }
            v32 = v16.map { p4k_fp16_to_f32($0) }
        }
        let scale = 1 / Float(hd).squareRoot()

        /// The kernel over all tiles for queries `first ..< first + n`, normalized outputs.
        func kernel(_ first: Int, _ n: Int) -> [Float] {
            var runMax = [Float](repeating: -.infinity, count: n), runSum = [Float](repeating: 0, count: n)
            var acc = [Float](repeating: 0, count: n * hd)
            var scores = [Float](repeating: 0, count: n * (tiles.max() ?? 1))
            var k0 = 0
            for kn in tiles {
                q.withUnsafeBufferPointer { qp in
                    let qBase = qp.baseAddress! + first * hd
                    if half {
                        k16.withUnsafeBufferPointer { kp in
                            v16.withUnsafeBufferPointer { vp in
                                p4k_attend_tile(isa, Int32(P4K_KV_F16), qBase, hd, n, kp.baseAddress! + k0 * ld,
                                                vp.baseAddress! + k0 * ld, ld, kn, hd, scale, &scores, &runMax, &runSum, &acc)
                            }
                        }
                    } else {
                        k32.withUnsafeBufferPointer { kp in
                            v32.withUnsafeBufferPointer { vp in
                                p4k_attend_tile(isa, Int32(P4K_KV_F32), qBase, hd, n, kp.baseAddress! + k0 * ld,
                                                vp.baseAddress! + k0 * ld, ld, kn, hd, scale, &scores, &runMax, &runSum, &acc)
                            }
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
                               "isa \(isa) half \(half) hd \(hd) tiles \(tiles) query \(r) dim \(d)")
            }
            // A query alone gives bit for bit what it gives among others (so a verification pass,
            // which calls the kernel for several queries, equals one-token decoding).
            let alone = kernel(r, 1)
            XCTAssertEqual(alone, Array(together[(r * hd)..<((r + 1) * hd)]), "query \(r) alone, isa \(isa)")
        }
    }

    func testAttentionTileMatchesDoublePrecisionReference() {
        for isa in [Int32(P4K_ISA_SCALAR), Int32(-1)] {
            for half in [false, true] {
                run(isa: isa, half: half, hd: 128, nq: 6, tiles: [1], seed: 1)
                run(isa: isa, half: half, hd: 128, nq: 4, tiles: [256, 37], seed: 2)
                run(isa: isa, half: half, hd: 64, nq: 3, tiles: [9, 2, 130], seed: 3)
                run(isa: isa, half: half, hd: 40, nq: 5, tiles: [33, 7], seed: 4)  // not a multiple of 16: scalar loops
            }
        }
    }
}
