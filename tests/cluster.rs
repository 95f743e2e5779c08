//! The clustered broadcaster (`wtdatagram::cluster`, issue 16) against a real
//! nats-server on a free loopback port: in-process nodes with exact counters, and three
//! `wtd serve --relay` processes with clients on each while NATS is killed and restarted.
//!
//! nats-server comes from `scripts/setup-nats.sh` (Debian's package; run by
//! `scripts/setup.sh`), or from `WTD_NATS_SERVER`. Without it these tests fail and say
//! so: they never pass without having run. Every wait is bounded by `LIMIT`, a safety
//! net and never an assertion about speed.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use wtdatagram::cluster::{wire, ChannelStats, Cluster, ClusterBroadcaster, ClusterConfig};
use wtdatagram::datagram::broadcast::DatagramBroadcaster;
use wtdatagram::{Client, ClientConfig, Error, Server, Session, Verify};

// ---------------------------------------------------------------------------------------
// nats-server on loopback

fn nats_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WTD_NATS_SERVER") {
        return p.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/local/sbin".into()]);
    for d in dirs {
        let p = d.join("nats-server");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "nats-server not found: run `bash scripts/setup-nats.sh` (Debian's nats-server) \
         or set WTD_NATS_SERVER to its path"
    );
}

/// A nats-server child process on 127.0.0.1, killed when dropped.
struct Nats {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
}

/// Start nats-server with `args` and `-p port` (-1: a free one); the port it listens on.
fn spawn_nats(args: &[String], port: i32) -> Option<(Child, u16)> {
    let mut child = Command::new(nats_bin())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning nats-server");
    // Drained for the server's whole life: a Go program dies of SIGPIPE when its stderr
    // is a closed pipe (as it would be at its next log line, e.g. a refused login).
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    let mut port = None;
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(p) = line
            .split("Listening for client connections on 127.0.0.1:")
            .nth(1)
        {
            port = Some(p.trim().parse().expect("port"));
        }
        if line.contains("Server is ready") {
            break;
        }
    }
    match port {
        Some(p) => Some((child, p)),
        None => {
            // It could not listen (e.g. the port of a restart is still held).
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

impl Nats {
    fn start() -> Nats {
        Nats::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Nats {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, port) = spawn_nats(&args, -1).expect("nats-server did not start listening");
        Nats {
            child: Some(child),
            port,
            args,
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port (bounded retries while the port is still held).
    fn restart(&mut self) {
        assert!(self.child.is_none(), "kill before restart");
        for _ in 0..50 {
            if let Some((c, p)) = spawn_nats(&self.args, self.port.into()) {
                assert_eq!(p, self.port);
                self.child = Some(c);
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("nats-server did not restart on port {}", self.port);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn line_reader(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

// ---------------------------------------------------------------------------------------
// in-process nodes

fn config(url: &str) -> ClusterConfig {
    ClusterConfig {
        urls: vec![url.to_string()],
        reconnect_delay_max: Duration::from_millis(200),
        ..Default::default()
    }
}

/// A node: a WebTransport server whose `n` client sessions are members of `local`.
struct Node {
    _server: Server,
    _client: Client,
    /// Client sides (what the "browsers" receive).
    clients: Vec<Session>,
    /// Server sides (kept alive: the broadcaster holds clones, but be explicit).
    _members: Vec<Session>,
    local: DatagramBroadcaster,
}

async fn node(n: usize) -> Node {
    let server = server();
    let client = client_for(&server);
    let local = DatagramBroadcaster::new();
    let (mut clients, mut members) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (ss, cs) = within(pair(&server, &client, &url(&server, &format!("/c/{i}")))).await;
        assert!(local.add_session(ss.clone()).unwrap());
        members.push(ss);
        clients.push(cs);
    }
    Node {
        _server: server,
        _client: client,
        clients,
        _members: members,
        local,
    }
}

/// Receive exactly `want` on `s` (any order), failing on anything else or a repeat.
async fn expect_exactly(s: &Session, want: &BTreeSet<Vec<u8>>) {
    let mut got = BTreeSet::new();
    while got.len() < want.len() {
        let d = within(s.recv_datagram()).await.expect("client receives");
        assert!(
            want.contains(d.as_ref()),
            "unexpected datagram {:?}",
            String::from_utf8_lossy(&d)
        );
        assert!(
            got.insert(d.to_vec()),
            "datagram {:?} delivered twice",
            String::from_utf8_lossy(&d)
        );
    }
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<Vec<u8>> {
    items.into_iter().map(String::into_bytes).collect()
}

/// Wait until `cb`'s counters satisfy `done`; fail at once if they pass `too_far`.
async fn stats_reach(
    cb: &ClusterBroadcaster,
    what: &str,
    done: impl Fn(&ChannelStats) -> bool,
    too_far: impl Fn(&ChannelStats) -> bool,
) -> ChannelStats {
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = cb.stats();
        assert!(
            !too_far(&s),
            "{what}: counters went past the expected values: {s:?}"
        );
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "safety limit: {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "safety limit: never saw {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Three broadcasters on one channel (two sharing a NATS connection), five broadcasts
/// each: every client gets all fifteen exactly once, and every counter is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_of_every_broadcaster_gets_each_broadcast_once() {
    let nats = Nats::start();
    let (a, b, c) = (node(2).await, node(2).await, node(1).await);
    let bus1 = within(Cluster::connect(config(&nats.url()))).await.unwrap();
    let bus2 = within(Cluster::connect(config(&nats.url()))).await.unwrap();
    let ca = bus1.join("room", a.local.clone()).await.unwrap();
    let cb = bus2.join("room", b.local.clone()).await.unwrap();
    let cc = bus1.join("room", c.local.clone()).await.unwrap();
    assert_eq!(ca.subject(), "wtd.bcast.room");
    for x in [&ca, &cb, &cc] {
        x.wait_bus_ready(Some(LIMIT)).await.expect("bus ready");
    }
    let mut want = Vec::new();
    for (name, x, members) in [("a", &ca, 2), ("b", &cb, 2), ("c", &cc, 1)] {
        for i in 0..5 {
            let d = format!("{name}-{i}");
            assert_eq!(x.broadcast(d.as_bytes(), 1, None).unwrap(), members);
            want.push(d);
        }
    }
    let want = set(want);
    for s in a.clients.iter().chain(&b.clients).chain(&c.clients) {
        expect_exactly(s, &want).await;
    }
    for (x, members) in [(&ca, 2u64), (&cb, 2), (&cc, 1)] {
        let s = stats_reach(
            x,
            "every message counted",
            |s| s.received == 10 && s.delivered_local == 15 * members,
            |s| s.received > 10 || s.delivered_local > 15 * members,
        )
        .await;
        assert_eq!(
            (s.broadcasts, s.published, s.bus_failures),
            (5, 5, 0),
            "{s:?}"
        );
        assert_eq!(s.delivered_from_bus, 10 * members, "{s:?}");
        assert_eq!(
            s.latency_samples, 10,
            "one latency sample per received: {s:?}"
        );
        assert!(s.latency_min_us <= s.latency_avg_us && s.latency_avg_us <= s.latency_max_us);
        assert_eq!(
            (s.received_invalid, s.received_gaps, s.reconnects),
            (0, 0, 0)
        );
        assert!(
            s.bus_connected && s.bus_ready && s.rtt_samples >= 1,
            "{s:?}"
        );
        assert!(
            s.rtt_min_us <= s.rtt_avg_us && s.rtt_avg_us <= s.rtt_max_us,
            "{s:?}"
        );
    }
    let st = bus1.stats();
    assert_eq!((st.connects, st.reconnects, st.disconnects), (1, 0, 0));
    assert!(st.connected);
    assert_eq!(
        st.max_payload,
        1024 * 1024,
        "nats-server's default max_payload"
    );
}

/// NATS goes away: local delivery goes on, publishes are counted as failed and the call
/// returns; NATS comes back: cross-node delivery resumes by itself and the receiver
/// counts what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_down_local_goes_on_then_cross_node_resumes() {
    let mut nats = Nats::start();
    let (a, b) = (node(2).await, node(1).await);
    let bus_a = within(Cluster::connect(config(&nats.url()))).await.unwrap();
    let bus_b = within(Cluster::connect(config(&nats.url()))).await.unwrap();
    let ca = bus_a.join("game.7", a.local.clone()).await.unwrap();
    let cb = bus_b.join("game.7", b.local.clone()).await.unwrap();
    for x in [&ca, &cb] {
        x.wait_bus_ready(Some(LIMIT)).await.expect("bus ready");
    }
    ca.broadcast(b"before", 1, None).unwrap();
    for s in a.clients.iter().chain(&b.clients) {
        expect_exactly(s, &set(["before".to_string()])).await;
    }

    nats.kill();
    // The connection state flips first, the readiness when the event has gone round.
    until("both nodes disconnected and not ready", || {
        !bus_a.is_connected() && !bus_b.is_connected() && !ca.is_bus_ready() && !cb.is_bus_ready()
    })
    .await;
    let during: Vec<String> = (0..5).map(|i| format!("during-{i}")).collect();
    for d in &during {
        assert_eq!(
            ca.broadcast(d.as_bytes(), 0, None).unwrap(),
            2,
            "local delivery"
        );
    }
    for s in &a.clients {
        expect_exactly(s, &set(during.clone())).await;
    }
    let s = ca.stats();
    assert_eq!(
        (s.broadcasts, s.published, s.bus_failures, s.bus_connected),
        (6, 1, 5, false),
        "{s:?}"
    );

    nats.restart();
    for x in [&ca, &cb] {
        x.wait_bus_ready(Some(LIMIT))
            .await
            .expect("bus ready again");
    }
    ca.broadcast(b"after", 1, None).unwrap();
    cb.broadcast(b"after-b", 1, None).unwrap();
    // B's client never sees the "during" broadcasts: the bus is at most once.
    for s in a.clients.iter().chain(&b.clients) {
        expect_exactly(s, &set(["after".to_string(), "after-b".to_string()])).await;
    }
    let s = stats_reach(
        &cb,
        "B received A's",
        |s| s.received == 2,
        |s| s.received > 2,
    )
    .await;
    assert_eq!(s.received_gaps, 5, "B knows it missed A's five: {s:?}");
    assert_eq!(s.reconnects, 1, "{s:?}");
    assert_eq!(bus_b.stats().reconnects, 1);
    assert_eq!(bus_b.stats().disconnects, 1);
    let s = stats_reach(
        &ca,
        "A received B's",
        |s| s.received == 1,
        |s| s.received > 1,
    )
    .await;
    assert_eq!((s.published, s.bus_failures), (2, 5), "{s:?}");
}

/// What is on the channel's subject but not from a broadcaster is counted and dropped;
/// messages of one publisher stay in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_messages_are_counted_and_dropped() {
    let nats = Nats::start();
    let a = node(1).await;
    let bus = within(Cluster::connect(config(&nats.url()))).await.unwrap();
    let ca = bus.join("feed", a.local.clone()).await.unwrap();
    ca.wait_bus_ready(Some(LIMIT)).await.unwrap();
    let raw = within(async_nats::connect(nats.url())).await.unwrap();
    let good = wire::encode(wire::Kind::Broadcast, 1, 0, 42, 1, wire::now_us(), b"ok");
    let mut v2 = good.to_vec();
    v2[0] = 2;
    for m in [Bytes::from_static(b"not ours"), Bytes::from(v2), good] {
        raw.publish("wtd.bcast.feed", m).await.unwrap();
    }
    raw.flush().await.unwrap();
    // One publisher's messages arrive in order: the valid one comes after the others.
    expect_exactly(&a.clients[0], &set(["ok".to_string()])).await;
    let s = stats_reach(
        &ca,
        "all three read",
        |s| s.received == 1,
        |s| s.received > 1,
    )
    .await;
    assert_eq!((s.received_invalid, s.delivered_from_bus), (2, 1), "{s:?}");
}

/// A message over the server's max_payload is delivered locally and counted as a bus
/// failure; one that fits (header included) is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_payload_stays_local() {
    let dir = std::env::temp_dir().join(format!("wtd-nats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("small.conf");
    std::fs::write(&conf, "max_payload: 100\n").unwrap();
    let nats = Nats::start_with(&["-c", conf.to_str().unwrap()]);
    let (a, b) = (node(1).await, node(1).await);
    let bus_a = within(Cluster::connect(config(&nats.url()))).await.unwrap();
    let bus_b = within(Cluster::connect(config(&nats.url()))).await.unwrap();
    assert_eq!(bus_a.stats().max_payload, 100);
    let ca = bus_a.join("big", a.local.clone()).await.unwrap();
    let cb = bus_b.join("big", b.local.clone()).await.unwrap();
    for x in [&ca, &cb] {
        x.wait_bus_ready(Some(LIMIT)).await.unwrap();
    }
    let big = vec![b'x'; 100 - wire::HEADER_LEN + 1];
    let fits = vec![b'y'; 100 - wire::HEADER_LEN];
    assert_eq!(ca.broadcast(&big, 1, None).unwrap(), 1);
    assert_eq!(ca.broadcast(&fits, 1, None).unwrap(), 1);
    let both: BTreeSet<Vec<u8>> = [big.clone(), fits.clone()].into();
    expect_exactly(&a.clients[0], &both).await;
    expect_exactly(&b.clients[0], &[fits].into()).await;
    let s = ca.stats();
    assert_eq!((s.published, s.bus_failures), (1, 1), "{s:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_an_absent_bus() {
    let nats = Nats::start();
    let bad = |e: Result<Cluster, Error>| match e {
        Err(Error::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };
    bad(Cluster::connect(ClusterConfig::default()).await);
    bad(Cluster::connect(config("http://[::1")).await);
    bad(Cluster::connect(ClusterConfig {
        subject_prefix: "a.*".into(),
        ..config(&nats.url())
    })
    .await);
    let bus = within(Cluster::connect(config(&nats.url()))).await.unwrap();
    for ch in ["", "a b", "a.>", "a..b", "x*"] {
        match bus.join(ch, DatagramBroadcaster::new()).await {
            Err(Error::InvalidArgument(_)) => {}
            other => panic!("channel {ch:?}: {other:?}"),
        }
    }
    let shut = DatagramBroadcaster::new();
    shut.shutdown();
    assert!(matches!(
        bus.join("x", shut).await,
        Err(Error::InvalidState(_))
    ));
    let cb = bus.join("x", DatagramBroadcaster::new()).await.unwrap();
    assert!(matches!(
        cb.broadcast(b"d", 3, None),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(cb.stats().broadcasts, 0, "a refused call sends nothing");

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let absent = format!("nats://127.0.0.1:{port}");
    match Cluster::connect(config(&absent)).await {
        Err(Error::Connect(_)) => {}
        other => panic!("expected Connect, got {other:?}"),
    }
    // One of several URLs answering is enough.
    let two = Cluster::connect(ClusterConfig {
        urls: vec![absent.clone(), nats.url()],
        ..config(&absent)
    })
    .await
    .expect("the live one of two URLs");
    assert!(two.is_connected());
    drop(two);
    // Not waiting for the bus: local delivery works from the start.
    let bus = Cluster::connect(ClusterConfig {
        wait_for_connection: false,
        ..config(&absent)
    })
    .await
    .unwrap();
    assert!(!bus.is_connected());
    let n = node(1).await;
    let cb = bus.join("x", n.local.clone()).await.unwrap();
    assert_eq!(cb.broadcast(b"solo", 1, None).unwrap(), 1);
    expect_exactly(&n.clients[0], &set(["solo".to_string()])).await;
    let s = cb.stats();
    assert_eq!((s.published, s.bus_failures, s.bus_ready), (0, 1, false));
}

// ---------------------------------------------------------------------------------------
// three `wtd serve --relay` processes

const WTD: &str = env!("CARGO_BIN_EXE_wtd");

/// A `wtd serve --nats URL --relay CHANNEL --max 2` process.
struct RelayNode {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
    hash: [u8; 32],
    name: String,
}

impl Drop for RelayNode {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl RelayNode {
    fn start(name: &str, nats: &str, channel: &str, max: usize) -> RelayNode {
        let mut child = Command::new(WTD)
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--nats",
                nats,
                "--relay",
                channel,
            ])
            .args(["--max", &max.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning wtd serve --relay");
        let lines = line_reader(child.stdout.take().expect("stdout"));
        let mut node = RelayNode {
            child,
            lines,
            port: 0,
            hash: [0; 32],
            name: name.into(),
        };
        let l = node.expect_line("listening ");
        let addr = l["listening https://".len()..].trim_end_matches('/');
        node.port = addr.rsplit(':').next().unwrap().parse().unwrap();
        let h = node.expect_line("cert-sha256 ");
        let h = &h["cert-sha256 ".len()..];
        for i in 0..32 {
            node.hash[i] = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
        }
        node.expect_line(&format!(
            "relay channel={channel} subject=wtd.bcast.{channel} "
        ));
        node
    }

    /// The next line that starts with `prefix` (earlier lines are skipped).
    fn expect_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("{}: no line {prefix:?} ({e})", self.name),
            }
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/relay", self.port)
    }
}

/// Parse `stats k=v ...` into (key, value) pairs.
fn stats_fields(line: &str) -> Vec<(String, u64)> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// Three relay nodes with two clients each. A datagram from any client reaches all six
/// clients exactly once; NATS is killed (each node then relays to its own clients only)
/// and restarted (all six again), and each node's final counters are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relay_nodes_exactly_once_across_a_nats_restart() {
    init_log();
    let mut nats = Nats::start();
    const NODES: usize = 3;
    const PER_NODE: usize = 2;
    let mut nodes: Vec<RelayNode> = (0..NODES)
        .map(|i| RelayNode::start(&format!("node{i}"), &nats.url(), "lobby", PER_NODE))
        .collect();
    for n in &mut nodes {
        n.expect_line("bus ready reconnects=0");
    }
    // Clients, and each node's word that it took them in.
    let mut clients: Vec<(usize, Client, Session)> = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        for _ in 0..PER_NODE {
            let c = Client::new(ClientConfig {
                verify: Verify::Hashes(vec![n.hash]),
                ..Default::default()
            })
            .unwrap();
            let s = within(c.open_session(&n.url())).await.expect("session");
            n.expect_line("session ");
            clients.push((i, c, s));
        }
    }

    // Round 1: every client says something; everyone hears everything once.
    let round = |tag: &str| -> Vec<String> {
        (0..NODES * PER_NODE)
            .map(|k| format!("{tag}-client{k}"))
            .collect()
    };
    let r1 = round("r1");
    for ((_, _, s), d) in clients.iter().zip(&r1) {
        s.send_datagram(d.as_bytes()).await.unwrap();
    }
    for (_, _, s) in &clients {
        expect_exactly(s, &set(r1.clone())).await;
    }

    // Round 2, NATS down: each node relays to its own clients only.
    nats.kill();
    for n in &mut nodes {
        n.expect_line("bus down");
    }
    let r2 = round("r2");
    for ((_, _, s), d) in clients.iter().zip(&r2) {
        s.send_datagram(d.as_bytes()).await.unwrap();
    }
    for (k, (i, _, s)) in clients.iter().enumerate() {
        let local: Vec<String> = clients
            .iter()
            .zip(&r2)
            .filter(|((j, _, _), _)| j == i)
            .map(|(_, d)| d.clone())
            .collect();
        assert_eq!(local.len(), PER_NODE, "client {k}");
        expect_exactly(s, &set(local)).await;
    }

    // Round 3, NATS back on the same port: cross-node delivery resumes by itself.
    nats.restart();
    for n in &mut nodes {
        n.expect_line("bus ready reconnects=1");
    }
    let r3 = round("r3");
    for ((_, _, s), d) in clients.iter().zip(&r3) {
        s.send_datagram(d.as_bytes()).await.unwrap();
    }
    for (_, _, s) in &clients {
        expect_exactly(s, &set(r3.clone())).await;
    }

    // Close every session; each node exits after its two (--max 2) and its last stats
    // line is exact: 6 broadcasts (2 failed while NATS was down), 8 received from the
    // other nodes (rounds 1 and 3), each delivered to 2 local members.
    for (_, _, s) in &clients {
        s.close(0, "done");
    }
    for n in &mut nodes {
        n.expect_line("closed ");
        n.expect_line("closed ");
        // The last stats line before the process exits (stdout closes).
        let mut last = String::new();
        while let Ok(l) = n.lines.recv_timeout(LIMIT) {
            if l.starts_with("stats ") {
                last = l;
            }
        }
        let f = stats_fields(&last);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("broadcasts"), Some(6), "{}: {last}", n.name);
        assert_eq!(get("published"), Some(4), "{}: {last}", n.name);
        assert_eq!(get("bus_failures"), Some(2), "{}: {last}", n.name);
        assert_eq!(get("received"), Some(8), "{}: {last}", n.name);
        assert_eq!(
            get("delivered_local"),
            Some(((6 + 8) * PER_NODE) as u64),
            "{}: {last}",
            n.name
        );
        assert_eq!(get("reconnects"), Some(1), "{}: {last}", n.name);
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(st) = n.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "{} did not exit", n.name);
            thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{}: {status}", n.name);
    }
}

/// `--nats` and `--relay` go together; a bad channel or an absent bus is a clear error.
#[test]
fn relay_options_are_checked() {
    let run = |args: &[&str]| {
        let out = Command::new(WTD)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running wtd");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base = ["serve", "--bind", "127.0.0.1:0"];
    let (code, err) = run(&[&base[..], &["--nats", "nats://127.0.0.1:1"]].concat());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--nats and --relay go together"), "{err}");
    let (code, err) = run(&[&base[..], &["--relay", "x"]].concat());
    assert_eq!(code, Some(2), "{err}");
    let nats = Nats::start();
    let url = nats.url();
    let (code, err) = run(&[&base[..], &["--nats", &url, "--relay", "a b"]].concat());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--relay: "), "{err}");
    // Nothing listens on port 1 of loopback.
    let (code, err) = run(&[&base[..], &["--nats", "nats://127.0.0.1:1", "--relay", "x"]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("connecting to NATS at nats://127.0.0.1:1"),
        "{err}"
    );
}

/// What the server demands is what the cluster sends: user and password, a token, and
/// TLS with a CA of our own (a certificate the system would not trust).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_tls_reach_the_server() {
    use wtdatagram::cluster::{ClusterAuth, ClusterTls};
    let refused = |r: Result<Cluster, Error>| match r {
        Err(Error::Connect(m)) | Err(Error::Tls(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let up = async |cfg: ClusterConfig| {
        let bus = within(Cluster::connect(cfg)).await.expect("connects");
        let cb = bus.join("auth", DatagramBroadcaster::new()).await.unwrap();
        cb.wait_bus_ready(Some(LIMIT)).await.expect("bus ready");
        assert!(bus.is_connected());
    };

    let nats = Nats::start_with(&["--user", "wtd", "--pass", "s3cret"]);
    refused(Cluster::connect(config(&nats.url())).await);
    refused(
        Cluster::connect(ClusterConfig {
            auth: ClusterAuth::UserPassword {
                user: "wtd".into(),
                password: "wrong".into(),
            },
            ..config(&nats.url())
        })
        .await,
    );
    up(ClusterConfig {
        auth: ClusterAuth::UserPassword {
            user: "wtd".into(),
            password: "s3cret".into(),
        },
        ..config(&nats.url())
    })
    .await;
    drop(nats);

    let nats = Nats::start_with(&["--auth", "t0ken"]);
    refused(Cluster::connect(config(&nats.url())).await);
    up(ClusterConfig {
        auth: ClusterAuth::Token("t0ken".into()),
        ..config(&nats.url())
    })
    .await;
    drop(nats);

    // A CA and a server certificate for 127.0.0.1, as PEM files.
    let dir = std::env::temp_dir().join(format!("wtd-nats-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (ca_pem, cert_pem, key_pem) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let nats = Nats::start_with(&[
        "--tls",
        "--tlscert",
        cert_pem.to_str().unwrap(),
        "--tlskey",
        key_pem.to_str().unwrap(),
    ]);
    let tls_url = format!("tls://127.0.0.1:{}", nats.port);
    // Our CA is not among the system's roots.
    refused(Cluster::connect(config(&tls_url)).await);
    up(ClusterConfig {
        tls: ClusterTls {
            required: true,
            root_certificates: Some(ca_pem.clone()),
            ..Default::default()
        },
        ..config(&tls_url)
    })
    .await;
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}
