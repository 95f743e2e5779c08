/**
 * Payload formats of the datagram stream, byte-compatible with pywebtransport's datagram
 * transport and the C API (`wtd_stream_send_json`, `wtd_stream_send_structured`,
 * heartbeats): compact JSON, structured messages `[u8 type_len][type utf8][payload]`,
 * and heartbeats `HEARTBEAT:<unix seconds>`.
 */

import { invalidArgument, invalidData } from "./errors.js";
import * as json from "./json.js";
import type { Value } from "./value.js";

/** Longest structured message type, in UTF-8 bytes. */
export const MAX_TYPE_LEN = 255;
export const HEARTBEAT_PREFIX = "HEARTBEAT:";

const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** `value` as pywebtransport's `send_json` sends it: Python's
 * `json.dumps(data, separators=(",", ":"))`. InvalidArgument if it cannot be written. */
export function encodeJson(value: unknown): Uint8Array {
  try {
    return json.encode(value, { separators: "compact" });
  } catch (e) {
    throw invalidArgument(`serialization error: ${(e as Error).message}`);
  }
}

/** Read a JSON datagram as `json.loads` does; InvalidData if it is not JSON. */
export function decodeJson(data: Uint8Array, options: json.DecodeOptions = {}): Value {
  try {
    return json.decode(data, options);
  } catch (e) {
    throw invalidData((e as Error).message);
  }
}

/** `[u8 type_len][type][payload]`. InvalidArgument unless the type is 1..=255 bytes. */
export function encodeStructured(type: string, payload: Uint8Array): Uint8Array {
  const t = utf8enc.encode(type);
  if (t.length === 0 || t.length > MAX_TYPE_LEN) {
    throw invalidArgument("structured type must be 1..=255 bytes");
  }
  const out = new Uint8Array(1 + t.length + payload.length);
  out[0] = t.length;
  out.set(t, 1);
  out.set(payload, 1 + t.length);
  return out;
}

/** A structured message split into its type and payload (a view, not a copy). */
export interface StructuredMessage {
  type: string;
  payload: Uint8Array;
}

/** Split a structured datagram; InvalidData with the Rust side's reason if malformed. */
export function decodeStructured(data: Uint8Array): StructuredMessage {
  const bad = (why: string) => invalidData(`malformed structured datagram: ${why}`);
  if (data.length === 0) throw bad("empty datagram");
  const n = data[0];
  if (n === 0) throw bad("empty type");
  if (data.length < 1 + n) throw bad("type longer than the datagram");
  let type: string;
  try {
    type = utf8dec.decode(data.subarray(1, 1 + n));
  } catch {
    throw bad("type is not UTF-8");
  }
  return { type, payload: data.subarray(1 + n) };
}

/** `HEARTBEAT:<unix seconds>` for `nowMs` (default: now). */
export function createHeartbeat(nowMs: number = Date.now()): Uint8Array {
  return utf8enc.encode(`${HEARTBEAT_PREFIX}${Math.floor(nowMs / 1000)}`);
}

/** Whether `data` is a heartbeat: it starts with `HEARTBEAT:` (pywebtransport's
 * `data.startswith(b"HEARTBEAT:")`, whatever follows). */
export function isHeartbeat(data: Uint8Array): boolean {
  if (data.length < HEARTBEAT_PREFIX.length) return false;
  for (let i = 0; i < HEARTBEAT_PREFIX.length; i++) {
    if (data[i] !== HEARTBEAT_PREFIX.charCodeAt(i)) return false;
  }
  return true;
}

/** The unix seconds of a heartbeat, or null if it carries no decimal number. */
export function heartbeatTime(data: Uint8Array): number | null {
  if (!isHeartbeat(data)) return null;
  const rest = data.subarray(HEARTBEAT_PREFIX.length);
  if (rest.length === 0 || rest.length > 15 || !rest.every((b) => b >= 0x30 && b <= 0x39)) return null;
  return Number(String.fromCharCode(...rest));
}
