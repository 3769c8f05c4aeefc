// phi4_embed: embeddings through a context's threads and batch size.

import CPhi4ABI
import CPhi4Kernels
import Phi4

@_cdecl("phi4_embed")
public func phi4_embed(_ c: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ lengths: UnsafePointer<Int>?, _ nInputs: Int,
                       _ pooling: Int32, _ normalize: Int32, _ out: UnsafeMutablePointer<Float>?, _ capacity: Int,
                       _ nOut: UnsafeMutablePointer<Int>?) -> phi4_status {
    guarded {
        let box = try context(c)
        let n = try count(nInputs, "n_inputs")
        guard let nOut else { throw ABIError.invalid("n_out is NULL") }
        guard let mode = Pooling(rawValue: Int(pooling)) else { throw ABIError.invalid("pooling \(pooling) is not a PHI4_POOLING_* value") }
        var inputs: [[TokenID]] = []
        if n > 0 {
            guard let lengths else { throw ABIError.invalid("lengths is NULL") }
            var total = 0
            for i in 0..<n {
                let len = try count(lengths[i], "lengths[\(i)]")
                total += len
                guard total <= maxCount else { throw ABIError.invalid("the inputs hold more than \(maxCount) tokens") }
            }
            let all = try ids(tokens, total, "tokens")
            var start = 0
            for i in 0..<n {
                inputs.append(Array(all[start..<(start + lengths[i])]))
                start += lengths[i]
            }
        }
        let d = box.modelBox.model.config.hiddenSize
        let needed = d * (mode == .none ? inputs.reduce(0) { $0 + $1.count } : inputs.count)
        nOut.pointee = needed
        guard needed <= capacity else { throw ABIError.tooSmall("\(needed) floats do not fit in a buffer of \(capacity)") }
        if needed == 0 { return }
        guard let out else { throw ABIError.invalid("out is NULL") }
        let vectors = try box.exclusive { try box.session.embed(inputs, pooling: mode, normalize: normalize != 0) }
        var k = 0
        for v in vectors {
            v.withUnsafeBufferPointer { (out + k).update(from: $0.baseAddress!, count: v.count) }
            k += v.count
        }
    }
}
