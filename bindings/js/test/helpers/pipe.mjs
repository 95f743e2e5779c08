// An in-memory pair of WebTransport-like sessions for the unit tests: what one side's
// datagrams.writable takes, the other side's datagrams.readable gives, minus a
// deterministic share of losses.

/** mulberry32: a small seeded PRNG, so that losses are the same on every run. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Two connected fake sessions `a` and `b` ({ datagrams, closed, close() }). `lossAB` /
 * `lossBA`: share of datagrams dropped in each direction (seeded). Each side records
 * what it wrote in `sent` (copies). `close(code, reason)` on either side ends both.
 *
 * `keepNewest` models a QUIC stack that packs every datagram written before it next
 * runs into one packet (quinn does) and a receiver that keeps only the newest
 * `keepNewest` datagrams of a packet (Firefox's neqo keeps 10): what one side writes
 * within one turn of the event loop is delivered together at the next turn, minus all
 * but the newest `keepNewest` (counted in `dropped`).
 */
export function sessionPair({ max = 1200, lossAB = 0, lossBA = 0, seed = 1, keepNewest = Infinity } = {}) {
  const random = rng(seed);
  const mk = (name) => {
    const side = { name, sent: [], dropped: 0, ctrl: null, isClosed: false };
    side.readable = new ReadableStream({
      start(c) {
        side.ctrl = c;
      },
    }, { highWaterMark: 1 << 20 });
    side.closed = new Promise((resolve) => {
      side.resolveClosed = resolve;
    });
    return side;
  };
  const a = mk("a");
  const b = mk("b");
  const wire = (from, to, loss) => {
    let packet = null;
    const flush = () => {
      const p = packet;
      packet = null;
      from.dropped += Math.max(0, p.length - keepNewest);
      for (const d of p.slice(-keepNewest)) if (!to.isClosed) to.ctrl.enqueue(d);
    };
    return new WritableStream({
      write(chunk) {
        if (from.isClosed) throw new Error("session closed");
        const copy = new Uint8Array(chunk);
        from.sent.push(copy);
        if (random() < loss) {
          from.dropped++;
          return;
        }
        if (keepNewest === Infinity) {
          if (!to.isClosed) to.ctrl.enqueue(copy.slice());
          return;
        }
        if (packet === null) {
          packet = [];
          setTimeout(flush, 0);
        }
        packet.push(copy.slice());
      },
    });
  };
  const end = (code, reason) => {
    for (const s of [a, b]) {
      if (s.isClosed) continue;
      s.isClosed = true;
      try {
        s.ctrl.close();
      } catch {}
      s.resolveClosed({ closeCode: code, reason });
    }
  };
  for (const [s, other, loss] of [
    [a, b, lossAB],
    [b, a, lossBA],
  ]) {
    s.datagrams = { readable: s.readable, writable: wire(s, other, loss), maxDatagramSize: max };
    s.close = (info = {}) => end(info.closeCode ?? 0, info.reason ?? "");
  }
  return { a, b };
}

/** Wait until `cond()` holds (checked every few ms), at most `ms` (a safety net). */
export async function until(cond, ms = 10000, what = "condition") {
  const limit = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > limit) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
