/**
 * Payload formats of the datagram stream, byte-compatible with pywebtransport's datagram
 * transport and the C API (`wtd_stream_send_json`, `wtd_stream_send_structured`,
 * heartbeats): compact JSON, structured messages `[u8 type_len][type utf8][payload]`,
 * and heartbeats `HEARTBEAT:<unix seconds>`.
 */
import * as json from "./json.js";
import type { Value } from "./value.js";
/** Longest structured message type, in UTF-8 bytes. */
export declare const MAX_TYPE_LEN = 255;
export declare const HEARTBEAT_PREFIX = "HEARTBEAT:";
/** `value` as pywebtransport's `send_json` sends it: Python's
 * `json.dumps(data, separators=(",", ":"))`. InvalidArgument if it cannot be written. */
export declare function encodeJson(value: unknown): Uint8Array;
/** Read a JSON datagram as `json.loads` does; InvalidData if it is not JSON. */
export declare function decodeJson(data: Uint8Array, options?: json.DecodeOptions): Value;
/** `[u8 type_len][type][payload]`. InvalidArgument unless the type is 1..=255 bytes. */
export declare function encodeStructured(type: string, payload: Uint8Array): Uint8Array;
/** A structured message split into its type and payload (a view, not a copy). */
export interface StructuredMessage {
    type: string;
    payload: Uint8Array;
}
/** Split a structured datagram; InvalidData with the Rust side's reason if malformed. */
export declare function decodeStructured(data: Uint8Array): StructuredMessage;
/** `HEARTBEAT:<unix seconds>` for `nowMs` (default: now). */
export declare function createHeartbeat(nowMs?: number): Uint8Array;
/** Whether `data` is a heartbeat: it starts with `HEARTBEAT:` (pywebtransport's
 * `data.startswith(b"HEARTBEAT:")`, whatever follows). */
export declare function isHeartbeat(data: Uint8Array): boolean;
/** The unix seconds of a heartbeat, or null if it carries no decimal number. */
export declare function heartbeatTime(data: Uint8Array): number | null;
