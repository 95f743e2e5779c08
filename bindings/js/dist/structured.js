/**
 * Structured objects over datagrams (the C API's `wtd_structured`), wire-compatible
 * with pywebtransport's `StructuredDatagramTransport` and the Rust and Go sides: every
 * datagram is `[u16 big-endian type id][serialized object]`.
 *
 * A type id is registered with a class (objects of that class are sent as a map of their
 * own enumerable fields, like a Python dataclass, and come back as instances of it) or
 * without one (values are sent and received as they are). Serializers:
 * {@link JsonSerializer} (Python's `json.dumps(obj)`, or `separators=(",", ":")` with
 * `{ compact: true }`) and {@link MsgPackSerializer} (msgpack-python's `packb`).
 *
 * Received datagrams are decoded at once; objects wait in a bounded queue (`queueSize`;
 * when full the arriving object is dropped and counted). A datagram shorter than the
 * header, with an unregistered type id or a payload that does not decode is counted,
 * queued as a {@link StructuredError} for `nextError` and passed to the `onError` hook.
 */
import { invalidArgument, WtdError } from "./errors.js";
import * as json from "./json.js";
import * as msgpack from "./msgpack.js";
import { Fifo } from "./queue.js";
import { Signal, waitOn } from "./signal.js";
import { checkTtl, DatagramStream } from "./stream.js";
/** Size of the type id header. */
export const HEADER_SIZE = 2;
/** pywebtransport's `JSONSerializer`: Python's `json.dumps(obj)` (separators `", "` and
 * `": "`), or with `compact: true` `separators=(",", ":")` (the C API's
 * `WTD_SERIALIZER_JSON_COMPACT`). */
export class JsonSerializer {
    constructor(options = {}) {
        this.separators = options.compact === true ? "compact" : "python";
        this.name = options.compact === true ? "json-compact" : "json";
        this.exact = options.exact === true;
    }
    encode(value) {
        return json.encode(value, { separators: this.separators });
    }
    decode(data) {
        return json.decode(data, { exact: this.exact });
    }
    /** JSON text is re-emitted in this serializer's form. */
    normalize(data) {
        return this.encode(json.decode(data, { exact: true }));
    }
}
/** pywebtransport's `MsgPackSerializer`: msgpack-python's `packb(obj)`. */
export class MsgPackSerializer {
    constructor(options = {}) {
        this.name = "msgpack";
        this.exact = options.exact === true;
    }
    encode(value) {
        return msgpack.encode(value);
    }
    decode(data) {
        return msgpack.decode(data, { exact: this.exact });
    }
    /** Checked, then sent unchanged. */
    normalize(data) {
        msgpack.decode(data);
        return new Uint8Array(data);
    }
}
/** The fields of an object, as a plain object in their order. */
function fieldsOf(obj) {
    const out = {};
    for (const [k, v] of Object.entries(obj)) {
        Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
    return out;
}
function isId(id) {
    return Number.isInteger(id) && id >= 0 && id <= 0xffff;
}
export class StructuredDatagramTransport {
    /** Take over the datagrams of `source`; `"InvalidState"` if they have an owner. */
    constructor(source, options = {}) {
        this.byId = new Map();
        this.byClass = new Map();
        this.objects = new Fifo();
        this.errors = new Fifo();
        this.errorHook = null;
        this.closed = false;
        this.arrived = new Signal();
        this.errorArrived = new Signal();
        this.st = { sent: 0, received: 0, unknownType: 0, tooShort: 0, decodeErrors: 0, queueDrops: 0 };
        const q = options.queueSize ?? 100;
        if (!Number.isSafeInteger(q) || q < 1)
            throw invalidArgument("queueSize must be at least 1");
        this.queueSize = q;
        this.serializer = options.serializer ?? new JsonSerializer();
        this.stream = new DatagramStream(source, { sendQueue: q, recvQueue: q });
        void this.runReceiver();
    }
    /** Register `id` for objects of `cls`, or (without a class) for plain values.
     * `"InvalidArgument"` if the id or the class is already registered. */
    register(id, cls) {
        if (!isId(id))
            throw invalidArgument(`type id must be an integer within 0..=65535, not ${String(id)}`);
        if (this.byId.has(id))
            throw invalidArgument(`type id ${id} is already registered`);
        if (cls !== undefined) {
            if (typeof cls !== "function")
                throw invalidArgument("cls must be a class");
            const other = this.byClass.get(cls);
            if (other !== undefined)
                throw invalidArgument(`class ${cls.name} is already registered with id ${other}`);
            this.byClass.set(cls, id);
        }
        this.byId.set(id, cls ?? null);
    }
    isRegistered(id) {
        return this.byId.has(id);
    }
    /** The id the class of `obj` is registered under. */
    idOf(obj) {
        let proto = Object.getPrototypeOf(obj);
        while (proto !== null && proto !== Object.prototype) {
            const id = this.byClass.get(proto.constructor);
            if (id !== undefined)
                return id;
            proto = Object.getPrototypeOf(proto);
        }
        return undefined;
    }
    /** Send an object of a registered class. `"InvalidArgument"` ("serialization error:
     * type not registered") for any other. */
    send(obj, options = {}) {
        const id = obj !== null && typeof obj === "object" ? this.idOf(obj) : undefined;
        if (id === undefined) {
            const name = obj?.constructor?.name ?? typeof obj;
            throw invalidArgument(`serialization error: type not registered: ${name}`);
        }
        this.sendFrame(id, this.encode(fieldsOf(obj)), options);
    }
    /** Send a value under a registered id (typed or untyped). */
    sendValue(typeId, value, options = {}) {
        this.checkRegistered(typeId);
        this.sendFrame(typeId, this.encode(value), options);
    }
    /** Send an already-serialized payload under a registered id; checked (and JSON
     * re-emitted in the serializer's form). `"InvalidArgument"` if it does not decode. */
    sendPayload(typeId, payload, options = {}) {
        this.checkRegistered(typeId);
        let p;
        try {
            p = this.serializer.normalize(payload);
        }
        catch (e) {
            throw invalidArgument(`payload does not decode as ${this.serializer.name}: ${e.message}`);
        }
        this.sendFrame(typeId, p, options);
    }
    encode(value) {
        try {
            return this.serializer.encode(value);
        }
        catch (e) {
            throw invalidArgument(`serialization error: ${e.message}`);
        }
    }
    checkRegistered(typeId) {
        if (!this.byId.has(typeId))
            throw invalidArgument(`serialization error: type not registered: id ${typeId}`);
    }
    sendFrame(typeId, payload, options) {
        if (this.isClosed)
            throw this.closedError();
        const data = new Uint8Array(HEADER_SIZE + payload.length);
        data[0] = typeId >> 8;
        data[1] = typeId & 0xff;
        data.set(payload, HEADER_SIZE);
        this.stream.send(data, options.priority ?? 0, checkTtl(options.ttlMs));
        this.st.sent++;
    }
    /** The next object, waiting up to `timeoutMs` (null: no limit). `"Timeout"` if none
     * came; `"Closed"` once closed and drained. */
    receive(timeoutMs = null) {
        return waitOn(this.arrived, timeoutMs, () => {
            const o = this.objects.shift();
            if (o !== undefined)
                return o;
            if (this.isClosed)
                throw this.closedError();
            return undefined;
        });
    }
    tryReceive() {
        return this.objects.shift();
    }
    /** Objects waiting to be received. */
    get pendingObjects() {
        return this.objects.length;
    }
    /** The next receive error, waiting up to `timeoutMs`. */
    nextError(timeoutMs = null) {
        return waitOn(this.errorArrived, timeoutMs, () => {
            const e = this.errors.shift();
            if (e !== undefined)
                return e;
            if (this.isClosed)
                throw this.closedError();
            return undefined;
        });
    }
    tryNextError() {
        return this.errors.shift();
    }
    /** Call `hook` for every receive error from now on (null removes it). */
    onError(hook) {
        this.errorHook = hook;
    }
    stats() {
        return { ...this.st };
    }
    get isClosed() {
        return this.closed || this.stream.isClosed;
    }
    /** Stop: queued objects stay receivable, the stream closes (the session stays open). */
    close() {
        this.closed = true;
        this.stream.close();
        this.arrived.notify();
        this.errorArrived.notify();
    }
    closedError() {
        const c = this.stream.closeInfo ?? {
            closeCode: 0,
            reason: "structured datagram transport closed",
            local: true,
        };
        return new WtdError("Closed", `closed: code ${c.closeCode}${c.reason ? ` (${c.reason})` : ""}`, { close: c });
    }
    /** Decode one datagram (what the receiver does with each). */
    decode(data) {
        const fail = (kind, typeId, message) => ({
            kind,
            typeId,
            message,
            data,
        });
        if (data.length < HEADER_SIZE) {
            return fail("too-short", null, `datagram of ${data.length} bytes is shorter than the ${HEADER_SIZE}-byte header`);
        }
        const typeId = (data[0] << 8) | data[1];
        if (!this.byId.has(typeId))
            return fail("unknown-type", typeId, `unknown type id ${typeId}`);
        const cls = this.byId.get(typeId) ?? null;
        const payload = data.subarray(HEADER_SIZE);
        try {
            const value = this.serializer.decode(payload);
            let object = value;
            if (cls !== null) {
                if (typeof cls.fromValue === "function")
                    object = cls.fromValue(value);
                else {
                    if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
                        throw new TypeError(`expected a map of ${cls.name}'s fields`);
                    }
                    const fields = value instanceof Map ? Object.fromEntries(value) : value;
                    object = Object.assign(Object.create(cls.prototype), fields);
                }
            }
            return { typeId, value, object, payload };
        }
        catch (e) {
            return fail("decode-error", typeId, `type id ${typeId}: ${e.message}`);
        }
    }
    handle(data) {
        const r = this.decode(data);
        if ("kind" in r) {
            if (r.kind === "unknown-type")
                this.st.unknownType++;
            else if (r.kind === "too-short")
                this.st.tooShort++;
            else
                this.st.decodeErrors++;
            if (this.errors.length >= this.queueSize)
                this.errors.shift();
            this.errors.push(r);
            this.errorArrived.notify();
            const hook = this.errorHook;
            if (hook !== null) {
                try {
                    hook(r);
                }
                catch (e) {
                    console.error("wtdatagram: structured error hook threw", e);
                }
            }
            return;
        }
        this.st.received++;
        if (this.objects.length >= this.queueSize) {
            this.st.queueDrops++;
            return;
        }
        this.objects.push(r);
        this.arrived.notify();
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
            this.handle(d);
        }
        this.closed = true;
        this.arrived.notify();
        this.errorArrived.notify();
    }
}
