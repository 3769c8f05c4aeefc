import COpenBLAS
import CPhi4Kernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The numeric building blocks of the forward pass, on f32 rows.
enum Ops {
    /// Makes OpenBLAS single-threaded: the engine splits work across its own pool.
    static let configureBLAS: Void = {
        openblas_set_num_threads(1)
    }()

    /// `out = x / sqrt(mean(x²) + eps) * weight` over one row of `n` (accumulated in f32, as HF does).
    @inline(__always)
    static func rmsNorm(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                        _ n: Int, eps: Float) {
        var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
        var i = 0
        while i + 4 <= n {
            s0 += x[i] * x[i]
            s1 += x[i + 1] * x[i + 1]
            s2 += x[i + 2] * x[i + 2]
            s3 += x[i + 3] * x[i + 3]
            i += 4
        }
        while i < n {
            s0 += x[i] * x[i]
            i += 1
        }
        let mean = (s0 + s1 + s2 + s3) / Float(n)
        let r = 1 / (mean + eps).squareRoot()
        for j in 0..<n { out[j] = weight[j] * (x[j] * r) }
    }

    /// Batches up to this many rows take the integer (decode) path on quantized weights; larger
    /// ones dequantize panels for sgemm.
    static let smallBatch = 8

    /// `out[T, N] (+)= x[T, K] · Wᵀ` for a `[N, K]` weight matrix, the N output columns split
    /// across threads (each thread one OpenBLAS call on its slice of W). With `accumulate`
    /// the product is added to `out` (the residual connection), otherwise it replaces it.
    static func matmul(_ x: UnsafePointer<Float>, rows t: Int, _ w: WeightMatrix, _ out: UnsafeMutablePointer<Float>,
                       accumulate: Bool = false, pool: ThreadPool, threads: Int) {
        _ = configureBLAS
        let n = w.rows
        let k = w.cols
        let beta: Float = accumulate ? 1 : 0
        switch w.format {
        case .f32:
            pool.parallelFor(n, threads: threads, align: 16) { r in
                let rows = r.count
                if t == 1 {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(k), 1, w.row(r.lowerBound), Int32(k),
                                x, 1, beta, out + r.lowerBound, 1)
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(rows), Int32(k), 1,
                                x, Int32(k), w.row(r.lowerBound), Int32(k), beta, out + r.lowerBound, Int32(n))
                }
            }
        case .q8_0 where t <= smallBatch, .q4_0 where t <= smallBatch:
            // Decode (and small batches such as speculative verification): quantize each
            // activation row once, then integer dot products. Weight rows go through in panels of
            // 16 that stay in cache while every activation row uses them, so t rows cost one pass
            // over the weights; each output equals the single-row result exactly.
            let blocks = k / 32
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: t * k) { aq in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: t * blocks) { ad in
                    withUnsafeTemporaryAllocation(of: Int32.self, capacity: t * blocks) { asum in
                        for i in 0..<t {
                            p4k_quantize_activation(x + i * k, k, aq.baseAddress! + i * k, ad.baseAddress! + i * blocks,
                                                    asum.baseAddress! + i * blocks)
                        }
                        pool.parallelFor(n, threads: threads, align: 16) { r in
                            var r0 = r.lowerBound
                            while r0 < r.upperBound {
                                let rows = min(t == 1 ? r.count : 16, r.upperBound - r0)
                                for i in 0..<t {
                                    p4k_matvec(w.format.kernelCode, -1, w.rowPointer(r0), k, rows, aq.baseAddress! + i * k,
                                               ad.baseAddress! + i * blocks, asum.baseAddress! + i * blocks,
                                               out + i * n + r0, accumulate ? 1 : 0)
                                }
                                r0 += rows
                            }
                        }
                    }
                }
            }
        case .q8_0, .q4_0:
            // Prefill: dequantize panels of rows to f32 and multiply with sgemm.
            let panel = 32
            pool.parallelFor(n, threads: threads, align: panel) { r in
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: panel * k)
                defer { buffer.deallocate() }
                var r0 = r.lowerBound
                while r0 < r.upperBound {
                    let rows = min(panel, r.upperBound - r0)
                    p4k_dequantize_rows(w.format.kernelCode, w.rowPointer(r0), k, rows, buffer)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(rows), Int32(k), 1,
                                x, Int32(k), buffer, Int32(k), beta, out + r0, Int32(n))
                    r0 += rows
                }
            }
        }
    }

    /// Rotates one head in place with NeoX-style RoPE (`rotate_half`: element i pairs with
    /// i + headDim/2) by the angles whose cosines and sines are given (headDim/2 of each).
    @inline(__always)
    static func rope(_ v: UnsafeMutablePointer<Float>, headDim: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = headDim / 2
        for i in 0..<half {
            let x1 = v[i]
            let x2 = v[i + half]
            v[i] = x1 * cos[i] - x2 * sin[i]
            v[i + half] = x2 * cos[i] + x1 * sin[i]
        }
    }

    /// `out[i] = silu(gate[i]) * up[i]` with `silu(g) = g / (1 + e^-g)`.
    @inline(__always)
    static func siluMultiply(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ n: Int) {
        for i in 0..<n {
            let g = gate[i]
            out[i] = g / (1 + expf(-g)) * up[i]
        }
    }
}

/// Rotary-embedding angles, computed the way HF does (f32 inverse frequencies, f32 products).
struct RotaryTable {
    /// `1 / θ^(2i/headDim)` for i in 0..<headDim/2.
    let inverseFrequencies: [Float]

    init(headDim: Int, theta: Float) {
        inverseFrequencies = (0..<(headDim / 2)).map { i in
            1 / powf(theta, Float(2 * i) / Float(headDim))
        }
    }

    /// Fills `cos` and `sin` (headDim/2 each) for one position.
    func angles(position: Int, cos c: UnsafeMutablePointer<Float>, sin s: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        for (i, f) in inverseFrequencies.enumerated() {
            let a = Double(p * f)
            c[i] = Float(cos(a))
            s[i] = Float(sin(a))
        }
    }
}
