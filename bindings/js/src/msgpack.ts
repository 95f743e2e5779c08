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

import { classify, Float, isIntNumber, MAX_DEPTH, type Value } from "./value.js";
import type { DecodeOptions } from "./json.js";

const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);

class Writer {
  buf = new Uint8Array(64);
  len = 0;
  private view = new DataView(this.buf.buffer);

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
    this.view = new DataView(b.buffer);
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.view.setUint16(this.len, v);
    this.len += 2;
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
  }
  u64(v: bigint): void {
    this.room(8);
    this.view.setBigUint64(this.len, BigInt.asUintN(64, v));
    this.len += 8;
  }
  f64(v: number): void {
    this.room(8);
    this.view.setFloat64(this.len, v);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /** A length with its marker: `small` (fix form, if given, below `fixLimit`), then 8/16/32-bit forms. */
  head(n: number, fix: number | null, fixLimit: number, m8: number | null, m16: number, m32: number): void {
    if (fix !== null && n < fixLimit) this.u8(fix | n);
    else if (m8 !== null && n < 0x100) {
      this.u8(m8);
      this.u8(n);
    } else if (n < 0x10000) {
      this.u8(m16);
      this.u16(n);
    } else if (n <= 0xffffffff) {
      this.u8(m32);
      this.u32(n);
    } else throw new RangeError("longer than 2^32 - 1");
  }
}

function writeInt(w: Writer, i: bigint): void {
  if (i >= 0n) {
    if (i > U64_MAX) throw new RangeError(`integer ${i} out of MessagePack's range`);
    if (i < 0x80n) w.u8(Number(i));
    else if (i < 0x100n) {
      w.u8(0xcc);
      w.u8(Number(i));
    } else if (i < 0x10000n) {
      w.u8(0xcd);
      w.u16(Number(i));
    } else if (i < 0x100000000n) {
      w.u8(0xce);
      w.u32(Number(i));
    } else {
      w.u8(0xcf);
      w.u64(i);
    }
    return;
  }
  if (i < I64_MIN) throw new RangeError(`integer ${i} out of MessagePack's range`);
  const n = i >= -0x80000000n ? Number(i) : 0;
  if (i >= -32n) w.u8(n & 0xff);
  else if (i >= -0x80n) {
    w.u8(0xd0);
    w.u8(n & 0xff);
  } else if (i >= -0x8000n) {
    w.u8(0xd1);
    w.u16(n & 0xffff);
  } else if (i >= -0x80000000n) {
    w.u8(0xd2);
    w.u32(n >>> 0);
  } else {
    w.u8(0xd3);
    w.u64(i);
  }
}

/** `value` as MessagePack. Throws a TypeError or RangeError for what cannot be written. */
export function encode(value: unknown): Uint8Array {
  const w = new Writer();
  const write = (v: unknown, depth: number): void => {
    const c = classify(v);
    switch (c.kind) {
      case "null":
        w.u8(0xc0);
        return;
      case "bool":
        w.u8(c.value ? 0xc3 : 0xc2);
        return;
      case "int":
        writeInt(w, c.value);
        return;
      case "float":
        w.u8(0xcb);
        w.f64(c.value);
        return;
      case "string": {
        const b = utf8enc.encode(c.value);
        w.head(b.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
        w.bytes(b);
        return;
      }
      case "bytes":
        w.head(c.value.length, null, 0, 0xc4, 0xc5, 0xc6);
        w.bytes(c.value);
        return;
      case "array":
        if (depth >= MAX_DEPTH) throw new TypeError(`nested deeper than ${MAX_DEPTH} arrays and maps`);
        w.head(c.value.length, 0x90, 16, null, 0xdc, 0xdd);
        for (const x of c.value) write(x, depth + 1);
        return;
      case "map":
        if (depth >= MAX_DEPTH) throw new TypeError(`nested deeper than ${MAX_DEPTH} arrays and maps`);
        w.head(c.value.length, 0x80, 16, null, 0xde, 0xdf);
        for (const [k, x] of c.value) {
          write(k, depth + 1);
          write(x, depth + 1);
        }
        return;
    }
  };
  write(value, 0);
  return w.buf.slice(0, w.len);
}

/** Read exactly one MessagePack value. Throws a SyntaxError for malformed input. */
export function decode(data: Uint8Array, options: DecodeOptions = {}): Value {
  const exact = options.exact === true;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`invalid MessagePack: ${what}`);
  };
  const need = (n: number): number => {
    if (data.length - pos < n) fail(`${n} bytes needed, ${data.length - pos} left`);
    const at = pos;
    pos += n;
    return at;
  };
  const len = (n: 1 | 2 | 4): number => {
    const at = need(n);
    return n === 1 ? view.getUint8(at) : n === 2 ? view.getUint16(at) : view.getUint32(at);
  };
  const int = (i: bigint): Value => {
    const n = Number(i);
    return Number.isSafeInteger(n) ? n : i;
  };
  const float = (v: number): Value => (exact && isIntNumber(v) ? new Float(v) : v);
  const value = (depth: number): Value => {
    const m = view.getUint8(need(1));
    if (m <= 0x7f) return m;
    if (m >= 0xe0) return m - 0x100;
    if ((m >= 0xa0 && m <= 0xbf) || (m >= 0xd9 && m <= 0xdb)) {
      const n = m <= 0xbf ? m & 0x1f : len(m === 0xd9 ? 1 : m === 0xda ? 2 : 4);
      const at = need(n);
      try {
        return utf8dec.decode(data.subarray(at, at + n));
      } catch {
        return fail("a string is not UTF-8");
      }
    }
    if ((m >= 0x90 && m <= 0x9f) || m === 0xdc || m === 0xdd) {
      const n = m <= 0x9f ? m & 0x0f : len(m === 0xdc ? 2 : 4);
      if (depth >= MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} arrays and maps`);
      if (n > data.length - pos) fail(`${n} items announced, ${data.length - pos} bytes left`);
      const items: Value[] = [];
      for (let i = 0; i < n; i++) items.push(value(depth + 1));
      return items;
    }
    if ((m >= 0x80 && m <= 0x8f) || m === 0xde || m === 0xdf) {
      const n = m <= 0x8f ? m & 0x0f : len(m === 0xde ? 2 : 4);
      if (depth >= MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} arrays and maps`);
      if (2 * n > data.length - pos) fail(`${n} entries announced, ${data.length - pos} bytes left`);
      const entries = new Map<Value, Value>();
      let allStrings = true;
      for (let i = 0; i < n; i++) {
        const k = value(depth + 1);
        if (typeof k !== "string") allStrings = false;
        // Keys that are containers are kept by identity (Python refuses unhashable keys).
        entries.set(k, value(depth + 1));
      }
      if (exact || !allStrings) return entries;
      const obj: { [key: string]: Value } = {};
      for (const [k, v] of entries) {
        Object.defineProperty(obj, k as string, { value: v, enumerable: true, writable: true, configurable: true });
      }
      return obj;
    }
    switch (m) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const n = len(m === 0xc4 ? 1 : m === 0xc5 ? 2 : 4);
        const at = need(n);
        return new Uint8Array(data.subarray(at, at + n));
      }
      case 0xca:
        return float(view.getFloat32(need(4)));
      case 0xcb:
        return float(view.getFloat64(need(8)));
      case 0xcc:
        return view.getUint8(need(1));
      case 0xcd:
        return view.getUint16(need(2));
      case 0xce:
        return view.getUint32(need(4));
      case 0xcf:
        return int(view.getBigUint64(need(8)));
      case 0xd0:
        return view.getInt8(need(1));
      case 0xd1:
        return view.getInt16(need(2));
      case 0xd2:
        return view.getInt32(need(4));
      case 0xd3:
        return int(view.getBigInt64(need(8)));
      default:
        return fail(`unsupported marker 0x${m.toString(16)} (extension types are not supported)`);
    }
  };
  const v = value(0);
  if (pos !== data.length) fail(`${data.length - pos} trailing bytes`);
  return v;
}
