#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CPhi4Kernels

/// A persistent pool of worker threads that run one parallel job at a time.
///
/// The engine splits its own work (matrix rows, attention heads) across this pool; OpenBLAS is
/// called with one thread per call. One pool serves the process (``shared``), sized from the CPU
/// affinity mask and the cgroup CPU quota. Jobs from different threads are serialized, so many
/// contexts can share it safely.
///
/// Fork-safe: a child process (for example Python multiprocessing's "fork") starts with no worker
/// threads and with the parent's lock states copied; a `pthread_atfork` child handler resets the
/// locks and the next job starts fresh workers in the child.
// @unchecked Sendable: the job state is handed between threads through the pool's mutex and
// condition variables; workers touch only their own slice of a job.
package final class ThreadPool: @unchecked Sendable {
    /// The process-wide pool.
    public static let shared = ThreadPool(threads: ThreadPool.availableCPUs())

    /// The number of threads a job can use (workers plus the calling thread).
    public let threadCount: Int

    private var mutex = pthread_mutex_t()
    private var workCond = pthread_cond_t()
    private var doneCond = pthread_cond_t()
    private var jobLock = pthread_mutex_t()
    /// Two counters read and written atomically: the job number (workers wait for it to change)
    /// and the workers still running the current job.
    private let counters: UnsafeMutablePointer<CLong> = {
        let p = UnsafeMutablePointer<CLong>.allocate(capacity: 2)
        p.initialize(repeating: 0, count: 2)
        return p
    }()
    private var generation: UnsafeMutablePointer<CLong> { counters }
    private var pending: UnsafeMutablePointer<CLong> { counters + 1 }
    /// How long a thread spins before it sleeps while waiting: decoding a token runs about
    /// five jobs per layer back to back, each a few milliseconds long, and waking a sleeping
    /// thread takes tens of microseconds on a virtual machine. About half a millisecond (a pause
    /// instruction takes ~28 ns on the AMD Zen 3 cores measured).
    private static let spins: CLong = 20_000
    private var activeThreads = 0
    private var job: ((Int) -> Void)?
    /// Set in a forked child: the workers are the parent's and do not exist here.
    private var needsWorkers = false

    /// Creates a pool whose jobs use up to `threads` threads (the caller included).
    public init(threads: Int) {
        threadCount = max(1, threads)
        initLocks()
        spawnWorkers()
        ForkRegistry.add(self)
    }

    private func initLocks() {
        pthread_mutex_init(&mutex, nil)
        pthread_mutex_init(&jobLock, nil)
        pthread_cond_init(&workCond, nil)
        pthread_cond_init(&doneCond, nil)
    }

    /// Called in a forked child while it has one thread: the parent's locks may have been held
    /// by threads that do not exist here, so every lock and counter starts again.
    fileprivate func resetAfterFork() {
        initLocks()
        counters.update(repeating: 0, count: 2)
        activeThreads = 0
        job = nil
        needsWorkers = threadCount > 1
    }

    private func spawnWorkers() {
        for index in 1..<threadCount {
            let box = Unmanaged.passRetained(WorkerStart(pool: self, index: index))
            var thread = pthread_t()
            var attr = pthread_attr_t()
            pthread_attr_init(&attr)
            pthread_attr_setstacksize(&attr, 1 << 20)
            let rc = pthread_create(&thread, &attr, { arg in
                let start = Unmanaged<WorkerStart>.fromOpaque(arg!).takeRetainedValue()
                start.pool.workerLoop(index: start.index)
                return nil
            }, box.toOpaque())
            pthread_attr_destroy(&attr)
            if rc != 0 {
                box.release()
            } else {
                pthread_detach(thread)
            }
        }
    }

    private final class WorkerStart {
        let pool: ThreadPool
        let index: Int
        init(pool: ThreadPool, index: Int) {
            self.pool = pool
            self.index = index
        }
    }

    private func workerLoop(index: Int) {
        var seen: CLong = 0
        while true {
            // A new job: spin first (jobs come back to back while decoding), then sleep. The
            // caller broadcasts under the mutex after it advances the counter, so a check made
            // under the mutex cannot miss it.
            if p4k_spin_while_equal(generation, seen, ThreadPool.spins) == 0 {
                pthread_mutex_lock(&mutex)
                while p4k_atomic_load(generation) == seen { pthread_cond_wait(&workCond, &mutex) }
                pthread_mutex_unlock(&mutex)
            }
            seen = p4k_atomic_load(generation)
            guard runJob(index) else { continue }
            if p4k_atomic_add(pending, -1) == 0 {
                // The caller may be asleep; it checks `pending` under the mutex before it sleeps.
                pthread_mutex_lock(&mutex)
                pthread_cond_signal(&doneCond)
                pthread_mutex_unlock(&mutex)
            }
        }
    }

    /// Calls the current job if this worker takes part in it; returns whether it did. Kept out
    /// of line so that this thread's reference to the closure is released before the job is
    /// reported done (``run(threads:_:)`` lends a non-escaping closure).
    @inline(never)
    private func runJob(_ index: Int) -> Bool {
        pthread_mutex_lock(&mutex)
        let body = index < activeThreads ? job : nil
        pthread_mutex_unlock(&mutex)
        guard let body else { return false }
        body(index)
        return true
    }

    /// Runs `body(i)` for every `i` in `0..<threads` (at most ``threadCount``), `i == 0` on the
    /// calling thread, and returns when all have finished.
    public func run(threads: Int, _ body: (Int) -> Void) {
        let n = max(1, min(threads, threadCount))
        if n == 1 {
            body(0)
            return
        }
        pthread_mutex_lock(&jobLock)
        if needsWorkers {
            needsWorkers = false
            spawnWorkers()
        }
        withoutActuallyEscaping(body) { escaping in
            pthread_mutex_lock(&mutex)
            job = escaping
            activeThreads = n
            _ = p4k_atomic_add(pending, CLong(n - 1))
            _ = p4k_atomic_add(generation, 1)
            pthread_cond_broadcast(&workCond)
            pthread_mutex_unlock(&mutex)
            escaping(0)
            // Wait for the workers (their share takes about as long as ours): spin, then sleep.
            _ = p4k_spin_until_zero(pending, ThreadPool.spins)
            pthread_mutex_lock(&mutex)
            while p4k_atomic_load(pending) > 0 { pthread_cond_wait(&doneCond, &mutex) }
            job = nil
            pthread_mutex_unlock(&mutex)
        }
        pthread_mutex_unlock(&jobLock)
    }

    /// Splits `0..<count` into `threads` contiguous ranges (multiples of `align` where possible)
    /// and runs `body` on each in parallel.
    public func parallelFor(_ count: Int, threads: Int, align: Int = 1, _ body: (Range<Int>) -> Void) {
        let n = max(1, min(threads, threadCount, max(1, count / max(1, align))))
        if n == 1 {
            body(0..<count)
            return
        }
        run(threads: n) { t in
            let r = ThreadPool.split(count, parts: n, index: t, align: align)
            if !r.isEmpty { body(r) }
        }
    }

    /// Runs `body` on consecutive ranges of `chunk` items that cover `0..<count`, each thread
    /// taking the next range when it is done with its last one (for work whose speed varies
    /// between threads, such as streaming weights from memory).
    public func dynamicFor(_ count: Int, threads: Int, chunk: Int, _ body: (Range<Int>) -> Void) {
        let step = max(1, chunk)
        let n = max(1, min(threads, threadCount, (count + step - 1) / step))
        if n == 1 {
            body(0..<count)
            return
        }
        withUnsafeTemporaryAllocation(of: CLong.self, capacity: 1) { next in
            next[0] = 0
            let counter = next.baseAddress!
            run(threads: n) { _ in
                while true {
                    let end = Int(p4k_atomic_add(counter, CLong(step)))
                    let start = end - step
                    if start >= count { break }
                    body(start..<min(end, count))
                }
            }
        }
    }

    /// The `index`-th of `parts` contiguous ranges that cover `0..<count`.
    static func split(_ count: Int, parts: Int, index: Int, align: Int) -> Range<Int> {
        let units = (count + align - 1) / align
        let lo = units * index / parts * align
        let hi = min(count, units * (index + 1) / parts * align)
        return min(lo, count)..<hi
    }

    /// The CPUs this process may use: the affinity mask, capped by the cgroup CPU quota.
    public static func availableCPUs() -> Int {
        var n = 0
        #if os(Linux)
        n = Int(p4k_affinity_cpu_count())
        // cgroup v2: "quota period" in cpu.max ("max" means no quota).
        if let text = try? FileIO.readAll("/sys/fs/cgroup/cpu.max", limit: 4096) {
            let parts = String(decoding: text, as: UTF8.self).split(separator: " ")
            if parts.count >= 2, let quota = Double(parts[0]),
               let period = Double(parts[1].filter { !$0.isWhitespace }), period > 0 {
                let cpus = Int((quota / period).rounded(.up))
                if cpus > 0 { n = n > 0 ? min(n, cpus) : cpus }
            }
        }
        #endif
        if n <= 0 { n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
        return max(1, n)
    }
}

/// Every pool of the process (pools live as long as the process: their workers hold them), so
/// that a forked child can reset them. Registration installs one `pthread_atfork` child handler.
private enum ForkRegistry {
    // nonisolated(unsafe): `pools` is only touched with `lock` held.
    nonisolated(unsafe) static var pools: [Unmanaged<ThreadPool>] = []
    nonisolated(unsafe) static var lock = pthread_mutex_t()
    static let installed: Void = {
        pthread_mutex_init(&lock, nil)
        pthread_atfork(nil, nil, {
            pthread_mutex_init(&ForkRegistry.lock, nil)
            for pool in ForkRegistry.pools { pool.takeUnretainedValue().resetAfterFork() }
        })
    }()

    static func add(_ pool: ThreadPool) {
        _ = installed
        pthread_mutex_lock(&lock)
        pools.append(Unmanaged.passUnretained(pool))
        pthread_mutex_unlock(&lock)
    }
}
