// The page `wtd serve --web` serves: one WebTransport session to this server through
// the JavaScript module (bindings/js), pings for the RTT plot, heartbeats, a throughput
// test, messages of every kind, and the statistics of both sides. In relay mode
// (/config.json's mode "relay") the server sends back what every client of the channel
// sent, so the counters include other clients' datagrams; pings carry this page's own
// tag, so only its own make RTT samples. The state is also on
// document.body.dataset (state, echoed, rttSamples), window.wtdStatus and
// window.wtdSeries (the plots' samples) for tests and scripts.
import {
  connect, DatagramStream, StructuredDatagramTransport, JsonSerializer, MsgPackSerializer,
  throughputTest, isHeartbeat, decodeStructured, decodeJson, json, WtdError,
} from "/wtdatagram/index.js";

const $ = (id) => document.getElementById(id);
const PING = [0x50, 0x49, 0x4e, 0x47]; // "PING" [u32 page tag] [u32 seq] [f64 sent at]
const PING_LEN = 20;
// Another page's pings (relay mode) carry another tag: its clock is not ours.
const TAG = crypto.getRandomValues(new Uint32Array(1))[0];
const WINDOW_S = 60;

const status = { state: "starting", sent: 0, echoed: 0, beats: 0, rtt: [], foreignPings: 0, bytesIn: 0, bytesOut: 0 };
window.wtdStatus = status;
const series = { rtt: [], tin: [], tout: [] }; // [t seconds, value]
window.wtdSeries = series;
const t0 = performance.now();
const now = () => (performance.now() - t0) / 1000;

function setState(s, detail = "") {
  status.state = s;
  document.body.dataset.state = s;
  const el = $("state");
  el.textContent = detail ? `${s}: ${detail}` : s;
  el.className = "badge " + s;
}

function log(line) {
  const el = $("log");
  const t = new Date().toLocaleTimeString();
  el.textContent += `${t}  ${line}\n`;
  if (el.textContent.length > 20000) el.textContent = el.textContent.slice(-15000);
  el.scrollTop = el.scrollHeight;
}

function fmt(n, digits = 1) {
  return Number.isFinite(n) ? n.toFixed(digits) : "–";
}

function table(el, obj) {
  const rows = Object.entries(obj ?? {});
  el.replaceChildren(...(rows.length ? rows : [["(none)", ""]]).map(([k, v]) => {
    const tr = document.createElement("tr");
    const a = document.createElement("td");
    const b = document.createElement("td");
    a.textContent = k;
    b.textContent = typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : typeof v === "object" ? JSON.stringify(v) : String(v);
    tr.append(a, b);
    return tr;
  }));
}

function flatten(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj ?? {})) {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, `${prefix}${k}.`, out);
    else out[prefix + k] = v;
  }
  return out;
}

function plot(canvas, lines, unit) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const tEnd = now(), tStart = tEnd - WINDOW_S;
  let max = 0;
  for (const l of lines) for (const [t, v] of l.data) if (t >= tStart) max = Math.max(max, v);
  max = max > 0 ? max * 1.15 : 1;
  const left = 42, bottom = h - 18;
  g.strokeStyle = "#e4e7ec"; g.fillStyle = "#667085"; g.font = "11px system-ui"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = bottom - (bottom - 6) * (i / 4);
    g.beginPath(); g.moveTo(left, y); g.lineTo(w, y); g.stroke();
    g.fillText((max * i / 4).toFixed(max < 4 ? 2 : 0), 2, y + 4);
  }
  g.fillText(`-${WINDOW_S} s`, left, h - 4);
  g.fillText("now", w - 24, h - 4);
  for (const l of lines) {
    g.strokeStyle = l.color; g.lineWidth = 1.6; g.beginPath();
    let first = true;
    for (const [t, v] of l.data) {
      if (t < tStart) continue;
      const x = left + (w - left) * ((t - tStart) / WINDOW_S);
      const y = bottom - (bottom - 6) * (v / max);
      if (first) { g.moveTo(x, y); first = false; } else g.lineTo(x, y);
    }
    g.stroke();
  }
  void unit;
}

function trim(arr) {
  const cut = now() - WINDOW_S - 1;
  while (arr.length && arr[0][0] < cut) arr.shift();
}

function redraw() {
  $("echoed").textContent = String(status.echoed);
  // Everything the page's stream put on the wire: pings, heartbeats, messages, tests.
  $("echoed-s").textContent = `of ${stream ? stream.stats().datagramsSent : 0} sent`;
  $("beats").textContent = String(status.beats);
  document.body.dataset.echoed = String(status.echoed);
  document.body.dataset.rttSamples = String(status.rtt.length);
  const r = status.rtt;
  if (r.length) {
    const last = r[r.length - 1];
    $("rtt").textContent = `${fmt(last, 2)} ms`;
    $("rtt-s").textContent = `min ${fmt(Math.min(...r.slice(-600)), 2)} · avg ${fmt(r.slice(-600).reduce((a, b) => a + b, 0) / Math.min(r.length, 600), 2)} ms`;
  }
  const tin = series.tin.at(-1)?.[1], tout = series.tout.at(-1)?.[1];
  if (tin !== undefined) {
    $("tput").textContent = `${fmt(tin, 2)} Mbit/s`;
    $("tput-s").textContent = `out ${fmt(tout, 2)} Mbit/s`;
  }
  for (const a of Object.values(series)) trim(a);
  plot($("rtt-plot"), [{ data: series.rtt, color: "#2e6fdb" }], "ms");
  plot($("tput-plot"), [{ data: series.tout, color: "#a15c07" }, { data: series.tin, color: "#12805c" }], "Mbit/s");
}

let wt = null, stream = null;
const objectTransports = new Map();

async function objectTransport(kind, url, hash) {
  if (!objectTransports.has(kind)) {
    objectTransports.set(kind, (async () => {
      const session = await connect(url, { certificateHash: hash ?? undefined });
      const serializer = kind === "object-msgpack" ? new MsgPackSerializer() : new JsonSerializer();
      const t = new StructuredDatagramTransport(session, { serializer });
      t.register(1);
      (async () => {
        for (;;) {
          const o = await t.receive();
          log(`⇠ object id ${o.typeId} (${serializer.name}, ${o.payload.length} B): ${json.stringify(o.value)}`);
        }
      })().catch((e) => log(`objects (${kind}) ended: ${e.message}`));
      return t;
    })());
  }
  return objectTransports.get(kind);
}

function classify(d) {
  if (d.length === PING_LEN && PING.every((b, i) => d[i] === b)) {
    const v = new DataView(d.buffer, d.byteOffset, PING_LEN);
    if (v.getUint32(4) !== TAG) { status.foreignPings++; return; } // another client's
    const sentAt = v.getFloat64(12);
    const rtt = performance.now() - sentAt;
    status.rtt.push(rtt);
    if (status.rtt.length > 5000) status.rtt.splice(0, 1000);
    series.rtt.push([now(), rtt]);
    return;
  }
  if (isHeartbeat(d)) {
    status.beats++;
    return;
  }
  if (d.length > 0 && d[0] === 0x5a && d.every((b) => b === 0x5a)) return; // throughput test
  if (d.length > 1 && d[0] >= 1 && d[0] <= 64 && d[1] >= 0x20 && d[0] + 1 <= d.length) {
    try {
      const m = decodeStructured(d);
      if (/^[\x20-\x7e]+$/.test(m.type)) {
        log(`⇠ structured message "${m.type}": ${new TextDecoder().decode(m.payload)}`);
        return;
      }
    } catch { /* not one */ }
  }
  try {
    log(`⇠ JSON message: ${json.stringify(decodeJson(d), { separators: "compact" })}`);
  } catch {
    log(`⇠ ${d.length} bytes`);
  }
}

async function main() {
  setState("connecting");
  const cfg = await (await fetch("/config.json")).json();
  const url = `https://${location.hostname}:${cfg.port}${cfg.path}`;
  $("url").textContent = cfg.mode === "relay" ? `${url} (relay, channel ${cfg.channel})` : url;
  wt = await connect(url, { certificateHash: cfg.certificateHash ?? undefined });
  stream = new DatagramStream(wt, { sendQueue: 1024, recvQueue: 4096 });
  setState("connected");
  $("maxdg").textContent = `maxDatagramSize ${stream.maxDatagramSize}`;
  log(`connected to ${url} (maxDatagramSize ${stream.maxDatagramSize})`);
  wt.closed.then((info) => {
    setState("closed", `code ${info?.closeCode ?? 0} ${info?.reason ?? ""}`);
    log(`session closed: code ${info?.closeCode ?? 0} ${info?.reason ?? ""}`);
  }, (e) => { setState("failed", String(e)); log(`session failed: ${e}`); });

  // Echoes: every datagram back from the server.
  (async () => {
    for (;;) {
      const d = await stream.receive();
      status.echoed++;
      status.bytesIn += d.length;
      classify(d);
    }
  })().catch((e) => { if (!(e instanceof WtdError && e.code === "Closed")) log(`receive ended: ${e}`); });

  // A ping every 100 ms (priority 2: ahead of a throughput test's datagrams).
  let seq = 0;
  setInterval(() => {
    if (stream.isClosed) return;
    const p = new Uint8Array(PING_LEN);
    p.set(PING);
    const v = new DataView(p.buffer);
    v.setUint32(4, TAG);
    v.setUint32(8, seq++);
    v.setFloat64(12, performance.now());
    if (stream.trySend(p, 2, 1000)) status.sent++;
  }, 100);
  stream.startHeartbeat(1000);

  // Throughput per second, both ways (from the stream's own counters).
  let last = { t: now(), out: 0, in: 0 };
  setInterval(() => {
    const s = stream.stats();
    const t = now(), dt = Math.max(t - last.t, 1e-3);
    series.tout.push([t, ((s.bytesSent - last.out) * 8) / dt / 1e6]);
    series.tin.push([t, ((s.bytesReceived - last.in) * 8) / dt / 1e6]);
    last = { t, out: s.bytesSent, in: s.bytesReceived };
  }, 1000);

  // Statistics of both sides, once a second.
  setInterval(async () => {
    try {
      if (typeof wt.getStats === "function") {
        const st = await wt.getStats();
        table($("browser-stats"), flatten({ ...st, ...(st.datagrams ? { datagrams: st.datagrams } : {}) }));
      } else {
        table($("browser-stats"), { getStats: "not supported by this browser" });
      }
    } catch (e) {
      table($("browser-stats"), { getStats: String(e.message ?? e) });
    }
    try {
      const st = await (await fetch("/stats.json")).json();
      table($("server-stats"), st.server);
      const mine = st.sessions.filter((x) => x.origin === location.origin && x.path === cfg.path).at(-1);
      table($("session-stats"), mine ? { session: mine.id, dialect: mine.dialect, maxDatagramSize: mine.maxDatagramSize, ...mine.stats } : { session: "not found" });
    } catch (e) {
      table($("server-stats"), { error: String(e.message ?? e) });
    }
    const js = stream.stats();
    status.bytesOut = js.bytesSent;
  }, 1000);

  $("tt-run").onclick = async () => {
    const btn = $("tt-run");
    btn.disabled = true;
    const size = Math.min(Number($("tt-size").value) || 1000, stream.maxDatagramSize);
    const ms = (Number($("tt-secs").value) || 3) * 1000;
    $("tt-result").textContent = `running: ${size}-byte datagrams for ${ms / 1000} s…`;
    try {
      const r = await throughputTest(stream, ms, size, (p) => {
        $("tt-result").textContent = `${fmt(p.durationMs / 1000)} s: ${p.datagramsSent} datagrams, ${fmt(p.bitsPerSecond / 1e6, 2)} Mbit/s, ${fmt(p.datagramsPerSecond, 0)} dgram/s`;
      });
      $("tt-result").textContent = `${r.datagramsSent} datagrams of ${size} B in ${fmt(r.durationMs / 1000, 2)} s: ${fmt(r.bitsPerSecond / 1e6, 2)} Mbit/s, ${fmt(r.datagramsPerSecond, 0)} dgram/s, errors ${r.errors}`;
      log(`throughput test: ${$("tt-result").textContent}`);
    } catch (e) {
      $("tt-result").textContent = `failed: ${e.message}`;
    } finally {
      btn.disabled = false;
    }
  };

  $("msg-send").onclick = async () => {
    const kind = $("msg-kind").value;
    const text = $("msg-text").value;
    try {
      if (kind === "json") {
        const value = json.parse(text);
        stream.sendJson(value, 1);
        log(`⇢ JSON message: ${json.stringify(value, { separators: "compact" })}`);
      } else if (kind === "structured") {
        stream.sendStructured($("msg-type").value, text, 1);
        log(`⇢ structured message "${$("msg-type").value}": ${text}`);
      } else {
        const t = await objectTransport(kind, url, cfg.certificateHash);
        const value = json.parse(text);
        t.sendValue(1, value);
        log(`⇢ object id 1 (${t.serializer.name}): ${json.stringify(value)}`);
      }
    } catch (e) {
      log(`not sent: ${e.message}`);
    }
  };

  setInterval(redraw, 250);
}

main().catch((e) => {
  setState("failed", e.message ?? String(e));
  log(`failed: ${e.stack ?? e}`);
});
