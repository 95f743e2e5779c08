/**
 * Reliable delivery over unreliable datagrams (the C API's `wtd_reliability`),
 * byte-compatible with pywebtransport's `DatagramReliabilityLayer` and the Rust side
 * (`src/datagram/reliability.rs`).
 *
 * Wire format (structured datagrams `[u8 type_len][type][payload]`):
 * - DATA: type `"DATA"`, payload = 32-bit big-endian sequence number, then the data.
 *   Sequence 1 carrying `hi` is `04 44 41 54 41 00 00 00 01 68 69`.
 * - ACK: type `"ACK"`, payload = the acknowledged sequence in ASCII decimal.
 *   ACK 258 is `03 41 43 4b 32 35 38`.
 *
 * The receiver acknowledges every DATA it accepts (duplicates too, so a lost ACK is
 * repaired by the retransmission it causes) and hands each sequence to the application
 * at most once. The sender retransmits a message every `ackTimeoutMs` until it is
 * acknowledged or `maxRetries` retransmissions went unanswered; then it gives up. Each
 * message ends with one {@link DeliveryReport}. Sequences are 32-bit on the wire and wrap;
 * they are unwrapped with serial-number arithmetic (RFC 1982).
 */
import { type Bytes, DatagramStream, type DatagramSource } from "./stream.js";
export declare const DATA_TYPE = "DATA";
export declare const ACK_TYPE = "ACK";
/** Bytes a DATA frame adds to the application data (type length, "DATA", sequence). */
export declare const DATA_OVERHEAD: number;
/** DATA frame: `04 "DATA" [u32 BE sequence] [data]`. */
export declare function encodeData(sequence: number, data: Uint8Array): Uint8Array;
/** ACK frame: `03 "ACK" [sequence in ASCII decimal]`. */
export declare function encodeAck(sequence: number): Uint8Array;
export type Frame = {
    kind: "data";
    sequence: number;
    data: Uint8Array;
} | {
    kind: "ack";
    sequence: number;
};
/** A datagram as DATA or ACK; null for anything else (another type, a DATA shorter than
 * its sequence, an ACK that is not 1..10 decimal digits within 0..2^32-1). */
export declare function decodeFrame(datagram: Uint8Array): Frame | null;
/** Map a 32-bit wire sequence to the counter nearest `reference` (within 2^31 either
 * side); null if that would be below 0. */
export declare function unwrapSequence(wire: number, reference: number): number | null;
/**
 * Which sequences were delivered, for at-most-once delivery with bounded memory. A
 * sequence more than `capacity` behind the highest is taken as already delivered.
 */
export declare class DedupWindow {
    readonly capacity: number;
    private highest;
    /** slot (sequence mod capacity) -> the sequence that took it last. */
    private slots;
    constructor(capacity: number);
    /** Whether `wire` is new (then it is remembered); false for a duplicate. */
    check(wire: number): boolean;
    /** Sequences remembered now (at most the capacity). */
    get size(): number;
}
/** Options of a {@link ReliabilityLayer}; the defaults are the C API's. */
export interface ReliabilityConfig {
    /** Time to wait for an ACK before retransmitting. Default 2000 ms. */
    ackTimeoutMs?: number;
    /** Retransmissions before giving up (a message goes out at most maxRetries + 1 times). Default 5. */
    maxRetries?: number;
    /** Span of sequences in flight: `send` waits while the new sequence would be `window`
     * past the oldest unacknowledged one. Default 256. */
    window?: number;
    /** Received sequences remembered for duplicate detection (keep it >= the peer's
     * window). Default 4096. */
    dedupMemory?: number;
    /** Received messages waiting for `receive`; when full, new DATA is neither accepted nor
     * acknowledged (the peer retransmits it later). Default 1000. */
    recvQueue?: number;
    /** Delivery reports kept for `nextReport`; the oldest is dropped beyond. Default 10000. */
    reportQueue?: number;
    /** Wire sequence (and id) of the first message. Default 0. */
    initialSequence?: number;
}
export type DeliveryOutcome = "delivered" | "gave-up";
/** How one message sent with `send` ended. */
export interface DeliveryReport {
    /** The id `send` returned. */
    id: number;
    outcome: DeliveryOutcome;
    /** Transmissions made (1 = no retransmission). */
    attempts: number;
}
/** Counters of a layer (the C API's `wtd_reliability_stats`). */
export interface ReliabilityStats {
    messagesSent: number;
    messagesDelivered: number;
    messagesGivenUp: number;
    retransmissions: number;
    acksSent: number;
    /** Well-formed ACKs received (also for unknown or already acknowledged sequences). */
    acksReceived: number;
    /** DATA received again (acknowledged again, not delivered again). */
    duplicatesReceived: number;
    /** New messages queued for `receive`. */
    messagesReceived: number;
    /** New DATA refused because the receive queue was full (not acknowledged). */
    receiveDrops: number;
    /** Datagrams that were neither DATA nor ACK. */
    invalidReceived: number;
    /** Reports dropped from the full report queue. */
    reportsDropped: number;
    /** Messages sent and not yet acknowledged or given up. */
    inFlight: number;
}
/**
 * Acknowledged, retransmitted, de-duplicated messages over a session's datagrams. It
 * owns the session's datagrams (through its own {@link DatagramStream}).
 */
export declare class ReliabilityLayer {
    readonly config: Required<ReliabilityConfig>;
    readonly stream: DatagramStream;
    private closed;
    private nextId;
    /** id -> pending message, in id order (ids only grow). */
    private pending;
    private recv;
    private dedup;
    private reports;
    private hook;
    private readonly room;
    private readonly arrived;
    private readonly reported;
    private timer;
    private timerAt;
    private readonly st;
    /** Take over the datagrams of `source`. `"InvalidState"` if they have an owner;
     * `"InvalidArgument"` for a bad configuration. */
    constructor(source: DatagramSource, config?: ReliabilityConfig);
    get isClosed(): boolean;
    private closedError;
    /** Largest `data` that `send` accepts now. */
    get maxMessageSize(): number;
    /**
     * Send `data` reliably. Waits while the window is full (backpressure), then queues the
     * DATA frame and returns the message id (its wire sequence is the id mod 2^32). Its
     * outcome comes later as a {@link DeliveryReport}. Throws `"TooLarge"`, `"Closed"`.
     */
    send(data: Bytes): Promise<number>;
    /** The next received message, waiting up to `timeoutMs` (null: no limit).
     * `"Timeout"` if none came; `"Closed"` once closed and drained. */
    receive(timeoutMs?: number | null): Promise<Uint8Array>;
    tryReceive(): Uint8Array | undefined;
    /** Messages waiting for `receive`. */
    get receiveBufferSize(): number;
    /** The next delivery report, waiting up to `timeoutMs` (null: no limit). */
    nextReport(timeoutMs?: number | null): Promise<DeliveryReport>;
    tryNextReport(): DeliveryReport | undefined;
    /** Call `hook` with every report from now on, besides queueing it (null removes it). */
    onReport(hook: ((r: DeliveryReport) => void) | null): void;
    stats(): ReliabilityStats;
    /** Stop: the stream closes, unacknowledged messages are abandoned without a report,
     * waiting calls end with `"Closed"` (queued messages and reports can still be taken). */
    close(): void;
    private report;
    private onData;
    private onAck;
    private runReceiver;
    /** Keep one timer armed for the earliest retransmission deadline. */
    private armTimer;
    private onTimer;
}
