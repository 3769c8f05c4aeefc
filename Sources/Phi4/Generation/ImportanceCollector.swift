#if canImport(Glibc)
import Glibc
#endif

/// Computes an importance matrix (``ImportanceMatrix``) over calibration text as llama.cpp's
/// `llama-imatrix` does, so that either tool's file makes the same quantized model:
///
/// - the text is tokenized as a prompt (BOS first where the model adds one) and cut into
///   chunks of `chunkSize` tokens (at least two chunks are needed; a last partial chunk is
///   dropped), each evaluated from an empty cache, its first token replaced by BOS where the
///   model adds one;
/// - for every weight matrix in the layers (and the output projection with `includeOutput`),
///   each input row of each pass adds its squared values to the matrix's column sums and one to
///   its token count — passes of at most 512 rows, those of fewer than 16 rows not counted, as
///   llama.cpp's micro-batches;
/// - the tensor names are the GGUF names (`blk.N.attn_qkv.weight`, `blk.N.attn_output.weight`,
///   `blk.N.ffn_up.weight` — the fused gate and up —, `blk.N.ffn_down.weight`, `output.weight`).
///
/// Perplexity over the second half of each chunk is computed on the way, as llama.cpp prints it.
public final class ImportanceCollector {
    /// The model.
    public let model: Model
    /// Tokens per chunk (llama-imatrix's `-c`, default 512).
    public let chunkSize: Int
    /// Whether the output projection's inputs are summed too (llama-imatrix's `--process-output`).
    public let includeOutput: Bool

    private var sums: [String: [Float]] = [:]
    private var counts: [String: Int] = [:]
    private var chunks = 0

    /// A collector for `model`.
    public init(model: Model, chunkSize: Int = 512, includeOutput: Bool = false) {
        self.model = model
        self.chunkSize = max(1, chunkSize)
        self.includeOutput = includeOutput
    }

    /// What one run reports.
    public struct Report: Sendable {
        /// Chunks evaluated.
        public var chunks: Int
        /// Perplexity over the second halves of the chunks (llama-imatrix's estimate).
        public var perplexity: Double
    }

    /// Evaluates up to `maxChunks` chunks of `text` (nil: all) and adds their statistics.
    /// `progress(done, total, perplexitySoFar)` is called after each chunk.
    @discardableResult
    public func add(text: String, maxChunks: Int? = nil, threads: Int? = nil,
                    progress: (Int, Int, Double) -> Void = { _, _, _ in }) throws(ModelError) -> Report {
        let tok = model.tokenizer
        var tokens = tok.encode(text, addBOS: tok.addsBOS)
        guard tokens.count >= 2 * chunkSize else {
            throw .invalidRequest("the text has \(tokens.count) tokens; chunks of \(chunkSize) need at least \(2 * chunkSize)")
        }
        let total = min(maxChunks ?? Int.max, tokens.count / chunkSize)
        let piece = min(512, chunkSize)
        let decoder = Decoder(model: model, batchSize: piece, threads: threads)
        let names = (0..<model.config.layerCount).map { l in
            ["blk.\(l).attn_qkv.weight", "blk.\(l).attn_output.weight", "blk.\(l).ffn_up.weight", "blk.\(l).ffn_down.weight"]
        }
        decoder.observer = { [unowned self] layer, matrix, rows, count, width in
            guard count >= 16 else { return }
            let name: String
            switch matrix {
            case .qkv: name = names[layer][0]
            case .attentionOutput: name = names[layer][1]
            case .gateUp: name = names[layer][2]
            case .down: name = names[layer][3]
            case .lmHead:
                guard self.includeOutput else { return }
                name = "output.weight"
            }
            self.accumulate(name, rows, count, width)
        }
        let cache = KVCache(config: model.config, capacity: chunkSize)
        var nll = 0.0, scored = 0
        for k in 0..<total {
            let start = k * chunkSize
            var chunk = Array(tokens[start..<(start + chunkSize)])
            if tok.addsBOS, let bos = tok.bosTokenID { chunk[0] = bos }
            cache.count = 0
            var logits: [Float] = []
            var p = 0
            while p < chunk.count {
                let n = min(piece, chunk.count - p)
                logits += try decoder.forward(Array(chunk[p..<(p + n)]), cache: cache, logits: .all)
                p += n
            }
            // Perplexity of the chunk's second half (llama.cpp's estimate).
            let v = model.config.vocabSize
            for i in (chunkSize / 2)..<(chunkSize - 1) {
                let row = logits[(i * v)..<((i + 1) * v)]
                let m = row.max()!
                let lse = Double(m) + log(row.reduce(0.0) { $0 + exp(Double($1 - m)) })
                nll += lse - Double(row[row.startIndex + Int(tokens[start + i + 1])])
                scored += 1
            }
            chunks += 1
            progress(k + 1, total, exp(nll / Double(max(scored, 1))))
        }
        tokens.removeAll()
        return Report(chunks: total, perplexity: exp(nll / Double(max(scored, 1))))
    }

    private func accumulate(_ name: String, _ rows: UnsafePointer<Float>, _ count: Int, _ width: Int) {
        // In place (the dictionary's storage, no copy of the sums per pass).
        sums[name, default: [Float](repeating: 0, count: width)].withUnsafeMutableBufferPointer { a in
            for r in 0..<count {
                let x = rows + r * width
                for j in 0..<width { a[j] += x[j] * x[j] }
            }
        }
        counts[name, default: 0] += count
    }

    /// The statistics so far, with `datasets` (the calibration files' names) recorded.
    public func matrix(datasets: [String]) -> ImportanceMatrix {
        var m = ImportanceMatrix()
        for (name, s) in sums { m.entries[name] = ImportanceMatrix.Entry(sums: s, counts: [counts[name] ?? 0]) }
        m.datasets = datasets
        m.chunkCount = chunks
        m.chunkSize = chunkSize
        return m
    }
}
