import XCTest
@testable import Phi4

final class ThreadPoolTests: XCTestCase {
    /// `dynamicFor` hands every index to exactly one call, whatever the count and chunk size
    /// (counts that are not multiples of the chunk, fewer items than threads, none at all).
    func testDynamicForCoversEveryIndexOnce() {
        let pool = ThreadPool(threads: 3)
        for count in [0, 1, 15, 16, 17, 1000] {
            for chunk in [1, 16, 64] {
                let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: max(1, count))
                hits.initialize(repeating: 0)
                defer { hits.deallocate() }
                pool.dynamicFor(count, threads: 3, chunk: chunk) { r in
                    XCTAssertLessThanOrEqual(r.count, chunk)
                    for i in r { hits[i] += 1 }  // ranges are disjoint: no two threads share an index
                }
                for i in 0..<count where hits[i] != 1 {
                    XCTFail("count \(count), chunk \(chunk): index \(i) ran \(hits[i]) times")
                    break
                }
            }
        }
    }

    /// Jobs back to back (workers still spinning) and jobs after a pause longer than the spin
    /// (workers asleep) both run on every thread and return only when all are done.
    func testJobsRunOnEveryThreadWhetherWorkersSpinOrSleep() {
        let pool = ThreadPool(threads: 3)
        let seen = UnsafeMutableBufferPointer<Int>.allocate(capacity: 3)
        defer { seen.deallocate() }
        for job in 0..<200 {
            seen.initialize(repeating: 0)
            if job % 50 == 49 { usleep(5_000) }  // ~10× the spin: the workers go to sleep
            pool.run(threads: 3) { i in seen[i] += 1 }
            XCTAssertEqual(Array(seen), [1, 1, 1], "job \(job)")
        }
    }
}
