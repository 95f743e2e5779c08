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
import { DatagramStream, type DatagramSource } from "./stream.js";
import type { Value } from "./value.js";
/** Size of the type id header. */
export declare const HEADER_SIZE = 2;
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
export declare class JsonSerializer implements Serializer {
    readonly name: string;
    private readonly separators;
    private readonly exact;
    constructor(options?: SerializerOptions & {
        compact?: boolean;
    });
    encode(value: unknown): Uint8Array;
    decode(data: Uint8Array): Value;
    /** JSON text is re-emitted in this serializer's form. */
    normalize(data: Uint8Array): Uint8Array;
}
/** pywebtransport's `MsgPackSerializer`: msgpack-python's `packb(obj)`. */
export declare class MsgPackSerializer implements Serializer {
    readonly name = "msgpack";
    private readonly exact;
    constructor(options?: SerializerOptions);
    encode(value: unknown): Uint8Array;
    decode(data: Uint8Array): Value;
    /** Checked, then sent unchanged. */
    normalize(data: Uint8Array): Uint8Array;
}
/** A class whose objects are sent under a type id. `fromValue`, if the class has it,
 * builds an object from a received value; otherwise the fields are assigned to a new
 * object of the class (without calling its constructor). */
export type ObjectClass = (abstract new (...args: any[]) => object) & {
    fromValue?: (v: Value) => object;
};
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
export declare class StructuredDatagramTransport {
    readonly stream: DatagramStream;
    readonly serializer: Serializer;
    readonly queueSize: number;
    private byId;
    private byClass;
    private objects;
    private errors;
    private errorHook;
    private closed;
    private readonly arrived;
    private readonly errorArrived;
    private readonly st;
    /** Take over the datagrams of `source`; `"InvalidState"` if they have an owner. */
    constructor(source: DatagramSource, options?: StructuredOptions);
    /** Register `id` for objects of `cls`, or (without a class) for plain values.
     * `"InvalidArgument"` if the id or the class is already registered. */
    register(id: number, cls?: ObjectClass): void;
    isRegistered(id: number): boolean;
    /** The id the class of `obj` is registered under. */
    idOf(obj: object): number | undefined;
    /** Send an object of a registered class. `"InvalidArgument"` ("serialization error:
     * type not registered") for any other. */
    send(obj: object, options?: SendOptions): void;
    /** Send a value under a registered id (typed or untyped). */
    sendValue(typeId: number, value: unknown, options?: SendOptions): void;
    /** Send an already-serialized payload under a registered id; checked (and JSON
     * re-emitted in the serializer's form). `"InvalidArgument"` if it does not decode. */
    sendPayload(typeId: number, payload: Uint8Array, options?: SendOptions): void;
    private encode;
    private checkRegistered;
    private sendFrame;
    /** The next object, waiting up to `timeoutMs` (null: no limit). `"Timeout"` if none
     * came; `"Closed"` once closed and drained. */
    receive(timeoutMs?: number | null): Promise<ReceivedObject>;
    tryReceive(): ReceivedObject | undefined;
    /** Objects waiting to be received. */
    get pendingObjects(): number;
    /** The next receive error, waiting up to `timeoutMs`. */
    nextError(timeoutMs?: number | null): Promise<StructuredError>;
    tryNextError(): StructuredError | undefined;
    /** Call `hook` for every receive error from now on (null removes it). */
    onError(hook: ((e: StructuredError) => void) | null): void;
    stats(): StructuredStats;
    get isClosed(): boolean;
    /** Stop: queued objects stay receivable, the stream closes (the session stays open). */
    close(): void;
    private closedError;
    /** Decode one datagram (what the receiver does with each). */
    decode(data: Uint8Array): ReceivedObject | StructuredError;
    private handle;
    private runReceiver;
}
