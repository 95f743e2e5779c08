/**
 * JSON exactly as Python writes and reads it: what pywebtransport's datagram stream
 * (`json.dumps(data, separators=(",", ":"))`) and its structured `JSONSerializer`
 * (`json.dumps(obj)`, Python's default separators `", "` and `": "`) send, and what
 * `json.loads` reads. Byte-identical with the Rust side (`src/datagram/json.rs`) and the
 * Go binding over the shared vectors (`bindings/go/testdata/structured_vectors.json`).
 *
 * Writing (`ensure_ascii=True`, `allow_nan=True`):
 * - map entries in their order (never sorted);
 * - `"`, `\` and `\b \f \n \r \t` as short escapes; every other control character,
 *   DEL and every non-ASCII character as lowercase `\uXXXX` (UTF-16 code units, so a
 *   character beyond the BMP is a surrogate pair); `/ < > &` as they are;
 * - integers in decimal; floats as Python's `repr` spells them (`1.0`, `1e-05`,
 *   `1e+16`), `NaN`, `Infinity`, `-Infinity`;
 * - map keys that are not strings as Python converts them (`1` -> `"1"`, `1.5` ->
 *   `"1.5"`, `true` -> `"true"`, `null` -> `"null"`); other keys are an error;
 * - bytes as an array of their values (Python cannot write bytes; this is the Rust
 *   side's convention).
 *
 * Reading: standard JSON plus `NaN`, `Infinity`, `-Infinity`; a repeated key keeps its
 * first position and its last value (a Python dict); integers are exact (`bigint`
 * beyond 2^53; `-0` is the integer 0, as in Python); a raw control character in a
 * string is an error (Python's `strict`); lone surrogate escapes are kept. The text
 * must be UTF-8 (a byte order mark is an error, as for `json.loads` of a str).
 */
import { type Value } from "./value.js";
/** Python's `separators`: `"python"` is `(", ", ": ")` (the default of `json.dumps`),
 * `"compact"` is `(",", ":")`. */
export type Separators = "python" | "compact";
export interface EncodeOptions {
    /** Default `"python"`. */
    separators?: Separators;
}
export interface DecodeOptions {
    /** Give `Map`s for objects and {@link Float} for floats with an integral value, so
     * that encoding the result gives the same bytes back. Default false: plain objects
     * and numbers. */
    exact?: boolean;
}
/** Python's `repr(float)` of a finite number: shortest round-trip digits, positional
 * for decimal exponents -4..15 (always with a fraction: `1.0`), otherwise scientific
 * with a sign and at least two exponent digits (`1e-05`, `1e+16`). */
export declare function pythonFloatRepr(v: number): string;
/** A float as Python's JSON encoder writes it. */
export declare function jsonFloat(v: number): string;
/** `s` quoted and escaped like Python's `json.dumps` with `ensure_ascii`. */
export declare function quote(s: string): string;
/** `value` as JSON text (ASCII), exactly as Python's `json.dumps` writes it. */
export declare function stringify(value: unknown, options?: EncodeOptions): string;
/** `value` as JSON bytes (see {@link stringify}). */
export declare function encode(value: unknown, options?: EncodeOptions): Uint8Array;
/** Read JSON bytes (UTF-8) as Python's `json.loads` reads them. Throws a SyntaxError. */
export declare function decode(data: Uint8Array, options?: DecodeOptions): Value;
/** Read JSON text as Python's `json.loads` reads it. Throws a SyntaxError. */
export declare function parse(text: string, options?: DecodeOptions): Value;
