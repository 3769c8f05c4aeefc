// phi4-hub: downloads a model from the Hugging Face Hub into the cache huggingface_hub and
// llama.cpp share, and prints the local path to run. `phi4 pull`, and `phi4 … --model REF` for a
// model the cache does not hold yet, run it.
//
//   phi4-hub pull OWNER/NAME[:QUANT][@REVISION] [--hf-file PATH]

import Phi4
import Phi4Hub

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

func usage() -> Never {
    fputs("""
    usage: phi4-hub pull OWNER/NAME[:QUANT][@REVISION] [--hf-file PATH]
      Downloads a model into the Hugging Face cache (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface/hub)
      and prints the path to run. QUANT picks a GGUF file by its type tag (default Q4_K_M);
      --hf-file names the file when no tag picks one. Honors HF_ENDPOINT, HF_TOKEN,
      HF_HUB_OFFLINE, HTTPS_PROXY and SSL_CERT_FILE.

    """, stderr)
    exit(64)
}

var args = Array(CommandLine.arguments.dropFirst())
guard args.first == "pull", args.count >= 2 else { usage() }
args.removeFirst()
var refText: String?
var hfFile: String?
while !args.isEmpty {
    let a = args.removeFirst()
    if a == "--hf-file" {
        guard !args.isEmpty else { usage() }
        hfFile = args.removeFirst()
    } else if a.hasPrefix("-") {
        usage()
    } else {
        refText = a
    }
}
guard let refText, let ref = ModelReference(parsing: refText) else {
    fputs("Error: \(refText ?? "") is not a model reference (OWNER/NAME[:QUANT][@REVISION])\n", stderr)
    exit(64)
}
let printer = ProgressPrinter()
do {
    let client = try HubClient()
    let path: String
    do {
        path = try await client.pull(ref, hfFile: hfFile, progress: { done, total, file in printer.report(done, total, file) })
    } catch {
        await client.shutdown()
        throw error
    }
    await client.shutdown()
    print(path)
} catch {
    fputs("Error: \(error)\n", stderr)
    exit(1)
}
