//! The clustered broadcaster (`wtdatagram::cluster`, issue 16) against a real
//! nats-server on a free loopback port (`common::nats`): in-process nodes with exact
//! counters, NATS killed and restarted, credentials and TLS. The three `wtd serve
//! --relay` processes are in `crates/cli/tests/relay.rs` (tests of the `wtd` package,
//! which is what builds that binary for tests).
//!
//! Every wait is bounded by `LIMIT`, a safety net and never an assertion about speed.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::nats::{expect_exactly, set, Nats};
use common::*;
use wtdatagram::cluster::{wire, ChannelStats, Cluster, ClusterBroadcaster, ClusterConfig};
use wtdatagram::datagram::broadcast::DatagramBroadcaster;
use wtdatagram::{Client, Error, Server, Session};

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
