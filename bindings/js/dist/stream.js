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
import { invalidArgument, WtdError } from "./errors.js";
import * as message from "./message.js";
import { PRIORITIES, RecvQueue, SendQueue } from "./queue.js";
import { Signal, sleep, waitOn } from "./signal.js";
function isSession(s) {
    return s.datagrams !== undefined;
}
function checkSize(name, v, dflt) {
    if (v === undefined)
        return dflt;
    if (!Number.isSafeInteger(v) || v < 1)
        throw invalidArgument(`${name} must be an integer >= 1, not ${String(v)}`);
    return v;
}
/** Milliseconds of a time-to-live: null or undefined for none, else a number >= 0. */
export function checkTtl(ttlMs) {
    if (ttlMs === null || ttlMs === undefined)
        return null;
    if (typeof ttlMs !== "number" || !(ttlMs >= 0)) {
        throw invalidArgument(`ttl must be a number of milliseconds >= 0 or null, not ${String(ttlMs)}`);
    }
    return ttlMs;
}
function checkPriority(priority) {
    if (!Number.isInteger(priority) || priority < 0 || priority >= PRIORITIES) {
        throw invalidArgument(`priority ${String(priority)} is not 0, 1 or 2`);
    }
}
function bytesOf(data) {
    if (typeof data === "string")
        return new TextEncoder().encode(data);
    if (data instanceof Uint8Array)
        return new Uint8Array(data); // a copy (Buffer.slice would not copy)
    if (data instanceof ArrayBuffer)
        return new Uint8Array(data.slice(0));
    if (ArrayBuffer.isView(data))
        return new Uint8Array(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    throw invalidArgument("data must be a Uint8Array, ArrayBuffer, ArrayBufferView or string");
}
export class DatagramStream {
    /** Take over the datagrams of `source` (a WebTransport, or its `datagrams`).
     * `"InvalidState"` if they already have an owner. */
    constructor(source, config = {}) {
        this.closedInfo = null;
        /** Set when the datagrams can no longer be read (session gone or stream closed). */
        this.readEnded = false;
        this.sendReady = new Signal();
        this.room = new Signal();
        this.arrived = new Signal();
        this.nextSeq = 0;
        this.sessionClosedPromise = null;
        this.inFlight = 0;
        this.heartbeatTimer = null;
        this.s = {
            datagramsSent: 0,
            bytesSent: 0,
            datagramsReceived: 0,
            bytesReceived: 0,
            sendFailures: 0,
            sendDropsEvicted: 0,
            sendDropsExpired: 0,
            sendDropsTooLarge: 0,
            sendDropsQueueFull: 0,
            receiveDrops: 0,
            receiveErrors: 0,
            minDatagramSize: 0,
            maxDatagramSize: 0,
            maxSendTimeMs: 0,
            maxReceiveTimeMs: 0,
        };
        this.sizeTotal = 0;
        this.sizeCount = 0;
        this.sendTimeTotal = 0;
        this.receiveTimeTotal = 0;
        this.receiveTimeCount = 0;
        this.released = false;
        this.config = {
            sendQueue: checkSize("sendQueue", config.sendQueue, 100),
            recvQueue: checkSize("recvQueue", config.recvQueue, 100),
            recvOverflow: config.recvOverflow ?? "drop-newest",
        };
        if (this.config.recvOverflow !== "drop-newest" && this.config.recvOverflow !== "drop-oldest") {
            throw invalidArgument(`recvOverflow must be "drop-newest" or "drop-oldest"`);
        }
        this.dg = isSession(source) ? source.datagrams : source;
        if (this.dg.readable.locked) {
            throw new WtdError("InvalidState", "the session's datagrams already have an owner (a stream or layer): use one session per layer");
        }
        this.reader = this.dg.readable.getReader();
        try {
            const writable = typeof this.dg.createWritable === "function" ? this.dg.createWritable() : this.dg.writable;
            if (writable === undefined)
                throw new TypeError("no writable side");
            this.writer = writable.getWriter();
        }
        catch (e) {
            this.reader.releaseLock();
            throw new WtdError("InvalidState", `cannot write the session's datagrams: ${e.message}`);
        }
        this.sendQ = new SendQueue(this.config.sendQueue);
        this.recvQ = new RecvQueue(this.config.recvQueue, this.config.recvOverflow);
        if (isSession(source) && source.closed !== undefined) {
            this.sessionClosedPromise = source.closed.then((info) => this.sessionClosed({ closeCode: info?.closeCode ?? 0, reason: info?.reason ?? "", local: false }), (e) => this.sessionClosed({ closeCode: 0, reason: `session failed: ${String(e)}`, local: false }));
        }
        void this.runReceiver();
        void this.runSender();
    }
    /** The session's current maximum datagram size (it may change). */
    get maxDatagramSize() {
        return this.dg.maxDatagramSize;
    }
    /** Whether the stream (or its session) is closed. */
    get isClosed() {
        return this.closedInfo !== null;
    }
    /** How it closed, once closed. */
    get closeInfo() {
        return this.closedInfo;
    }
    closedError() {
        const c = this.closedInfo ?? { closeCode: 0, reason: "datagram stream closed", local: true };
        return new WtdError("Closed", `closed: code ${c.closeCode}${c.reason ? ` (${c.reason})` : ""}`, { close: c });
    }
    sessionClosed(info) {
        if (this.closedInfo !== null)
            return;
        this.closedInfo = info;
        this.shutdown();
    }
    /** Stop the stream: queued datagrams are discarded, waiting calls end with
     * `"Closed"` once drained, and the datagrams are released (the session stays open). */
    close() {
        if (this.closedInfo === null)
            this.closedInfo = { closeCode: 0, reason: "datagram stream closed", local: true };
        this.shutdown();
    }
    shutdown() {
        this.sendQ.clear();
        this.stopHeartbeat();
        if (!this.released) {
            this.released = true;
            // A pending read ends with an error, which the receiver takes as the end.
            try {
                this.reader.releaseLock();
            }
            catch {
                /* already released */
            }
            try {
                this.writer.releaseLock();
            }
            catch {
                /* already released */
            }
        }
        this.sendReady.notify();
        this.room.notify();
        this.arrived.notify();
    }
    async runReceiver() {
        try {
            for (;;) {
                const { value, done } = await this.reader.read();
                if (done || value === undefined)
                    break;
                if (this.closedInfo !== null && this.closedInfo.local)
                    break;
                const len = value.byteLength;
                const dropped = this.recvQ.push({ data: value, at: performance.now(), wall: Date.now(), seq: this.nextSeq++ });
                this.s.datagramsReceived++;
                this.s.bytesReceived += len;
                this.countSize(len);
                if (dropped !== undefined)
                    this.s.receiveDrops++;
                this.arrived.notify();
            }
        }
        catch {
            /* the session failed or the lock was released */
        }
        this.readEnded = true;
        // The datagrams end with the session: wait (briefly) for its close code and reason.
        if (this.closedInfo === null && this.sessionClosedPromise !== null) {
            await Promise.race([this.sessionClosedPromise, sleep(1000)]);
        }
        try {
            this.reader.releaseLock();
        }
        catch {
            /* already released */
        }
        // The datagrams end with the session: receivers see Closed once the queue is empty.
        if (this.closedInfo === null)
            this.closedInfo = { closeCode: 0, reason: "session ended", local: false };
        this.shutdown();
    }
    countSize(n) {
        this.s.minDatagramSize = this.sizeCount === 0 ? n : Math.min(this.s.minDatagramSize, n);
        this.s.maxDatagramSize = Math.max(this.s.maxDatagramSize, n);
        this.sizeTotal += n;
        this.sizeCount++;
    }
    async runSender() {
        for (;;) {
            if (this.closedInfo !== null)
                return;
            let expired = 0;
            const p = this.sendQ.pop(performance.now(), () => expired++);
            this.s.sendDropsExpired += expired;
            if (p === null) {
                if (expired > 0)
                    this.room.notify();
                await this.sendReady.wait();
                continue;
            }
            this.inFlight = 1;
            this.room.notify();
            try {
                // The time-to-live also bounds a wait for room in the browser's buffer.
                let ready = true;
                if (p.deadline !== null) {
                    const left = p.deadline - performance.now();
                    let timer;
                    ready = await Promise.race([
                        this.writer.ready.then(() => true),
                        new Promise((resolve) => {
                            timer = setTimeout(() => resolve(false), Math.max(0, left));
                        }),
                    ]);
                    clearTimeout(timer);
                }
                else {
                    await this.writer.ready;
                }
                if (!ready) {
                    this.s.sendDropsExpired++;
                }
                else if (p.item.byteLength > this.dg.maxDatagramSize) {
                    // The limit shrank while it waited; browsers would drop it silently.
                    this.s.sendDropsTooLarge++;
                }
                else {
                    await this.writer.write(p.item);
                    const t = performance.now() - p.enqueued;
                    this.s.datagramsSent++;
                    this.s.bytesSent += p.item.byteLength;
                    this.sendTimeTotal += t;
                    this.s.maxSendTimeMs = Math.max(this.s.maxSendTimeMs, t);
                    this.countSize(p.item.byteLength);
                }
            }
            catch {
                this.inFlight = 0;
                // A write abandoned by close() is not a failure of the session.
                const info = this.closedInfo;
                if (info !== null && info.local)
                    return;
                this.s.sendFailures++;
                if (this.closedInfo === null) {
                    this.closedInfo = { closeCode: 0, reason: "session ended", local: false };
                }
                this.inFlight = 0;
                this.shutdown();
                return;
            }
            this.inFlight = 0;
        }
    }
    enqueue(data, priority, ttlMs, fullIsDrop) {
        checkPriority(priority);
        if (this.closedInfo !== null)
            throw this.closedError();
        const max = this.dg.maxDatagramSize;
        if (data.byteLength > max) {
            this.s.sendDropsTooLarge++;
            throw new WtdError("TooLarge", `datagram of ${data.byteLength} bytes exceeds the maximum of ${max}`, {
                size: data.byteLength,
                max,
            });
        }
        const r = this.sendQ.push(data, priority, ttlMs, performance.now());
        if (r === null) {
            if (fullIsDrop) {
                this.s.sendDropsQueueFull++;
                throw new WtdError("QueueFull", "the send queue is full");
            }
            return false;
        }
        if (r.evicted !== null)
            this.s.sendDropsEvicted++;
        this.sendReady.notify();
        return true;
    }
    /** Queue a datagram with `priority` (0 low, 1 normal-high, 2 highest) and an optional
     * time-to-live in ms. Throws `"QueueFull"` (after the eviction rule), `"TooLarge"`,
     * `"Closed"`, `"InvalidArgument"`. */
    send(data, priority = 0, ttlMs = null) {
        this.enqueue(bytesOf(data), priority, checkTtl(ttlMs), true);
    }
    /** Like {@link send} but returns whether it was queued instead of throwing. */
    trySend(data, priority = 0, ttlMs = null) {
        try {
            this.send(data, priority, ttlMs);
            return true;
        }
        catch {
            return false;
        }
    }
    /** Like {@link send}, but waits for room in the send queue instead of `"QueueFull"`. */
    async sendWait(data, priority = 0, ttlMs = null) {
        const d = bytesOf(data);
        const ttl = checkTtl(ttlMs);
        for (;;) {
            const room = this.room.wait();
            if (this.enqueue(d, priority, ttl, false))
                return;
            await room;
        }
    }
    /** Send `value` as pywebtransport's `send_json` does (compact Python JSON). */
    sendJson(value, priority = 0, ttlMs = null) {
        this.enqueue(message.encodeJson(value), priority, checkTtl(ttlMs), true);
    }
    /** Send `[u8 type_len][type][payload]` (pywebtransport's structured layout). */
    sendStructured(type, payload, priority = 0, ttlMs = null) {
        this.enqueue(message.encodeStructured(type, bytesOf(payload)), priority, checkTtl(ttlMs), true);
    }
    take() {
        const a = this.recvQ.pop();
        if (a === undefined)
            return undefined;
        const age = performance.now() - a.at;
        this.receiveTimeTotal += age;
        this.receiveTimeCount++;
        this.s.maxReceiveTimeMs = Math.max(this.s.maxReceiveTimeMs, age);
        return { data: a.data, receivedAt: a.wall, sequence: a.seq, ageMs: age };
    }
    /** A datagram if one is queued, without waiting. */
    tryReceive() {
        return this.take()?.data;
    }
    /** The next datagram with its metadata, waiting up to `timeoutMs` (null: no limit).
     * `"Timeout"` if none came; `"Closed"` once closed and drained. */
    receiveWithMetadata(timeoutMs = null) {
        return waitOn(this.arrived, timeoutMs, () => {
            const m = this.take();
            if (m !== undefined)
                return m;
            if (this.closedInfo !== null)
                throw this.closedError();
            return undefined;
        });
    }
    async receive(timeoutMs = null) {
        return (await this.receiveWithMetadata(timeoutMs)).data;
    }
    /** Wait (up to `timeoutMs`) for one datagram, then take up to `maxCount` in all. */
    async receiveMultiple(maxCount, timeoutMs = null) {
        if (maxCount <= 0)
            return [];
        const out = [await this.receive(timeoutMs)];
        while (out.length < maxCount) {
            const d = this.tryReceive();
            if (d === undefined)
                break;
            out.push(d);
        }
        return out;
    }
    /** The next datagram read as JSON (as `json.loads` reads it); an undecodable one is
     * counted in `receiveErrors` and thrown as `"InvalidData"` (the stream goes on). */
    async receiveJson(timeoutMs = null, options = {}) {
        const d = await this.receive(timeoutMs);
        try {
            return message.decodeJson(d, options);
        }
        catch (e) {
            this.s.receiveErrors++;
            throw e;
        }
    }
    /** The next datagram as a structured message; malformed ones as for receiveJson. */
    async receiveStructured(timeoutMs = null) {
        const d = await this.receive(timeoutMs);
        try {
            return message.decodeStructured(d);
        }
        catch (e) {
            this.s.receiveErrors++;
            throw e;
        }
    }
    /** Count a received datagram the application could not decode. */
    countReceiveError() {
        this.s.receiveErrors++;
    }
    /** Send a heartbeat (`HEARTBEAT:<unix seconds>`) now and every `intervalMs`, at
     * priority 0 with a time-to-live of one interval. Replaces a running heartbeat. */
    startHeartbeat(intervalMs) {
        if (typeof intervalMs !== "number" || !(intervalMs > 0) || !Number.isFinite(intervalMs)) {
            throw invalidArgument("heartbeat interval must be > 0");
        }
        if (this.closedInfo !== null)
            throw this.closedError();
        this.stopHeartbeat();
        const beat = () => {
            try {
                this.enqueue(message.createHeartbeat(), 0, intervalMs, true);
            }
            catch (e) {
                if (e instanceof WtdError && e.code === "Closed")
                    this.stopHeartbeat();
            }
        };
        this.heartbeatTimer = setInterval(beat, intervalMs);
        beat();
    }
    stopHeartbeat() {
        if (this.heartbeatTimer !== null) {
            clearInterval(this.heartbeatTimer);
            this.heartbeatTimer = null;
        }
    }
    /** Whether a heartbeat is running. */
    get heartbeatRunning() {
        return this.heartbeatTimer !== null;
    }
    stats() {
        const s = this.s;
        const drops = s.sendDropsEvicted + s.sendDropsExpired + s.sendDropsTooLarge + s.sendDropsQueueFull;
        const attempts = s.datagramsSent + s.sendFailures + drops;
        return {
            ...s,
            avgDatagramSize: this.sizeCount > 0 ? this.sizeTotal / this.sizeCount : 0,
            avgSendTimeMs: s.datagramsSent > 0 ? this.sendTimeTotal / s.datagramsSent : 0,
            avgReceiveTimeMs: this.receiveTimeCount > 0 ? this.receiveTimeTotal / this.receiveTimeCount : 0,
            sendSuccessRate: attempts === 0 ? 1 : s.datagramsSent / attempts,
            receiveSuccessRate: s.datagramsReceived === 0
                ? 1
                : Math.max(0, s.datagramsReceived - s.receiveDrops - s.receiveErrors) / s.datagramsReceived,
        };
    }
    queueStats() {
        return {
            send: this.sendQ.classLengths(),
            sendTotal: this.sendQ.length,
            sendLimit: this.sendQ.limit,
            receive: this.recvQ.length,
            receiveLimit: this.recvQ.limit,
        };
    }
    /** Datagrams accepted by `send` not yet on the wire nor failed. */
    get pendingSends() {
        return this.sendQ.length + this.inFlight;
    }
    /** Datagrams waiting to be received. */
    get receiveBufferSize() {
        return this.recvQ.length;
    }
    /** Whether the session's datagrams can no longer be read. */
    get receiveEnded() {
        return this.readEnded;
    }
}
