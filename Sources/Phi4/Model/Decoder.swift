import CPhi4Kernels

/// The Phi-4 forward pass.
///
/// One call of ``forward(_:cache:logits:)`` takes a chunk of at most ``batchSize`` tokens at the
/// positions after those already in the cache, appends their keys and values to the cache, and
/// returns logits. Prompts longer than a chunk are fed chunk by chunk (``Session`` does this),
/// so scratch memory depends on the batch size, never on the context length. Decoding is the
/// same call with one token. All arithmetic is f32. With quantized weights a token's result does
/// not depend on the chunk it comes in (the matrix kernels and attention compute each row by
/// itself), so prefill, decoding and batches of sequences agree bit for bit.
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

    /// The weight matrices whose inputs ``observer`` sees.
    public enum MatrixInput: Sendable {
        /// `attn_qkv` (input: the attention norm's output).
        case qkv
        /// `attn_output` (input: the attention's output).
        case attentionOutput
        /// `ffn_up`, the fused gate and up projections (input: the MLP norm's output).
        case gateUp
        /// `ffn_down` (input: silu(gate) · up).
        case down
        /// The output projection (input: the final norm's output).
        case lmHead
    }

    /// Called, when set, with the rows entering each weight matrix of a pass (layer, matrix,
    /// `count` rows of `width` floats) before the product: what an importance matrix sums
    /// (``ImportanceCollector``). Nil costs nothing.
    public var observer: ((_ layer: Int, _ matrix: MatrixInput, _ rows: UnsafePointer<Float>, _ count: Int, _ width: Int) -> Void)?

    private let pool: ThreadPool
    private let rotary: RotaryTable
    private let s: Scratch

    /// What the rows a pass returns hold.
    public enum Output: Sendable {
        /// Logits (`vocabSize` per row).
        case logits
        /// The final RMS norm's outputs (`hiddenSize` per row), before `lm_head`.
        case hidden
    }

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
        self.rotary = RotaryTable(rotaryDim: c.rotaryDim, theta: c.ropeTheta, longRoPE: c.longRoPE)
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
    /// - Parameter ropeLength: with LongRoPE, the sequence length that picks its factors (see
    ///   ``Segment/ropeLength``); nil: the chunk's end.
    public func forward(_ tokens: [TokenID], cache: KVCache, logits: LogitsRequest, ropeLength: Int? = nil,
                        shouldStop: (() -> Bool)? = nil) throws(ModelError) -> [Float] {
        try forward([Segment(tokens: tokens, cache: cache, logits: logits, ropeLength: ropeLength)], shouldStop: shouldStop)
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
        /// With LongRoPE: the sequence length that picks the short or long factors for this pass
        /// (transformers uses the call's last position + 1). nil: the segment's own end. A prompt
        /// read in several chunks passes its full length, so it is rotated as if read at once.
        public var ropeLength: Int?

        /// A segment.
        public init(tokens: [TokenID], cache: KVCache, logits: LogitsRequest, ropeLength: Int? = nil) {
            self.tokens = tokens
            self.cache = cache
            self.logits = logits
            self.ropeLength = ropeLength
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
    ///
    /// With `output` ``Output/hidden`` the rows are the final norm's outputs (`hiddenSize` wide)
    /// instead of logits: what embeddings are pooled from.
    public func forward(_ segments: [Segment], output: Output = .logits, shouldStop: (() -> Bool)? = nil) throws(ModelError) -> [Float] {
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

        // 1. Token embeddings: x[i] = embedding[token i]; RoPE angles of each row's position (with
        // LongRoPE, the short or long factors by the segment's sequence length).
        var i = 0
        let half = c.rotaryDim / 2
        for seg in segments {
            let long = c.longRoPE?.usesLongFactors(length: seg.ropeLength ?? seg.cache.count + seg.tokens.count) ?? false
            for id in seg.tokens {
                w.embedding.copyRow(Int(id), into: x + i * d)
                rotary.angles(position: rowPosition[i], long: long, cos: s.cos + i * half, sin: s.sin + i * half)
                i += 1
            }
        }

        for (l, layer) in w.layers.enumerated() {
            // 2. Attention block. xn = rmsnorm(x); [q; k; v] = xn · Wqkvᵀ
            rowwise(t) { i in Ops.rmsNorm(x + i * d, layer.attentionNorm, xn + i * d, d, eps: c.rmsNormEps) }
            observer?(l, .qkv, xn, t, d)
            Ops.matmul(xn, rows: t, layer.qkv, qkv, pool: pool, threads: threads)

            // Rotate q and k (NeoX pairs i, i + rotaryDim/2 over each head's first rotaryDim
            // dimensions); store k and v in each row's cache.
            rowwise(t) { i in
                let row = qkv + i * qkvDim
                let cos = s.cos + i * half, sin = s.sin + i * half
                for h in 0..<(c.headCount + c.kvHeadCount) {
                    Ops.rope(row + h * c.headDim, rotaryDim: c.rotaryDim, cos: cos, sin: sin)
                }
                rowCache[i].store(layer: l, position: rowPosition[i], key: row + c.qDim, value: row + c.qDim + c.kvDim)
            }

            // Causal grouped-query attention of each segment over its own cache; x += attn · Woᵀ.
            for (k, seg) in segments.enumerated() {
                let r = firstRow[k]
                attention(queries: qkv + r * qkvDim, count: seg.tokens.count, start: seg.cache.count, cache: seg.cache,
                          layer: l, out: attn + r * c.qDim)
            }
            observer?(l, .attentionOutput, attn, t, c.qDim)
            Ops.matmul(attn, rows: t, layer.output, x, accumulate: true, pool: pool, threads: threads)

            // 3. MLP block. xn = rmsnorm(x); [gate; up] = xn · Wguᵀ; x += (silu(gate) * up) · Wdownᵀ
            rowwise(t) { i in Ops.rmsNorm(x + i * d, layer.mlpNorm, xn + i * d, d, eps: c.rmsNormEps) }
            observer?(l, .gateUp, xn, t, d)
            Ops.matmul(xn, rows: t, layer.gateUp, gateUp, pool: pool, threads: threads)
            rowwise(t) { i in
                let g = gateUp + i * 2 * ff
                Ops.siluMultiply(g, g + ff, act + i * ff, ff)
            }
            observer?(l, .down, act, t, ff)
            Ops.matmul(act, rows: t, layer.down, x, accumulate: true, pool: pool, threads: threads)
            if let shouldStop, l + 1 < w.layers.count, shouldStop() { throw .cancelled }
        }
        for seg in segments {
            seg.cache.count += seg.tokens.count
            if c.longRoPE?.usesLongFactors(length: seg.ropeLength ?? seg.cache.count) == true { seg.cache.rotatedLong = true }
        }

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
        if output == .hidden { return Array(UnsafeBufferPointer(start: xn, count: rows.count * d)) }
        observer?(w.layers.count, .lmHead, xn, rows.count, d)
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

    /// Causal grouped-query attention of `count` queries (at positions `start…`) over positions
    /// `0 ..< start + count`. Every query is computed by itself — the same kernel calls over
    /// exactly the keys it sees, in tiles of ``Scratch/keyTile`` from position 0 with an online
    /// softmax — so a token's result does not depend on the chunk it came in: prefill, decoding,
    /// verification passes and batches of sequences all compute it alike. The query heads that
    /// share a key-value head go through `p4k_attend_tile` together, which reads the cache in
    /// place (f32, f16 or q8_0); queries go in blocks of ``Scratch/queryBlock`` tokens so that a
    /// tile of keys, once in cache, serves the whole block. Key-value heads are split across
    /// threads. (An earlier OpenBLAS path for long chunks was no faster at 512–4,096 tokens and
    /// rounded differently from decoding.)
    private func attention(queries qkv: UnsafeMutablePointer<Float>, count t: Int, start: Int,
                                     cache: KVCache, layer: Int, out: UnsafeMutablePointer<Float>) {
        let c = model.config
        let hd = c.headDim
        let qkvDim = c.qDim + 2 * c.kvDim
        let group = c.headCount / c.kvHeadCount
        let scale = 1 / Float(hd).squareRoot()
        let tile = Scratch.keyTile
        let n = min(threads, c.kvHeadCount)
        pool.run(threads: n) { thread in
            let scores = s.scores[thread], acc = s.accumulator[thread], runMax = s.runningMax[thread], runSum = s.runningSum[thread]
            // Queries go in blocks of up to `Scratch.queryBlock` tokens; query (token i of the block,
            // head h = g·group + m) is row i·group + m of the state.
            for g in ThreadPool.split(c.kvHeadCount, parts: n, index: thread, align: 1) {
                var i0 = 0
                while i0 < t {
                    let block = min(Scratch.queryBlock, t - i0)
                    let rows = group * block
                    for r in 0..<rows {
                        runMax[r] = -.infinity
                        runSum[r] = 0
                    }
                    acc.update(repeating: 0, count: rows * hd)
                    let end = start + i0 + block  // keys the block's last query sees
                    var k0 = 0
                    while k0 < end {
                        let kn = min(tile, end - k0)
                        let (keys, values, type) = keyValueTile(cache: cache, layer: layer, group: g, from: k0)
                        for i in 0..<block {
                            let visible = min(kn, start + i0 + i + 1 - k0)  // keys after the query's position are masked
                            if visible <= 0 { continue }
                            let r = i * group
                            p4k_attend_tile(-1, type, qkv + (i0 + i) * qkvDim + g * group * hd, hd, group, keys, values, hd,
                                            visible, hd, scale, scores + r * tile, runMax + r, runSum + r, acc + r * hd)
                        }
                        k0 += kn
                    }
                    for i in 0..<block {
                        for m in 0..<group {
                            let r = i * group + m
                            let o = out + (i0 + i) * c.qDim + (g * group + m) * hd
                            let a = acc + r * hd
                            let inv = 1 / runSum[r]
                            for e in 0..<hd { o[e] = a[e] * inv }
                        }
                    }
                    i0 += block
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

    /// Buffers for one chunk, allocated once per decoder.
    final class Scratch {
        /// Keys per attention tile.
        static let keyTile = 256
        /// Queries per pass over a key tile (per key-value head).
        static let queryBlock = 32
        let x, xn, qkv, attn, gateUp, act, cos, sin: UnsafeMutablePointer<Float>
        let scores, accumulator, runningMax, runningSum: [UnsafeMutablePointer<Float>]
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
            // Attention state for a block of queries of the heads that share one key-value head.
            let queries = c.headCount / c.kvHeadCount * min(b, Scratch.queryBlock)
            scores = (0..<threads).map { _ in make(queries * Scratch.keyTile) }
            accumulator = (0..<threads).map { _ in make(queries * c.headDim) }
            runningMax = (0..<threads).map { _ in make(queries) }
            runningSum = (0..<threads).map { _ in make(queries) }
            all = [x, xn, qkv, attn, gateUp, act, cos, sin] + scores + accumulator + runningMax + runningSum
        }

        deinit { for p in all { p.deallocate() } }
    }
}
