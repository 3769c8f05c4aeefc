// Download progress on standard error: a bar on a terminal (bytes, rate, time left), a line per
// 10 % otherwise (logs, CI).

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Prints a download's progress to standard error.
public final class ProgressPrinter: @unchecked Sendable {
    private let terminal = isatty(2) != 0
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var start = 0.0, lastDecile = -1, lastFile = ""

    /// A printer for standard error.
    public init() { pthread_mutex_init(lock, nil) }

    private static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// Reports `done` of `total` bytes of `file`.
    public func report(_ done: Int64, _ total: Int64?, _ file: String) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        if file != lastFile { lastFile = file; start = Self.now(); lastDecile = -1 }
        let elapsed = max(Self.now() - start, 1e-3)
        let rate = Double(done) / elapsed
        var line: String
        if let total, total > 0 {
            let frac = min(1, Double(done) / Double(total))
            let left = rate > 0 ? Int(Double(total - done) / rate) : 0
            if terminal {
                let width = 24, filled = Int(frac * Double(width))
                line = "\r\(file) [" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
                    + "] \(mb(done))/\(mb(total)) \(mb(Int64(rate)))/s \(left / 60):\(String(left % 60).leftPad(2)) left"
                if done >= total { line += "\n" }
            } else {
                let decile = Int(frac * 10)
                guard decile != lastDecile else { return }
                lastDecile = decile
                line = "\(file): \(decile * 10)% (\(mb(done)) of \(mb(total)), \(mb(Int64(rate)))/s)\n"
            }
        } else {
            line = terminal ? "\r\(file): \(mb(done)) \(mb(Int64(rate)))/s" : ""
            if line.isEmpty { return }
        }
        fputs(line, stderr)
    }
}

private func mb(_ b: Int64) -> String {
    b >= 1_000_000_000 ? gb(b) : "\((b + 500_000) / 1_000_000) MB"
}
