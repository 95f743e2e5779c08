/** The datagram throughput test (the C API's `wtd_stream_throughput_test`). */
import type { DatagramStream } from "./stream.js";
/** Outcome of a throughput test (also reported as progress while it runs). */
export interface ThroughputResult {
    durationMs: number;
    /** Datagrams that reached the wire. */
    datagramsSent: number;
    /** Datagrams that failed or were dropped (too large, expired, send failures). */
    errors: number;
    datagramsPerSecond: number;
    bitsPerSecond: number;
    /** errors / (datagramsSent + errors). */
    errorRate: number;
}
/**
 * Send `size`-byte datagrams through `stream` for `durationMs`, waiting for room in its
 * queue (backpressure), then let the queue drain (at most 2 s). `onProgress` is called
 * about once a second with the figures so far, and with the final result.
 */
export declare function throughputTest(stream: DatagramStream, durationMs: number, size: number, onProgress?: (r: ThroughputResult) => void): Promise<ThroughputResult>;
