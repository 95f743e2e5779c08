//! The JS module (bindings/js) end to end in real headless browsers, Chromium and
//! Firefox ESR, against our Rust server (tests/interop/js_e2e.html drives the page):
//!
//! - reliable delivery through a lossy UDP relay (20 % of QUIC 1-RTT packets dropped
//!   each way, for both browsers): n messages each way between the JS
//!   `ReliabilityLayer` and ours with the default window, each delivered exactly once,
//!   one "delivered" report per message on both sides;
//! - structured objects both ways (JSON with Python's separators, and MessagePack): the
//!   bytes the page sends are checked here, our answers are checked by the page;
//! - the datagram stream: heartbeats, JSON and structured messages both ways, then our
//!   close code and reason as the page sees them;
//! - what each browser does differently (printed, and asserted where it is a contract).

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use browser::{hex, Browser, Kind, PageHost, Signals};
use bytes::Bytes;
use tokio::net::UdpSocket;
use wtdatagram::datagram::reliability::{DeliveryOutcome, ReliabilityConfig, ReliabilityLayer};
use wtdatagram::datagram::structured::{
    JsonSerializer, MsgPackSerializer, Serializer, StructuredDatagramTransport, TypeRegistry, Value,
};
use wtdatagram::datagram::{is_heartbeat, DatagramStream, StreamConfig};
use wtdatagram::{Error, Server, ServerConfig, Session};

const PAGE: &str = include_str!("interop/js_e2e.html");
/// Reliable messages each way.
const N: usize = 100;
const OVERALL: Duration = Duration::from_secs(120);
/// Share of 1-RTT packets the relay drops, per mille (both browsers, both ways).
const LOSS_PERMILLE: u64 = 200;

/// A UDP relay on 127.0.0.1 in front of `server` that drops LOSS_PERMILLE of the QUIC
/// short-header (1-RTT) packets each way (seeded, so every run draws the same sequence);
/// the handshake passes untouched. Like a NAT, it gives each client address its own
/// socket towards the server: Firefox opens two QUIC connections for one WebTransport
/// (from two ports, at the same moment; one of them carries the session), and a relay
/// that sent all of the server's packets to the last client address heard from fed one
/// connection's packets to the other's socket for seconds at a time.
struct Relay {
    addr: SocketAddr,
    dropped: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    clients: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The per-client tasks live in the JoinSet this task owns: they end with it.
        self.task.abort();
    }
}

/// Client addresses the relay serves at most (Firefox uses two per WebTransport).
const RELAY_CLIENTS: usize = 8;

async fn lossy_relay(server: SocketAddr) -> Relay {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind relay"));
    let addr = front.local_addr().unwrap();
    let dropped = Arc::new(AtomicU64::new(0));
    let forwarded = Arc::new(AtomicU64::new(0));
    let clients = Arc::new(AtomicU64::new(0));
    // One seeded xorshift64* sequence for every packet, both ways.
    let seed = Arc::new(parking_lot::Mutex::new(0x9e37_79b9_7f4a_7c15_u64));
    let lose = move |packet: &[u8]| {
        let mut s = seed.lock();
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        let r = s.wrapping_mul(0x2545_f491_4f6c_dd1d) % 1000;
        packet.first().is_some_and(|b| b & 0x80 == 0) && r < LOSS_PERMILLE
    };
    let (d, f, c) = (dropped.clone(), forwarded.clone(), clients.clone());
    let task = tokio::spawn(async move {
        let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut towards_clients = tokio::task::JoinSet::new();
        let mut a = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = front.recv_from(&mut a).await else {
                return;
            };
            let back = match backs.get(&from) {
                Some(b) => b.clone(),
                None if backs.len() >= RELAY_CLIENTS => continue,
                None => {
                    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind relay"));
                    back.connect(server).await.expect("connect relay");
                    backs.insert(from, back.clone());
                    c.fetch_add(1, Relaxed);
                    let (front, back2, lose, d, f) = (
                        front.clone(),
                        back.clone(),
                        lose.clone(),
                        d.clone(),
                        f.clone(),
                    );
                    towards_clients.spawn(async move {
                        let mut b = vec![0u8; 65536];
                        while let Ok(n) = back2.recv(&mut b).await {
                            if lose(&b[..n]) {
                                d.fetch_add(1, Relaxed);
                                continue;
                            }
                            f.fetch_add(1, Relaxed);
                            let _ = front.send_to(&b[..n], from).await;
                        }
                    });
                    back
                }
            };
            if lose(&a[..n]) {
                d.fetch_add(1, Relaxed);
                continue;
            }
            f.fetch_add(1, Relaxed);
            let _ = back.send(&a[..n]).await;
        }
    });
    Relay {
        addr,
        dropped,
        forwarded,
        clients,
        task,
    }
}

/// What our side saw, per scenario.
#[derive(Debug, Default)]
struct Seen {
    reliable: Option<String>,
    structured_json: Option<Vec<String>>,
    structured_msgpack: Option<Vec<String>>,
    stream: Option<String>,
    quirks: Option<String>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Our side of the reliable scenario: N messages each way, all delivered exactly once.
/// The session closes only once both sides have everything: ours (every report, every
/// page message) and the page's, which it signals over HTTP (`reliable-done`). Until
/// then each side keeps acknowledging: a side that closed as soon as it had all it
/// needed would cut off the retransmissions (and so the ACKs) the other still waits for.
async fn reliable(session: Session, signals: Arc<Signals>) -> String {
    // The default window (256): the layer paces its DATA (a transmission budget clocked
    // by ACKs), so Firefox, which keeps only the newest 10 datagrams of a packet (see
    // the quirks scenario), is never sent a retransmission round as one packet. A short
    // ACK timeout keeps the test quick; the retries outlast QUIC's own stalls at 20 %
    // loss (its probe timeouts back off for seconds while attempts go on).
    let layer = ReliabilityLayer::new(
        &session,
        ReliabilityConfig {
            ack_timeout: Duration::from_millis(150),
            max_retries: 40,
            ..Default::default()
        },
    )
    .expect("reliability layer");
    let rx = layer.clone();
    let receiving = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < N {
            got.push(text(&rx.receive(None).await.expect("receive")));
        }
        got
    });
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            layer
                .send(format!("rs-{i}").as_bytes())
                .await
                .expect("send"),
        );
    }
    let mut delivered = Vec::new();
    for _ in 0..N {
        let r = layer.next_report(None).await.expect("report");
        assert_eq!(r.outcome, DeliveryOutcome::Delivered, "{r:?}");
        delivered.push(r.id);
    }
    delivered.sort_unstable();
    assert_eq!(delivered, ids, "one delivered report per message");
    let mut got = receiving.await.expect("receiver");
    assert!(
        signals.wait("reliable-done", OVERALL).await,
        "the page never had all of its reports and our messages"
    );
    got.sort();
    let mut want: Vec<String> = (0..N).map(|i| format!("js-{i}")).collect();
    want.sort();
    assert_eq!(got, want, "every JS message exactly once");
    // A duplicate delivery would show up now.
    let extra = layer.receive(Some(Duration::from_millis(300))).await;
    assert!(
        matches!(extra, Err(Error::Timeout)),
        "a message after the last one: {extra:?}"
    );
    let s = layer.stats();
    session.close(0, "reliable done");
    format!(
        "{N}/{N} each way exactly once; ours: retransmissions {}, duplicates received {}",
        s.retransmissions, s.duplicates_received
    )
}

/// Our side of the structured scenario: check the page's bytes, answer each object
/// with type 2 { "echo": <what we decoded>, "by": "rust" }.
async fn structured(
    session: Session,
    serializer: Arc<dyn Serializer>,
    want: [&str; 2],
    msgpack: bool,
) -> Vec<String> {
    let mut reg = TypeRegistry::new();
    reg.register_untyped(1).unwrap();
    reg.register_untyped(2).unwrap();
    let t = StructuredDatagramTransport::new(&session, serializer, reg, 100).expect("transport");
    let mut seen = Vec::new();
    for want in want {
        let o = t.receive_obj(None).await.expect("object from the page");
        let got = if msgpack {
            hex(&o.payload)
        } else {
            text(&o.payload)
        };
        assert_eq!(got, want, "type id {}: the page's bytes", o.type_id);
        seen.push(format!("{}:{}", o.type_id, got));
        let answer = Value::Map(vec![
            (Value::String("echo".into()), o.value.clone()),
            (Value::String("by".into()), Value::String("rust".into())),
        ]);
        t.send_value(2, &answer).expect("answer");
    }
    let _ = session.closed().await;
    seen
}

/// Our side of the stream scenario: heartbeats, JSON and a structured message both
/// ways; when the page says "done", we close with 4242 "bye from wtd".
async fn stream(session: Session) -> String {
    let s = DatagramStream::new(&session, StreamConfig::default()).expect("stream");
    s.start_heartbeat(Duration::from_millis(100))
        .expect("heartbeat");
    let (mut beats, mut json, mut chat, mut done) = (0u32, None, None, false);
    let mut answered = false;
    while !(done && beats >= 3 && json.is_some() && chat.is_some()) {
        let d: Bytes = s.receive(None).await.expect("stream datagram");
        // Browsers drop datagrams that arrive before the page reads (Chromium: measured
        // by the quirks scenario), so ours go out once the page's first one is here.
        if !answered {
            answered = true;
            s.send_json(&serde_json::json!({"from": "rust", "n": [1, 2]}), 0, None)
                .expect("send json");
            s.send_structured("chat", b"hello from rust", 0, None)
                .expect("send structured");
        }
        if is_heartbeat(&d) {
            let secs: u64 = text(&d[10..]).parse().expect("HEARTBEAT:<unix secs>");
            assert!(secs > 1_700_000_000);
            beats += 1;
        } else if d.first() == Some(&b'{') {
            json = Some(text(&d));
        } else if d.starts_with(b"\x04chat") {
            chat = Some(text(&d[5..]));
        } else if &d[..] == b"\x04done" {
            done = true;
        } else {
            panic!("unexpected datagram on /stream: {d:?}");
        }
    }
    // The page's send_json: Python's compact json.dumps, non-ASCII escaped.
    assert_eq!(
        json.as_deref(),
        Some(r#"{"from":"js","pos":[1.5,2.0],"name":"Zo\u00eb"}"#)
    );
    assert_eq!(chat.as_deref(), Some("hello from js"));
    s.stop_heartbeat();
    session.close(4242, "bye from wtd");
    format!("page heartbeats {beats}, JSON and structured message received; closed with 4242")
}

/// Send `tag` every 100 ms until sending fails (the session closed) — the page reads a
/// burst up to the first `tag`, with no guess at how long the burst takes to arrive.
async fn repeat_every_100ms(session: &Session, tag: &[u8]) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if session.send_datagram(tag).await.is_err() {
            return;
        }
    }
}

async fn quirks(session: Session) -> String {
    // When the page asks (its reader is attached): a burst of 50 numbered 8-byte
    // datagrams, as fast as quinn takes them (so it packs them into one or two packets),
    // then "end1" until the page asks for the next burst.
    let ask = session
        .recv_datagram()
        .await
        .expect("the page's request for a burst");
    assert_eq!(&ask[..], b"burst");
    for i in 0..50u8 {
        session.send_datagram(&[i; 8]).await.expect("burst");
    }
    let ask = tokio::select! {
        d = session.recv_datagram() => d.expect("the page's request for the big burst"),
        _ = repeat_every_100ms(&session, b"end1") => panic!("the session closed"),
    };
    assert_eq!(&ask[..], b"big");
    // The same with 900-byte datagrams: one per packet. Then "end2" until the close.
    for i in 0..50u8 {
        session.send_datagram(&[i; 900]).await.expect("big burst");
    }
    let close = tokio::select! {
        c = session.closed() => c,
        _ = repeat_every_100ms(&session, b"end2") => session.closed().await,
    };
    let s = session.stats();
    format!(
        "datagrams received {} besides the requests for the bursts (the page's oversize write never came); close {close:?}",
        s.datagrams_received - 2
    )
}

async fn run(kind: Kind) {
    let name = kind.name_and_major();
    let deadline = Instant::now() + OVERALL;
    let server = Arc::new(Server::bind(ServerConfig::default()).expect("bind server"));
    let relay = lossy_relay(server.local_addr()).await;
    let (host, mut results) = PageHost::start(vec![("/", PAGE.to_string())]).await;
    let signals = host.signals.clone();
    let seen = Arc::new(parking_lot::Mutex::new(Seen::default()));
    let mut tasks = Vec::new();
    let accept = {
        let (server, seen, signals) = (server.clone(), seen.clone(), signals.clone());
        tokio::spawn(async move {
            while let Some(req) = server.accept().await {
                let path = req.path().to_string();
                eprintln!(
                    "[server] request {path} from {} {:?}",
                    req.remote_addr(),
                    req.info()
                        .headers
                        .iter()
                        .find(|h| h.0 == "user-agent")
                        .map(|h| &h.1)
                );
                let session = req.accept().await.expect("accept");
                eprintln!("[server] session {} on {path}", session.id());
                let (seen, signals) = (seen.clone(), signals.clone());
                let task = tokio::spawn(async move {
                    match path.as_str() {
                        "/reliable" => {
                            seen.lock().reliable = Some(reliable(session, signals).await)
                        }
                        "/structured" => {
                            let v = structured(
                                session,
                                Arc::new(JsonSerializer::new()),
                                [
                                    r#"{"id": 7, "name": "Zo\u00eb", "pos": [1.5, -2.0]}"#,
                                    r#"{"tick": 1024, "big": 9223372036854775808, "ok": true, "nothing": null}"#,
                                ],
                                false,
                            )
                            .await;
                            seen.lock().structured_json = Some(v);
                        }
                        "/structured-msgpack" => {
                            let v = structured(
                                session,
                                Arc::new(MsgPackSerializer),
                                [
                                    "83a2696407a46e616d65a45a6fc3aba3706f7392cb3ff8000000000000cbc000000000000000",
                                    "84a47469636bcd0400a3626967cf8000000000000000a26f6bc3a76e6f7468696e67c0",
                                ],
                                true,
                            )
                            .await;
                            seen.lock().structured_msgpack = Some(v);
                        }
                        "/stream" => seen.lock().stream = Some(stream(session).await),
                        "/quirks" => seen.lock().quirks = Some(quirks(session).await),
                        other => panic!("unexpected path {other}"),
                    }
                });
                if task.is_finished() {
                    task.await.expect("scenario");
                } else {
                    tokio::spawn(async move { task.await.expect("scenario") });
                }
            }
        })
    };
    tasks.push(accept);
    let url = format!(
        "http://{}/?port={}&relay={}&hash={}&n={N}",
        host.addr,
        server.local_addr().port(),
        relay.addr.port(),
        hex(&server.cert_sha256())
    );
    eprintln!("[test] {name}: opening {url}");
    let b = Browser::launch(kind, &url);
    let body = match tokio::time::timeout(
        deadline.saturating_duration_since(Instant::now()),
        results.recv(),
    )
    .await
    {
        Ok(Some(body)) => body,
        Ok(None) => panic!("the page host stopped"),
        Err(_) => panic!("the page did not report within {OVERALL:?}"),
    };
    eprintln!("[test] {name}: page result: {body}");
    let r: serde_json::Value = serde_json::from_str(&body).expect("result JSON");
    assert_eq!(r["ok"], 1, "page failed: {}", r["error"]);
    // Our side finishes once the page's sessions are closed.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        {
            let s = seen.lock();
            if s.reliable.is_some()
                && s.structured_json.is_some()
                && s.structured_msgpack.is_some()
                && s.stream.is_some()
                && s.quirks.is_some()
            {
                break;
            }
        }
        assert!(
            Instant::now() < until,
            "our side did not finish: {:?}",
            seen.lock()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(b);
    for t in tasks {
        t.abort();
    }
    let seen = seen.lock();
    eprintln!("[test] {name}: our side: {seen:?}");
    eprintln!(
        "[test] {name}: relay dropped {} of {} 1-RTT and handshake packets; QUIC connections through it: {}",
        relay.dropped.load(Relaxed),
        relay.dropped.load(Relaxed) + relay.forwarded.load(Relaxed),
        relay.clients.load(Relaxed)
    );

    // Reliable: the page's view.
    let rel = &r["reliable"];
    assert_eq!(rel["sent"], N);
    assert_eq!(rel["delivered"], N);
    assert_eq!(rel["reportIdsMatch"], true);
    assert_eq!(rel["received"], N);
    assert_eq!(rel["distinct"], N, "a message delivered twice");
    assert_eq!(rel["allExpected"], true);
    assert_eq!(
        rel["extra"], 0,
        "a duplicate delivery after the last message"
    );
    assert!(relay.dropped.load(Relaxed) > 0, "the relay dropped nothing");
    assert!(
        rel["stats"]["retransmissions"].as_u64().unwrap_or(0) > 0,
        "losses were repaired by retransmissions: {}",
        rel["stats"]
    );
    // What the pacing is for, measured: a burst of 50 datagrams packed by quinn into
    // two packets; Firefox keeps the newest 10 of a packet. The same burst of 900-byte
    // datagrams (one per packet) gets through: the limit is per packet, not per burst.
    let burst = r["quirks"]["burstOf50Received"].as_u64().unwrap_or(0);
    let big = r["quirks"]["bigBurstOf50Received"].as_u64().unwrap_or(0);
    if kind == Kind::Chromium {
        assert_eq!(burst, 50, "Chromium keeps a whole burst: {}", r["quirks"]);
        assert_eq!(big, 50, "Chromium keeps a whole burst: {}", r["quirks"]);
    } else {
        assert!(
            burst < 50,
            "Firefox kept a whole burst of 50 small datagrams: {}",
            r["quirks"]
        );
        assert!(
            big > 10,
            "Firefox kept at most 10 of 50 packets: {}",
            r["quirks"]
        );
    }
    // Structured: our answers, as the page decoded them (exact mode: floats stay floats).
    for key in ["structured", "msgpack"] {
        let answers = &r[key]["answers"];
        assert_eq!(
            answers[0]["value"],
            r#"{"echo":{"id":7,"name":"Zo\u00eb","pos":[1.5,-2.0]},"by":"rust"}"#,
            "{key}"
        );
        assert_eq!(
            answers[1]["value"],
            r#"{"echo":{"tick":1024,"big":9223372036854775808,"ok":true,"nothing":null},"by":"rust"}"#,
            "{key}"
        );
        assert_eq!(answers[0]["typeId"], 2);
        assert_eq!(r[key]["stats"]["received"], 2);
        assert_eq!(r[key]["stats"]["decodeErrors"], 0);
    }
    // Stream: our heartbeats, JSON and structured message; our close code and reason.
    let st = &r["stream"];
    assert!(st["heartbeats"].as_u64().unwrap_or(0) >= 3, "{st}");
    assert_eq!(st["json"], r#"{"from":"rust","n":[1,2]}"#);
    assert_eq!(st["structured"]["type"], "chat");
    assert_eq!(st["structured"]["payload"], "hello from rust");
    assert_eq!(st["wtClosed"]["closeCode"], 4242, "{st}");
    assert_eq!(st["wtClosed"]["reason"], "bye from wtd");
    assert_eq!(
        st["closedBy"]["closeCode"], 4242,
        "the module's Closed error carries the code"
    );
    // Quirks: the oversize write never reached us; the page's close did.
    assert!(
        seen.quirks
            .as_deref()
            .unwrap_or("")
            .starts_with("datagrams received 0 "),
        "{:?}",
        seen.quirks
    );
    assert!(
        seen.quirks.as_deref().unwrap_or("").contains("code: 7"),
        "{:?}",
        seen.quirks
    );
    println!(
        "{name}: JS module end to end: {}; page: retransmissions {}; QUIC connections for the /reliable WebTransport: {}; quirks: {}",
        seen.reliable.as_deref().unwrap_or(""),
        rel["stats"]["retransmissions"],
        relay.clients.load(Relaxed),
        r["quirks"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_module_in_chromium() {
    run(Kind::Chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_module_in_firefox() {
    run(Kind::Firefox).await;
}
