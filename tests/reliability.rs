//! The datagram reliability layer (`wtdatagram::datagram::reliability`) across real
//! sessions: a lossy UDP relay (20% loss each way), a peer that never acknowledges, a
//! peer speaking pywebtransport's framing by hand, sequence wrap, window backpressure,
//! the one-owner rule and close.
//!
//! Every wait is bounded by the safety limit; nothing asserts on elapsed time.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::net::UdpSocket;
use wtdatagram::datagram::reliability::{
    encode_ack, encode_data, DeliveryOutcome, DeliveryReport, ReliabilityConfig, ReliabilityLayer,
};
use wtdatagram::datagram::{DatagramStream, StreamConfig};
use wtdatagram::{Client, Error, Server, Session};

struct Loopback {
    ss: Session,
    cs: Session,
    _client: Client,
    _server: Server,
}

async fn loopback(path: &str) -> Loopback {
    let server = server();
    let client = client_for(&server);
    let url = url(&server, path);
    let (ss, cs) = within(pair(&server, &client, &url)).await;
    Loopback {
        ss,
        cs,
        _client: client,
        _server: server,
    }
}

/// A UDP relay on 127.0.0.1 between one client and `server`, dropping `loss_permille`
/// of the packets in each direction (seeded xorshift PRNG). Stops when dropped, or after
/// `lifetime` at the latest.
struct Relay {
    addr: SocketAddr,
    dropped: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn lossy_relay(
    server: SocketAddr,
    loss_permille: u64,
    seed: u64,
    lifetime: Duration,
) -> Relay {
    let front = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
    let back = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
    back.connect(server).await.expect("connect relay");
    let addr = front.local_addr().unwrap();
    let dropped = Arc::new(AtomicU64::new(0));
    let forwarded = Arc::new(AtomicU64::new(0));
    let (d, f) = (dropped.clone(), forwarded.clone());
    let task = tokio::spawn(async move {
        let run = async {
            let mut state = seed | 1;
            let mut lose = move || {
                // xorshift64
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state % 1000 < loss_permille
            };
            let mut client: Option<SocketAddr> = None;
            let mut b1 = vec![0u8; 65536];
            let mut b2 = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = front.recv_from(&mut b1) => {
                        let Ok((n, from)) = r else { continue };
                        client = Some(from);
                        if lose() {
                            d.fetch_add(1, Relaxed);
                        } else {
                            let _ = back.send(&b1[..n]).await;
                            f.fetch_add(1, Relaxed);
                        }
                    }
                    r = back.recv(&mut b2) => {
                        let Ok(n) = r else { continue };
                        let Some(c) = client else { continue };
                        if lose() {
                            d.fetch_add(1, Relaxed);
                        } else {
                            let _ = front.send_to(&b2[..n], c).await;
                            f.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
        };
        let _ = tokio::time::timeout(lifetime, run).await;
    });
    Relay {
        addr,
        dropped,
        forwarded,
        task,
    }
}

/// Message `i` of `tag`: `"{tag}-{i}:"` padded with dots to `PAD` bytes, so that each
/// DATA frame fills most of a QUIC packet (the relay's losses then hit single messages).
fn msg(tag: &str, i: usize) -> String {
    let mut m = format!("{tag}-{i}:");
    while m.len() < PAD {
        m.push('.');
    }
    m
}

const PAD: usize = 900;

/// Send `n` messages `msg(tag, i)`; returns the ids in order.
async fn send_all(layer: &ReliabilityLayer, tag: &str, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = within(layer.send(msg(tag, i).as_bytes()))
            .await
            .expect("send");
        ids.push(id);
    }
    ids
}

/// Receive `n` messages; each must be one of `msg(tag, 0..n)` exactly, and none twice.
async fn receive_all(layer: &ReliabilityLayer, tag: &str, n: usize) -> HashSet<String> {
    let mut got = HashSet::new();
    for _ in 0..n {
        let d = layer.receive(Some(LIMIT)).await.expect("receive");
        let s = String::from_utf8(d.to_vec()).expect("utf-8");
        let i: usize = s
            .strip_prefix(&format!("{tag}-"))
            .and_then(|r| r.split(':').next())
            .unwrap_or_else(|| panic!("unexpected message {s:?}"))
            .parse()
            .expect("index");
        assert!(i < n, "unexpected index in {s:?}");
        assert_eq!(s, msg(tag, i), "content of message {i}");
        assert!(got.insert(s.clone()), "{s:?} delivered twice");
    }
    got
}

/// Take `n` reports; all Delivered, with exactly the ids in `ids`.
async fn expect_delivered(layer: &ReliabilityLayer, ids: &[u64]) -> Vec<DeliveryReport> {
    let mut reports = Vec::new();
    let mut seen = HashSet::new();
    for _ in ids {
        let r = layer.next_report(Some(LIMIT)).await.expect("report");
        assert_eq!(r.outcome, DeliveryOutcome::Delivered, "{r:?}");
        assert!(r.attempts >= 1);
        assert!(seen.insert(r.id), "two reports for {}", r.id);
        reports.push(r);
    }
    let want: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(seen, want, "report ids");
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_relay_every_message_exactly_once() {
    const N: usize = 300;
    let server = server();
    let relay = lossy_relay(
        server.local_addr(),
        200,
        0x5eed_1234_abcd,
        Duration::from_secs(120),
    )
    .await;
    let client = client_for(&server);
    let url = format!("https://127.0.0.1:{}/lossy", relay.addr.port());
    // The handshake and CONNECT go through the lossy relay too (QUIC retransmits them).
    let (ss, cs) = within(pair(&server, &client, &url)).await;
    let cfg = ReliabilityConfig {
        ack_timeout: Duration::from_millis(200),
        // High enough to outlast the seconds-long stalls QUIC's loss recovery
        // (exponential probe backoff) can have at 20% loss: attempts burn during them.
        max_retries: 50,
        // Bounds the retransmission volume on the lossy (so congestion-controlled) path.
        window: 64,
        ..Default::default()
    };
    let a = ReliabilityLayer::new(&cs, cfg.clone()).expect("client layer");
    let b = ReliabilityLayer::new(&ss, cfg).expect("server layer");

    let (ids_a, ids_b, got_b, got_a) = tokio::join!(
        send_all(&a, "c2s", N),
        send_all(&b, "s2c", N),
        receive_all(&b, "c2s", N),
        receive_all(&a, "s2c", N),
    );
    assert_eq!(got_a.len(), N);
    assert_eq!(got_b.len(), N);
    assert_eq!(ids_a, (0..N as u64).collect::<Vec<_>>());
    assert_eq!(ids_b, (0..N as u64).collect::<Vec<_>>());
    let (ra, rb) = tokio::join!(expect_delivered(&a, &ids_a), expect_delivered(&b, &ids_b));

    // Nothing is delivered twice, even later (retransmissions still in the network).
    for l in [&a, &b] {
        assert!(matches!(
            l.receive(Some(Duration::from_millis(300))).await,
            Err(Error::Timeout)
        ));
        assert!(l.try_next_report().is_none());
    }
    let (sa, sb) = (a.stats(), b.stats());
    let most = |r: &[DeliveryReport]| r.iter().map(|r| r.attempts).max().unwrap_or(0);
    eprintln!(
        "relay: {} dropped, {} forwarded; most attempts of a message: client {}, server {} \
         (given up at {}); client {sa:?}; server {sb:?}",
        relay.dropped.load(Relaxed),
        relay.forwarded.load(Relaxed),
        most(&ra),
        most(&rb),
        a.config().max_retries + 1
    );
    assert!(relay.dropped.load(Relaxed) > 0);
    for (s, r) in [(sa, &ra), (sb, &rb)] {
        assert_eq!(s.messages_sent, N as u64);
        assert_eq!(s.messages_delivered, N as u64);
        assert_eq!(s.messages_given_up, 0);
        assert_eq!(s.messages_received, N as u64);
        assert_eq!(s.in_flight, 0);
        assert!(s.retransmissions > 0, "20% loss but no retransmission");
        assert!(s.acks_sent >= N as u64);
        assert!(s.acks_received >= N as u64 - s.retransmissions.min(N as u64));
        let attempts: u64 = r.iter().map(|r| u64::from(r.attempts)).sum();
        // Every transmission beyond the first of a delivered message is a retransmission.
        assert!(attempts - N as u64 <= s.retransmissions);
    }
    // What one side retransmitted, the other may have seen twice.
    assert!(
        sa.duplicates_received + sb.duplicates_received <= sa.retransmissions + sb.retransmissions
    );
    a.close();
    b.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_gives_up_after_max_retries() {
    let lb = loopback("/silent").await;
    let layer = ReliabilityLayer::new(
        &lb.cs,
        ReliabilityConfig {
            ack_timeout: Duration::from_millis(50),
            max_retries: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let hooked = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let h = hooked.clone();
    layer.on_report(Box::new(move |r| h.lock().push(*r)));
    let id = within(layer.send(b"hi")).await.unwrap();
    assert_eq!(id, 0);
    // The peer (no layer) sees the same DATA frame 4 times: 1 + 3 retransmissions.
    let frame: &[u8] = &[
        0x04, 0x44, 0x41, 0x54, 0x41, 0x00, 0x00, 0x00, 0x00, 0x68, 0x69,
    ];
    for _ in 0..4 {
        let d = within(lb.ss.recv_datagram()).await.unwrap();
        assert_eq!(&d[..], frame);
    }
    let r = layer.next_report(Some(LIMIT)).await.unwrap();
    assert_eq!(
        r,
        DeliveryReport {
            id: 0,
            outcome: DeliveryOutcome::GaveUp,
            attempts: 4
        }
    );
    // The hook runs right after the report is queued, on the layer's task.
    let deadline = std::time::Instant::now() + LIMIT;
    while hooked.lock().is_empty() {
        assert!(std::time::Instant::now() < deadline, "hook never called");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(hooked.lock().as_slice(), &[r]);
    let s = layer.stats();
    assert_eq!(s.messages_sent, 1);
    assert_eq!(s.messages_given_up, 1);
    assert_eq!(s.messages_delivered, 0);
    assert_eq!(s.retransmissions, 3);
    assert_eq!(s.in_flight, 0);
    // A late ACK for a given-up message is counted and ignored.
    lb.ss.send_datagram(&encode_ack(0)).await.unwrap();
    let deadline = std::time::Instant::now() + LIMIT;
    while layer.stats().acks_received == 0 {
        assert!(std::time::Instant::now() < deadline, "ACK never arrived");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(layer.stats().messages_delivered, 0);
    assert!(layer.try_next_report().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_with_handcrafted_pywebtransport_frames() {
    let lb = loopback("/py").await;
    let layer = ReliabilityLayer::new(
        &lb.cs,
        ReliabilityConfig {
            ack_timeout: Duration::from_secs(30),
            ..Default::default()
        },
    )
    .unwrap();
    let peer = &lb.ss;
    // Our DATA, byte for byte.
    for (i, text) in ["hello", "world"].iter().enumerate() {
        let id = within(layer.send(text.as_bytes())).await.unwrap();
        assert_eq!(id, i as u64);
        let d = within(peer.recv_datagram()).await.unwrap();
        let mut want = b"\x04DATA\x00\x00\x00".to_vec();
        want.push(i as u8);
        want.extend_from_slice(text.as_bytes());
        assert_eq!(d.to_vec(), want);
        assert_eq!(d.to_vec(), encode_data(i as u32, text.as_bytes()));
    }
    // pywebtransport's ACKs: b"\x03ACK" + str(seq).encode(), out of order.
    peer.send_datagram(b"\x03ACK1").await.unwrap();
    peer.send_datagram(b"\x03ACK0").await.unwrap();
    let mut reports = [
        layer.next_report(Some(LIMIT)).await.unwrap(),
        layer.next_report(Some(LIMIT)).await.unwrap(),
    ];
    reports.sort_by_key(|r| r.id);
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(
            *r,
            DeliveryReport {
                id: i as u64,
                outcome: DeliveryOutcome::Delivered,
                attempts: 1
            }
        );
    }
    // pywebtransport's DATA: b"\x04DATA" + struct.pack("!I", seq) + data.
    peer.send_datagram(b"\x04DATA\x00\x00\x00\x07py-data")
        .await
        .unwrap();
    assert_eq!(&layer.receive(Some(LIMIT)).await.unwrap()[..], b"py-data");
    assert_eq!(
        &within(peer.recv_datagram()).await.unwrap()[..],
        b"\x03ACK7"
    );
    // A duplicate is acknowledged again but not delivered again.
    peer.send_datagram(b"\x04DATA\x00\x00\x00\x07py-data")
        .await
        .unwrap();
    assert_eq!(
        &within(peer.recv_datagram()).await.unwrap()[..],
        b"\x03ACK7"
    );
    // Garbage is ignored; the next message comes through.
    peer.send_datagram(b"\x05OTHERxyz").await.unwrap();
    peer.send_datagram(b"\x04DATA").await.unwrap();
    peer.send_datagram(b"\x04DATA\x00\x00\x01\x02next")
        .await
        .unwrap();
    assert_eq!(&layer.receive(Some(LIMIT)).await.unwrap()[..], b"next");
    assert_eq!(
        &within(peer.recv_datagram()).await.unwrap()[..],
        b"\x03ACK258"
    );
    let s = layer.stats();
    assert_eq!(s.messages_received, 2);
    assert_eq!(s.duplicates_received, 1);
    assert_eq!(s.acks_sent, 3);
    assert_eq!(s.acks_received, 2);
    assert_eq!(s.messages_delivered, 2);
    assert_eq!(s.invalid_received, 2);
    assert_eq!(s.retransmissions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_wraps_past_u32_max() {
    let lb = loopback("/wrap").await;
    let cfg = ReliabilityConfig {
        ack_timeout: Duration::from_millis(500),
        max_retries: 20,
        initial_sequence: u32::MAX - 4,
        ..Default::default()
    };
    let a = ReliabilityLayer::new(&lb.cs, cfg.clone()).unwrap();
    let b = ReliabilityLayer::new(&lb.ss, cfg).unwrap();
    let (ids_a, ids_b, got_b, got_a) = tokio::join!(
        send_all(&a, "a", 20),
        send_all(&b, "b", 20),
        receive_all(&b, "a", 20),
        receive_all(&a, "b", 20),
    );
    let want: Vec<u64> = (0..20).map(|i| u64::from(u32::MAX - 4) + i).collect();
    assert_eq!(ids_a, want);
    assert_eq!(ids_b, want);
    assert!(*want.last().unwrap() > u64::from(u32::MAX));
    assert_eq!((got_a.len(), got_b.len()), (20, 20));
    expect_delivered(&a, &ids_a).await;
    expect_delivered(&b, &ids_b).await;
    assert_eq!(a.stats().messages_delivered, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_wire_sequences_at_the_peer() {
    let lb = loopback("/wrapraw").await;
    let layer = ReliabilityLayer::new(
        &lb.cs,
        ReliabilityConfig {
            ack_timeout: Duration::from_secs(30),
            initial_sequence: u32::MAX,
            ..Default::default()
        },
    )
    .unwrap();
    let id0 = within(layer.send(b"x")).await.unwrap();
    let id1 = within(layer.send(b"y")).await.unwrap();
    assert_eq!((id0, id1), (u64::from(u32::MAX), 1 << 32));
    let d0 = within(lb.ss.recv_datagram()).await.unwrap();
    let d1 = within(lb.ss.recv_datagram()).await.unwrap();
    assert_eq!(&d0[..], b"\x04DATA\xff\xff\xff\xffx");
    assert_eq!(&d1[..], b"\x04DATA\x00\x00\x00\x00y");
    lb.ss.send_datagram(b"\x03ACK0").await.unwrap();
    lb.ss.send_datagram(b"\x03ACK4294967295").await.unwrap();
    let mut ids = vec![
        layer.next_report(Some(LIMIT)).await.unwrap().id,
        layer.next_report(Some(LIMIT)).await.unwrap().id,
    ];
    ids.sort();
    assert_eq!(ids, vec![id0, id1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_full_send_waits_for_an_ack() {
    let lb = loopback("/window").await;
    let layer = ReliabilityLayer::new(
        &lb.cs,
        ReliabilityConfig {
            ack_timeout: Duration::from_secs(60),
            window: 4,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..4u64 {
        assert_eq!(within(layer.send(b"w")).await.unwrap(), i);
    }
    assert_eq!(layer.stats().in_flight, 4);
    let l2 = layer.clone();
    let mut fifth = tokio::spawn(async move { l2.send(b"fifth").await });
    // It cannot finish: no room until an ACK (the timeout is 60 s, no give-up).
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut fifth)
            .await
            .is_err(),
        "send did not wait for room in the window"
    );
    // An ACK for a later message does not make room: the window bounds the span from
    // the oldest unacknowledged message (0), not only the count.
    lb.ss.send_datagram(&encode_ack(2)).await.unwrap();
    let r = layer.next_report(Some(LIMIT)).await.unwrap();
    assert_eq!((r.id, r.outcome), (2, DeliveryOutcome::Delivered));
    assert_eq!(layer.stats().in_flight, 3);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut fifth)
            .await
            .is_err(),
        "send went past the oldest unacknowledged message by a whole window"
    );
    lb.ss.send_datagram(&encode_ack(0)).await.unwrap();
    let id = within(fifth).await.unwrap().unwrap();
    assert_eq!(id, 4);
    assert_eq!(layer.stats().in_flight, 3);
    let r = layer.next_report(Some(LIMIT)).await.unwrap();
    assert_eq!((r.id, r.outcome), (0, DeliveryOutcome::Delivered));
}

/// A lost message holds the window: the sender retransmits it before it sends anything
/// a window past it, so a receiver remembering `window` sequences never takes the
/// retransmission for an old duplicate (it used to: the sender ran ahead while one
/// message was missing, the receiver forgot it and acknowledged the retransmission
/// without delivering it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_message_holds_the_window_until_retransmitted() {
    let lb = loopback("/span").await;
    let sender = ReliabilityLayer::new(
        &lb.cs,
        ReliabilityConfig {
            ack_timeout: Duration::from_millis(100),
            window: 4,
            ..Default::default()
        },
    )
    .unwrap();
    // The receiving peer, by hand: it loses the first copy of message 0 and acknowledges
    // everything else, recording the order of what it saw.
    let peer = lb.ss.clone();
    let seen = tokio::spawn(async move {
        let mut order = Vec::new();
        let mut lost_once = false;
        while order.len() < 12 {
            let d = peer.recv_datagram().await.unwrap();
            let seq = u32::from_be_bytes(d[5..9].try_into().unwrap());
            if seq == 0 && !lost_once {
                lost_once = true;
                continue;
            }
            order.push(seq);
            peer.send_datagram(&encode_ack(seq)).await.unwrap();
        }
        order
    });
    let s2 = sender.clone();
    let sends = tokio::spawn(async move {
        for i in 0..12u64 {
            assert_eq!(s2.send(format!("m{i}").as_bytes()).await.unwrap(), i);
        }
    });
    let order = within(seen).await.unwrap();
    within(sends).await.unwrap();
    // 1, 2, 3 go out with 0; 4 only after 0's retransmission was acknowledged.
    let pos = |x: u32| order.iter().position(|&s| s == x).unwrap();
    assert!(
        pos(0) < pos(4),
        "sequence 4 went out before 0 was retransmitted: {order:?}"
    );
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (0..12).collect::<Vec<u32>>(),
        "each sequence once: {order:?}"
    );
    let mut reports = Vec::new();
    for _ in 0..12 {
        reports.push(sender.next_report(Some(LIMIT)).await.unwrap());
    }
    assert!(reports
        .iter()
        .all(|r| r.outcome == DeliveryOutcome::Delivered));
    assert_eq!(reports.iter().find(|r| r.id == 0).unwrap().attempts, 2);
    assert_eq!(sender.stats().retransmissions, 1);
}

/// DATA leaves in flights clocked by ACKs, not as one burst of the whole window: a
/// transport packs what is queued at once into one packet, and a receiver may keep only
/// part of a packet (Firefox keeps the newest 10 datagrams), which used to drop the
/// oldest messages of every retransmission round, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_leaves_in_flights_clocked_by_acks() {
    let lb = loopback("/flights").await;
    let sender = ReliabilityLayer::new(
        &lb.cs,
        ReliabilityConfig {
            ack_timeout: Duration::from_secs(60),
            ..Default::default() // window 256
        },
    )
    .unwrap();
    for i in 0..20u64 {
        assert_eq!(within(sender.send(b"m")).await.unwrap(), i);
    }
    let seq = |d: &[u8]| u32::from_be_bytes(d[5..9].try_into().unwrap());
    let mut first = Vec::new();
    for _ in 0..4 {
        first.push(seq(&within(lb.ss.recv_datagram()).await.unwrap()));
    }
    assert_eq!(first, [0, 1, 2, 3], "the first flight");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), lb.ss.recv_datagram())
            .await
            .is_err(),
        "a fifth DATA frame before any ACK"
    );
    assert_eq!(sender.stats().in_flight, 20, "the others wait in the layer");
    // An ACK frees a place and (slow start) adds one: two more, oldest first.
    lb.ss.send_datagram(&encode_ack(0)).await.unwrap();
    let mut next = Vec::new();
    for _ in 0..2 {
        next.push(seq(&within(lb.ss.recv_datagram()).await.unwrap()));
    }
    assert_eq!(next, [4, 5]);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), lb.ss.recv_datagram())
            .await
            .is_err(),
        "more DATA than the budget"
    );
    let r = sender.next_report(Some(LIMIT)).await.unwrap();
    assert_eq!(
        (r.id, r.outcome, r.attempts),
        (0, DeliveryOutcome::Delivered, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_per_session() {
    let lb = loopback("/owner").await;
    let layer = ReliabilityLayer::new(&lb.cs, ReliabilityConfig::default()).unwrap();
    assert!(matches!(
        ReliabilityLayer::new(&lb.cs, ReliabilityConfig::default()),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        DatagramStream::new(&lb.cs, StreamConfig::default()),
        Err(Error::InvalidState(_))
    ));
    let _stream = DatagramStream::new(&lb.ss, StreamConfig::default()).unwrap();
    assert!(matches!(
        ReliabilityLayer::new(&lb.ss, ReliabilityConfig::default()),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        ReliabilityLayer::new(
            &lb.ss,
            ReliabilityConfig {
                window: 0,
                ..Default::default()
            }
        ),
        Err(Error::InvalidArgument(_))
    ));
    drop(layer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_session_close() {
    let lb = loopback("/close").await;
    let cfg = ReliabilityConfig {
        ack_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let a = ReliabilityLayer::new(&lb.cs, cfg.clone()).unwrap();
    let b = ReliabilityLayer::new(&lb.ss, cfg).unwrap();
    within(a.send(b"last words")).await.unwrap();
    assert_eq!(&b.receive(Some(LIMIT)).await.unwrap()[..], b"last words");
    let r = a.next_report(Some(LIMIT)).await.unwrap();
    assert_eq!(r.outcome, DeliveryOutcome::Delivered);
    assert!(matches!(
        a.receive(Some(Duration::from_millis(10))).await,
        Err(Error::Timeout)
    ));
    a.close();
    assert!(a.is_closed());
    assert!(matches!(a.send(b"x").await, Err(Error::Closed(_))));
    assert!(matches!(a.receive(None).await, Err(Error::Closed(_))));
    assert!(matches!(a.next_report(None).await, Err(Error::Closed(_))));
    // The session stays open; closing it closes the peer's layer.
    assert!(!lb.cs.is_closed());
    lb.cs.close(0, "bye");
    assert!(matches!(
        within(b.receive(None)).await,
        Err(Error::Closed(_))
    ));
    assert!(b.is_closed());
    assert!(matches!(b.send(b"x").await, Err(Error::Closed(_))));
}
