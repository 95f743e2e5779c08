/**
 * The datagram stream's queues, without I/O (the Rust side's `src/datagram/queue.rs`):
 * a send queue with three priority classes, time-to-live and an eviction rule, and a
 * bounded receive queue.
 */
/** Priority classes: 0 (low), 1 (normal-high), 2 (highest). */
export const PRIORITIES = 3;
/** A FIFO with O(1) push and shift. */
export class Fifo {
    constructor() {
        this.items = [];
        this.head = 0;
    }
    get length() {
        return this.items.length - this.head;
    }
    push(x) {
        this.items.push(x);
    }
    unshift(x) {
        if (this.head > 0)
            this.items[--this.head] = x;
        else
            this.items.unshift(x);
    }
    shift() {
        if (this.head >= this.items.length)
            return undefined;
        const x = this.items[this.head];
        this.items[this.head++] = undefined;
        if (this.head > 1024 && this.head * 2 > this.items.length) {
            this.items = this.items.slice(this.head);
            this.head = 0;
        }
        return x;
    }
    peek() {
        return this.head < this.items.length ? this.items[this.head] : undefined;
    }
    clear() {
        this.items = [];
        this.head = 0;
    }
}
/**
 * Higher classes leave first; FIFO within a class. When full, a new datagram evicts the
 * oldest datagram of the lowest non-empty class below its own; if there is none, it is
 * rejected.
 */
export class SendQueue {
    constructor(limit) {
        this.classes = [new Fifo(), new Fifo(), new Fifo()];
        this.limit = Math.max(1, limit);
    }
    get length() {
        return this.classes[0].length + this.classes[1].length + this.classes[2].length;
    }
    classLengths() {
        return [this.classes[0].length, this.classes[1].length, this.classes[2].length];
    }
    /** Queue `item`; returns `{ evicted }` (the datagram dropped for room, if any), or
     * `null` when the queue is full with nothing lower to evict. */
    push(item, priority, ttlMs, now) {
        const p = Math.min(Math.max(0, priority), PRIORITIES - 1);
        let evicted = null;
        if (this.length >= this.limit) {
            const victim = [0, 1, 2].slice(0, p).find((c) => this.classes[c].length > 0);
            if (victim === undefined)
                return null;
            evicted = this.classes[victim].shift() ?? null;
        }
        this.classes[p].push({ item, priority: p, enqueued: now, deadline: ttlMs === null ? null : now + ttlMs });
        return { evicted };
    }
    /** The next datagram to send, highest class first; expired ones go to `expired`. */
    pop(now, expired) {
        for (let c = PRIORITIES - 1; c >= 0; c--) {
            for (;;) {
                const p = this.classes[c].shift();
                if (p === undefined)
                    break;
                if (p.deadline !== null && now >= p.deadline) {
                    expired(p);
                    continue;
                }
                return p;
            }
        }
        return null;
    }
    clear() {
        const n = this.length;
        for (const c of this.classes)
            c.clear();
        return n;
    }
}
export class RecvQueue {
    constructor(limit, overflow = "drop-newest") {
        this.q = new Fifo();
        this.limit = Math.max(1, limit);
        this.overflow = overflow;
    }
    get length() {
        return this.q.length;
    }
    /** Add `item`; returns what was dropped to respect the limit (or undefined). */
    push(item) {
        if (this.q.length < this.limit) {
            this.q.push(item);
            return undefined;
        }
        if (this.overflow === "drop-newest")
            return item;
        const old = this.q.shift();
        this.q.push(item);
        return old;
    }
    pop() {
        return this.q.shift();
    }
    unpop(item) {
        this.q.unshift(item);
    }
    peek() {
        return this.q.peek();
    }
    clear() {
        this.q.clear();
    }
}
