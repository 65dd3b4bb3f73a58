"""The Lua both benchmarks give wrk: its `done` hook prints one JSON line of the summary."""

WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %f, "errors": %d, "p50_ms": %f, "p95_ms": %f}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
      + summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000))
end
"""
