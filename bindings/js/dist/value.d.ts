/**
 * The values the serializers read and write, and how they map to Python's.
 *
 * JavaScript has one number type; Python (and the Rust and Go sides) tell integers from
 * floats, and the bytes on the wire differ (`1` vs `1.0` in JSON, `01` vs
 * `cb 3f f0 00 ...` in MessagePack). The rule here:
 *
 * - a `number` that is an integer within ±(2^53 - 1), and not `-0`, is an integer;
 *   every other `number` (fractions, `-0`, `NaN`, `±Infinity`, integers beyond 2^53) is
 *   a float;
 * - a `bigint` is an integer of any size (MessagePack takes -2^63 .. 2^64 - 1);
 * - a {@link Float} is a float whatever its value: `float(1)` is written `1.0`;
 * - `string`, `boolean`, `null`; `Uint8Array` (and other ArrayBuffer views, and
 *   ArrayBuffer) are bytes; arrays are arrays;
 * - a `Map` is a map whose keys may be anything above (MessagePack keeps integer keys;
 *   JSON writes keys as Python's `json.dumps` does: `1` -> `"1"`, `1.5` -> `"1.5"`,
 *   `true` -> `"true"`, `null` -> `"null"`); a plain object is a map of its own
 *   enumerable string keys, in JavaScript's property order.
 *
 * Decoders give natural JavaScript by default (plain objects, numbers, bigints beyond
 * 2^53); with `{ exact: true }` they give `Map`s and wrap floats with an integral value
 * in {@link Float}, so that writing a decoded value back gives the same bytes.
 */
/** A value that is a float on the wire even when its value is integral. */
export declare class Float {
    readonly value: number;
    constructor(value: number);
    valueOf(): number;
    toJSON(): number;
    toString(): string;
}
/** `float(1)` is written as Python's float `1.0`. */
export declare function float(value: number): Float;
export type Value = null | boolean | number | bigint | string | Float | Uint8Array | Value[] | Map<Value, Value> | {
    [key: string]: Value;
};
/** Deepest nesting of arrays and maps read or written (the Rust side's MAX_DEPTH). */
export declare const MAX_DEPTH = 128;
/** What a JavaScript value is on the wire. */
export type Kind = {
    kind: "null";
} | {
    kind: "bool";
    value: boolean;
} | {
    kind: "int";
    value: bigint;
} | {
    kind: "float";
    value: number;
} | {
    kind: "string";
    value: string;
} | {
    kind: "bytes";
    value: Uint8Array;
} | {
    kind: "array";
    value: readonly unknown[];
} | {
    kind: "map";
    value: Array<[unknown, unknown]>;
};
/** Whether a `number` counts as an integer (see the module documentation). */
export declare function isIntNumber(v: number): boolean;
/** Classify `v`; throws a TypeError naming what cannot be written. */
export declare function classify(v: unknown): Kind;
