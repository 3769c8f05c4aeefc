// The engine behind the server: one Scheduler, stepped by a thread of its own, and the streams
// that carry each request's updates to its HTTP handler.

import Dispatch
import Phi4
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Serving counters, for /metrics.
struct Counters: Sendable {
    var requests = 0
    var requestErrors = 0
    var promptTokens = 0
    var generatedTokens = 0
    var steps = 0
    /// Tokens generated in the last steps and the seconds those steps took (a recent tokens/s).
    var recentTokens = 0.0
    var recentSeconds = 0.0
}

/// One Scheduler driven by a dedicated thread: handlers submit requests and read their updates
/// from an AsyncStream; the thread steps while there is work and sleeps otherwise.
final class Engine: Sendable {
    let model: Model
    let scheduler: Scheduler
    let timeout: Double?

    private struct State {
        var streams: [Int: AsyncStream<SchedulerUpdate>.Continuation] = [:]
        var deadlines: [Int: ContinuousClock.Instant] = [:]
        var stopping = false
        var counters = Counters()
        /// Work that runs on the stepping thread between steps (embeddings).
        var jobs: [@Sendable () -> Void] = []
    }
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)

    init(model: Model, options: SchedulerOptions, timeout: Double?) throws(ModelError) {
        self.model = model
        self.scheduler = try Scheduler(model: model, options: options)
        self.timeout = timeout
    }

    /// Starts the stepping thread.
    func start() {
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        pthread_create(&thread, nil, { arg in
            let engine = Unmanaged<Engine>.fromOpaque(arg!).takeRetainedValue()
            engine.loop()
            return nil
        }, box.toOpaque())
        pthread_detach(thread)
    }

    /// Queues a request; its updates arrive on the returned stream, which ends after the last.
    /// Ending the stream early (the client went away) cancels the request.
    func submit(_ prompt: [TokenID], options: GenerationOptions) throws(ModelError) -> (Int, AsyncStream<SchedulerUpdate>) {
        let (stream, continuation) = AsyncStream<SchedulerUpdate>.makeStream()
        let id = try state.withLock { (s: inout State) throws(ModelError) -> Int in
            let id = try scheduler.submit(prompt, options: options)
            s.streams[id] = continuation
            if let timeout { s.deadlines[id] = .now + .milliseconds(Int(timeout * 1000)) }
            s.counters.requests += 1
            s.counters.promptTokens += prompt.count
            return id
        }
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.scheduler.cancel(id) }
        }
        wake.signal()
        return (id, stream)
    }

    /// Stops a request (its stream gets a last update).
    func cancel(_ id: Int) {
        scheduler.cancel(id)
        wake.signal()
    }

    func countError() { state.withLock { $0.counters.requestErrors += 1 } }

    /// Embeddings of `inputs` (normalised, as llama-server's OpenAI endpoint gives them), computed
    /// on the stepping thread between generation steps: the two never use the threads at once.
    func embed(_ inputs: [[TokenID]], pooling: Pooling) async throws -> [[Float]] {
        let model = self.model
        let threads = scheduler.options.threads
        let batch = max(1, min(512, inputs.reduce(0) { $0 + $1.count }))
        return try await withCheckedThrowingContinuation { continuation in
            state.withLock { s in
                s.counters.requests += 1
                s.counters.promptTokens += inputs.reduce(0) { $0 + $1.count }
                s.jobs.append {
                    do {
                        let e = try Embedder(model: model, batchSize: batch, threads: threads)
                        continuation.resume(returning: try e.embed(inputs, pooling: pooling, normalize: true))
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
            wake.signal()
        }
    }

    var counters: Counters { state.withLock { $0.counters } }

    /// Finishes the requests in flight, then ends the thread.
    func shutdown() {
        state.withLock { $0.stopping = true }
        wake.signal()
        stopped.wait()
    }

    private func loop() {
        let clock = ContinuousClock()
        while true {
            let expired: [Int] = state.withLock { s in
                let now = ContinuousClock.now
                let ids = s.deadlines.filter { $0.value <= now }.map(\.key)
                for id in ids { s.deadlines[id] = nil }
                return ids
            }
            for id in expired { scheduler.cancel(id) }
            let jobs: [@Sendable () -> Void] = state.withLock { s in
                defer { s.jobs.removeAll() }
                return s.jobs
            }
            for job in jobs { job() }
            if !scheduler.hasWork {
                if state.withLock({ $0.stopping }) { break }
                wake.wait()
                continue
            }
            let t0 = clock.now
            let updates: [SchedulerUpdate]
            do {
                updates = try scheduler.step()
            } catch {
                // Requests are checked at submit, so a step cannot fail on their input; end them all.
                state.withLock { s in
                    for c in s.streams.values { c.finish() }
                    s.streams.removeAll()
                }
                continue
            }
            let seconds = Double((clock.now - t0).components.attoseconds) * 1e-18 + Double((clock.now - t0).components.seconds)
            state.withLock { s in
                var generated = 0
                for u in updates {
                    generated += u.tokens.count
                    s.streams[u.request]?.yield(u)
                    if u.result != nil {
                        s.streams.removeValue(forKey: u.request)?.finish()
                        s.deadlines[u.request] = nil
                    }
                }
                s.counters.steps += 1
                s.counters.generatedTokens += generated
                // An exponentially decayed window of about the last 20 steps.
                s.counters.recentTokens = s.counters.recentTokens * 0.95 + Double(generated)
                s.counters.recentSeconds = s.counters.recentSeconds * 0.95 + seconds
            }
        }
        stopped.signal()
    }
}
