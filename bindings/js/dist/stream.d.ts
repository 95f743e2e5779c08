/**
 * The datagram duplex stream of a session (the C API's `wtd_stream`): prioritised,
 * TTL-aware sending through one sender loop, a bounded receive queue with metadata,
 * JSON and structured messages, heartbeats and statistics — over the browser's
 * `WebTransport.datagrams`.
 *
 * A stream owns its session's datagrams: it holds the lock on
 * `datagrams.readable`, so a second stream or layer on the same session fails with
 * `"InvalidState"` (one owner per session, as in the C API). `close()` gives the
 * datagrams back (the session stays open).
 */
import { type CloseInfo } from "./errors.js";
import * as message from "./message.js";
import type { DecodeOptions } from "./json.js";
import { type Overflow } from "./queue.js";
import type { Value } from "./value.js";
/** What the stream needs of `WebTransport.datagrams` (a WebTransportDatagramDuplexStream). */
export interface DatagramDuplex {
    readonly readable: ReadableStream<Uint8Array>;
    readonly writable?: WritableStream<Uint8Array>;
    createWritable?: () => WritableStream<Uint8Array>;
    readonly maxDatagramSize: number;
}
/** What the stream needs of a `WebTransport` session. */
export interface SessionLike {
    readonly datagrams: DatagramDuplex;
    readonly closed?: Promise<{
        closeCode?: number;
        reason?: string;
    } | undefined>;
}
/** A `WebTransport` (or anything shaped like it), or its `datagrams` alone. */
export type DatagramSource = SessionLike | DatagramDuplex;
export interface StreamConfig {
    /** Datagrams the send queue holds (all priorities together). Default 100. */
    sendQueue?: number;
    /** Datagrams the receive queue holds. Default 100. */
    recvQueue?: number;
    /** What a full receive queue drops. Default `"drop-newest"` (the arriving datagram). */
    recvOverflow?: Overflow;
}
/** A received datagram with what the stream knows about it. */
export interface DatagramMessage {
    data: Uint8Array;
    /** Wall-clock time of arrival at the stream (Date.now() milliseconds). */
    receivedAt: number;
    /** Per-stream arrival number, from 0. */
    sequence: number;
    /** Milliseconds between arrival and the application taking it. */
    ageMs: number;
}
/** Counters and timings of a stream (the C API's `wtd_stream_stats`; times in ms). */
export interface StreamStats {
    datagramsSent: number;
    bytesSent: number;
    /** Every datagram that arrived (including those the full receive queue dropped). */
    datagramsReceived: number;
    bytesReceived: number;
    /** Taken from the queue but the session failed to send them. */
    sendFailures: number;
    /** Evicted from a full queue by a higher-priority datagram. */
    sendDropsEvicted: number;
    /** Time-to-live passed before reaching the wire. */
    sendDropsExpired: number;
    /** Refused for exceeding the maximum datagram size. */
    sendDropsTooLarge: number;
    /** Refused because the queue was full with nothing lower to evict. */
    sendDropsQueueFull: number;
    /** Arrivals dropped by the full receive queue. */
    receiveDrops: number;
    /** Received datagrams that failed to decode as JSON or structured. */
    receiveErrors: number;
    minDatagramSize: number;
    maxDatagramSize: number;
    avgDatagramSize: number;
    /** Queue-to-wire time. */
    avgSendTimeMs: number;
    maxSendTimeMs: number;
    /** Arrival-to-application time. */
    avgReceiveTimeMs: number;
    maxReceiveTimeMs: number;
    /** sent / all send attempts (1 before any). */
    sendSuccessRate: number;
    /** (received - receiveDrops - receiveErrors) / received (1 before any). */
    receiveSuccessRate: number;
}
/** Datagrams waiting in the stream's queues (the C API's `wtd_queue_stats`). */
export interface QueueStats {
    /** Send queue per priority 0, 1, 2. */
    send: [number, number, number];
    sendTotal: number;
    sendLimit: number;
    receive: number;
    receiveLimit: number;
}
/** Milliseconds of a time-to-live: null or undefined for none, else a number >= 0. */
export declare function checkTtl(ttlMs: number | null | undefined): number | null;
/** Bytes a send takes: a Uint8Array (copied), any ArrayBufferView or ArrayBuffer, or a
 * string (UTF-8). */
export type Bytes = Uint8Array | ArrayBuffer | ArrayBufferView | string;
export declare class DatagramStream {
    private readonly dg;
    private readonly reader;
    private readonly writer;
    private readonly sendQ;
    private readonly recvQ;
    private closedInfo;
    /** Set when the datagrams can no longer be read (session gone or stream closed). */
    private readEnded;
    private readonly sendReady;
    private readonly room;
    private readonly arrived;
    private nextSeq;
    private sessionClosedPromise;
    private inFlight;
    private heartbeatTimer;
    private readonly s;
    private sizeTotal;
    private sizeCount;
    private sendTimeTotal;
    private receiveTimeTotal;
    private receiveTimeCount;
    readonly config: Required<StreamConfig>;
    /** Take over the datagrams of `source` (a WebTransport, or its `datagrams`).
     * `"InvalidState"` if they already have an owner. */
    constructor(source: DatagramSource, config?: StreamConfig);
    /** The session's current maximum datagram size (it may change). */
    get maxDatagramSize(): number;
    /** Whether the stream (or its session) is closed. */
    get isClosed(): boolean;
    /** How it closed, once closed. */
    get closeInfo(): CloseInfo | null;
    private closedError;
    private sessionClosed;
    /** Stop the stream: queued datagrams are discarded, waiting calls end with
     * `"Closed"` once drained, and the datagrams are released (the session stays open). */
    close(): void;
    private released;
    private shutdown;
    private runReceiver;
    private countSize;
    private runSender;
    private enqueue;
    /** Queue a datagram with `priority` (0 low, 1 normal-high, 2 highest) and an optional
     * time-to-live in ms. Throws `"QueueFull"` (after the eviction rule), `"TooLarge"`,
     * `"Closed"`, `"InvalidArgument"`. */
    send(data: Bytes, priority?: number, ttlMs?: number | null): void;
    /** Like {@link send} but returns whether it was queued instead of throwing. */
    trySend(data: Bytes, priority?: number, ttlMs?: number | null): boolean;
    /** Like {@link send}, but waits for room in the send queue instead of `"QueueFull"`. */
    sendWait(data: Bytes, priority?: number, ttlMs?: number | null): Promise<void>;
    /** Send `value` as pywebtransport's `send_json` does (compact Python JSON). */
    sendJson(value: unknown, priority?: number, ttlMs?: number | null): void;
    /** Send `[u8 type_len][type][payload]` (pywebtransport's structured layout). */
    sendStructured(type: string, payload: Bytes, priority?: number, ttlMs?: number | null): void;
    private take;
    /** A datagram if one is queued, without waiting. */
    tryReceive(): Uint8Array | undefined;
    /** The next datagram with its metadata, waiting up to `timeoutMs` (null: no limit).
     * `"Timeout"` if none came; `"Closed"` once closed and drained. */
    receiveWithMetadata(timeoutMs?: number | null): Promise<DatagramMessage>;
    receive(timeoutMs?: number | null): Promise<Uint8Array>;
    /** Wait (up to `timeoutMs`) for one datagram, then take up to `maxCount` in all. */
    receiveMultiple(maxCount: number, timeoutMs?: number | null): Promise<Uint8Array[]>;
    /** The next datagram read as JSON (as `json.loads` reads it); an undecodable one is
     * counted in `receiveErrors` and thrown as `"InvalidData"` (the stream goes on). */
    receiveJson(timeoutMs?: number | null, options?: DecodeOptions): Promise<Value>;
    /** The next datagram as a structured message; malformed ones as for receiveJson. */
    receiveStructured(timeoutMs?: number | null): Promise<message.StructuredMessage>;
    /** Count a received datagram the application could not decode. */
    countReceiveError(): void;
    /** Send a heartbeat (`HEARTBEAT:<unix seconds>`) now and every `intervalMs`, at
     * priority 0 with a time-to-live of one interval. Replaces a running heartbeat. */
    startHeartbeat(intervalMs: number): void;
    stopHeartbeat(): void;
    /** Whether a heartbeat is running. */
    get heartbeatRunning(): boolean;
    stats(): StreamStats;
    queueStats(): QueueStats;
    /** Datagrams accepted by `send` not yet on the wire nor failed. */
    get pendingSends(): number;
    /** Datagrams waiting to be received. */
    get receiveBufferSize(): number;
    /** Whether the session's datagrams can no longer be read. */
    get receiveEnded(): boolean;
}
