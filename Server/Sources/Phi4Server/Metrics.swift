// GET /metrics: Prometheus' text format, written by hand (a few counters and gauges).

import Phi4

func metricsText(_ state: ServerState) -> String {
    guard let engine = state.engine else { return "# the model is loading\nphi4_ready 0\n" }
    let c = engine.counters
    let s = engine.scheduler
    let (used, capacity) = s.cacheUse
    var out = ""
    func metric(_ name: String, _ type: String, _ help: String, _ value: Double) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
    }
    metric("phi4_ready", "gauge", "1 once the model has loaded.", 1)
    metric("phi4_requests_total", "counter", "Completion requests accepted.", Double(c.requests))
    metric("phi4_request_errors_total", "counter", "Completion requests refused with an error status.", Double(c.requestErrors))
    metric("phi4_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.", Double(c.promptTokens))
    metric("phi4_generated_tokens_total", "counter", "Tokens generated.", Double(c.generatedTokens))
    metric("phi4_steps_total", "counter", "Forward passes run.", Double(c.steps))
    metric("phi4_queue_depth", "gauge", "Requests waiting for a slot.", Double(s.queuedCount))
    metric("phi4_active_requests", "gauge", "Requests in a slot.", Double(s.activeCount))
    metric("phi4_slots", "gauge", "Slots (requests generated at once).", Double(s.options.slots))
    metric("phi4_tokens_per_second", "gauge", "Tokens generated per second over the recent steps.",
           c.recentSeconds > 0 ? c.recentTokens / c.recentSeconds : 0)
    metric("phi4_kv_cache_tokens", "gauge", "Tokens held in the slots' KV caches.", Double(used))
    metric("phi4_kv_cache_capacity_tokens", "gauge", "Positions the slots' KV caches hold in all.", Double(capacity))
    metric("phi4_kv_cache_usage_ratio", "gauge", "KV cache positions in use.", capacity > 0 ? Double(used) / Double(capacity) : 0)
    return out
}
