import CPhi4Kernels

/// The CPU this process runs on and the quantized matrix kernels chosen for it.
///
/// Every kernel computes identical bits, so which one runs is only a matter of speed. For each
/// weight format and batch size class (one token, 2–16 tokens, 17 and more) the engine times the
/// candidates once per process when a model is loaded (`calibrate`, a few milliseconds per
/// format) and keeps the fastest. `PHI4_ISA=scalar|avx2|avx512|vnni|neon|dotprod` limits the candidates to that
/// instruction set family and the ones below it; `PHI4_CALIBRATE=0` skips the timing and uses a
/// fixed preference.
public enum Kernels {
    /// The batch size classes kernels are chosen for.
    public enum BatchClass: Int, CaseIterable, Sendable {
        /// One token (decoding).
        case one = 0
        /// 2–16 tokens (verification passes, several sequences decoded together).
        case small = 1
        /// 17 tokens and more (prompt evaluation).
        case large = 2

        /// "1", "2-16" or "17+".
        public var label: String { ["1", "2-16", "17+"][rawValue] }
    }

    /// The CPU's model name, e.g. "AMD EPYC 9R14 96-Core Processor".
    public static var cpuModel: String {
        var buf = [CChar](repeating: 0, count: 64)
        p4k_cpu_model(&buf, buf.count)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The vector features the kernels use that this CPU has, e.g. "avx2 fma f16c".
    public static var cpuFlags: String {
        var buf = [CChar](repeating: 0, count: 160)
        p4k_cpu_flags(&buf, buf.count)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Times the candidate kernels of these formats (once per format and process) and keeps the
    /// fastest of each batch class. Float formats have no quantized kernels and are ignored.
    public static func calibrate(_ formats: [WeightFormat]) {
        let codes = Array(Set(formats.map(\.kernelCode).filter { $0 >= 0 }))
        if !codes.isEmpty { _ = p4k_kernels_calibrate(codes, codes.count) }
    }

    /// The kernel used for a format and batch class, e.g. "avx2-rows"; nil for float formats.
    public static func choice(_ format: WeightFormat, _ batch: BatchClass) -> String? {
        guard format.kernelCode >= 0 else { return nil }
        return String(cString: p4k_kernel_choice(format.kernelCode, Int32(batch.rawValue)))
    }

    /// Milliseconds spent timing kernels in this process.
    public static var calibrationMilliseconds: Double { p4k_kernels_calibration_ms() }

    /// "q4_0: 1 avx2-rows, 2-16 avx2-rows, 17+ avx2-panels" for each quantized format given.
    public static func summary(_ formats: [WeightFormat]) -> [String] {
        var seen = Set<WeightFormat>()
        return formats.filter { $0.kernelCode >= 0 && seen.insert($0).inserted }.map { f in
            "\(f.rawValue): " + BatchClass.allCases.map { "\($0.label) \(choice(f, $0) ?? "-")" }.joined(separator: ", ")
        }
    }
}
