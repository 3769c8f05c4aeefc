#if canImport(Glibc)
import Glibc
#endif

extension Session {
    /// Generated text pieces as an `AsyncSequence`.
    ///
    /// The generation runs on its own thread (it is blocking, CPU-bound work and stays off Swift's
    /// cooperative pool); pieces arrive as they become final. Breaking out of the loop, or
    /// cancelling the consuming task, cancels the generation. The session must not be used for
    /// anything else until the sequence has finished.
    ///
    ///     for try await piece in session.pieces(prompt) { print(piece, terminator: "") }
    public func pieces(_ prompt: [TokenID], options: GenerationOptions = GenerationOptions()) -> AsyncThrowingStream<String, Error> {
        AsyncThrowingStream { continuation in
            continuation.onTermination = { [self] reason in
                if case .cancelled = reason { self.cancel() }
            }
            BackgroundThread.start { [self] in
                do {
                    _ = try self.generate(prompt, options: options) { text, _ in
                        if case .terminated = continuation.yield(text) { return false }
                        return true
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
        }
    }
}

/// Starts a detached POSIX thread running a closure (no Foundation).
enum BackgroundThread {
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    static func start(_ body: @escaping () -> Void) {
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            b.body()
            return nil
        }, box.toOpaque())
        if rc == 0 {
            pthread_detach(thread)
        } else {
            box.takeRetainedValue().body()  // no thread: run here
        }
    }
}
