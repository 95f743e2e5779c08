/**
 * MessagePack byte-identical to what pywebtransport's `MsgPackSerializer` sends:
 * msgpack-python's `packb(obj)` with its defaults (`use_bin_type=True`,
 * `use_single_float=False`), and to the Rust side's `src/datagram/msgpack.rs`.
 *
 * - integers in their most compact form (positive fixint, uint 8/16/32/64 for values
 *   >= 0; negative fixint, int 8/16/32/64 below 0); -2^63 .. 2^64 - 1;
 * - every float as a float 64 (NaN and the infinities too);
 * - strings as fixstr/str 8/16/32 (UTF-8), bytes as bin 8/16/32;
 * - arrays and maps in their order; map keys of any kind (an integer key stays one).
 *
 * Reading takes every value `unpackb(raw=False)` takes: a float 32 becomes the double of
 * the same value, strings must be UTF-8, extension types are an error, and so are
 * trailing bytes. See `value.ts` for how values map to JavaScript.
 */
import { type Value } from "./value.js";
import type { DecodeOptions } from "./json.js";
/** `value` as MessagePack. Throws a TypeError or RangeError for what cannot be written. */
export declare function encode(value: unknown): Uint8Array;
/** Read exactly one MessagePack value. Throws a SyntaxError for malformed input. */
export declare function decode(data: Uint8Array, options?: DecodeOptions): Value;
