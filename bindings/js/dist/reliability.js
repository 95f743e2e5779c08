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
import { invalidArgument, WtdError } from "./errors.js";
import { decodeStructured } from "./message.js";
import { Fifo } from "./queue.js";
import { Signal, waitOn } from "./signal.js";
import { DatagramStream } from "./stream.js";
export const DATA_TYPE = "DATA";
export const ACK_TYPE = "ACK";
/** Bytes a DATA frame adds to the application data (type length, "DATA", sequence). */
export const DATA_OVERHEAD = 1 + 4 + 4;
const DATA_PRIORITY = 1;
const ACK_PRIORITY = 2;
/** DATA frame: `04 "DATA" [u32 BE sequence] [data]`. */
export function encodeData(sequence, data) {
    const out = new Uint8Array(DATA_OVERHEAD + data.length);
    out.set([4, 0x44, 0x41, 0x54, 0x41]);
    new DataView(out.buffer).setUint32(5, sequence >>> 0);
    out.set(data, DATA_OVERHEAD);
    return out;
}
/** ACK frame: `03 "ACK" [sequence in ASCII decimal]`. */
export function encodeAck(sequence) {
    const digits = String(sequence >>> 0);
    const out = new Uint8Array(4 + digits.length);
    out.set([3, 0x41, 0x43, 0x4b]);
    for (let i = 0; i < digits.length; i++)
        out[4 + i] = digits.charCodeAt(i);
    return out;
}
/** A datagram as DATA or ACK; null for anything else (another type, a DATA shorter than
 * its sequence, an ACK that is not 1..10 decimal digits within 0..2^32-1). */
export function decodeFrame(datagram) {
    let m;
    try {
        m = decodeStructured(datagram);
    }
    catch {
        return null;
    }
    if (m.type === DATA_TYPE) {
        if (m.payload.length < 4)
            return null;
        const v = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
        return { kind: "data", sequence: v.getUint32(0), data: m.payload.subarray(4) };
    }
    if (m.type === ACK_TYPE) {
        const p = m.payload;
        if (p.length === 0 || p.length > 10 || !p.every((b) => b >= 0x30 && b <= 0x39))
            return null;
        const n = Number(String.fromCharCode(...p));
        if (n > 0xffffffff)
            return null;
        return { kind: "ack", sequence: n };
    }
    return null;
}
/** Map a 32-bit wire sequence to the counter nearest `reference` (within 2^31 either
 * side); null if that would be below 0. */
export function unwrapSequence(wire, reference) {
    const delta = ((wire >>> 0) - (reference % 0x100000000)) | 0; // signed 32-bit difference
    const r = reference + delta;
    return r < 0 ? null : r;
}
/** Offset of the first unwrapped sequence, so that older ones stay non-negative. */
const DEDUP_BASE = 2 ** 40;
/**
 * Which sequences were delivered, for at-most-once delivery with bounded memory. A
 * sequence more than `capacity` behind the highest is taken as already delivered.
 */
export class DedupWindow {
    constructor(capacity) {
        this.highest = null;
        /** slot (sequence mod capacity) -> the sequence that took it last. */
        this.slots = new Map();
        this.capacity = Math.max(1, Math.floor(capacity));
    }
    /** Whether `wire` is new (then it is remembered); false for a duplicate. */
    check(wire) {
        if (this.highest === null) {
            const ext = DEDUP_BASE + (wire >>> 0);
            this.highest = ext;
            this.slots.set(ext % this.capacity, ext);
            return true;
        }
        const ext = unwrapSequence(wire, this.highest);
        if (ext === null)
            return false;
        if (ext + this.capacity <= this.highest)
            return false; // older than what we remember
        const slot = ext % this.capacity;
        // Whatever held the slot before is at least `capacity` older: out of the window.
        if (this.slots.get(slot) === ext)
            return false;
        this.slots.set(slot, ext);
        if (ext > this.highest)
            this.highest = ext;
        return true;
    }
    /** Sequences remembered now (at most the capacity). */
    get size() {
        if (this.highest === null)
            return 0;
        let n = 0;
        for (const s of this.slots.values())
            if (s + this.capacity > this.highest)
                n++;
        return n;
    }
}
/** DATA transmissions that may await an ACK at once when a layer starts, and the least
 * its transmission budget ever allows (as in the Rust layer). */
export const INITIAL_FLIGHT = 4;
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
export class TransmissionBudget {
    constructor() {
        this.cwnd = INITIAL_FLIGHT;
        this.ssthresh = Infinity;
        /** Losses of transmissions made before this time (performance.now()) do not halve it again. */
        this.recoveryStart = -Infinity;
    }
    get limit() {
        return Math.floor(this.cwnd);
    }
    /** An ACK arrived while the budget was in use. */
    grow(window) {
        this.cwnd += this.cwnd < this.ssthresh ? 1 : 1 / this.cwnd;
        this.cwnd = Math.min(this.cwnd, Math.max(window, INITIAL_FLIGHT));
    }
    /** A transmission made at `sent` was lost: the budget halves, or drops to its floor
     * when the lost one was a retransmission (the same message lost again: flights of this
     * size keep losing it). */
    lost(sent, retransmission, now) {
        if (sent < this.recoveryStart)
            return; // a loss of the flight that already reduced it
        this.ssthresh = Math.max(this.cwnd / 2, INITIAL_FLIGHT);
        this.cwnd = retransmission ? INITIAL_FLIGHT : this.ssthresh;
        this.recoveryStart = now;
    }
}
/** A transmission counts as lost (and leaves the flight) once this many transmissions
 * made after it were acknowledged, without waiting for its deadline (RFC 9002's packet
 * threshold). Its message is still retransmitted only at the deadline. */
const REORDER_THRESHOLD = 3;
function intOption(name, v, dflt, min, max) {
    if (v === undefined)
        return dflt;
    if (!Number.isSafeInteger(v) || v < min || v > max) {
        throw invalidArgument(`${name} must be an integer within ${min}..=${max}, not ${String(v)}`);
    }
    return v;
}
/**
 * Acknowledged, retransmitted, de-duplicated messages over a session's datagrams. It
 * owns the session's datagrams (through its own {@link DatagramStream}).
 */
export class ReliabilityLayer {
    /** Take over the datagrams of `source`. `"InvalidState"` if they have an owner;
     * `"InvalidArgument"` for a bad configuration. */
    constructor(source, config = {}) {
        this.closed = false;
        /** id -> pending message, in id order (ids only grow). */
        this.pending = new Map();
        /** Pending messages waiting for a transmission go out oldest first as the budget
         * allows: those due again after a loss (ascending ids), then those never sent yet
         * (ids from `unsent` up to `nextId`; transmissions go oldest first, so every id a
         * never-sent message has is above every id a transmitted one has). */
        this.resend = [];
        /** The transmissions counted against the budget (not yet acknowledged nor taken for
         * lost): transmission number -> message id, in transmission order. */
        this.flight = new Map();
        this.nextTx = 0;
        this.budget = new TransmissionBudget();
        this.recv = new Fifo();
        this.reports = new Fifo();
        this.hook = null;
        this.room = new Signal();
        this.arrived = new Signal();
        this.reported = new Signal();
        this.timer = null;
        this.timerAt = Infinity;
        this.st = {
            messagesSent: 0,
            messagesDelivered: 0,
            messagesGivenUp: 0,
            retransmissions: 0,
            acksSent: 0,
            acksReceived: 0,
            duplicatesReceived: 0,
            messagesReceived: 0,
            receiveDrops: 0,
            invalidReceived: 0,
            reportsDropped: 0,
        };
        const ackTimeoutMs = config.ackTimeoutMs ?? 2000;
        if (typeof ackTimeoutMs !== "number" || !(ackTimeoutMs > 0) || !Number.isFinite(ackTimeoutMs)) {
            throw invalidArgument("ackTimeoutMs must be > 0");
        }
        this.config = {
            ackTimeoutMs,
            maxRetries: intOption("maxRetries", config.maxRetries, 5, 0, 0xffffffff),
            window: intOption("window", config.window, 256, 1, 2 ** 30),
            dedupMemory: intOption("dedupMemory", config.dedupMemory, 4096, 1, 2 ** 30),
            recvQueue: intOption("recvQueue", config.recvQueue, 1000, 1, Number.MAX_SAFE_INTEGER),
            reportQueue: intOption("reportQueue", config.reportQueue, 10000, 1, Number.MAX_SAFE_INTEGER),
            initialSequence: intOption("initialSequence", config.initialSequence, 0, 0, 0xffffffff),
        };
        this.nextId = this.config.initialSequence;
        this.unsent = this.nextId;
        this.dedup = new DedupWindow(this.config.dedupMemory);
        this.stream = new DatagramStream(source, {
            sendQueue: this.config.window * 2 + 256,
            recvQueue: 1024,
        });
        void this.runReceiver();
    }
    get isClosed() {
        return this.closed || this.stream.isClosed;
    }
    closedError() {
        const c = this.stream.closeInfo ?? { closeCode: 0, reason: "reliability layer closed", local: true };
        return new WtdError("Closed", `closed: code ${c.closeCode}${c.reason ? ` (${c.reason})` : ""}`, { close: c });
    }
    /** Largest `data` that `send` accepts now. */
    get maxMessageSize() {
        return Math.max(0, this.stream.maxDatagramSize - DATA_OVERHEAD);
    }
    /**
     * Send `data` reliably. Waits while the window is full (backpressure), then queues the
     * DATA frame and returns the message id (its wire sequence is the id mod 2^32). The
     * frame goes out at once when the transmission budget allows, else as soon as an ACK or
     * a loss makes room. Its outcome comes later as a {@link DeliveryReport}. Throws
     * `"TooLarge"`, `"Closed"`.
     */
    async send(data) {
        const bytes = typeof data === "string" ? new TextEncoder().encode(data) : toBytes(data);
        const max = this.stream.maxDatagramSize;
        if (bytes.length + DATA_OVERHEAD > max) {
            throw new WtdError("TooLarge", `message of ${bytes.length} bytes + ${DATA_OVERHEAD} exceeds ${max}`, {
                size: bytes.length + DATA_OVERHEAD,
                max,
            });
        }
        let id;
        for (;;) {
            if (this.isClosed) {
                this.close();
                throw this.closedError();
            }
            const oldest = this.pending.size > 0 ? this.pending.keys().next().value : this.nextId;
            if (this.nextId - oldest < this.config.window) {
                id = this.nextId++;
                break;
            }
            await this.room.wait();
        }
        this.pending.set(id, {
            frame: encodeData(id % 0x100000000, bytes),
            attempts: 0,
            sentAt: null,
            deadline: Infinity,
            tx: -1,
        });
        this.st.messagesSent++;
        // The frame goes out now if the budget allows, else when an ACK or a loss makes room.
        const frames = this.transmit();
        let failed = null;
        for (const [fid, f] of frames) {
            try {
                this.stream.send(f, DATA_PRIORITY, this.config.ackTimeoutMs);
            }
            catch (e) {
                // A full stream queue is like a lost datagram: the deadline brings the next attempt.
                if (fid === id && !(e instanceof WtdError && e.code === "QueueFull"))
                    failed = e;
            }
        }
        if (failed !== null) {
            if (this.forget(id) !== undefined)
                this.st.messagesSent--;
            this.room.notify();
            if (failed instanceof WtdError && failed.code === "Closed")
                throw this.closedError();
            throw failed;
        }
        return id;
    }
    /** The next received message, waiting up to `timeoutMs` (null: no limit).
     * `"Timeout"` if none came; `"Closed"` once closed and drained. */
    receive(timeoutMs = null) {
        return waitOn(this.arrived, timeoutMs, () => {
            const m = this.recv.shift();
            if (m !== undefined)
                return m;
            if (this.isClosed)
                throw this.closedError();
            return undefined;
        });
    }
    tryReceive() {
        return this.recv.shift();
    }
    /** Messages waiting for `receive`. */
    get receiveBufferSize() {
        return this.recv.length;
    }
    /** The next delivery report, waiting up to `timeoutMs` (null: no limit). */
    nextReport(timeoutMs = null) {
        return waitOn(this.reported, timeoutMs, () => {
            const r = this.reports.shift();
            if (r !== undefined)
                return r;
            if (this.isClosed)
                throw this.closedError();
            return undefined;
        });
    }
    tryNextReport() {
        return this.reports.shift();
    }
    /** Call `hook` with every report from now on, besides queueing it (null removes it). */
    onReport(hook) {
        this.hook = hook;
    }
    stats() {
        return { ...this.st, inFlight: this.pending.size };
    }
    /** Stop: the stream closes, unacknowledged messages are abandoned without a report,
     * waiting calls end with `"Closed"` (queued messages and reports can still be taken). */
    close() {
        if (this.closed)
            return;
        this.closed = true;
        this.pending.clear();
        this.resend = [];
        this.unsent = this.nextId;
        this.flight.clear();
        if (this.timer !== null)
            clearTimeout(this.timer);
        this.timer = null;
        this.stream.close();
        this.room.notify();
        this.arrived.notify();
        this.reported.notify();
    }
    report(rs) {
        if (rs.length === 0)
            return;
        for (const r of rs) {
            if (this.reports.length >= this.config.reportQueue) {
                this.reports.shift();
                this.st.reportsDropped++;
            }
            this.reports.push(r);
        }
        this.reported.notify();
        this.room.notify();
        const hook = this.hook;
        if (hook !== null) {
            for (const r of rs) {
                try {
                    hook(r);
                }
                catch (e) {
                    console.error("wtdatagram: delivery report hook threw", e);
                }
            }
        }
    }
    onData(sequence, data) {
        if (this.closed)
            return;
        // The queue check comes first: a refused message must not be remembered.
        if (this.recv.length >= this.config.recvQueue) {
            this.st.receiveDrops++;
            return;
        }
        if (this.dedup.check(sequence)) {
            this.recv.push(new Uint8Array(data));
            this.st.messagesReceived++;
            this.arrived.notify();
        }
        else {
            this.st.duplicatesReceived++;
        }
        this.st.acksSent++;
        if (!this.stream.trySend(encodeAck(sequence), ACK_PRIORITY, null))
            this.st.acksSent--;
    }
    onAck(sequence) {
        this.st.acksReceived++;
        const id = unwrapSequence(sequence, this.nextId);
        if (id === null || !this.pending.has(id))
            return;
        const busy = this.flight.size >= this.budget.limit || this.dueCount() > 0;
        const p = this.forget(id);
        if (busy)
            this.budget.grow(this.config.window);
        // Transmissions made well before this one and still unacknowledged were lost
        // (datagrams are rarely reordered): their places in the flight are free. Their
        // messages wait for their deadlines as usual.
        if (p.sentAt !== null) {
            const now = performance.now();
            for (const [tx, lostId] of this.flight) {
                if (tx + REORDER_THRESHOLD > p.tx)
                    break;
                this.flight.delete(tx);
                const lost = this.pending.get(lostId);
                if (lost !== undefined && lost.sentAt !== null)
                    this.budget.lost(lost.sentAt, lost.attempts > 1, now);
            }
        }
        this.st.messagesDelivered++;
        // The ACK freed a place in the flight: the next due message may go.
        this.handOver(this.transmit());
        this.report([{ id, outcome: "delivered", attempts: p.attempts }]);
    }
    /** Transmit due messages, oldest first, while the budget allows: [id, frame] pairs for
     * the stream. */
    transmit() {
        const out = [];
        if (this.closed)
            return out;
        const now = performance.now();
        while (this.flight.size < this.budget.limit) {
            let id;
            if (this.resend.length > 0)
                id = this.resend.shift();
            else if (this.unsent < this.nextId)
                id = this.unsent++;
            else
                break;
            const p = this.pending.get(id);
            if (p === undefined)
                continue;
            p.attempts++;
            if (p.attempts > 1)
                this.st.retransmissions++;
            p.sentAt = now;
            p.deadline = now + this.config.ackTimeoutMs;
            p.tx = this.nextTx++;
            this.flight.set(p.tx, id);
            out.push([id, p.frame]);
        }
        // New deadlines are never earlier than an armed timer's.
        if (out.length > 0 && this.timer === null)
            this.armTimer();
        return out;
    }
    /** Hand frames to the stream; a full queue (or any failure) is like a lost datagram:
     * the transmission's deadline brings the next attempt. */
    handOver(frames) {
        for (const [, f] of frames)
            this.stream.trySend(f, DATA_PRIORITY, this.config.ackTimeoutMs);
    }
    /** Messages waiting for a transmission. */
    dueCount() {
        return this.resend.length + (this.nextId - this.unsent);
    }
    /** Due again after a loss: into `resend`, in id order. */
    redue(id) {
        let lo = 0;
        let hi = this.resend.length;
        while (lo < hi) {
            const mid = (lo + hi) >>> 1;
            if (this.resend[mid] < id)
                lo = mid + 1;
            else
                hi = mid;
        }
        this.resend.splice(lo, 0, id);
    }
    /** Drop a pending message (no report): out of the flight or the due messages (a
     * never-sent one is skipped when its turn comes). */
    forget(id) {
        const p = this.pending.get(id);
        if (p === undefined)
            return undefined;
        this.pending.delete(id);
        if (p.sentAt !== null)
            this.flight.delete(p.tx);
        else {
            const i = this.resend.indexOf(id);
            if (i >= 0)
                this.resend.splice(i, 1);
        }
        return p;
    }
    async runReceiver() {
        for (;;) {
            let d;
            try {
                d = await this.stream.receive(null);
            }
            catch {
                break;
            }
            const f = decodeFrame(d);
            if (f === null)
                this.st.invalidReceived++;
            else if (f.kind === "data")
                this.onData(f.sequence, f.data);
            else
                this.onAck(f.sequence);
        }
        // The stream closed (session closed, or the layer was closed).
        this.close();
    }
    /** Keep one timer armed for the earliest deadline of a transmission in flight. */
    armTimer() {
        if (this.closed)
            return;
        let next = Infinity;
        for (const p of this.pending.values())
            if (p.sentAt !== null && p.deadline < next)
                next = p.deadline;
        if (next === Infinity) {
            if (this.timer !== null)
                clearTimeout(this.timer);
            this.timer = null;
            this.timerAt = Infinity;
            return;
        }
        if (this.timer !== null && this.timerAt <= next)
            return;
        if (this.timer !== null)
            clearTimeout(this.timer);
        this.timerAt = next;
        this.timer = setTimeout(() => {
            this.timer = null;
            this.timerAt = Infinity;
            this.onTimer();
        }, Math.max(0, next - performance.now()));
    }
    /** Transmissions whose deadline passed count as lost: their messages are due again, or
     * given up after `maxRetries` retransmissions. Then whatever the budget allows goes. */
    onTimer() {
        if (this.closed)
            return;
        const now = performance.now();
        const gaveUp = [];
        for (const [id, p] of this.pending) {
            if (p.sentAt === null || p.deadline > now)
                continue;
            if (this.flight.delete(p.tx))
                this.budget.lost(p.sentAt, p.attempts > 1, now);
            p.sentAt = null;
            p.deadline = Infinity;
            if (p.attempts > this.config.maxRetries) {
                this.pending.delete(id);
                gaveUp.push({ id, outcome: "gave-up", attempts: p.attempts });
            }
            else {
                this.redue(id);
            }
        }
        this.st.messagesGivenUp += gaveUp.length;
        this.handOver(this.transmit());
        this.report(gaveUp);
        this.armTimer();
    }
}
function toBytes(d) {
    if (d instanceof Uint8Array)
        return d;
    if (d instanceof ArrayBuffer)
        return new Uint8Array(d);
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}
