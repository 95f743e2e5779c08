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

import { type CloseInfo, invalidArgument, WtdError } from "./errors.js";
import * as json from "./json.js";
import * as msgpack from "./msgpack.js";
import { Fifo } from "./queue.js";
import { Signal, waitOn } from "./signal.js";
import { checkTtl, DatagramStream, type DatagramSource } from "./stream.js";
import type { Value } from "./value.js";

/** Size of the type id header. */
export const HEADER_SIZE = 2;

/** Turns values into bytes and back. */
export interface Serializer {
  /** A short name of the format ("json", "msgpack"). */
  readonly name: string;
  encode(value: unknown): Uint8Array;
  /** Decode a whole payload (trailing bytes are an error). */
  decode(data: Uint8Array): Value;
  /** Check an already-serialized payload and return the bytes to send. */
  normalize(data: Uint8Array): Uint8Array;
}

export interface SerializerOptions {
  /** Decode to `Map`s and {@link Float}s so values re-encode to the same bytes. */
  exact?: boolean;
}

/** pywebtransport's `JSONSerializer`: Python's `json.dumps(obj)` (separators `", "` and
 * `": "`), or with `compact: true` `separators=(",", ":")` (the C API's
 * `WTD_SERIALIZER_JSON_COMPACT`). */
export class JsonSerializer implements Serializer {
  readonly name: string;
  private readonly separators: json.Separators;
  private readonly exact: boolean;
  constructor(options: SerializerOptions & { compact?: boolean } = {}) {
    this.separators = options.compact === true ? "compact" : "python";
    this.name = options.compact === true ? "json-compact" : "json";
    this.exact = options.exact === true;
  }
  encode(value: unknown): Uint8Array {
    return json.encode(value, { separators: this.separators });
  }
  decode(data: Uint8Array): Value {
    return json.decode(data, { exact: this.exact });
  }
  /** JSON text is re-emitted in this serializer's form. */
  normalize(data: Uint8Array): Uint8Array {
    return this.encode(json.decode(data, { exact: true }));
  }
}

/** pywebtransport's `MsgPackSerializer`: msgpack-python's `packb(obj)`. */
export class MsgPackSerializer implements Serializer {
  readonly name = "msgpack";
  private readonly exact: boolean;
  constructor(options: SerializerOptions = {}) {
    this.exact = options.exact === true;
  }
  encode(value: unknown): Uint8Array {
    return msgpack.encode(value);
  }
  decode(data: Uint8Array): Value {
    return msgpack.decode(data, { exact: this.exact });
  }
  /** Checked, then sent unchanged. */
  normalize(data: Uint8Array): Uint8Array {
    msgpack.decode(data);
    return new Uint8Array(data);
  }
}

/** A class whose objects are sent under a type id. `fromValue`, if the class has it,
 * builds an object from a received value; otherwise the fields are assigned to a new
 * object of the class (without calling its constructor). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ObjectClass = (abstract new (...args: any[]) => object) & { fromValue?: (v: Value) => object };

/** A received object. */
export interface ReceivedObject {
  typeId: number;
  /** The decoded value. */
  value: Value;
  /** The registered class's object, or the value for an untyped registration. */
  object: unknown;
  /** The payload as received (without the type id). */
  payload: Uint8Array;
}

export type StructuredErrorKind = "unknown-type" | "too-short" | "decode-error";

/** A received datagram the transport could not turn into an object. */
export interface StructuredError {
  kind: StructuredErrorKind;
  /** null when the datagram was too short to have one. */
  typeId: number | null;
  message: string;
  /** The whole datagram. */
  data: Uint8Array;
}

/** Counters of a transport (the C API's `wtd_structured_stats`). */
export interface StructuredStats {
  sent: number;
  /** Datagrams that decoded into objects (including those `queueDrops` counts). */
  received: number;
  unknownType: number;
  tooShort: number;
  decodeErrors: number;
  /** Decoded objects dropped because the object queue was full. */
  queueDrops: number;
}

export interface StructuredOptions {
  /** Default: `new JsonSerializer()`. */
  serializer?: Serializer;
  /** Send, receive, object and error queues. Default 100 (pywebtransport's). */
  queueSize?: number;
}

export interface SendOptions {
  /** 0 (default), 1 or 2. */
  priority?: number;
  /** Time-to-live in ms (default: none). */
  ttlMs?: number | null;
}

/** The fields of an object, as a plain object in their order. */
function fieldsOf(obj: object): { [key: string]: unknown } {
  const out: { [key: string]: unknown } = {};
  for (const [k, v] of Object.entries(obj)) {
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function isId(id: unknown): id is number {
  return Number.isInteger(id) && (id as number) >= 0 && (id as number) <= 0xffff;
}

export class StructuredDatagramTransport {
  readonly stream: DatagramStream;
  readonly serializer: Serializer;
  readonly queueSize: number;
  private byId = new Map<number, ObjectClass | null>();
  private byClass = new Map<ObjectClass, number>();
  private objects = new Fifo<ReceivedObject>();
  private errors = new Fifo<StructuredError>();
  private errorHook: ((e: StructuredError) => void) | null = null;
  private closed = false;
  private readonly arrived = new Signal();
  private readonly errorArrived = new Signal();
  private readonly st: StructuredStats = { sent: 0, received: 0, unknownType: 0, tooShort: 0, decodeErrors: 0, queueDrops: 0 };

  /** Take over the datagrams of `source`; `"InvalidState"` if they have an owner. */
  constructor(source: DatagramSource, options: StructuredOptions = {}) {
    const q = options.queueSize ?? 100;
    if (!Number.isSafeInteger(q) || q < 1) throw invalidArgument("queueSize must be at least 1");
    this.queueSize = q;
    this.serializer = options.serializer ?? new JsonSerializer();
    this.stream = new DatagramStream(source, { sendQueue: q, recvQueue: q });
    void this.runReceiver();
  }

  /** Register `id` for objects of `cls`, or (without a class) for plain values.
   * `"InvalidArgument"` if the id or the class is already registered. */
  register(id: number, cls?: ObjectClass): void {
    if (!isId(id)) throw invalidArgument(`type id must be an integer within 0..=65535, not ${String(id)}`);
    if (this.byId.has(id)) throw invalidArgument(`type id ${id} is already registered`);
    if (cls !== undefined) {
      if (typeof cls !== "function") throw invalidArgument("cls must be a class");
      const other = this.byClass.get(cls);
      if (other !== undefined) throw invalidArgument(`class ${cls.name} is already registered with id ${other}`);
      this.byClass.set(cls, id);
    }
    this.byId.set(id, cls ?? null);
  }

  isRegistered(id: number): boolean {
    return this.byId.has(id);
  }

  /** The id the class of `obj` is registered under. */
  idOf(obj: object): number | undefined {
    let proto = Object.getPrototypeOf(obj);
    while (proto !== null && proto !== Object.prototype) {
      const id = this.byClass.get(proto.constructor as ObjectClass);
      if (id !== undefined) return id;
      proto = Object.getPrototypeOf(proto);
    }
    return undefined;
  }

  /** Send an object of a registered class. `"InvalidArgument"` ("serialization error:
   * type not registered") for any other. */
  send(obj: object, options: SendOptions = {}): void {
    const id = obj !== null && typeof obj === "object" ? this.idOf(obj) : undefined;
    if (id === undefined) {
      const name = obj?.constructor?.name ?? typeof obj;
      throw invalidArgument(`serialization error: type not registered: ${name}`);
    }
    this.sendFrame(id, this.encode(fieldsOf(obj)), options);
  }

  /** Send a value under a registered id (typed or untyped). */
  sendValue(typeId: number, value: unknown, options: SendOptions = {}): void {
    this.checkRegistered(typeId);
    this.sendFrame(typeId, this.encode(value), options);
  }

  /** Send an already-serialized payload under a registered id; checked (and JSON
   * re-emitted in the serializer's form). `"InvalidArgument"` if it does not decode. */
  sendPayload(typeId: number, payload: Uint8Array, options: SendOptions = {}): void {
    this.checkRegistered(typeId);
    let p: Uint8Array;
    try {
      p = this.serializer.normalize(payload);
    } catch (e) {
      throw invalidArgument(`payload does not decode as ${this.serializer.name}: ${(e as Error).message}`);
    }
    this.sendFrame(typeId, p, options);
  }

  private encode(value: unknown): Uint8Array {
    try {
      return this.serializer.encode(value);
    } catch (e) {
      throw invalidArgument(`serialization error: ${(e as Error).message}`);
    }
  }

  private checkRegistered(typeId: number): void {
    if (!this.byId.has(typeId)) throw invalidArgument(`serialization error: type not registered: id ${typeId}`);
  }

  private sendFrame(typeId: number, payload: Uint8Array, options: SendOptions): void {
    if (this.isClosed) throw this.closedError();
    const data = new Uint8Array(HEADER_SIZE + payload.length);
    data[0] = typeId >> 8;
    data[1] = typeId & 0xff;
    data.set(payload, HEADER_SIZE);
    this.stream.send(data, options.priority ?? 0, checkTtl(options.ttlMs));
    this.st.sent++;
  }

  /** The next object, waiting up to `timeoutMs` (null: no limit). `"Timeout"` if none
   * came; `"Closed"` once closed and drained. */
  receive(timeoutMs: number | null = null): Promise<ReceivedObject> {
    return waitOn(this.arrived, timeoutMs, () => {
      const o = this.objects.shift();
      if (o !== undefined) return o;
      if (this.isClosed) throw this.closedError();
      return undefined;
    });
  }

  tryReceive(): ReceivedObject | undefined {
    return this.objects.shift();
  }

  /** Objects waiting to be received. */
  get pendingObjects(): number {
    return this.objects.length;
  }

  /** The next receive error, waiting up to `timeoutMs`. */
  nextError(timeoutMs: number | null = null): Promise<StructuredError> {
    return waitOn(this.errorArrived, timeoutMs, () => {
      const e = this.errors.shift();
      if (e !== undefined) return e;
      if (this.isClosed) throw this.closedError();
      return undefined;
    });
  }

  tryNextError(): StructuredError | undefined {
    return this.errors.shift();
  }

  /** Call `hook` for every receive error from now on (null removes it). */
  onError(hook: ((e: StructuredError) => void) | null): void {
    this.errorHook = hook;
  }

  stats(): StructuredStats {
    return { ...this.st };
  }

  get isClosed(): boolean {
    return this.closed || this.stream.isClosed;
  }

  /** Stop: queued objects stay receivable, the stream closes (the session stays open). */
  close(): void {
    this.closed = true;
    this.stream.close();
    this.arrived.notify();
    this.errorArrived.notify();
  }

  private closedError(): WtdError {
    const c: CloseInfo = this.stream.closeInfo ?? {
      closeCode: 0,
      reason: "structured datagram transport closed",
      local: true,
    };
    return new WtdError("Closed", `closed: code ${c.closeCode}${c.reason ? ` (${c.reason})` : ""}`, { close: c });
  }

  /** Decode one datagram (what the receiver does with each). */
  decode(data: Uint8Array): ReceivedObject | StructuredError {
    const fail = (kind: StructuredErrorKind, typeId: number | null, message: string): StructuredError => ({
      kind,
      typeId,
      message,
      data,
    });
    if (data.length < HEADER_SIZE) {
      return fail("too-short", null, `datagram of ${data.length} bytes is shorter than the ${HEADER_SIZE}-byte header`);
    }
    const typeId = (data[0] << 8) | data[1];
    if (!this.byId.has(typeId)) return fail("unknown-type", typeId, `unknown type id ${typeId}`);
    const cls = this.byId.get(typeId) ?? null;
    const payload = data.subarray(HEADER_SIZE);
    try {
      const value = this.serializer.decode(payload);
      let object: unknown = value;
      if (cls !== null) {
        if (typeof cls.fromValue === "function") object = cls.fromValue(value);
        else {
          if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
            throw new TypeError(`expected a map of ${cls.name}'s fields`);
          }
          const fields = value instanceof Map ? Object.fromEntries(value) : value;
          object = Object.assign(Object.create(cls.prototype), fields);
        }
      }
      return { typeId, value, object, payload };
    } catch (e) {
      return fail("decode-error", typeId, `type id ${typeId}: ${(e as Error).message}`);
    }
  }

  private handle(data: Uint8Array): void {
    const r = this.decode(data);
    if ("kind" in r) {
      if (r.kind === "unknown-type") this.st.unknownType++;
      else if (r.kind === "too-short") this.st.tooShort++;
      else this.st.decodeErrors++;
      if (this.errors.length >= this.queueSize) this.errors.shift();
      this.errors.push(r);
      this.errorArrived.notify();
      const hook = this.errorHook;
      if (hook !== null) {
        try {
          hook(r);
        } catch (e) {
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

  private async runReceiver(): Promise<void> {
    for (;;) {
      let d: Uint8Array;
      try {
        d = await this.stream.receive(null);
      } catch {
        break;
      }
      this.handle(d);
    }
    this.closed = true;
    this.arrived.notify();
    this.errorArrived.notify();
  }
}
