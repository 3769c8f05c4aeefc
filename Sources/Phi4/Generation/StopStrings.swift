// Stop strings in streamed text.

/// Finds stop strings in streamed text, holding back any tail that could still begin one.
struct StopStringMatcher {
    private let stops: [String]
    private var held = ""

    init(_ stops: [String]) { self.stops = stops }

    /// Adds text; returns what is safe to emit, and whether a stop string was completed
    /// (the text before it is emitted; the stop string and anything after is dropped).
    mutating func push(_ text: String) -> (String, Bool) {
        if stops.isEmpty { return (text, false) }
        held += text
        // The earliest complete stop string wins.
        var earliest: String.Index?
        for s in stops {
            if let r = held.firstRange(of: s), earliest == nil || r.lowerBound < earliest! { earliest = r.lowerBound }
        }
        if let e = earliest {
            let out = String(held[..<e])
            held = ""
            return (out, true)
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        var keep = 0
        let chars = Array(held)
        for s in stops {
            let sc = Array(s)
            var n = min(sc.count - 1, chars.count)
            while n > keep {
                if Array(chars[(chars.count - n)...]) == Array(sc[..<n]) { keep = n; break }
                n -= 1
            }
        }
        let out = String(chars[..<(chars.count - keep)])
        held = String(chars[(chars.count - keep)...])
        return (out, false)
    }

    /// Everything still held (the stream ended without a match).
    mutating func flush() -> String {
        defer { held = "" }
        return held
    }
}
