// Wire formats byte for byte: the same bytes the Rust side's unit tests pin.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  encodeData, encodeAck, decodeFrame, unwrapSequence, DedupWindow,
  encodeStructured, decodeStructured, createHeartbeat, isHeartbeat, heartbeatTime, encodeJson, decodeJson, WtdError,
} from "../dist/index.js";

const b = (...x) => new Uint8Array(x);
const ascii = (s) => new Uint8Array(Buffer.from(s, "latin1"));

test("DATA bytes match pywebtransport", () => {
  // struct.pack("!B", 4) + b"DATA" + struct.pack("!I", 1) + b"hi"
  assert.deepEqual(encodeData(1, ascii("hi")), b(0x04, 0x44, 0x41, 0x54, 0x41, 0, 0, 0, 1, 0x68, 0x69));
  assert.deepEqual(encodeData(0xdeadbeef, b()), b(0x04, 0x44, 0x41, 0x54, 0x41, 0xde, 0xad, 0xbe, 0xef));
  const f = decodeFrame(b(0x04, 0x44, 0x41, 0x54, 0x41, 0, 0, 0, 1, 0x68, 0x69));
  assert.equal(f.kind, "data");
  assert.equal(f.sequence, 1);
  assert.deepEqual(Array.from(f.data), [0x68, 0x69]);
  assert.deepEqual(decodeFrame(ascii("\x04DATA\xff\xff\xff\xff")), { kind: "data", sequence: 0xffffffff, data: b() });
});

test("ACK bytes match pywebtransport", () => {
  assert.deepEqual(encodeAck(258), b(0x03, 0x41, 0x43, 0x4b, 0x32, 0x35, 0x38));
  assert.deepEqual(encodeAck(0), ascii("\x03ACK0"));
  assert.deepEqual(encodeAck(0xffffffff), ascii("\x03ACK4294967295"));
  assert.deepEqual(decodeFrame(ascii("\x03ACK258")), { kind: "ack", sequence: 258 });
  assert.deepEqual(decodeFrame(ascii("\x03ACK4294967295")), { kind: "ack", sequence: 0xffffffff });
});

test("malformed frames are not frames", () => {
  for (const bad of ["", "\x04DATA", "\x04DATA\x00\x00\x01", "\x03ACK", "\x03ACK-1", "\x03ACK 1", "\x03ACK1x",
    "\x03ACK4294967296", "\x03ACK99999999999", "\x04chat{}", "\x05DATA", "\x00"]) {
    assert.equal(decodeFrame(ascii(bad)), null, JSON.stringify(bad));
  }
});

test("sequences unwrap with serial-number arithmetic", () => {
  assert.equal(unwrapSequence(5, 10), 5);
  assert.equal(unwrapSequence(15, 10), 15);
  let r = 2 ** 32 + 3;
  assert.equal(unwrapSequence(0xffffffff, r), 2 ** 32 - 1);
  assert.equal(unwrapSequence(2, r), 2 ** 32 + 2);
  assert.equal(unwrapSequence(7, r), 2 ** 32 + 7);
  r = 2 ** 32 - 2;
  assert.equal(unwrapSequence(1, r), 2 ** 32 + 1);
  assert.equal(unwrapSequence(0xffffffff - 5, r), 2 ** 32 - 6);
  assert.equal(unwrapSequence(0xffffffff, 0), null);
  assert.equal(unwrapSequence(0, 2 ** 40), 2 ** 40);
});

test("dedup: at most once across the wrap", () => {
  let d = new DedupWindow(64);
  const start = 0xffffffff - 100;
  for (let k = 0; k < 300; k++) {
    const s = (start + k) >>> 0;
    assert.ok(d.check(s), `new ${s}`);
    if (k >= 3) assert.ok(!d.check((s - 3) >>> 0), `dup ${s - 3}`);
    assert.ok(!d.check(s));
  }
  assert.ok(d.size <= 64);
  d = new DedupWindow(64);
  assert.ok(d.check(0xffffffff));
  assert.ok(d.check(2));
  assert.ok(d.check(0));
  assert.ok(d.check(0xfffffffe));
  assert.ok(d.check(1));
  assert.ok(!d.check(0));
  assert.ok(!d.check(0xffffffff));
  d = new DedupWindow(4);
  for (let s = 10; s < 20; s++) assert.ok(d.check(s));
  assert.ok(!d.check(15), "forgotten but too old: never delivered twice");
  assert.ok(d.check(20));
  assert.equal(d.size, 4);
});

test("structured messages match pywebtransport", () => {
  assert.deepEqual(encodeStructured("chat", ascii('{"m":1}')), ascii('\x04chat{"m":1}'));
  const m = decodeStructured(ascii('\x04chat{"m":1}'));
  assert.equal(m.type, "chat");
  assert.deepEqual(m.payload, ascii('{"m":1}'));
  assert.equal(encodeStructured("t".repeat(255), b())[0], 255);
  assert.equal(encodeStructured("é", b(1))[0], 2, "the length counts UTF-8 bytes");
  assert.throws(() => encodeStructured("t".repeat(256), b()), (e) => e instanceof WtdError && e.code === "InvalidArgument");
  assert.throws(() => encodeStructured("", b(1)), (e) => e.code === "InvalidArgument");
  assert.deepEqual(decodeStructured(ascii("\x01a")), { type: "a", payload: b() });
  for (const bad of [b(), ascii("\x00abc"), ascii("\x05ab"), b(2, 0xff, 0xfe)]) {
    assert.throws(() => decodeStructured(bad), (e) => e.code === "InvalidData");
  }
});

test("heartbeats: HEARTBEAT:<unix secs>, recognised by prefix", () => {
  const h = createHeartbeat(1_700_000_123_456);
  assert.equal(Buffer.from(h).toString(), "HEARTBEAT:1700000123");
  assert.ok(isHeartbeat(h));
  assert.equal(heartbeatTime(h), 1700000123);
  const now = Buffer.from(createHeartbeat()).toString();
  assert.ok(Number(now.slice(10)) > 1_700_000_000);
  // pywebtransport's data.startswith(b"HEARTBEAT:")
  assert.ok(isHeartbeat(ascii("HEARTBEAT:")));
  assert.ok(isHeartbeat(ascii("HEARTBEAT:12a")));
  assert.equal(heartbeatTime(ascii("HEARTBEAT:12a")), null);
  assert.ok(!isHeartbeat(ascii("hello")));
  assert.ok(!isHeartbeat(ascii("HEARTBEAT")));
});

test("the stream's JSON is send_json's: compact, ASCII-escaped", () => {
  assert.equal(Buffer.from(encodeJson({ a: [1, 2], b: "é", c: 1.5 })).toString(), '{"a":[1,2],"b":"\\u00e9","c":1.5}');
  assert.deepEqual(decodeJson(ascii('{"b":"\\u00e9"}')), { b: "é" });
  assert.throws(() => decodeJson(ascii("{not json")), (e) => e.code === "InvalidData");
  assert.throws(() => encodeJson(undefined), (e) => e.code === "InvalidArgument");
});
