/** The datagram throughput test (the C API's `wtd_stream_throughput_test`). */
import { invalidArgument, WtdError } from "./errors.js";
import { sleep } from "./signal.js";
function drops(s) {
    return s.sendDropsEvicted + s.sendDropsExpired + s.sendDropsTooLarge + s.sendDropsQueueFull;
}
function result(before, now, extra, elapsedMs, size) {
    const sent = now.datagramsSent - before.datagramsSent;
    const errors = extra + (now.sendFailures - before.sendFailures) + (drops(now) - drops(before));
    const secs = Math.max(elapsedMs / 1000, 1e-9);
    return {
        durationMs: elapsedMs,
        datagramsSent: sent,
        errors,
        datagramsPerSecond: sent / secs,
        bitsPerSecond: (sent * size * 8) / secs,
        errorRate: sent + errors === 0 ? 0 : errors / (sent + errors),
    };
}
/**
 * Send `size`-byte datagrams through `stream` for `durationMs`, waiting for room in its
 * queue (backpressure), then let the queue drain (at most 2 s). `onProgress` is called
 * about once a second with the figures so far, and with the final result.
 */
export async function throughputTest(stream, durationMs, size, onProgress) {
    const max = stream.maxDatagramSize;
    if (!Number.isInteger(size) || size < 1 || size > max) {
        throw invalidArgument(`datagram size must be 1..=${max} bytes, got ${String(size)}`);
    }
    if (!(durationMs > 0) || !Number.isFinite(durationMs))
        throw invalidArgument("durationMs must be > 0");
    const payload = new Uint8Array(size).fill(0x5a);
    const before = stream.stats();
    const start = performance.now();
    let nextReport = start + 1000;
    let errors = 0;
    while (performance.now() - start < durationMs) {
        try {
            await stream.sendWait(payload, 0, null);
        }
        catch (e) {
            if (e instanceof WtdError && e.code === "Closed")
                throw e;
            // TooLarge is counted by the stream's stats (read below).
            if (!(e instanceof WtdError && e.code === "TooLarge"))
                errors++;
        }
        if (performance.now() >= nextReport) {
            nextReport += 1000;
            onProgress?.(result(before, stream.stats(), errors, performance.now() - start, size));
            // Let the page draw.
            await sleep(0);
        }
    }
    const drainUntil = performance.now() + 2000;
    while (stream.pendingSends > 0 && performance.now() < drainUntil && !stream.isClosed)
        await sleep(1);
    const r = result(before, stream.stats(), errors, performance.now() - start, size);
    onProgress?.(r);
    return r;
}
