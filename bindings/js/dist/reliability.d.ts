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
 * at most once. A transmission not acknowledged within `ackTimeoutMs` counts as lost and
 * its message is retransmitted, until it is acknowledged or `maxRetries` retransmissions
 * went unanswered; then it gives up. Each message ends with one {@link DeliveryReport}.
 * Sequences are 32-bit on the wire and wrap; they are unwrapped with serial-number
 * arithmetic (RFC 1982).
 *
 * Pacing (as in the Rust layer; nothing of it is on the wire): a transmission budget
 * ({@link TransmissionBudget}) bounds the DATA transmissions awaiting an ACK, starting at
 * {@link INITIAL_FLIGHT}; due messages go out oldest first as ACKs and losses make room.
 * A QUIC stack packs what is queued at once into few packets, and Firefox keeps only the
 * newest 10 datagrams of a packet: a whole window, or a whole retransmission round, sent
 * at once lost its oldest messages every round until they were given up.
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
/** DATA transmissions that may await an ACK at once when a layer starts, and the least
 * its transmission budget ever allows (as in the Rust layer). */
export declare const INITIAL_FLIGHT = 4;
/**
 * How many DATA transmissions may await an ACK at once (a congestion window counted in
 * transmissions, Reno style, as in the Rust layer): it starts at {@link INITIAL_FLIGHT},
 * grows by one per ACK until the first loss and by one per flight after it, halves once
 * per flight in which a transmission was lost (never below INITIAL_FLIGHT), and never
 * exceeds the window. Each frame handed to the browser is clocked by an ACK or a loss, so
 * the peer never gets a retransmission round or a run of sends as one burst: a QUIC
 * stack packs the datagrams queued at once into few packets, and a receiver may keep only
 * part of a packet (Firefox keeps the newest 10 datagrams of each).
 */
export declare class TransmissionBudget {
    cwnd: number;
    private ssthresh;
    /** Losses of transmissions made before this time (performance.now()) do not halve it again. */
    private recoveryStart;
    get limit(): number;
    /** An ACK arrived while the budget was in use. */
    grow(window: number): void;
    /** A transmission made at `sent` was lost: the budget halves, or drops to its floor
     * when the lost one was a retransmission (the same message lost again: flights of this
     * size keep losing it). */
    lost(sent: number, retransmission: boolean, now: number): void;
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
    /** Pending messages waiting for a transmission go out oldest first as the budget
     * allows: those due again after a loss (ascending ids), then those never sent yet
     * (ids from `unsent` up to `nextId`; transmissions go oldest first, so every id a
     * never-sent message has is above every id a transmitted one has). */
    private resend;
    private unsent;
    /** The transmissions counted against the budget (not yet acknowledged nor taken for
     * lost): transmission number -> message id, in transmission order. */
    private flight;
    private nextTx;
    private readonly budget;
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
     * DATA frame and returns the message id (its wire sequence is the id mod 2^32). The
     * frame goes out at once when the transmission budget allows, else as soon as an ACK or
     * a loss makes room. Its outcome comes later as a {@link DeliveryReport}. Throws
     * `"TooLarge"`, `"Closed"`.
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
    /** Transmit due messages, oldest first, while the budget allows: [id, frame] pairs for
     * the stream. */
    private transmit;
    /** Hand frames to the stream; a full queue (or any failure) is like a lost datagram:
     * the transmission's deadline brings the next attempt. */
    private handOver;
    /** Messages waiting for a transmission. */
    private dueCount;
    /** Due again after a loss: into `resend`, in id order. */
    private redue;
    /** Drop a pending message (no report): out of the flight or the due messages (a
     * never-sent one is skipped when its turn comes). */
    private forget;
    private runReceiver;
    /** Keep one timer armed for the earliest deadline of a transmission in flight. */
    private armTimer;
    /** Transmissions whose deadline passed count as lost: their messages are due again, or
     * given up after `maxRetries` retransmissions. Then whatever the budget allows goes. */
    private onTimer;
}
