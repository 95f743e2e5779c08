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

import { classify, Float, isIntNumber, MAX_DEPTH, type Value } from "./value.js";

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
export function pythonFloatRepr(v: number): string {
  if (v === 0) return Object.is(v, -0) ? "-0.0" : "0.0";
  const sign = v < 0 ? "-" : "";
  // toExponential() without digits gives the shortest digits that round-trip.
  const [mant, expText] = Math.abs(v).toExponential().split("e");
  const exp = Number(expText);
  const digits = mant.replace(".", "");
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      if (digits.length > exp + 1) {
        return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
      }
      return `${sign}${digits.padEnd(exp + 1, "0")}.0`;
    }
    return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
}

/** A float as Python's JSON encoder writes it. */
export function jsonFloat(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "-Infinity";
  return pythonFloatRepr(v);
}

const SHORT_ESCAPES: Record<number, string> = {
  0x22: '\\"',
  0x5c: "\\\\",
  0x0a: "\\n",
  0x0d: "\\r",
  0x09: "\\t",
  0x08: "\\b",
  0x0c: "\\f",
};

/** `s` quoted and escaped like Python's `json.dumps` with `ensure_ascii`. */
export function quote(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(start, i);
    out += SHORT_ESCAPES[c] ?? `\\u${c.toString(16).padStart(4, "0")}`;
    start = i + 1;
  }
  return out + s.slice(start) + '"';
}

/** The string Python's `json.dumps` makes of a map key. */
function keyText(k: unknown): string {
  const c = classify(k);
  switch (c.kind) {
    case "string":
      return c.value;
    case "null":
      return "null";
    case "bool":
      return c.value ? "true" : "false";
    case "int":
      return c.value.toString();
    case "float":
      return jsonFloat(c.value);
    default:
      throw new TypeError(`keys must be str, int, float, bool or None, not ${c.kind}`);
  }
}

/** `value` as JSON text (ASCII), exactly as Python's `json.dumps` writes it. */
export function stringify(value: unknown, options: EncodeOptions = {}): string {
  const compact = options.separators === "compact";
  if (options.separators !== undefined && !compact && options.separators !== "python") {
    throw new TypeError(`separators must be "python" or "compact", not ${String(options.separators)}`);
  }
  const item = compact ? "," : ", ";
  const key = compact ? ":" : ": ";
  const parts: string[] = [];
  const write = (v: unknown, depth: number): void => {
    const c = classify(v);
    switch (c.kind) {
      case "null":
        parts.push("null");
        return;
      case "bool":
        parts.push(c.value ? "true" : "false");
        return;
      case "int":
        parts.push(c.value.toString());
        return;
      case "float":
        parts.push(jsonFloat(c.value));
        return;
      case "string":
        parts.push(quote(c.value));
        return;
      case "bytes":
        parts.push("[" + Array.from(c.value, (b) => String(b)).join(item) + "]");
        return;
      case "array": {
        if (depth >= MAX_DEPTH) throw new TypeError(`nested deeper than ${MAX_DEPTH} arrays and maps`);
        parts.push("[");
        c.value.forEach((x, i) => {
          if (i > 0) parts.push(item);
          write(x, depth + 1);
        });
        parts.push("]");
        return;
      }
      case "map": {
        if (depth >= MAX_DEPTH) throw new TypeError(`nested deeper than ${MAX_DEPTH} arrays and maps`);
        parts.push("{");
        c.value.forEach(([k, x], i) => {
          if (i > 0) parts.push(item);
          parts.push(quote(keyText(k)), key);
          write(x, depth + 1);
        });
        parts.push("}");
        return;
      }
    }
  };
  write(value, 0);
  return parts.join("");
}

/** `value` as JSON bytes (see {@link stringify}). */
export function encode(value: unknown, options: EncodeOptions = {}): Uint8Array {
  const text = stringify(value, options);
  // The text is ASCII: one byte per character.
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Read JSON bytes (UTF-8) as Python's `json.loads` reads them. Throws a SyntaxError. */
export function decode(data: Uint8Array, options: DecodeOptions = {}): Value {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    throw new SyntaxError("invalid JSON: not UTF-8");
  }
  return parse(text, options);
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;

/** Read JSON text as Python's `json.loads` reads it. Throws a SyntaxError. */
export function parse(text: string, options: DecodeOptions = {}): Value {
  const exact = options.exact === true;
  let pos = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`invalid JSON: ${what} at character ${pos}`);
  };
  const skipWs = (): void => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) pos++;
      else return;
    }
  };
  const eat = (word: string): boolean => {
    if (text.startsWith(word, pos)) {
      pos += word.length;
      return true;
    }
    return false;
  };
  const float = (v: number): Value => (exact && isIntNumber(v) ? new Float(v) : v);

  const str = (): string => {
    pos++; // opening quote
    let out = "";
    let start = pos;
    for (;;) {
      if (pos >= text.length) fail("unterminated string");
      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        out += text.slice(start, pos);
        pos++;
        return out;
      }
      if (c < 0x20) fail("invalid control character in a string");
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += text.slice(start, pos);
      const e = text[pos + 1];
      switch (e) {
        case '"':
        case "\\":
        case "/":
          out += e;
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hex = text.slice(pos + 2, pos + 6);
          if (!HEX4.test(hex)) fail("invalid \\uXXXX escape");
          // Code units in order: an escaped surrogate pair joins by itself.
          out += String.fromCharCode(parseInt(hex, 16));
          pos += 4;
          break;
        }
        default:
          fail("invalid escape");
      }
      pos += 2;
      start = pos;
    }
  };

  const value = (depth: number): Value => {
    const c = text[pos];
    if (c === "{" || c === "[") {
      if (depth >= MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} arrays and objects`);
      pos++;
      skipWs();
      if (c === "[") {
        const items: Value[] = [];
        if (text[pos] === "]") {
          pos++;
          return items;
        }
        for (;;) {
          skipWs();
          items.push(value(depth + 1));
          skipWs();
          if (text[pos] === ",") pos++;
          else if (text[pos] === "]") {
            pos++;
            return items;
          } else fail("expected ',' or ']'");
        }
      }
      const entries = new Map<string, Value>();
      if (text[pos] !== "}") {
        for (;;) {
          skipWs();
          if (text[pos] !== '"') fail("expected a string key");
          const k = str();
          skipWs();
          if (text[pos] !== ":") fail("expected ':'");
          pos++;
          skipWs();
          // A Python dict: a repeated key keeps its place and takes the last value.
          entries.set(k, value(depth + 1));
          skipWs();
          if (text[pos] === ",") pos++;
          else if (text[pos] === "}") break;
          else fail("expected ',' or '}'");
        }
      }
      pos++;
      if (exact) return entries;
      const obj: { [key: string]: Value } = {};
      for (const [k, v] of entries) {
        Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      return obj;
    }
    if (c === '"') return str();
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m !== null) {
      pos += m[0].length;
      if (m[1] === undefined && m[2] === undefined) {
        const i = BigInt(m[0]);
        const n = Number(i);
        return Number.isSafeInteger(n) ? n : i;
      }
      return float(Number(m[0]));
    }
    if (eat("null")) return null;
    if (eat("true")) return true;
    if (eat("false")) return false;
    if (eat("NaN")) return NaN;
    if (eat("Infinity")) return Infinity;
    if (eat("-Infinity")) return -Infinity;
    return fail(pos >= text.length ? "expected a value, found the end" : "expected a value");
  };

  skipWs();
  const v = value(0);
  skipWs();
  if (pos !== text.length) fail("extra data after the value");
  return v;
}
