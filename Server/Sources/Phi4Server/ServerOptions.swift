// Command-line options of phi4-server.

import Phi4

/// What `phi4-server` was started with.
struct ServerOptions: Sendable {
    var model = ""
    /// For a Hub model: the GGUF file to run, by its path in the repository (`--hf-file`).
    var hfFile: String?
    var alias: String?
    var host = "127.0.0.1"
    var port = 8080
    var parallel = 4
    var ctx: Int?
    var threads: Int?
    var kvType: KVCacheType?
    var weights: WeightType = .f32
    var apiKey: String?
    var maxQueue = 64
    var maxBody = 1 << 20
    var maxTokens = 4096
    var timeout: Double?
    var prefillChunk = 32
    var maxStepSlowdown = 2.0
    /// Requests naming another model get 404 (`--strict-model-name`); else any name is served.
    var strictModelName = false
    /// Origins allowed to call the server from a browser (`--cors-origin`, `*` for any); none: no CORS.
    var corsOrigins: [String] = []
    /// How /v1/embeddings pools each input (`--pooling`; llama-server's default for a causal model
    /// is none, which its OpenAI endpoint refuses: mean here).
    var pooling: Pooling = .mean
    /// Warnings about accepted llama-server flags that change nothing here, printed at start.
    var notes: [String] = []

    static let usage = """
        USAGE: phi4-server --model FILE [options]

        An OpenAI-compatible HTTP server: POST /v1/chat/completions, POST /v1/completions,
        POST /v1/embeddings, GET /v1/models, GET /health, GET /metrics, GET /openapi.json, and
        llama-server's POST /tokenize, POST /detokenize and GET /props.

        OPTIONS:
          --model FILE         A Phi-4 model: a GGUF file, an HF directory, or a Hugging Face Hub model
                               OWNER/NAME[:QUANT][@REVISION] (also -hf REF), from the Hugging Face cache,
                               downloaded there first when missing (required).
          --hf-file PATH       For a Hub model: the GGUF file to run when the quant tag picks none.
          --alias NAME         The model name clients send and see (default: the file's name).
          --host ADDRESS       Address to listen on (default 127.0.0.1).
          --port N             Port (default 8080; 0 picks a free one, printed at start).
          --parallel N         Requests generated at once: slots, each with its own KV cache (default 4).
          -c, --ctx-size N     The KV cache positions of all slots together, divided among them as
                               llama-server divides them (each slot holds N / parallel positions).
          --ctx-per-slot N     Positions each slot's KV cache holds (also --ctx; default: the model's, at
                               most 4096). Memory: parallel × these positions; refused at start when it
                               does not fit.
          -t, --threads N      Threads (default: the CPUs this process may use).
          --kv-type TYPE       KV cache: f32, f16 or q8_0 (default: f16 for quantized weights, else f32).
          --weights TYPE       Weight type for an HF checkpoint or float GGUF: f32, q8_0, q4_0, q4_0-mixed, q4_k_m (default f32).
          --prefill-chunk N    Most prompt tokens read per step beside the decoding requests (default 32).
          --max-step-slowdown X  While requests decode, a step that also reads a prompt may take at most
                               X times a decoding step (fewer prompt tokens then; default 2; 0: off).
          --api-key KEY        Require `Authorization: Bearer KEY` on /v1/ routes (401 otherwise).
          --strict-model-name  Answer 404 to a request whose model is not the alias (default: any name is
                               served, as llama-server does).
          --cors-origin ORIGIN Let web pages from ORIGIN call the server (repeatable; * for any). Off by
                               default: a server on a laptop should not answer every web page's scripts.
          --pooling TYPE       How /v1/embeddings pools: mean (default), last, cls (first token).
          llama-server flags that change nothing here are accepted: --embedding(s), --jinja, --metrics,
          -cb/--cont-batching, --no-mmap, --mlock, -fa/--flash-attn; -ngl N is accepted with a note
          (libphi4 runs on the CPU).
          --max-queue N        Requests that may wait for a slot (default 64; more get 429).
          --max-body BYTES     Largest request body (default 1048576; larger get 413).
          --max-tokens N       Cap on max_tokens, and its default (default 4096; also -n, --n-predict).
          --timeout SECONDS    Stop a request after this long (finish_reason "length").
          -h, --help           Show this help.
        """

    /// Parses the arguments (without the program name); throws a message for bad usage.
    static func parse(_ args: [String]) throws(UsageError) -> ServerOptions {
        var o = ServerOptions()
        var total: Int?
        var i = 0
        func value(_ name: String) throws(UsageError) -> String {
            i += 1
            guard i < args.count else { throw UsageError("\(name) needs a value") }
            return args[i]
        }
        func int(_ name: String, min: Int = 1) throws(UsageError) -> Int {
            let v = try value(name)
            guard let n = Int(v), n >= min else { throw UsageError("\(name) must be an integer ≥ \(min), not \(v)") }
            return n
        }
        while i < args.count {
            let a = args[i]
            switch a {
            case "--model", "-m": o.model = try value(a)
            case "-hf", "--hf", "--hf-repo", "-hfr": o.model = "hf://" + (try value(a))
            case "--hf-file", "-hff": o.hfFile = try value(a)
            case "--alias": o.alias = try value(a)
            case "--host": o.host = try value(a)
            case "--port": o.port = try int(a, min: 0)
            case "--parallel", "-np": o.parallel = try int(a)
            case "--ctx", "--ctx-per-slot": o.ctx = try int(a)
            case "-c", "--ctx-size": total = try int(a)
            case "--strict-model-name": o.strictModelName = true
            case "--cors-origin": o.corsOrigins.append(try value(a))
            case "--pooling":
                let v = try value(a)
                guard let p = Pooling(name: v), p != .none else { throw UsageError("--pooling must be mean, last or cls") }
                o.pooling = p
            case "--embedding", "--embeddings", "--jinja", "--metrics", "-cb", "--cont-batching", "--no-mmap", "--mlock",
                 "-fa", "--flash-attn":
                break
            case "-ngl", "--n-gpu-layers", "--gpu-layers":
                _ = try value(a)
                o.notes.append("\(a) is ignored: libphi4 runs on the CPU")
            case "--threads", "-t": o.threads = try int(a)
            case "--prefill-chunk": o.prefillChunk = try int(a)
            case "--max-step-slowdown":
                let v = try value(a)
                guard let x = Double(v), x == 0 || x >= 1 else { throw UsageError("--max-step-slowdown must be 0 or ≥ 1") }
                o.maxStepSlowdown = x
            case "--kv-type":
                let v = try value(a)
                guard let t = KVCacheType(rawValue: v) else { throw UsageError("--kv-type must be f32, f16 or q8_0") }
                o.kvType = t
            case "--weights":
                let v = try value(a)
                guard let w = WeightType(rawValue: v) else { throw UsageError("--weights must be f32, q8_0, q4_0, q4_0-mixed or q4_k_m") }
                o.weights = w
            case "--api-key": o.apiKey = try value(a)
            case "--max-queue": o.maxQueue = try int(a, min: 0)
            case "--max-body": o.maxBody = try int(a, min: 1024)
            case "--max-tokens", "-n", "--n-predict", "--predict": o.maxTokens = try int(a)
            case "--timeout":
                let v = try value(a)
                guard let s = Double(v), s > 0 else { throw UsageError("--timeout must be a positive number of seconds") }
                o.timeout = s
            case "-h", "--help": throw UsageError("")
            default: throw UsageError("unknown option \(a)")
            }
            i += 1
        }
        guard !o.model.isEmpty else { throw UsageError("--model is required") }
        if let total {
            guard o.ctx == nil else { throw UsageError("give -c (all slots) or --ctx-per-slot, not both") }
            guard total / o.parallel >= 16 else {
                throw UsageError("-c \(total) is divided among the \(o.parallel) slots (as llama-server does): \(total / o.parallel) positions each is too few")
            }
            o.ctx = total / o.parallel
        }
        if o.alias == nil {
            var name = String(o.model.split(separator: "/").last ?? Substring(o.model))
            if name.hasSuffix(".gguf") { name.removeLast(5) }
            o.alias = name
        }
        return o
    }
}

/// A usage error: its message, then the usage text (empty message: --help).
struct UsageError: Error {
    let message: String
    init(_ m: String) { message = m }
}
