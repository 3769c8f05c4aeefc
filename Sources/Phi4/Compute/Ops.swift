#if canImport(Accelerate)
import Accelerate  // Apple platforms: CBLAS from Accelerate (untested)
#else
import COpenBLAS
#endif
import CPhi4Kernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The numeric building blocks of the forward pass, on f32 rows.
enum Ops {
    /// Makes OpenBLAS single-threaded: the engine splits work across its own pool. (Accelerate
    /// has no such switch; there this does nothing.)
    static let configureBLAS: Void = {
        #if !canImport(Accelerate)
        openblas_set_num_threads(1)
        #endif
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

    /// Batches up to this size (decode, and prompt lookup's verification of up to 7 drafts)
    /// compute every token exactly as decoding it alone would: the matrix products are exact
    /// by construction (see ``matmul``), and attention takes one matrix-vector product per query.
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
                if t <= smallBatch {
                    // One matrix-vector product per token (each token exactly as decoded alone),
                    // over panels of 16 rows that stay in cache for all the tokens.
                    var r0 = r.lowerBound
                    while r0 < r.upperBound {
                        let m = min(t == 1 ? rows : 16, r.upperBound - r0)
                        for i in 0..<t {
                            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(m), Int32(k), 1, w.row(r0), Int32(k),
                                        x + i * k, 1, beta, out + i * n + r0, 1)
                        }
                        r0 += m
                    }
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(rows), Int32(k), 1,
                                x, Int32(k), w.row(r.lowerBound), Int32(k), beta, out + r.lowerBound, Int32(n))
                }
            }
        case _ where t > 1 && batchKernel == .sgemm:
            // The earlier prefill path, kept for comparison (PHI4_BATCH_KERNEL=sgemm): dequantize
            // panels of rows to f32 and multiply with sgemm.
            let panel = 32
            pool.parallelFor(n, threads: threads, align: panel) { r in
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: panel * k)
                defer { buffer.deallocate() }
                var r0 = r.lowerBound
                while r0 < r.upperBound {
                    let rows = min(panel, r.upperBound - r0)
                    _ = p4k_dequantize_rows(w.format.kernelCode, w.rowPointer(r0), k, rows, buffer)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(rows), Int32(k), 1,
                                x, Int32(k), buffer, Int32(k), beta, out + r0, Int32(n))
                    r0 += rows
                }
            }
        default:
            // Quantize each activation row once (int8 blocks of 32, as llama.cpp does), then
            // integer dot products: one token through the row kernel (decode), several through
            // the multi-row kernel, which reuses each panel of 8 weight rows for every token.
            let blocks = k / 32
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: t * k) { aq in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: t * blocks) { ad in
                    withUnsafeTemporaryAllocation(of: Int32.self, capacity: t * blocks) { asum in
                        let q = aq.baseAddress!, d = ad.baseAddress!, s = asum.baseAddress!
                        pool.parallelFor(t, threads: t >= 8 ? threads : 1) { rows in
                            for i in rows { p4k_quantize_activation(x + i * k, k, q + i * k, d + i * blocks, s + i * blocks) }
                        }
                        if t == 1 {
                            // Decode: rows handed out in chunks of ~512 KB as threads ask for
                            // them, so that both finish together although one may stream slower.
                            let chunk = max(16, (1 << 19) / max(1, w.rowBytes) / 16 * 16)
                            pool.dynamicFor(n, threads: threads, chunk: chunk) { r in
                                if p4k_matvec(w.format.kernelCode, -1, w.rowPointer(r.lowerBound), k, r.count, q, d, s,
                                              out + r.lowerBound, accumulate ? 1 : 0) != 0 {
                                    // Scratch could not be allocated: the portable kernel needs none.
                                    _ = p4k_matvec(w.format.kernelCode, Int32(P4K_ISA_SCALAR), w.rowPointer(r.lowerBound), k,
                                                   r.count, q, d, s, out + r.lowerBound, accumulate ? 1 : 0)
                                }
                            }
                            return
                        }
                        pool.parallelFor(n, threads: threads, align: 16) { r in
                            if p4k_gemm(w.format.kernelCode, -1, w.rowPointer(r.lowerBound), k, r.count, t, q, d, s,
                                               out + r.lowerBound, n, accumulate ? 1 : 0) != 0 {
                                // Scratch for the repacked panel could not be allocated: the
                                // portable path needs none.
                                _ = p4k_gemm(w.format.kernelCode, Int32(P4K_ISA_SCALAR), w.rowPointer(r.lowerBound), k,
                                             r.count, t, q, d, s, out + r.lowerBound, n, accumulate ? 1 : 0)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Which kernel multiplies several rows by quantized weights.
    enum BatchKernel { case int8, sgemm }

    /// `.int8` unless `PHI4_BATCH_KERNEL=sgemm` asks for the dequantize + OpenBLAS path (for
    /// benchmarks that compare the two).
    static let batchKernel: BatchKernel = {
        if let v = getenv("PHI4_BATCH_KERNEL"), String(cString: v) == "sgemm" { return .sgemm }
        return .int8
    }()

    /// Rotates one head in place with NeoX-style RoPE (`rotate_half`: element i pairs with
    /// i + headDim/2) by the angles whose cosines and sines are given (headDim/2 of each).
    @inline(__always)
    static func rope(_ v: UnsafeMutablePointer<Float>, rotaryDim: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = rotaryDim / 2
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

/// Rotary-embedding angles, computed the way HF does (f32 inverse frequencies, f32 products;
/// with LongRoPE, frequencies divided by the short or long factors and cos/sin scaled by the
/// attention factor).
struct RotaryTable {
    /// `1 / θ^(2i/rotaryDim)` for i in 0..<rotaryDim/2 (plain RoPE, or LongRoPE's short factors).
    let inverseFrequencies: [Float]
    /// The same with LongRoPE's long factors (nil without LongRoPE).
    let longInverseFrequencies: [Float]?
    /// The factor on cos and sin (1 without LongRoPE).
    let attentionFactor: Float

    init(rotaryDim: Int, theta: Float, longRoPE: LongRoPE? = nil) {
        // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), with LongRoPE
        // 1.0 / (ext_factors * base ** (arange(0, dim, 2).float() / dim)), all in f32.
        func frequencies(_ factors: [Float]?) -> [Float] {
            (0..<(rotaryDim / 2)).map { i in
                let base = powf(theta, Float(2 * i) / Float(rotaryDim))
                return 1 / (factors.map { $0[i] * base } ?? base)
            }
        }
        inverseFrequencies = frequencies(longRoPE?.shortFactors)
        longInverseFrequencies = longRoPE.map { frequencies($0.longFactors) }
        attentionFactor = longRoPE?.attentionFactor ?? 1
    }

    /// Fills `cos` and `sin` (rotaryDim/2 each) for one position, with the long factors when
    /// `long` (and LongRoPE) says so.
    func angles(position: Int, long: Bool = false, cos c: UnsafeMutablePointer<Float>, sin s: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        let table = long ? longInverseFrequencies ?? inverseFrequencies : inverseFrequencies
        for (i, f) in table.enumerated() {
            let a = Double(p * f)
            c[i] = Float(cos(a))
            s[i] = Float(sin(a))
            if attentionFactor != 1 {
                c[i] *= attentionFactor
                s[i] *= attentionFactor
            }
        }
    }
}
