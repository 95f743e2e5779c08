// The layers over an in-memory pair of sessions (test/helpers/pipe.mjs): the same
// behaviour the Rust integration tests pin, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DatagramStream, ReliabilityLayer, StructuredDatagramTransport, JsonSerializer, MsgPackSerializer,
  WtdError, isHeartbeat, float, throughputTest,
} from "../dist/index.js";
import { sessionPair, until } from "./helpers/pipe.mjs";

const code = (c) => (e) => e instanceof WtdError && e.code === c;
const text = (u8) => Buffer.from(u8).toString();

test("reliability: every message exactly once across 20 % loss each way", async () => {
  const { a, b } = sessionPair({ lossAB: 0.2, lossBA: 0.2, seed: 7 });
  const cfg = { ackTimeoutMs: 30, maxRetries: 30 };
  const ra = new ReliabilityLayer(a, cfg);
  const rb = new ReliabilityLayer(b, cfg);
  const N = 300;
  const ids = [];
  for (let i = 0; i < N; i++) ids.push(await ra.send(`a${i}`));
  for (let i = 0; i < N; i++) await rb.send(`b${i}`);
  const got = async (layer) => {
    const seen = [];
    for (let i = 0; i < N; i++) seen.push(text(await layer.receive(20000)));
    return seen;
  };
  const [atB, atA] = await Promise.all([got(rb), got(ra)]);
  assert.deepEqual(new Set(atB), new Set(Array.from({ length: N }, (_, i) => `a${i}`)));
  assert.deepEqual(new Set(atA), new Set(Array.from({ length: N }, (_, i) => `b${i}`)));
  assert.equal(atB.length, N);
  // One report per message, all delivered.
  const reports = [];
  for (let i = 0; i < N; i++) reports.push(await ra.nextReport(20000));
  assert.deepEqual(reports.map((r) => r.id).sort((x, y) => x - y), ids);
  assert.ok(reports.every((r) => r.outcome === "delivered"));
  await until(() => rb.stats().inFlight === 0, 20000, "b's messages acknowledged");
  const sa = ra.stats();
  const sb = rb.stats();
  assert.equal(sa.messagesSent, N);
  assert.equal(sa.messagesDelivered, N);
  assert.equal(sa.messagesGivenUp, 0);
  assert.ok(sa.retransmissions > 0, "losses were repaired by retransmissions");
  assert.equal(sb.messagesReceived, N);
  assert.ok(a.dropped > 0 && b.dropped > 0);
  // Nothing more arrives: duplicates were suppressed.
  await assert.rejects(rb.receive(100), code("Timeout"));
  ra.close();
  rb.close();
});

test("reliability: a silent peer means a give-up after maxRetries", async () => {
  const { a } = sessionPair({ lossAB: 1 });
  const ra = new ReliabilityLayer(a, { ackTimeoutMs: 10, maxRetries: 2 });
  const id = await ra.send("nobody listens");
  const r = await ra.nextReport(5000);
  assert.deepEqual(r, { id, outcome: "gave-up", attempts: 3 });
  assert.equal(a.sent.length, 3, "sent once and retransmitted twice");
  const s = ra.stats();
  assert.equal(s.retransmissions, 2);
  assert.equal(s.messagesGivenUp, 1);
  assert.equal(s.inFlight, 0);
  ra.close();
});

test("reliability: DATA goes out in flights clocked by ACKs, not as one burst", async () => {
  const { a, b } = sessionPair();
  const ra = new ReliabilityLayer(a, { ackTimeoutMs: 60000 }); // window 256
  const peer = new DatagramStream(b);
  for (let i = 0; i < 20; i++) await ra.send(`m${i}`);
  const seqOf = (d) => Buffer.from(d).readUInt32BE(5);
  // INITIAL_FLIGHT (4) transmissions, then nothing until an ACK comes.
  const first = [];
  for (let i = 0; i < 4; i++) first.push(seqOf(await peer.receive(1000)));
  assert.deepEqual(first, [0, 1, 2, 3]);
  await assert.rejects(peer.receive(100), code("Timeout"), "a fifth DATA before any ACK");
  assert.equal(ra.stats().inFlight, 20, "the others wait in the layer");
  // An ACK frees a place and (slow start) adds one: two more, oldest first.
  peer.send(Buffer.from("\x03ACK0", "latin1"));
  assert.deepEqual([seqOf(await peer.receive(1000)), seqOf(await peer.receive(1000))], [4, 5]);
  await assert.rejects(peer.receive(100), code("Timeout"), "more than the budget");
  assert.deepEqual(await ra.nextReport(1000), { id: 0, outcome: "delivered", attempts: 1 });
  ra.close();
  peer.close();
});

test("reliability: retransmission rounds stay within the budget, oldest first", async () => {
  const { a, b } = sessionPair();
  const ra = new ReliabilityLayer(a, { ackTimeoutMs: 40, maxRetries: 1 });
  const peer = new DatagramStream(b, { recvQueue: 1000 });
  for (let i = 0; i < 8; i++) await ra.send(`m${i}`);
  const reports = [];
  for (let i = 0; i < 8; i++) reports.push(await ra.nextReport(5000));
  assert.deepEqual(
    reports.map((r) => [r.id, r.outcome, r.attempts]),
    Array.from({ length: 8 }, (_, i) => [i, "gave-up", 2]),
  );
  // A silent peer: 0-3, their retransmissions, then 4-7 and theirs; never all 8 at once.
  const seen = [];
  while (peer.receiveBufferSize > 0) seen.push(Buffer.from(peer.tryReceive()).readUInt32BE(5));
  assert.deepEqual(seen, [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]);
  assert.equal(ra.stats().retransmissions, 8);
  ra.close();
  peer.close();
});

test("reliability: a receiver that keeps the newest 10 datagrams of a packet (Firefox) gets everything", async () => {
  // The default window (256), a short ACK timeout, 10 retries. Sent as one burst (as
  // before the layers paced), the oldest messages of every round were dropped every
  // round: 290 of 400 given up. Paced, a message is lost at most a few times in a row
  // while the budgets probe (never 11 times in 600 runs).
  const { a, b } = sessionPair({ keepNewest: 10 });
  const cfg = { ackTimeoutMs: 20, maxRetries: 10 };
  const ra = new ReliabilityLayer(a, cfg);
  const rb = new ReliabilityLayer(b, cfg);
  const N = 200;
  const sendAll = async (layer, tag) => {
    for (let i = 0; i < N; i++) await layer.send(`${tag}${i}`);
  };
  const got = async (layer) => {
    const seen = new Set();
    for (let i = 0; i < N; i++) seen.add(text(await layer.receive(20000)));
    return seen;
  };
  const [, , atB, atA] = await Promise.all([sendAll(ra, "a"), sendAll(rb, "b"), got(rb), got(ra)]);
  assert.equal(atB.size, N);
  assert.equal(atA.size, N);
  for (const layer of [ra, rb]) {
    const reports = [];
    for (let i = 0; i < N; i++) reports.push(await layer.nextReport(20000));
    assert.deepEqual(
      reports.filter((r) => r.outcome !== "delivered"),
      [],
      "no message given up",
    );
  }
  ra.close();
  rb.close();
});

test("reliability: the window holds send back until an ACK comes", async () => {
  const { a, b } = sessionPair();
  const ra = new ReliabilityLayer(a, { window: 2, ackTimeoutMs: 60000 });
  // The peer answers only when we let it: a raw stream that acks by hand.
  const peer = new DatagramStream(b);
  await ra.send("0");
  await ra.send("1");
  let third = false;
  const p = ra.send("2").then((id) => {
    third = true;
    return id;
  });
  await until(() => peer.receiveBufferSize === 2, 5000, "two DATA frames");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(third, false, "a third send waits for room");
  peer.send(new Uint8Array([3, 0x41, 0x43, 0x4b, 0x30])); // ACK0
  assert.equal(await p, 2);
  assert.deepEqual(await ra.nextReport(1000), { id: 0, outcome: "delivered", attempts: 1 });
  ra.close();
  peer.close();
});

test("reliability: handcrafted pywebtransport frames and wrapped sequences", async () => {
  const { a, b } = sessionPair();
  const ra = new ReliabilityLayer(a, { initialSequence: 0xffffffff, ackTimeoutMs: 60000 });
  const peer = new DatagramStream(b);
  const i0 = await ra.send("x");
  const i1 = await ra.send("y");
  assert.deepEqual([i0, i1], [0xffffffff, 0x100000000]);
  const f0 = await peer.receive(1000);
  const f1 = await peer.receive(1000);
  assert.equal(Buffer.from(f0).toString("hex"), "0444415441ffffffff78");
  assert.equal(Buffer.from(f1).toString("hex"), "044441544100000000" + "79");
  peer.send(Buffer.from("\x03ACK0", "latin1"));
  assert.deepEqual(await ra.nextReport(1000), { id: 0x100000000, outcome: "delivered", attempts: 1 });
  // Incoming DATA seq 7 "hi" is delivered once and acknowledged each time.
  const data = Buffer.from("04444154410000000768 69".replace(/ /g, ""), "hex");
  peer.send(data);
  peer.send(data);
  assert.equal(text(await ra.receive(1000)), "hi");
  assert.equal(text(await peer.receive(1000)), "\x03ACK7");
  assert.equal(text(await peer.receive(1000)), "\x03ACK7");
  await assert.rejects(ra.receive(50), code("Timeout"));
  peer.send(Buffer.from("\x04chat{}", "latin1"));
  await until(() => ra.stats().invalidReceived === 1, 1000, "the invalid datagram counted");
  assert.equal(ra.stats().duplicatesReceived, 1);
  ra.close();
  peer.close();
});

test("one owner per session; close gives the datagrams back", () => {
  const { a } = sessionPair();
  const s = new DatagramStream(a);
  assert.throws(() => new ReliabilityLayer(a), code("InvalidState"));
  assert.throws(() => new StructuredDatagramTransport(a), code("InvalidState"));
  assert.throws(() => new DatagramStream(a.datagrams), code("InvalidState"));
  s.close();
  const r = new ReliabilityLayer(a);
  r.close();
});

test("bad configurations are InvalidArgument", () => {
  const { a } = sessionPair();
  for (const cfg of [{ window: 0 }, { ackTimeoutMs: 0 }, { recvQueue: 0 }, { dedupMemory: 2 ** 31 }, { maxRetries: -1 }]) {
    assert.throws(() => new ReliabilityLayer(a, cfg), code("InvalidArgument"), JSON.stringify(cfg));
  }
  assert.throws(() => new DatagramStream(a, { sendQueue: 0 }), code("InvalidArgument"));
  assert.throws(() => new StructuredDatagramTransport(a, { queueSize: 0 }), code("InvalidArgument"));
  const s = new DatagramStream(a);
  assert.throws(() => s.send("x", 3), code("InvalidArgument"));
  assert.throws(() => s.send("x", 0, -1), code("InvalidArgument"));
  assert.throws(() => s.startHeartbeat(0), code("InvalidArgument"));
  s.close();
});

class Player {
  constructor(id, name, pos) {
    this.id = id;
    this.name = name;
    this.pos = pos;
  }
}

for (const [name, mk] of [
  ["JSON (Python's separators)", () => new JsonSerializer()],
  ["compact JSON", () => new JsonSerializer({ compact: true })],
  ["MessagePack", () => new MsgPackSerializer()],
]) {
  test(`structured objects both ways: ${name}`, async () => {
    const { a, b } = sessionPair();
    const ta = new StructuredDatagramTransport(a, { serializer: mk() });
    const tb = new StructuredDatagramTransport(b, { serializer: mk() });
    for (const t of [ta, tb]) {
      t.register(1, Player);
      t.register(2);
    }
    ta.send(new Player(7, "Zoë", [1.5, float(-2)]));
    tb.sendValue(2, { tick: 1024, ok: true });
    const atB = await tb.receive(1000);
    assert.equal(atB.typeId, 1);
    assert.ok(atB.object instanceof Player);
    assert.deepEqual({ ...atB.object }, { id: 7, name: "Zoë", pos: [1.5, -2] });
    const expected = {
      "JSON (Python's separators)": '{"id": 7, "name": "Zo\\u00eb", "pos": [1.5, -2.0]}',
      "compact JSON": '{"id":7,"name":"Zo\\u00eb","pos":[1.5,-2.0]}',
      MessagePack: "83a2696407a46e616d65a45a6fc3aba3706f7392cb3ff8000000000000cbc000000000000000",
    }[name];
    const wire = a.sent[0];
    assert.deepEqual(Array.from(wire.subarray(0, 2)), [0, 1], "u16 BE type id");
    const payload = wire.subarray(2);
    assert.equal(name === "MessagePack" ? Buffer.from(payload).toString("hex") : text(payload), expected);
    const atA = await ta.receive(1000);
    assert.equal(atA.typeId, 2);
    assert.deepEqual(atA.object, { tick: 1024, ok: true });
    // sendPayload: checked, JSON re-emitted in the serializer's form.
    if (name !== "MessagePack") {
      ta.sendPayload(2, Buffer.from('{ "k" : "é" }'));
      const o = await tb.receive(1000);
      assert.deepEqual(o.value, { k: "é" });
      assert.equal(text(a.sent[1].subarray(2)), name === "compact JSON" ? '{"k":"\\u00e9"}' : '{"k": "\\u00e9"}');
      assert.throws(() => ta.sendPayload(2, Buffer.from("{nope")), code("InvalidArgument"));
    }
    assert.throws(() => ta.send(new Map()), code("InvalidArgument"));
    assert.throws(() => ta.sendValue(9, 1), code("InvalidArgument"));
    assert.throws(() => ta.register(1), code("InvalidArgument"));
    assert.throws(() => ta.register(3, Player), code("InvalidArgument"));
    assert.throws(() => ta.register(70000), code("InvalidArgument"));
    assert.deepEqual(ta.stats(), { sent: name === "MessagePack" ? 1 : 2, received: 1, unknownType: 0, tooShort: 0, decodeErrors: 0, queueDrops: 0 });
    ta.close();
    tb.close();
  });
}

test("structured receive errors are counted, queued and reported", async () => {
  const { a, b } = sessionPair();
  const t = new StructuredDatagramTransport(a);
  t.register(1);
  const hooked = [];
  t.onError((e) => hooked.push(e.kind));
  const raw = new DatagramStream(b);
  raw.send(new Uint8Array([7]));
  raw.send(new Uint8Array([0, 9, 0x7b, 0x7d]));
  raw.send(new Uint8Array([0, 1, 0x7b]));
  raw.send(new Uint8Array([0, 1, 0x31]));
  const errs = [await t.nextError(1000), await t.nextError(1000), await t.nextError(1000)];
  assert.deepEqual(errs.map((e) => [e.kind, e.typeId]), [["too-short", null], ["unknown-type", 9], ["decode-error", 1]]);
  assert.deepEqual(hooked, ["too-short", "unknown-type", "decode-error"]);
  assert.equal((await t.receive(1000)).value, 1);
  assert.deepEqual(t.stats(), { sent: 0, received: 1, unknownType: 1, tooShort: 1, decodeErrors: 1, queueDrops: 0 });
  t.close();
  raw.close();
});

test("stream: priorities, eviction, TTL, TooLarge, stats", async () => {
  const { a, b } = sessionPair({ max: 100 });
  const s = new DatagramStream(a, { sendQueue: 3 });
  const peer = new DatagramStream(b);
  // All in one turn: the sender takes nothing before the queue is settled.
  s.send("low1", 0);
  s.send("low2", 0);
  s.send("hi", 2);
  s.send("mid", 1); // full: evicts the oldest datagram of the lowest class below 1 (low1)
  assert.throws(() => s.send("low3", 0), code("QueueFull")); // nothing below 0 to evict
  assert.throws(() => s.send("x".repeat(101)), (e) => e.code === "TooLarge" && e.max === 100 && e.size === 101);
  s.send("expired", 2, 0); // evicts low2; its time-to-live is over before it leaves
  assert.deepEqual(s.queueStats(), { send: [0, 1, 2], sendTotal: 3, sendLimit: 3, receive: 0, receiveLimit: 100 });
  assert.equal(text(await peer.receive(1000)), "hi");
  assert.equal(text(await peer.receive(1000)), "mid");
  await until(() => s.pendingSends === 0, 1000, "the queue to drain");
  await assert.rejects(peer.receive(50), code("Timeout"));
  const st = s.stats();
  assert.equal(st.datagramsSent, 2);
  assert.equal(st.bytesSent, 5);
  assert.equal(st.sendDropsEvicted, 2);
  assert.equal(st.sendDropsExpired, 1);
  assert.equal(st.sendDropsQueueFull, 1);
  assert.equal(st.sendDropsTooLarge, 1);
  assert.equal(st.sendSuccessRate, 2 / 7);
  assert.equal(st.minDatagramSize, 2);
  assert.equal(st.maxDatagramSize, 3);
  s.close();
  peer.close();
});

test("stream: JSON and structured messages, metadata, receive errors", async () => {
  const { a, b } = sessionPair();
  const s = new DatagramStream(a);
  const peer = new DatagramStream(b);
  s.sendJson({ a: [1, 2.0], b: "é" });
  s.sendStructured("chat", "hello");
  s.send("{oops");
  const j = await peer.receiveWithMetadata(1000);
  assert.equal(text(j.data), '{"a":[1,2],"b":"\\u00e9"}');
  assert.equal(j.sequence, 0);
  assert.ok(j.ageMs >= 0);
  const m = await peer.receiveStructured(1000);
  assert.equal(m.type, "chat");
  assert.equal(text(m.payload), "hello");
  await assert.rejects(peer.receiveJson(1000), code("InvalidData"));
  const st = peer.stats();
  assert.equal(st.datagramsReceived, 3);
  assert.equal(st.receiveErrors, 1);
  assert.ok(Math.abs(st.receiveSuccessRate - 2 / 3) < 1e-9);
  s.close();
  peer.close();
});

test("stream: heartbeats every interval, at priority 0 with a TTL", async () => {
  const { a, b } = sessionPair();
  const s = new DatagramStream(a);
  const peer = new DatagramStream(b);
  s.startHeartbeat(20);
  assert.ok(s.heartbeatRunning);
  const beats = [];
  for (let i = 0; i < 3; i++) beats.push(await peer.receive(2000));
  assert.ok(beats.every(isHeartbeat));
  s.stopHeartbeat();
  assert.ok(!s.heartbeatRunning);
  s.close();
  peer.close();
});

test("session close: waiting calls end with Closed and the close info", async () => {
  const { a, b } = sessionPair();
  const s = new DatagramStream(a);
  const r = new ReliabilityLayer(b);
  const waiting = s.receive();
  a.close({ closeCode: 4000, reason: "bye" });
  await assert.rejects(waiting, (e) => e.code === "Closed" && e.close.closeCode === 4000 && e.close.reason === "bye");
  assert.throws(() => s.send("x"), code("Closed"));
  await assert.rejects(r.receive(), code("Closed"));
  await assert.rejects(r.send("x"), code("Closed"));
});

test("throughput test reports what reached the wire", async () => {
  const { a } = sessionPair();
  const s = new DatagramStream(a);
  const progress = [];
  const r = await throughputTest(s, 200, 100, (p) => progress.push(p));
  assert.ok(r.datagramsSent > 0);
  assert.equal(r.datagramsSent, a.sent.length);
  assert.equal(r.errors, 0);
  assert.ok(r.bitsPerSecond > 0);
  assert.deepEqual(progress.at(-1), r);
  await assert.rejects(throughputTest(s, 100, 5000), code("InvalidArgument"));
  s.close();
});
