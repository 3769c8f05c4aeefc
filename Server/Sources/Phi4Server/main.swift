// phi4-server: an OpenAI-compatible HTTP server over libphi4's batch scheduler. The port is
// bound at once; the model loads behind it (GET /health says "loading", then "ok").

import Hummingbird
import Phi4
import Phi4Hub

#if canImport(Glibc)
@preconcurrency import Glibc  // stdout, stderr: C globals (FILE streams lock themselves)
#endif

let options: ServerOptions
do {
    options = try ServerOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    if !error.message.isEmpty { fputs("Error: \(error.message)\n\n", stderr) }
    fputs(ServerOptions.usage + "\n", error.message.isEmpty ? stdout : stderr)
    exit(error.message.isEmpty ? 0 : 64)
}

let state = ServerState(options: options)
let router = Router()
if !options.corsOrigins.isEmpty { router.add(middleware: CORSOrigins(origins: options.corsOrigins)) }
addRoutes(router, state)
for note in options.notes { print("note: \(note)") }

let app = Application(
    router: router,
    configuration: .init(address: .hostname(options.host, port: options.port), serverName: "phi4-server"),
    onServerRunning: { channel in
        print("phi4-server \(Phi4Version.string) listening on http://\(options.host):\(channel.localAddress?.port ?? options.port)")
        fflush(stdout)
    })

// Load the model and start the engine beside the server.
let loader = Task.detached {
    do {
        var load = ModelLoadOptions()
        load.weightType = options.weights
        load.plannedContextLength = (options.ctx ?? 4096) * options.parallel
        load.progress = { done, total in state.progress = Double(done) / Double(max(total, 1)) }
        var path = options.model
        if let ref = ModelReference(parsing: path), ref.forced || access(path, F_OK) != 0 {
            let client = try HubClient()
            let progress = ProgressPrinter()
            do { path = try await client.pull(ref, hfFile: options.hfFile, progress: { d, t, f in progress.report(d, t, f) }) } catch {
                await client.shutdown()
                throw error
            }
            await client.shutdown()
        }
        let model = try Model.load(path: path, options: load)
        var so = SchedulerOptions()
        so.slots = options.parallel
        so.contextLength = options.ctx.map { min($0, model.config.maxPositions) }
        so.cacheType = options.kvType
        so.threads = options.threads
        so.maxQueue = options.maxQueue
        so.prefillChunk = options.prefillChunk
        so.maxStepSlowdown = options.maxStepSlowdown
        let engine = try Engine(model: model, options: so, timeout: options.timeout)
        engine.start()
        state.ready(engine)
        print("model \(options.alias ?? "") ready: \(options.parallel) slots of \(engine.scheduler.options.contextLength ?? 0) positions")
        fflush(stdout)
    } catch {
        state.failed("\(error)")
        fputs("Error: \(error)\n", stderr)
        exit(1)
    }
}

// SIGTERM / SIGINT: stop accepting, let the requests in flight finish, then exit 0.
try await app.runService()
_ = await loader.result
state.engine?.shutdown()
exit(0)
