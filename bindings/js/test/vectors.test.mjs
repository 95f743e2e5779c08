// The shared byte vectors of the structured transport's serializers (the same file the
// Rust side and the Go binding are checked against).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { json, msgpack, Float, float } from "../dist/index.js";

const path =
  process.env.WTD_VECTORS ?? fileURLToPath(new URL("../../go/testdata/structured_vectors.json", import.meta.url));
const doc = JSON.parse(readFileSync(path, "utf8"));
const vectors = doc.vectors;
const hex = (b) => Buffer.from(b).toString("hex");
const ascii = (b) => Buffer.from(b).toString("latin1");
// Vectors written by Python (json and json_compact) vs the older Rust-only ones (json
// was the compact form, and some vectors recorded where serde_json differs from Python).
const pythonVectors = vectors.some((v) => "json_compact" in v);

test("the vectors file is there and has what the Rust and Go sides check", () => {
  assert.ok(vectors.length >= 8, `only ${vectors.length} vectors in ${path}`);
  for (const name of ["named", "escapes", "integers", "floats", "nested", "game_state"]) {
    assert.ok(vectors.some((v) => v.name === name), `vector ${name} missing`);
  }
});

for (const v of vectors) {
  if ("python_differs" in v) continue; // recorded serde_json behaviour, not Python's
  test(`vector ${v.name}`, () => {
    let value;
    if ("input" in v) {
      value = json.parse(v.input, { exact: true });
    } else {
      // A Python value (bytes, NaN, integer keys): start from its MessagePack.
      value = msgpack.decode(Buffer.from(v.msgpack, "hex"), { exact: true });
    }
    assert.equal(hex(msgpack.encode(value)), v.msgpack, "msgpack");
    const compact = pythonVectors ? v.json_compact : v.json;
    if (compact !== undefined) {
      assert.equal(json.stringify(value, { separators: "compact" }), compact, "json compact");
      assert.equal(ascii(json.encode(value, { separators: "compact" })), compact, "json compact bytes");
    }
    if (pythonVectors && v.json !== undefined) {
      assert.equal(json.stringify(value), v.json, "json (Python's default separators)");
      // What Python wrote reads back to the same value.
      assert.equal(json.stringify(json.parse(v.json, { exact: true })), v.json, "json round trip");
    }
    // MessagePack reads back to the same bytes.
    const back = msgpack.decode(Buffer.from(v.msgpack, "hex"), { exact: true });
    assert.equal(hex(msgpack.encode(back)), v.msgpack, "msgpack round trip");
  });
}

test("decoding without exact gives plain JavaScript", () => {
  const v = json.parse('{"tick":1024,"x":0.0,"y":7.5,"big":18446744073709551615,"n":-0}');
  assert.deepEqual(Object.keys(v), ["tick", "x", "y", "big", "n"]);
  assert.equal(v.tick, 1024);
  assert.equal(v.x, 0);
  assert.equal(v.y, 7.5);
  assert.equal(v.big, 18446744073709551615n);
  assert.ok(Object.is(v.n, 0), "-0 is the integer 0, as in Python");
  const m = msgpack.decode(Buffer.from("82a178cb3ff0000000000000a179c40200ff", "hex"));
  assert.equal(m.x, 1);
  assert.deepEqual(m.y, new Uint8Array([0, 0xff]));
  // Non-string keys stay a Map.
  const k = msgpack.decode(Buffer.from("810aa178", "hex"));
  assert.ok(k instanceof Map);
  assert.equal(k.get(10), "x");
});

test("exact decoding keeps integral floats as Float", () => {
  const v = json.parse("[1.0, 1, 2.5, -0.0]", { exact: true });
  assert.ok(v[0] instanceof Float);
  assert.equal(+v[0], 1);
  assert.equal(v[1], 1);
  assert.equal(v[2], 2.5);
  assert.ok(Object.is(v[3], -0));
  assert.equal(json.stringify(v), "[1.0, 1, 2.5, -0.0]");
});

test("JavaScript numbers: integers vs floats", () => {
  assert.equal(json.stringify([1, 1.5, float(2), -0, 2 ** 53, 2 ** 53 - 1, 10n ** 20n, NaN, -Infinity]),
    "[1, 1.5, 2.0, -0.0, 9007199254740992.0, 9007199254740991, 100000000000000000000, NaN, -Infinity]");
  assert.equal(hex(msgpack.encode([1, 1.5, float(2), 2n ** 64n - 1n, -(2n ** 63n)])),
    "9501cb3ff8000000000000cb4000000000000000cfffffffffffffffffd38000000000000000");
  assert.throws(() => msgpack.encode(2n ** 64n), RangeError);
  assert.throws(() => msgpack.encode(-(2n ** 63n) - 1n), RangeError);
});

test("Python's float repr", () => {
  for (const [v, want] of [
    [1.0, "1.0"], [0.1, "0.1"], [-0.0, "-0.0"], [100.0, "100.0"], [1e15, "1000000000000000.0"],
    [1e16, "1e+16"], [1.5e16, "1.5e+16"], [0.0001, "0.0001"], [0.00001, "1e-05"], [1.5e-7, "1.5e-07"],
    [1e100, "1e+100"], [123456.789, "123456.789"], [1.7976931348623157e308, "1.7976931348623157e+308"],
    [5e-324, "5e-324"], [0.30000000000000004, "0.30000000000000004"], [1e22, "1e+22"], [123e-20, "1.23e-18"],
  ]) {
    assert.equal(json.pythonFloatRepr(v), want, String(v));
  }
});

test("keys as Python writes them; objects and Maps keep their order", () => {
  const m = new Map([[1, "a"], [1.5, "b"], [true, "c"], [null, "d"], ["z", "e"], [float(2), "f"]]);
  assert.equal(json.stringify(m, { separators: "compact" }), '{"1":"a","1.5":"b","true":"c","null":"d","z":"e","2.0":"f"}');
  assert.throws(() => json.stringify(new Map([[[1], 2]])), TypeError);
  assert.equal(json.stringify({ zeta: 1, alpha: 2 }, { separators: "compact" }), '{"zeta":1,"alpha":2}');
  // A repeated key keeps its first place and its last value, as a Python dict.
  assert.equal(json.stringify(json.parse('{"a":1,"b":2,"a":3}', { exact: true })), '{"a": 3, "b": 2}');
});

test("bytes are an array of their values in JSON (the Rust side's convention)", () => {
  assert.equal(json.stringify(new Uint8Array([0, 255])), "[0, 255]");
});

test("what json.loads refuses is refused", () => {
  for (const bad of ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "-", "\"\x01\"", "\"\\x\"", "\"\\u12\"",
    "nul", "[1] 2", "{'a':1}", "\ufeff1", "infinity", "\"abc"]) {
    assert.throws(() => json.parse(bad), SyntaxError, JSON.stringify(bad));
  }
  assert.throws(() => json.decode(new Uint8Array([0x22, 0xff, 0x22])), SyntaxError, "not UTF-8");
  assert.deepEqual(json.parse(" \t\n\r[ ] "), []);
  const deep = "[".repeat(128) + "]".repeat(128);
  assert.equal(json.parse(deep).length, 1);
  assert.throws(() => json.parse("[".repeat(129) + "]".repeat(129)), SyntaxError);
  // Lone surrogates are kept (Python keeps them) and written back escaped.
  assert.equal(json.stringify(json.parse('"\\ud800x"')), '"\\ud800x"');
});

test("malformed MessagePack is refused", () => {
  for (const bad of ["c1", "0102", "92 01", "d9 05 61", "a2 ff fe", "d4 01 00", "dd ff ff ff ff", "81 01"]) {
    assert.throws(() => msgpack.decode(Buffer.from(bad.replace(/ /g, ""), "hex")), SyntaxError, bad);
  }
  // float 32 is read as the double of the same value (what Python does).
  assert.equal(msgpack.decode(Buffer.from("ca3f8ccccd", "hex")), 1.100000023841858);
});

test("values that cannot be written say so", () => {
  assert.throws(() => json.stringify(undefined), TypeError);
  assert.throws(() => json.stringify({ a: () => 1 }), TypeError);
  assert.throws(() => json.stringify(new Date()), TypeError);
  assert.throws(() => json.stringify({ a: 1 }, { separators: "wide" }), TypeError);
  let deep = [];
  for (let i = 0; i < 200; i++) deep = [deep];
  assert.throws(() => json.stringify(deep), TypeError);
  assert.throws(() => msgpack.encode(deep), TypeError);
});
