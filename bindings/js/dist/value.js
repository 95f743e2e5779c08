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
export class Float {
    constructor(value) {
        this.value = Number(value);
    }
    valueOf() {
        return this.value;
    }
    toJSON() {
        return this.value;
    }
    toString() {
        return String(this.value);
    }
}
/** `float(1)` is written as Python's float `1.0`. */
export function float(value) {
    return new Float(value);
}
/** Deepest nesting of arrays and maps read or written (the Rust side's MAX_DEPTH). */
export const MAX_DEPTH = 128;
function isPlainObject(v) {
    const proto = Object.getPrototypeOf(v);
    return proto === Object.prototype || proto === null;
}
/** Whether a `number` counts as an integer (see the module documentation). */
export function isIntNumber(v) {
    return Number.isSafeInteger(v) && !Object.is(v, -0);
}
/** Classify `v`; throws a TypeError naming what cannot be written. */
export function classify(v) {
    switch (typeof v) {
        case "boolean":
            return { kind: "bool", value: v };
        case "number":
            return isIntNumber(v) ? { kind: "int", value: BigInt(v) } : { kind: "float", value: v };
        case "bigint":
            return { kind: "int", value: v };
        case "string":
            return { kind: "string", value: v };
        case "object": {
            if (v === null)
                return { kind: "null" };
            if (v instanceof Float)
                return { kind: "float", value: v.value };
            if (v instanceof Uint8Array)
                return { kind: "bytes", value: v };
            if (ArrayBuffer.isView(v)) {
                return { kind: "bytes", value: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
            }
            if (v instanceof ArrayBuffer)
                return { kind: "bytes", value: new Uint8Array(v) };
            if (Array.isArray(v))
                return { kind: "array", value: v };
            if (v instanceof Map)
                return { kind: "map", value: Array.from(v.entries()) };
            if (isPlainObject(v))
                return { kind: "map", value: Object.entries(v) };
            const name = v.constructor?.name ?? "object";
            throw new TypeError(`a ${name} cannot be serialized (register its class with the structured transport, or pass a plain object or Map)`);
        }
        default:
            throw new TypeError(`a value of type ${typeof v} cannot be serialized`);
    }
}
