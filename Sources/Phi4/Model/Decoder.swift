import COpenBLAS
import CPhi4Kernels

/// The Phi-4 forward pass.
///
/// One call of ``forward(_:cache:logits:)`` takes a chunk of at most ``batchSize`` tokens at the
/// positions after those already in the cache, appends their keys and values to the cache, and
/// returns logits. Prompts longer than a chunk are fed chunk by chunk (``Session`` does this),
/// so scratch memory depends on the batch size, never on the context length. Decoding is the
/// same call with one token. All arithmetic is f32.
///
/// Per layer (HF `Phi3ForCausalLM`; the first half of gate_up's rows is the gate):
///
///     h   = x + o_proj(attention(rope(qkv_proj(rmsnorm(x)))))
///     out = h + down_proj(silu(gate) * up)   where [gate; up] = gate_up_proj(rmsnorm(h))
public final class Decoder {
    /// The model.
    public let model: Model
    /// The most tokens one ``forward(_:cache:logits:)`` call accepts.
    public let batchSize: Int
    /// Threads each parallel step uses.
    public let threads: Int

    private let pool: ThreadPool
    private let rotary: RotaryTable
    private let s: Scratch

    /// Which positions of a chunk get logits.
    public enum LogitsRequest: Sendable {
        /// None (prefill of a chunk that is not the last).
        case none
        /// Only the chunk's last position.
        case last
        /// Every position of the chunk.
        case all
    }

    /// A decoder for `model` with scratch for chunks of `batchSize` tokens, on the process's
    /// shared thread pool.
    public convenience init(model: Model, batchSize: Int = 512, threads: Int? = nil) {
        self.init(model: model, batchSize: batchSize, threads: threads, pool: .shared)
    }

    /// A decoder on a given thread pool (a pool is package-internal).
    package init(model: Model, batchSize: Int, threads: Int?, pool: ThreadPool) {
        self.model = model
        self.batchSize = max(1, batchSize)
        self.pool = pool
        self.threads = max(1, min(threads ?? pool.threadCount, pool.threadCount))
        let c = model.config
        self.rotary = RotaryTable(headDim: c.headDim, theta: c.ropeTheta)
        self.s = Scratch(config: c, batch: self.batchSize, threads: self.threads)
    }

    /// Runs the decoder on `tokens` at positions `cache.count ..< cache.count + tokens.count`.
    ///
    /// - Returns: logits, `[rows, vocabSize]` row-major, where rows is 0, 1 or `tokens.count`
    ///   as `logits` asks.
    /// - Parameter shouldStop: asked after every layer; when it returns true the call throws
    ///   ``ModelError/cancelled`` and the cache keeps its previous length (the chunk's partly
    ///   written entries lie past the end and are overwritten later). This is how a long prefill
    ///   is cancelled within a fraction of a second.
    /// - Throws: ``ModelError/invalidRequest(_:)`` for an empty or oversized chunk, an id outside
    ///   the vocabulary, or a cache without room; nothing is changed then.
    public func forward(_ tokens: [TokenID], cache: KVCache, logits: LogitsRequest,
                        shouldStop: (() -> Bool)? = nil) throws(ModelError) -> [Float] {
        try forward([Segment(tokens: tokens, cache: cache, logits: logits)], shouldStop: shouldStop)
    }

    /// One sequence's part of a batched forward pass: its new tokens, its KV cache, and which of
    /// its positions get logits.
    public struct Segment {
        /// Tokens to evaluate, at the positions after those already in `cache`.
        public var tokens: [TokenID]
        /// The sequence's KV cache (one per sequence: a cache appears in one segment at most).
        public var cache: KVCache
        /// Which of the segment's positions get logits.
        public var logits: LogitsRequest

        /// A segment.
        public init(tokens: [TokenID], cache: KVCache, logits: LogitsRequest) {
            self.tokens = tokens
            self.cache = cache
            self.logits = logits
        }
    }

    /// Runs the decoder on several sequences at once: the rows of all segments go through each
    /// matrix product together (one pass over the weights for all of them), while positions,
    /// the KV cache and attention are each segment's own. Each row is computed exactly as it is
    /// when its segment runs alone (by quantized matrices, and by f32 matrices in passes of up to
    /// 8 rows; see `Ops.matmul`), so batching sequences does not change their results.
    ///
    /// - Returns: the logits the segments ask for, `[rows, vocabSize]` row-major, in segment order.
    /// - Throws: ``ModelError/invalidRequest(_:)`` for an empty segment, more than ``batchSize``
    ///   rows in all, a cache used twice or without room, or an id outside the vocabulary;
    ///   ``ModelError/cancelled`` when `shouldStop` says so (see the one-sequence form). Nothing is
    ///   changed when it throws.
    public func forward(_ segments: [Segment], shouldStop: (() -> Bool)? = nil) throws(ModelError) -> [Float] {
        let c = model.config
        let w = model.weights
        let t = segments.reduce(0) { $0 + $1.tokens.count }
        guard !segments.isEmpty && t <= batchSize else {
            throw .invalidRequest("a chunk must have 1…\(batchSize) tokens, not \(t)")
        }
        var seen = Set<ObjectIdentifier>()
        for seg in segments {
            guard !seg.tokens.isEmpty else { throw .invalidRequest("a segment must have at least one token") }
            guard seen.insert(ObjectIdentifier(seg.cache)).inserted else {
                throw .invalidRequest("a KV cache appears in two segments of one pass")
            }
            guard seg.cache.count + seg.tokens.count <= seg.cache.capacity else {
                throw .invalidRequest("the context holds \(seg.cache.capacity) tokens; \(seg.cache.count) are used and \(seg.tokens.count) more do not fit")
            }
            for id in seg.tokens where id < 0 || Int(id) >= c.vocabSize {
                throw .invalidRequest("token id \(id) is outside the vocabulary (0..<\(c.vocabSize))")
            }
        }
        let d = c.hiddenSize
        let qkvDim = c.qDim + 2 * c.kvDim
        let ff = c.intermediateSize
        let x = s.x, xn = s.xn, qkv = s.qkv, attn = s.attn, gateUp = s.gateUp, act = s.act
        // Row i of the pass: its segment's cache and position.
        var rowCache: [KVCache] = []
        var rowPosition: [Int] = []
        var firstRow: [Int] = []  // per segment
        for seg in segments {
            firstRow.append(rowCache.count)
            for j in 0..<seg.tokens.count {
                rowCache.append(seg.cache)
                rowPosition.append(seg.cache.count + j)
            }
        }

        // 1. Token embeddings: x[i] = embedding[token i]; RoPE angles of each row's position.
        var i = 0
        for seg in segments {
            for id in seg.tokens {
                w.embedding.copyRow(Int(id), into: x + i * d)
                rotary.angles(position: rowPosition[i], cos: s.cos + i * c.headDim / 2, sin: s.sin + i * c.headDim / 2)
                i += 1
            }
        }

        for (l, layer) in w.layers.enumerated() {
            // 2. Attention block. xn = rmsnorm(x); [q; k; v] = xn · Wqkvᵀ
            rowwise(t) { i in Ops.rmsNorm(x + i * d, layer.attentionNorm, xn + i * d, d, eps: c.rmsNormEps) }
            Ops.matmul(xn, rows: t, layer.qkv, qkv, pool: pool, threads: threads)

            // Rotate q and k (NeoX pairs i, i + headDim/2); store k and v in each row's cache.
            rowwise(t) { i in
                let row = qkv + i * qkvDim
                let cos = s.cos + i * c.headDim / 2, sin = s.sin + i * c.headDim / 2
                for h in 0..<(c.headCount + c.kvHeadCount) {
                    Ops.rope(row + h * c.headDim, headDim: c.headDim, cos: cos, sin: sin)
                }
                rowCache[i].store(layer: l, position: rowPosition[i], key: row + c.qDim, value: row + c.qDim + c.kvDim)
            }

            // Causal grouped-query attention of each segment over its own cache; x += attn · Woᵀ.
            for (k, seg) in segments.enumerated() {
                let r = firstRow[k]
                attention(queries: qkv + r * qkvDim, count: seg.tokens.count, start: seg.cache.count, cache: seg.cache,
                          layer: l, out: attn + r * c.qDim)
            }
            Ops.matmul(attn, rows: t, layer.output, x, accumulate: true, pool: pool, threads: threads)

            // 3. MLP block. xn = rmsnorm(x); [gate; up] = xn · Wguᵀ; x += (silu(gate) * up) · Wdownᵀ
            rowwise(t) { i in Ops.rmsNorm(x + i * d, layer.mlpNorm, xn + i * d, d, eps: c.rmsNormEps) }
            Ops.matmul(xn, rows: t, layer.gateUp, gateUp, pool: pool, threads: threads)
            rowwise(t) { i in
                let g = gateUp + i * 2 * ff
                Ops.siluMultiply(g, g + ff, act + i * ff, ff)
            }
            Ops.matmul(act, rows: t, layer.down, x, accumulate: true, pool: pool, threads: threads)
            if let shouldStop, l + 1 < w.layers.count, shouldStop() { throw .cancelled }
        }
        for seg in segments { seg.cache.count += seg.tokens.count }

        // 4. Final norm and lm_head, for the rows that want logits.
        var rows: [Int] = []
        for (k, seg) in segments.enumerated() {
            switch seg.logits {
            case .none: break
            case .last: rows.append(firstRow[k] + seg.tokens.count - 1)
            case .all: rows += firstRow[k]..<(firstRow[k] + seg.tokens.count)
            }
        }
        if rows.isEmpty { return [] }
        for (j, i) in rows.enumerated() {
            Ops.rmsNorm(x + i * d, w.finalNorm, xn + j * d, d, eps: c.rmsNormEps)
        }
        var out = [Float](repeating: 0, count: rows.count * c.vocabSize)
        out.withUnsafeMutableBufferPointer { buf in
            Ops.matmul(xn, rows: rows.count, w.lmHead, buf.baseAddress!, pool: pool, threads: threads)
        }
        return out
    }

    /// Runs `body(i)` for each row of a chunk, rows split across threads.
    private func rowwise(_ t: Int, _ body: (Int) -> Void) {
        pool.parallelFor(t, threads: t >= 4 ? threads : 1) { r in
            for i in r { body(i) }
        }
    }

    /// Attention for small batches (decode, prompt lookup's verification): each query is computed
    /// exactly as when it is decoded alone — the same kernel call per token and key tile, over
    /// exactly the keys it sees — so a verification pass equals token-by-token decoding.
    /// The query heads that share a key-value head go through `p4k_attend_tile` together, which
    /// reads the cache in place (f32, f16 or q8_0; once per token and tile for all of them).
    private func smallBatchAttention(queries qkv: UnsafeMutablePointer<Float>, count t: Int, start: Int,
                                     cache: KVCache, layer: Int, out: UnsafeMutablePointer<Float>) {
        let c = model.config
        let hd = c.headDim
        let qkvDim = c.qDim + 2 * c.kvDim
        let group = c.headCount / c.kvHeadCount
        let total = start + t
        let scale = 1 / Float(hd).squareRoot()
        let tile = Scratch.keyTile
        let n = min(threads, c.kvHeadCount)
        pool.run(threads: n) { thread in
            let scores = s.scores[thread], acc = s.accumulator[thread], runMax = s.runningMax[thread], runSum = s.runningSum[thread]
            // Query (token i, head h = g·group + m) is row i·group + m of the state.
            let rows = group * t
            for g in ThreadPool.split(c.kvHeadCount, parts: n, index: thread, align: 1) {
                for r in 0..<rows {
                    runMax[r] = -.infinity
                    runSum[r] = 0
                }
                acc.update(repeating: 0, count: rows * hd)
                var k0 = 0
                while k0 < total {
                    let kn = min(tile, total - k0)
                    let (keys, values, type) = keyValueTile(cache: cache, layer: layer, group: g, from: k0)
                    for i in 0..<t {
                        let visible = min(kn, start + i + 1 - k0)  // keys after the query's position are masked
                        if visible <= 0 { continue }
                        let r = i * group
                        p4k_attend_tile(-1, type, qkv + i * qkvDim + g * group * hd, hd, group, keys, values, hd,
                                        visible, hd, scale, scores + r * tile, runMax + r, runSum + r, acc + r * hd)
                    }
                    k0 += kn
                }
                for i in 0..<t {
                    for m in 0..<group {
                        let r = i * group + m
                        let o = out + i * c.qDim + (g * group + m) * hd
                        let a = acc + r * hd
                        let inv = 1 / runSum[r]
                        for e in 0..<hd { o[e] = a[e] * inv }
                    }
                }
            }
        }
    }

    /// Keys and values of key-value head `group` from position `from` on, read in place by
    /// `p4k_attend_tile` (rows of `headDim` elements), and their element type.
    private func keyValueTile(cache: KVCache, layer: Int, group g: Int, from k0: Int) -> (UnsafeRawPointer, UnsafeRawPointer, Int32) {
        let keys = UnsafeRawPointer(cache.head(layer: layer, head: g, values: false) + k0 * cache.headRowBytes)
        let values = UnsafeRawPointer(cache.head(layer: layer, head: g, values: true) + k0 * cache.headRowBytes)
        switch cache.type {
        case .f32: return (keys, values, Int32(P4K_KV_F32))
        case .f16: return (keys, values, Int32(P4K_KV_F16))
        case .q8_0: return (keys, values, Int32(P4K_KV_Q8_0))
        }
    }

    /// Keys and values of positions `from ..< from + count` of key-value head `group` as f32 rows
    /// `headDim` apart: in place for an f32 cache, widened into the thread's tile scratch otherwise.
    private func floatTile(cache: KVCache, layer: Int, group g: Int, from k0: Int, count kn: Int,
                           thread: Int) -> (UnsafePointer<Float>, UnsafePointer<Float>) {
        let hd = model.config.headDim
        let (keys, values, _) = keyValueTile(cache: cache, layer: layer, group: g, from: k0)
        switch cache.type {
        case .f32:
            return (keys.assumingMemoryBound(to: Float.self), values.assumingMemoryBound(to: Float.self))
        case .f16:
            p4k_f16_to_f32(keys.assumingMemoryBound(to: UInt16.self), s.keyTile[thread], kn * hd)
            p4k_f16_to_f32(values.assumingMemoryBound(to: UInt16.self), s.valueTile[thread], kn * hd)
        case .q8_0:
            p4k_dequantize_q8_0(keys, s.keyTile[thread], kn * hd)
            p4k_dequantize_q8_0(values, s.valueTile[thread], kn * hd)
        }
        return (UnsafePointer(s.keyTile[thread]), UnsafePointer(s.valueTile[thread]))
    }

    /// Causal attention of `count` queries (at positions `start…`) over positions `0 ..< start + count`.
    ///
    /// Heads are split across threads. Keys are visited in tiles of ``Scratch/keyTile`` with an
    /// online softmax (running max and sum per query), so scratch stays `count × keyTile` however
    /// long the context is. Query head h reads key-value head `h / (heads / kvHeads)`.
    private func attention(queries qkv: UnsafeMutablePointer<Float>, count t: Int, start: Int,
                           cache: KVCache, layer: Int, out: UnsafeMutablePointer<Float>) {
        if t <= Ops.smallBatch {
            smallBatchAttention(queries: qkv, count: t, start: start, cache: cache, layer: layer, out: out)
            return
        }
        let c = model.config
        let hd = c.headDim
        let qkvDim = c.qDim + 2 * c.kvDim
        let group = c.headCount / c.kvHeadCount
        let total = start + t
        let scale = 1 / Float(hd).squareRoot()
        let tile = Scratch.keyTile
        pool.run(threads: min(threads, c.headCount)) { thread in
            let n = min(threads, c.headCount)
            let heads = ThreadPool.split(c.headCount, parts: n, index: thread, align: 1)
            let scores = s.scores[thread], acc = s.accumulator[thread], runMax = s.runningMax[thread], runSum = s.runningSum[thread]
            for h in heads {
                let q = qkv + h * hd
                let g = h / group
                for i in 0..<t {
                    runMax[i] = -.infinity
                    runSum[i] = 0
                }
                acc.update(repeating: 0, count: t * hd)
                var k0 = 0
                while k0 < total {
                    let kn = min(tile, total - k0)
                    let (kBase, vBase) = floatTile(cache: cache, layer: layer, group: g, from: k0, count: kn, thread: thread)
                    let ld = hd
                    // scores[i, j] = scale · q_i · k_(k0+j)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(kn), Int32(hd), scale,
                                q, Int32(qkvDim), kBase, Int32(ld), 0, scores, Int32(kn))
                    for i in 0..<t {
                        let row = scores + i * kn
                        let visible = min(kn, start + i + 1 - k0)  // keys after the query's position are masked
                        if visible <= 0 {
                            for j in 0..<kn { row[j] = 0 }
                            continue
                        }
                        p4k_softmax_step(-1, row, visible, runMax + i, runSum + i, acc + i * hd, hd)
                        for j in visible..<kn { row[j] = 0 }
                    }
                    // acc += p · v_(k0…)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(hd), Int32(kn), 1,
                                scores, Int32(kn), vBase, Int32(ld), 1, acc, Int32(hd))
                    k0 += kn
                }
                for i in 0..<t {
                    let o = out + i * c.qDim + h * hd
                    let a = acc + i * hd
                    let inv = 1 / runSum[i]
                    for e in 0..<hd { o[e] = a[e] * inv }
                }
            }
        }
    }

    /// Buffers for one chunk, allocated once per decoder.
    final class Scratch {
        /// Keys per attention tile.
        static let keyTile = 256
        let x, xn, qkv, attn, gateUp, act, cos, sin: UnsafeMutablePointer<Float>
        let scores, accumulator, runningMax, runningSum, keyTile, valueTile: [UnsafeMutablePointer<Float>]
        private var all: [UnsafeMutablePointer<Float>] = []

        init(config c: ModelConfig, batch b: Int, threads: Int) {
            func make(_ n: Int) -> UnsafeMutablePointer<Float> {
                let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n))
                p.initialize(repeating: 0, count: max(1, n))
                return p
            }
            x = make(b * c.hiddenSize)
            xn = make(b * c.hiddenSize)
            qkv = make(b * (c.qDim + 2 * c.kvDim))
            attn = make(b * c.qDim)
            gateUp = make(b * 2 * c.intermediateSize)
            act = make(b * c.intermediateSize)
            cos = make(b * c.headDim / 2)
            sin = make(b * c.headDim / 2)
            // Attention state for `b` queries of one head, or (small batches) for every query of
            // the heads that share one key-value head.
            let queries = max(b, c.headCount / c.kvHeadCount * min(b, Ops.smallBatch))
            scores = (0..<threads).map { _ in make(queries * Scratch.keyTile) }
            accumulator = (0..<threads).map { _ in make(queries * c.headDim) }
            runningMax = (0..<threads).map { _ in make(queries) }
            runningSum = (0..<threads).map { _ in make(queries) }
            keyTile = (0..<threads).map { _ in make(Scratch.keyTile * c.headDim) }
            valueTile = (0..<threads).map { _ in make(Scratch.keyTile * c.headDim) }
            all = [x, xn, qkv, attn, gateUp, act, cos, sin] + scores + accumulator + runningMax + runningSum + keyTile + valueTile
        }

        deinit { for p in all { p.deallocate() } }
    }
}
