/**
 * The datagram stream's queues, without I/O (the Rust side's `src/datagram/queue.rs`):
 * a send queue with three priority classes, time-to-live and an eviction rule, and a
 * bounded receive queue.
 */
/** Priority classes: 0 (low), 1 (normal-high), 2 (highest). */
export declare const PRIORITIES = 3;
export interface Pending<T> {
    item: T;
    priority: number;
    /** performance.now() when queued. */
    enqueued: number;
    /** Not to be put on the wire at or after this performance.now() time. */
    deadline: number | null;
}
/** A FIFO with O(1) push and shift. */
export declare class Fifo<T> {
    private items;
    private head;
    get length(): number;
    push(x: T): void;
    unshift(x: T): void;
    shift(): T | undefined;
    peek(): T | undefined;
    clear(): void;
}
/**
 * Higher classes leave first; FIFO within a class. When full, a new datagram evicts the
 * oldest datagram of the lowest non-empty class below its own; if there is none, it is
 * rejected.
 */
export declare class SendQueue<T> {
    private classes;
    readonly limit: number;
    constructor(limit: number);
    get length(): number;
    classLengths(): [number, number, number];
    /** Queue `item`; returns `{ evicted }` (the datagram dropped for room, if any), or
     * `null` when the queue is full with nothing lower to evict. */
    push(item: T, priority: number, ttlMs: number | null, now: number): {
        evicted: Pending<T> | null;
    } | null;
    /** The next datagram to send, highest class first; expired ones go to `expired`. */
    pop(now: number, expired: (p: Pending<T>) => void): Pending<T> | null;
    clear(): number;
}
/** What a full receive queue gives up: the arriving datagram (default) or the oldest. */
export type Overflow = "drop-newest" | "drop-oldest";
export declare class RecvQueue<T> {
    private q;
    readonly limit: number;
    readonly overflow: Overflow;
    constructor(limit: number, overflow?: Overflow);
    get length(): number;
    /** Add `item`; returns what was dropped to respect the limit (or undefined). */
    push(item: T): T | undefined;
    pop(): T | undefined;
    unpop(item: T): void;
    peek(): T | undefined;
    clear(): void;
}
