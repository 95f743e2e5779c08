//! The datagram duplex stream (`wtdatagram::datagram`) across real loopback sessions.
//!
//! Ordering tests run on a current-thread runtime: the stream's sender task, the QUIC
//! endpoint drivers and the test all share one thread, so everything the test queues
//! without an `.await` in between is in the queue before the sender takes the first
//! datagram. What arrives at the peer, and in which order, is then fully determined by
//! the queue rules (loopback neither loses nor reorders these few datagrams, and quinn
//! sends its datagram buffer in FIFO order).

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use wtdatagram::datagram::{
    datagram_throughput_test, is_heartbeat, DatagramStream, Overflow, QueueStats, StreamConfig,
    StreamStats, Thresholds, ThroughputResult,
};
use wtdatagram::{Client, CloseReason, Error, Server, Session};

/// A loopback session pair and the endpoints it lives on.
struct Loopback {
    /// Server side.
    ss: Session,
    /// Client side.
    cs: Session,
    _client: Client,
    _server: Server,
}

async fn loopback() -> Loopback {
    let server = server();
    let client = client_for(&server);
    let url = url(&server, "/stream");
    let (ss, cs) = within(pair(&server, &client, &url)).await;
    Loopback {
        ss,
        cs,
        _client: client,
        _server: server,
    }
}

/// Wait until `cond` holds (bounded by the safety limit; never a timing assertion).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "safety limit: never saw {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The next raw datagram a plain session receives.
async fn recv_raw(s: &Session) -> Vec<u8> {
    within(s.recv_datagram())
        .await
        .expect("peer receives a datagram")
        .to_vec()
}

/// Receive raw datagrams on `peer` and compare them, in order, with `expected`.
async fn expect_raw(peer: &Session, expected: &[&[u8]]) {
    let mut got = Vec::new();
    for _ in expected {
        got.push(recv_raw(peer).await);
    }
    let got: Vec<&[u8]> = got.iter().map(Vec::as_slice).collect();
    assert_eq!(got, expected, "datagrams at the peer, in arrival order");
}

/// Send a lowest-priority marker after everything else and check that it is the very
/// next datagram the peer sees: nothing else (evicted, expired...) reached the wire.
async fn expect_nothing_more(stream: &DatagramStream, peer: &Session) {
    stream.send(b"--marker--", 0, None).unwrap();
    assert_eq!(
        recv_raw(peer).await,
        b"--marker--",
        "an unexpected datagram reached the peer"
    );
}

fn close_to(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Bigger than any datagram quinn's path MTU discovery can allow (its probes stop at
/// 1452-byte UDP payloads), so always too large whatever the current maximum is.
const TOO_LARGE: usize = 65_536;

/// Path MTU discovery raises the maximum datagram size in steps for a while after the
/// handshake (each probe waits for its ACK). Wait until the value has stopped moving, so
/// a maximum read now is still the maximum when the datagram is queued.
async fn settled_max(stream: &DatagramStream) -> usize {
    let mut last = stream.max_datagram_size().unwrap();
    let mut same = 0;
    let deadline = Instant::now() + LIMIT;
    while same < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let now = stream.max_datagram_size().unwrap();
        same = if now == last { same + 1 } else { 0 };
        last = now;
    }
    last
}

fn quiet_thresholds() -> Thresholds {
    // Nothing triggers: each diagnostics test re-enables only the one it constructs.
    Thresholds {
        min_send_success_rate: 0.0,
        max_drop_rate: 1.0,
        max_queue_fill: 1.0,
        max_avg_send_time: Duration::from_secs(3600),
    }
}

fn with_thresholds(t: Thresholds) -> StreamConfig {
    StreamConfig {
        thresholds: t,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// Sending: priorities, eviction, limits, TTL
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn higher_priority_leaves_first_fifo_within_a_class() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    // No await from here until everything is queued: the sender cannot run.
    for (d, p) in [
        (&b"low-1"[..], 0),
        (b"high-1", 1),
        (b"top-1", 2),
        (b"low-2", 0),
        (b"top-2", 2),
        (b"high-2", 1),
        (b"low-3", 0),
        (b"top-3", 2),
        (b"high-3", 1),
    ] {
        stream.send(d, p, None).unwrap();
    }
    let q = stream.queue_stats();
    assert_eq!(q.send, [3, 3, 3]);
    assert_eq!(q.send_total, 9);
    assert_eq!(stream.send_buffer_size(), 9);
    expect_raw(
        ss,
        &[
            b"top-1", b"top-2", b"top-3", b"high-1", b"high-2", b"high-3", b"low-1", b"low-2",
            b"low-3",
        ],
    )
    .await;
    expect_nothing_more(&stream, ss).await;
    let st = stream.stats();
    assert_eq!(st.datagrams_sent, 10);
    assert_eq!(st.send_drops(), 0);
    assert_eq!(stream.send_buffer_size(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_above_two_is_invalid_argument() {
    let lp = loopback().await;
    let cs = &lp.cs;
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    for p in [3u8, 4, 255] {
        assert!(
            matches!(stream.send(b"x", p, None), Err(Error::InvalidArgument(_))),
            "priority {p}"
        );
        assert!(!stream.try_send(b"x", p, None), "priority {p}");
        assert!(matches!(
            stream.send_json(&serde_json::json!({"a": 1}), p, None),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            stream.send_structured("t", b"x", p, None),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            within(stream.send_wait(b"x", p, None)).await,
            Err(Error::InvalidArgument(_))
        ));
    }
    assert_eq!(stream.send_buffer_size(), 0);
    // 0, 1 and 2 are all fine.
    for p in 0..=2u8 {
        stream.send(b"ok", p, None).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_is_rejected_and_counted_exact_max_goes_through() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let max = settled_max(&stream).await;
    assert_eq!(max, cs.max_datagram_size().unwrap());
    assert!(max >= 1000, "max datagram size {max}");
    let big = vec![7u8; max + 1];
    assert_eq!(
        stream.send(&big, 1, None),
        Err(Error::TooLarge { size: max + 1, max })
    );
    assert!(!stream.try_send(&big, 1, None));
    assert_eq!(stream.send_multiple(&[&big[..], &big[..]], 0, None), 0);
    assert_eq!(stream.send_buffer_size(), 0);
    assert_eq!(stream.stats().send_drops_too_large, 4);
    let exact: Vec<u8> = (0..max).map(|i| i as u8).collect();
    stream.send(&exact, 1, None).unwrap();
    assert_eq!(recv_raw(ss).await, exact);
    eventually("the max-size datagram counted as sent", || {
        stream.stats().datagrams_sent == 1
    })
    .await;
    let st = stream.stats();
    assert_eq!(st.bytes_sent, max as u64);
    assert_eq!(st.send_drops_too_large, 4);
}

#[tokio::test(flavor = "current_thread")]
async fn full_queue_evicts_oldest_of_lowest_class_below_else_rejects() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let cfg = StreamConfig {
        send_queue: 4,
        ..Default::default()
    };
    let stream = DatagramStream::new(cs, cfg).unwrap();
    // Nothing awaits until the queue is drained at the end: the sender cannot run.
    stream.send(b"h-old", 1, None).unwrap();
    stream.send(b"l-old", 0, None).unwrap();
    stream.send(b"l-new", 0, None).unwrap();
    stream.send(b"t-1", 2, None).unwrap();
    assert_eq!(stream.queue_stats().send, [2, 1, 1]);
    // Full. A priority-1 datagram evicts the OLDEST of the LOWEST class below it.
    stream.send(b"h-2", 1, None).unwrap();
    assert_eq!(stream.queue_stats().send, [1, 2, 1]);
    assert_eq!(stream.stats().send_drops_evicted, 1);
    // Same class never evicts; a lower one neither: rejected, counted, nothing changes.
    stream.send(b"l-x", 0, None).unwrap_err();
    assert_eq!(stream.send(b"l-x", 0, None), Err(Error::QueueFull));
    assert!(!stream.try_send(b"l-y", 0, None));
    // A priority-2 datagram takes the remaining low one first...
    stream.send(b"t-2", 2, None).unwrap();
    assert_eq!(stream.queue_stats().send, [0, 2, 2]);
    // ...then (class 0 empty) the oldest of class 1.
    stream.send(b"t-3", 2, None).unwrap();
    assert_eq!(stream.queue_stats().send, [0, 1, 3]);
    // A priority-1 datagram has nothing below it now.
    assert_eq!(stream.send(b"h-x", 1, None), Err(Error::QueueFull));
    stream.send(b"t-4", 2, None).unwrap();
    assert_eq!(stream.queue_stats().send, [0, 0, 4]);
    // Only the top class left: a top datagram is rejected too.
    assert_eq!(stream.send(b"t-x", 2, None), Err(Error::QueueFull));
    let st = stream.stats();
    assert_eq!(st.send_drops_evicted, 4);
    assert_eq!(st.send_drops_queue_full, 5);
    assert_eq!(st.datagrams_sent, 0);
    assert_eq!(stream.send_buffer_size(), 4);
    // Evicted and rejected datagrams never reach the wire.
    expect_raw(ss, &[b"t-1", b"t-2", b"t-3", b"t-4"]).await;
    expect_nothing_more(&stream, ss).await;
    let st = stream.stats();
    assert_eq!(st.datagrams_sent, 5);
    assert_eq!(st.send_drops_evicted, 4);
    assert_eq!(st.send_drops_queue_full, 5);
}

#[tokio::test(flavor = "current_thread")]
async fn default_queue_limit_is_100_and_send_multiple_counts_what_was_queued() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    assert_eq!(StreamConfig::default().send_queue, 100);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    assert_eq!(stream.queue_stats().send_limit, 100);
    let items: Vec<String> = (0..101).map(|i| format!("item-{i:03}")).collect();
    // All low priority: the 101st has nothing below it to evict.
    assert_eq!(stream.send_multiple(&items, 0, None), 100);
    let st = stream.stats();
    assert_eq!(st.send_drops_queue_full, 1);
    assert_eq!(st.send_drops_evicted, 0);
    assert_eq!(stream.send_buffer_size(), 100);
    // A top-priority one evicts item-000, the oldest low datagram.
    stream.send(b"top", 2, None).unwrap();
    assert_eq!(stream.stats().send_drops_evicted, 1);
    assert_eq!(stream.queue_stats().send, [99, 0, 1]);
    let mut expected: Vec<&[u8]> = vec![b"top"];
    expected.extend(items[1..100].iter().map(|s| s.as_bytes()));
    expect_raw(ss, &expected).await;
    expect_nothing_more(&stream, ss).await;
    assert_eq!(stream.stats().datagrams_sent, 101);
}

#[tokio::test(flavor = "current_thread")]
async fn expired_ttl_is_dropped_at_dequeue_never_sent() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    // Queued while alive (send accepts it), expires before the sender can run.
    stream
        .send(b"stale", 2, Some(Duration::from_millis(1)))
        .unwrap();
    stream
        .send(b"long", 2, Some(Duration::from_secs(600)))
        .unwrap();
    stream.send(b"forever", 0, None).unwrap();
    assert_eq!(stream.send_buffer_size(), 3);
    assert_eq!(
        stream.stats().send_drops_expired,
        0,
        "TTL is checked at dequeue"
    );
    std::thread::sleep(Duration::from_millis(5)); // blocks the only thread: no sender
    expect_raw(ss, &[b"long", b"forever"]).await;
    expect_nothing_more(&stream, ss).await;
    let st = stream.stats();
    assert_eq!(st.send_drops_expired, 1);
    assert_eq!(st.datagrams_sent, 3);
    assert_eq!(st.send_drops(), 1);
    assert_eq!(stream.send_buffer_size(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_send_reports_with_a_bool_and_never_errors() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    assert!(stream.try_send(b"ok", 1, None));
    assert_eq!(recv_raw(ss).await, b"ok");
    assert!(!stream.try_send(&[0; TOO_LARGE], 1, None));
    assert!(!stream.try_send(b"bad priority", 3, None));
    stream.close();
    assert!(!stream.try_send(b"closed", 1, None));
}

#[tokio::test(flavor = "current_thread")]
async fn send_wait_waits_for_room_instead_of_failing() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let cfg = StreamConfig {
        send_queue: 1,
        ..Default::default()
    };
    let stream = DatagramStream::new(cs, cfg).unwrap();
    stream.send(b"w-00", 0, None).unwrap();
    // Really full: a plain send fails (and is counted)...
    assert_eq!(stream.send(b"w-01", 0, None), Err(Error::QueueFull));
    assert_eq!(stream.stats().send_drops_queue_full, 1);
    // ...while send_wait waits until the sender makes room, every time.
    let names: Vec<String> = (1..20).map(|i| format!("w-{i:02}")).collect();
    for n in &names {
        within(stream.send_wait(n.as_bytes(), 0, None))
            .await
            .unwrap();
    }
    let mut expected: Vec<&[u8]> = vec![b"w-00"];
    expected.extend(names.iter().map(|s| s.as_bytes()));
    expect_raw(ss, &expected).await;
    expect_nothing_more(&stream, ss).await;
    let st = stream.stats();
    assert_eq!(st.datagrams_sent, 21);
    assert_eq!(
        st.send_drops_queue_full, 1,
        "waiting is not a drop: only the plain send counts"
    );
    // Errors other than a full queue come back at once.
    assert!(matches!(
        within(stream.send_wait(&[0; TOO_LARGE], 0, None)).await,
        Err(Error::TooLarge { .. })
    ));
    stream.close();
    assert!(matches!(
        within(stream.send_wait(b"x", 0, None)).await,
        Err(Error::Closed(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Message formats: byte compatibility with pywebtransport
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_structured_bytes_on_the_wire_match_pywebtransport() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    // One at a time, so ordering is not in question.
    stream.send_structured("chat", b"hi", 1, None).unwrap();
    assert_eq!(recv_raw(ss).await, b"\x04chathi");
    stream
        .send_json(&serde_json::json!({"a": 1}), 1, None)
        .unwrap();
    assert_eq!(recv_raw(ss).await, b"{\"a\":1}");
    // Python's json.dumps(data, separators=(",", ":")): compact, keys in their order
    // (not sorted), non-ASCII as \u escapes, Python's float spelling.
    stream
        .send_json(
            &serde_json::json!({"b": "é", "a": [1, 2.0, 0.00001]}),
            1,
            None,
        )
        .unwrap();
    assert_eq!(recv_raw(ss).await, br#"{"b":"\u00e9","a":[1,2.0,1e-05]}"#);
    // The type length is in bytes, not characters.
    stream.send_structured("é", b"x", 1, None).unwrap();
    assert_eq!(recv_raw(ss).await, b"\x02\xc3\xa9x");
    // 255-byte types are the longest; empty payloads are fine.
    let t255 = "t".repeat(255);
    stream.send_structured(&t255, b"", 1, None).unwrap();
    let got = recv_raw(ss).await;
    assert_eq!(got.len(), 256);
    assert_eq!(got[0], 255);
    assert_eq!(&got[1..], t255.as_bytes());
    // Type of 0 or 256 bytes: InvalidArgument, nothing sent.
    assert!(matches!(
        stream.send_structured("", b"x", 1, None),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        stream.send_structured(&"t".repeat(256), b"x", 1, None),
        Err(Error::InvalidArgument(_))
    ));
    expect_nothing_more(&stream, ss).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_json_and_structured_from_raw_peer_bytes() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let t = Some(LIMIT);
    ss.send_datagram(b"{\"a\":1}").await.unwrap();
    assert_eq!(
        stream.receive_json(t).await.unwrap(),
        serde_json::json!({"a": 1})
    );
    // pywebtransport's default (ensure_ascii) output decodes the same.
    ss.send_datagram(br#"{"b":"\u00e9"}"#).await.unwrap();
    assert_eq!(stream.receive_json(t).await.unwrap()["b"], "é");
    // Members stay in their order.
    ss.send_datagram(br#"{"z":1,"a":2}"#).await.unwrap();
    let v = stream.receive_json(t).await.unwrap();
    assert_eq!(
        v.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["z", "a"]
    );
    ss.send_datagram(b"\x04chathi").await.unwrap();
    let (ty, payload) = stream.receive_structured(t).await.unwrap();
    assert_eq!((ty.as_str(), &payload[..]), ("chat", &b"hi"[..]));
    assert_eq!(stream.stats().receive_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_is_invalid_data_counted_and_the_stream_goes_on() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let t = Some(LIMIT);
    for bad in [&b"{not json"[..], b"\xff\xfe", b"{\"a\":1"] {
        ss.send_datagram(bad).await.unwrap();
        assert!(
            matches!(stream.receive_json(t).await, Err(Error::InvalidData(_))),
            "{bad:?}"
        );
    }
    assert_eq!(stream.stats().receive_errors, 3);
    assert!(!stream.is_closed());
    ss.send_datagram(b"{\"ok\":true}").await.unwrap();
    assert_eq!(
        stream.receive_json(t).await.unwrap(),
        serde_json::json!({"ok": true})
    );
    let st = stream.stats();
    assert_eq!(st.receive_errors, 3);
    assert_eq!(st.datagrams_received, 4);
    assert!(close_to(st.receive_success_rate, 1.0 / 4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_structured_is_invalid_data_counted_and_the_stream_goes_on() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let t = Some(LIMIT);
    // Empty type, type longer than the datagram, type not UTF-8, empty datagram.
    let bad: [&[u8]; 4] = [b"\x00abc", b"\x05ab", b"\x02\xff\xfe", b""];
    for b in bad {
        ss.send_datagram(b).await.unwrap();
        assert!(
            matches!(
                stream.receive_structured(t).await,
                Err(Error::InvalidData(_))
            ),
            "{b:?}"
        );
    }
    assert_eq!(stream.stats().receive_errors, 4);
    ss.send_datagram(b"\x01a").await.unwrap();
    let (ty, payload) = stream.receive_structured(t).await.unwrap();
    assert_eq!((ty.as_str(), payload.len()), ("a", 0));
    assert_eq!(stream.stats().receive_errors, 4);
}

// ---------------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_times_out_try_receive_and_receive_multiple() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let short = Some(Duration::from_millis(30));
    assert_eq!(stream.receive(short).await, Err(Error::Timeout));
    assert!(matches!(
        stream.receive_with_metadata(short).await,
        Err(Error::Timeout)
    ));
    assert_eq!(stream.receive_multiple(5, short).await, Err(Error::Timeout));
    assert!(matches!(
        stream.receive_json(short).await,
        Err(Error::Timeout)
    ));
    assert!(matches!(
        stream.receive_structured(short).await,
        Err(Error::Timeout)
    ));
    assert_eq!(stream.try_receive(), Ok(None));
    assert_eq!(stream.stats().receive_errors, 0, "timeouts are not errors");

    for i in 0..5 {
        ss.send_datagram(format!("m{i}").as_bytes()).await.unwrap();
    }
    eventually("5 datagrams queued", || stream.receive_buffer_size() == 5).await;
    assert_eq!(stream.receive_multiple(0, Some(LIMIT)).await, Ok(vec![]));
    let first = stream.receive_multiple(3, Some(LIMIT)).await.unwrap();
    assert_eq!(first, vec!["m0", "m1", "m2"]);
    assert_eq!(stream.receive_buffer_size(), 2);
    assert_eq!(stream.try_receive().unwrap().as_deref(), Some(&b"m3"[..]));
    let rest = stream.receive_multiple(10, Some(LIMIT)).await.unwrap();
    assert_eq!(rest, vec!["m4"]);
    assert_eq!(stream.try_receive(), Ok(None));
    // receive waits for a datagram that is not there yet.
    let waiter = {
        let s = stream.clone();
        tokio::spawn(async move { s.receive(Some(LIMIT)).await })
    };
    ss.send_datagram(b"later").await.unwrap();
    assert_eq!(&within(waiter).await.unwrap().unwrap()[..], b"later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_with_metadata_numbers_times_and_sizes() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let before = SystemTime::now();
    let payloads: [&[u8]; 3] = [b"a", b"bb", b"cccc"];
    for p in payloads {
        ss.send_datagram(p).await.unwrap();
    }
    eventually("3 datagrams queued", || stream.receive_buffer_size() == 3).await;
    let after = SystemTime::now();
    // They arrived before this sleep began, so each is at least this old when taken.
    let held = Duration::from_millis(20);
    tokio::time::sleep(held).await;
    for (i, p) in payloads.iter().enumerate() {
        let m = stream.receive_with_metadata(Some(LIMIT)).await.unwrap();
        assert_eq!(&m.data[..], *p);
        assert_eq!(m.sequence, i as u64);
        assert_eq!(m.size(), p.len());
        assert!(
            m.received_at >= before && m.received_at <= after,
            "received_at {:?} outside [{before:?}, {after:?}]",
            m.received_at
        );
        assert!(m.age >= held, "age {:?} < {held:?}", m.age);
    }
    // The numbering goes on per stream, whichever method takes the datagram.
    ss.send_datagram(b"d").await.unwrap();
    let m = stream.receive_with_metadata(Some(LIMIT)).await.unwrap();
    assert_eq!(m.sequence, 3);
    let st = stream.stats();
    assert!(st.max_receive_time >= held, "{st:?}");
    assert!(st.avg_receive_time > Duration::ZERO && st.avg_receive_time <= st.max_receive_time);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_receive_queue_drop_newest_refuses_arrivals() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let cfg = StreamConfig {
        recv_queue: 3,
        ..Default::default()
    };
    assert_eq!(cfg.recv_overflow, Overflow::DropNewest, "the default");
    let stream = DatagramStream::new(cs, cfg).unwrap();
    for i in 0..5 {
        ss.send_datagram(format!("d{i}").as_bytes()).await.unwrap();
    }
    eventually("2 receive drops", || stream.stats().receive_drops == 2).await;
    assert_eq!(stream.receive_buffer_size(), 3);
    assert_eq!(stream.queue_stats().receive_limit, 3);
    let got: Vec<_> = (0..3)
        .map(|_| stream.try_receive().unwrap().unwrap())
        .collect();
    assert_eq!(got, vec!["d0", "d1", "d2"]);
    assert_eq!(stream.try_receive(), Ok(None));
    let st = stream.stats();
    assert_eq!(st.receive_drops, 2);
    // Every arrival counts as received; 3 of the 5 reached the application.
    assert_eq!(st.datagrams_received, 5);
    assert_eq!(st.bytes_received, 10);
    assert!(
        close_to(st.receive_success_rate, 3.0 / 5.0),
        "receive_success_rate {} (3 of 5 arrivals delivered): {st:?}",
        st.receive_success_rate
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_receive_queue_drop_oldest_keeps_the_freshest() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let cfg = StreamConfig {
        recv_queue: 3,
        recv_overflow: Overflow::DropOldest,
        ..Default::default()
    };
    let stream = DatagramStream::new(cs, cfg).unwrap();
    for i in 0..5 {
        ss.send_datagram(format!("d{i}").as_bytes()).await.unwrap();
    }
    eventually("2 receive drops", || stream.stats().receive_drops == 2).await;
    assert_eq!(stream.receive_buffer_size(), 3);
    for i in 2..5 {
        let m = stream.receive_with_metadata(Some(LIMIT)).await.unwrap();
        assert_eq!(m.data, format!("d{i}"));
        assert_eq!(m.sequence, i, "arrival numbers of the kept datagrams");
    }
    assert_eq!(stream.try_receive(), Ok(None));
    let st = stream.stats();
    assert_eq!(st.receive_drops, 2);
    assert!(
        close_to(st.receive_success_rate, 3.0 / 5.0),
        "receive_success_rate {} (3 of 5 arrivals delivered): {st:?}",
        st.receive_success_rate
    );
}

// ---------------------------------------------------------------------------------------
// Lifecycle and observability
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_per_session() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let first = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    assert!(matches!(
        DatagramStream::new(cs, StreamConfig::default()),
        Err(Error::InvalidState(_))
    ));
    // Also through another handle of the same session, and through the stream's own.
    assert!(matches!(
        DatagramStream::new(&cs.clone(), StreamConfig::default()),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        DatagramStream::new(first.session(), StreamConfig::default()),
        Err(Error::InvalidState(_))
    ));
    // The first one is unaffected; the peer session can have its own.
    let peer = DatagramStream::new(ss, StreamConfig::default()).unwrap();
    first.send(b"still mine", 1, None).unwrap();
    assert_eq!(&peer.receive(Some(LIMIT)).await.unwrap()[..], b"still mine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_session_and_max_datagram_size() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    assert_eq!(stream.session().id(), cs.id());
    assert_eq!(
        stream.max_datagram_size().unwrap(),
        cs.max_datagram_size().unwrap()
    );
    assert!(!stream.is_closed());

    // A datagram queued before the close is discarded by it (as documented).
    ss.send_datagram(b"before close").await.unwrap();
    eventually("the datagram queued", || stream.receive_buffer_size() == 1).await;
    // A receiver waiting on an empty queue is woken by the close.
    let other = DatagramStream::new(ss, StreamConfig::default()).unwrap();
    let waiter = {
        let o = other.clone();
        tokio::spawn(async move { o.receive(None).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    other.close();
    assert!(matches!(
        within(waiter).await.unwrap(),
        Err(Error::Closed(_))
    ));

    stream.close();
    assert!(stream.is_closed());
    assert!(
        !cs.is_closed(),
        "closing the stream leaves the session open"
    );
    assert!(!stream.session().is_closed());
    assert!(matches!(stream.send(b"x", 1, None), Err(Error::Closed(_))));
    assert!(matches!(
        stream.send_json(&serde_json::json!(1), 1, None),
        Err(Error::Closed(_))
    ));
    // Discarded, and every receive says Closed at once: a polling loop learns it.
    assert_eq!(stream.receive_buffer_size(), 0);
    assert_eq!(stream.queue_stats().receive, 0);
    assert!(matches!(stream.try_receive(), Err(Error::Closed(_))));
    assert!(matches!(stream.receive_now(), Err(Error::Closed(_))));
    assert!(matches!(
        stream.receive(Some(LIMIT)).await,
        Err(Error::Closed(_))
    ));
    assert!(matches!(
        stream.receive(Some(Duration::ZERO)).await,
        Err(Error::Closed(_))
    ));
    assert!(matches!(
        stream.receive_with_metadata(Some(LIMIT)).await,
        Err(Error::Closed(_))
    ));
    assert!(matches!(
        stream.receive_multiple(4, Some(LIMIT)).await,
        Err(Error::Closed(_))
    ));
    assert!(matches!(
        stream.receive_json(Some(LIMIT)).await,
        Err(Error::Closed(_))
    ));
    assert!(matches!(
        stream.receive_structured(Some(LIMIT)).await,
        Err(Error::Closed(_))
    ));
    // Nothing the peer sends after the close is queued either.
    ss.send_datagram(b"after close").await.unwrap();
    assert!(matches!(
        stream.receive(Some(Duration::from_millis(50))).await,
        Err(Error::Closed(_))
    ));
    assert_eq!(stream.receive_buffer_size(), 0);
    assert!(matches!(
        stream.start_heartbeat(Duration::from_millis(10)),
        Err(Error::Closed(_))
    ));
    stream.close(); // idempotent
    assert!(stream.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_close_closes_the_stream_with_the_reason() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let waiter = {
        let s = stream.clone();
        tokio::spawn(async move { s.receive(None).await })
    };
    ss.close(4711, "bye");
    let expect = CloseReason::Remote {
        code: 4711,
        reason: "bye".into(),
    };
    assert_eq!(
        within(waiter).await.unwrap(),
        Err(Error::Closed(expect.clone()))
    );
    assert!(stream.is_closed());
    assert_eq!(
        stream.send(b"x", 1, None),
        Err(Error::Closed(expect.clone()))
    );
    assert!(!stream.try_send(b"x", 1, None));
    assert_eq!(stream.try_receive(), Err(Error::Closed(expect.clone())));
    assert_eq!(
        stream.receive(Some(Duration::ZERO)).await,
        Err(Error::Closed(expect))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_queued_before_the_session_closed_are_still_received() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    // A heartbeat that only the stream's shutdown stops (its next tick is an hour
    // away): once it is gone, the stream has handled the session's end.
    stream.start_heartbeat(Duration::from_secs(3600)).unwrap();
    ss.send_datagram(b"one").await.unwrap();
    ss.send_datagram(b"two").await.unwrap();
    eventually("2 datagrams queued", || stream.receive_buffer_size() == 2).await;
    ss.close(7, "done");
    eventually("the stream stopped", || {
        stream.debug_state()["heartbeat_running"] == false
    })
    .await;
    // Unlike a close of the stream itself, the session's end keeps what arrived.
    assert!(stream.is_closed());
    assert_eq!(stream.try_receive().unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(&stream.receive(Some(LIMIT)).await.unwrap()[..], b"two");
    let expect = CloseReason::Remote {
        code: 7,
        reason: "done".into(),
    };
    assert_eq!(stream.try_receive(), Err(Error::Closed(expect.clone())));
    assert_eq!(
        stream.receive(Some(LIMIT)).await,
        Err(Error::Closed(expect))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stream_or_layer_on_a_closed_session() {
    use std::sync::Arc;
    use wtdatagram::datagram::reliability::{ReliabilityConfig, ReliabilityLayer};
    use wtdatagram::datagram::structured::{
        JsonSerializer, StructuredDatagramTransport, TypeRegistry,
    };

    let lp = loopback().await;
    let cs = &lp.cs;
    cs.close(3, "gone");
    let expect = Error::Closed(CloseReason::Local {
        code: 3,
        reason: "gone".into(),
    });
    assert_eq!(
        DatagramStream::new(cs, StreamConfig::default()).unwrap_err(),
        expect
    );
    assert_eq!(
        ReliabilityLayer::new(cs, ReliabilityConfig::default()).unwrap_err(),
        expect
    );
    assert_eq!(
        StructuredDatagramTransport::new(
            cs,
            Arc::new(JsonSerializer::new()),
            TypeRegistry::new(),
            10
        )
        .unwrap_err(),
        expect
    );
    // The peer's side closes too (it got the close): the same there, with its reason.
    eventually("the peer saw the close", || lp.ss.is_closed()).await;
    assert!(matches!(
        DatagramStream::new(&lp.ss, StreamConfig::default()),
        Err(Error::Closed(CloseReason::Remote { code: 3, .. }))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn stats_queue_stats_and_debug_state_after_a_known_sequence() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let cfg = StreamConfig {
        send_queue: 10,
        recv_queue: 4,
        thresholds: quiet_thresholds(),
        ..Default::default()
    };
    let stream = DatagramStream::new(cs, cfg).unwrap();
    let max = settled_max(&stream).await;
    let fresh = stream.stats();
    assert_eq!(
        fresh,
        StreamStats {
            send_success_rate: 1.0,
            receive_success_rate: 1.0,
            ..Default::default()
        }
    );
    // Queued with no await in between: the queue is observable as it is.
    stream.send(&[1; 10], 0, None).unwrap();
    stream.send(&[2; 20], 1, None).unwrap();
    stream.send(&[3; 30], 2, None).unwrap();
    stream.send(&[4; 40], 2, None).unwrap();
    assert_eq!(
        stream.send(&[0; TOO_LARGE], 1, None),
        Err(Error::TooLarge {
            size: TOO_LARGE,
            max
        })
    );
    assert_eq!(
        stream.queue_stats(),
        QueueStats {
            send: [1, 1, 2],
            send_total: 4,
            send_limit: 10,
            receive: 0,
            receive_limit: 4,
        }
    );
    assert_eq!(stream.send_buffer_size(), 4);
    assert_eq!(stream.receive_buffer_size(), 0);
    let d = stream.debug_state();
    assert_eq!(d["queues"]["send"], serde_json::json!([1, 1, 2]));
    assert_eq!(d["queues"]["send_total"], 4);
    assert_eq!(d["stats"]["send_drops_too_large"], 1);
    assert_eq!(d["stats"]["datagrams_sent"], 0);

    let got: Vec<usize> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(recv_raw(ss).await.len());
        }
        v
    };
    assert_eq!(got, [30, 40, 20, 10]);
    eventually("4 sent", || stream.stats().datagrams_sent == 4).await;
    ss.send_datagram(&[5; 5]).await.unwrap();
    ss.send_datagram(&[6; 50]).await.unwrap();
    eventually("2 received", || stream.receive_buffer_size() == 2).await;
    assert_eq!(
        stream.queue_stats(),
        QueueStats {
            send: [0, 0, 0],
            send_total: 0,
            send_limit: 10,
            receive: 2,
            receive_limit: 4,
        }
    );
    let st = stream.stats();
    assert_eq!(st.datagrams_sent, 4);
    assert_eq!(st.bytes_sent, 100);
    assert_eq!(st.datagrams_received, 2);
    assert_eq!(st.bytes_received, 55);
    assert_eq!(st.send_failures, 0);
    assert_eq!(st.send_drops_too_large, 1);
    assert_eq!(
        (
            st.send_drops_evicted,
            st.send_drops_expired,
            st.send_drops_queue_full
        ),
        (0, 0, 0)
    );
    assert_eq!((st.receive_drops, st.receive_errors), (0, 0));
    assert_eq!(st.send_attempts(), 5);
    assert!(close_to(st.send_success_rate, 0.8));
    assert!(close_to(st.receive_success_rate, 1.0));
    // Sizes cover both directions: 10 20 30 40 sent, 5 50 received.
    assert_eq!((st.min_datagram_size, st.max_datagram_size), (5, 50));
    assert!(close_to(st.avg_datagram_size, 155.0 / 6.0));
    assert!(st.avg_send_time > Duration::ZERO);
    assert!(st.max_send_time >= st.avg_send_time);
    assert_eq!(st.avg_receive_time, Duration::ZERO, "nothing taken yet");

    assert_eq!(stream.try_receive().unwrap().unwrap().len(), 5);
    stream.receive(Some(LIMIT)).await.unwrap();
    let st = stream.stats();
    assert!(st.max_receive_time >= st.avg_receive_time);
    assert_eq!(stream.receive_buffer_size(), 0);

    let d = stream.debug_state();
    let ms = |t: Duration| t.as_secs_f64() * 1e3;
    assert_eq!(d["session_id"], cs.id());
    assert_eq!(d["path"], "/stream");
    assert_eq!(d["closed"], false);
    assert_eq!(d["max_datagram_size"], max);
    assert_eq!(d["heartbeat_running"], false);
    assert_eq!(
        d["config"],
        serde_json::json!({
            "send_queue": 10,
            "recv_queue": 4,
            "recv_overflow": "DropNewest",
            "thresholds": {
                "min_send_success_rate": 0.0,
                "max_drop_rate": 1.0,
                "max_queue_fill": 1.0,
                "max_avg_send_time_ms": 3_600_000.0,
            },
        })
    );
    assert_eq!(
        d["queues"],
        serde_json::json!({
            "send": [0, 0, 0],
            "send_total": 0,
            "send_limit": 10,
            "receive": 0,
            "receive_limit": 4,
        })
    );
    let s = &d["stats"];
    for (k, v) in [
        ("datagrams_sent", 4),
        ("bytes_sent", 100),
        ("datagrams_received", 2),
        ("bytes_received", 55),
        ("send_failures", 0),
        ("send_drops_evicted", 0),
        ("send_drops_expired", 0),
        ("send_drops_too_large", 1),
        ("send_drops_queue_full", 0),
        ("receive_drops", 0),
        ("receive_errors", 0),
        ("min_datagram_size", 5),
        ("max_datagram_size", 50),
    ] {
        assert_eq!(s[k], v, "debug_state stats.{k}");
    }
    for (k, v) in [
        ("avg_datagram_size", 155.0 / 6.0),
        ("avg_send_time_ms", ms(st.avg_send_time)),
        ("max_send_time_ms", ms(st.max_send_time)),
        ("avg_receive_time_ms", ms(st.avg_receive_time)),
        ("max_receive_time_ms", ms(st.max_receive_time)),
        ("send_success_rate", 0.8),
        ("receive_success_rate", 1.0),
    ] {
        let got = s[k].as_f64().unwrap_or_else(|| panic!("stats.{k} missing"));
        assert!(close_to(got, v), "debug_state stats.{k}: {got} != {v}");
    }
    assert_eq!(s.as_object().unwrap().len(), 20, "stats keys: {s}");
    assert_eq!(d["diagnostics"], serde_json::json!([]));
    assert_eq!(d.as_object().unwrap().len(), 9, "top-level keys: {d}");
}

// ---------------------------------------------------------------------------------------
// Diagnostics: each finding on a constructed condition
// ---------------------------------------------------------------------------------------

fn only_finding(findings: &[String], prefix: &str) {
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].starts_with(prefix), "{findings:?}");
}

/// Send `n` datagrams and wait until they are all on the wire.
async fn send_ok(stream: &DatagramStream, peer: &Session, n: usize) {
    let before = stream.stats().datagrams_sent;
    for i in 0..n {
        stream.send(format!("ok-{i}").as_bytes(), 1, None).unwrap();
        recv_raw(peer).await;
    }
    eventually("sends counted", || {
        stream.stats().datagrams_sent == before + n as u64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_stream_reports_nothing_closed_stream_says_so() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(
        cs,
        with_thresholds(Thresholds {
            max_avg_send_time: Duration::from_secs(3600), // not a speed test
            ..Default::default()
        }),
    )
    .unwrap();
    assert_eq!(stream.diagnose_issues(), Vec::<String>::new());
    send_ok(&stream, ss, 10).await;
    for _ in 0..10 {
        ss.send_datagram(b"{}").await.unwrap();
        stream.receive_json(Some(LIMIT)).await.unwrap();
    }
    assert_eq!(stream.diagnose_issues(), Vec::<String>::new());
    stream.close();
    assert_eq!(
        stream.diagnose_issues(),
        vec!["stream is closed".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_send_success_rate_is_reported_below_the_threshold() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(
        cs,
        with_thresholds(Thresholds {
            min_send_success_rate: 0.9,
            ..quiet_thresholds()
        }),
    )
    .unwrap();
    let big = [0; TOO_LARGE];
    send_ok(&stream, ss, 9).await;
    stream.send(&big, 1, None).unwrap_err();
    // 9 / 10 = 0.9: not below 0.9.
    assert_eq!(stream.diagnose_issues(), Vec::<String>::new());
    stream.send(&big, 1, None).unwrap_err();
    // 9 / 11 < 0.9.
    only_finding(&stream.diagnose_issues(), "low send success rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_drop_rate_is_reported_above_the_threshold() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(
        cs,
        with_thresholds(Thresholds {
            max_drop_rate: 0.1,
            ..quiet_thresholds()
        }),
    )
    .unwrap();
    let big = [0; TOO_LARGE];
    send_ok(&stream, ss, 9).await;
    stream.send(&big, 1, None).unwrap_err();
    // 1 drop of 10: not above 0.1.
    assert_eq!(stream.diagnose_issues(), Vec::<String>::new());
    stream.send(&big, 1, None).unwrap_err();
    // 2 of 11.
    only_finding(&stream.diagnose_issues(), "high drop rate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_drops_count_towards_the_drop_rate() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(
        cs,
        StreamConfig {
            recv_queue: 1,
            thresholds: Thresholds {
                max_drop_rate: 0.1,
                ..quiet_thresholds()
            },
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..3 {
        ss.send_datagram(format!("r{i}").as_bytes()).await.unwrap();
    }
    eventually("2 receive drops", || stream.stats().receive_drops == 2).await;
    only_finding(&stream.diagnose_issues(), "high drop rate");
}

#[tokio::test(flavor = "current_thread")]
async fn send_queue_over_90_percent_full_is_reported() {
    let lp = loopback().await;
    let cs = &lp.cs;
    let stream = DatagramStream::new(
        cs,
        StreamConfig {
            send_queue: 10,
            thresholds: Thresholds {
                max_queue_fill: 0.9,
                ..quiet_thresholds()
            },
            ..Default::default()
        },
    )
    .unwrap();
    // No await: the sender cannot drain meanwhile.
    for i in 0..9 {
        stream.send(format!("q{i}").as_bytes(), 0, None).unwrap();
    }
    // 9/10 is not above 0.9.
    assert_eq!(stream.diagnose_issues(), Vec::<String>::new());
    stream.send(b"q9", 0, None).unwrap();
    assert_eq!(
        stream.diagnose_issues(),
        vec!["send queue nearly full: 10/10".to_string()]
    );
    assert_eq!(
        stream.debug_state()["diagnostics"],
        serde_json::json!(["send queue nearly full: 10/10"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_queue_over_90_percent_full_is_reported() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(
        cs,
        StreamConfig {
            recv_queue: 10,
            thresholds: Thresholds {
                max_queue_fill: 0.9,
                ..quiet_thresholds()
            },
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..9 {
        ss.send_datagram(format!("r{i}").as_bytes()).await.unwrap();
    }
    eventually("9 queued", || stream.receive_buffer_size() == 9).await;
    assert_eq!(stream.diagnose_issues(), Vec::<String>::new());
    ss.send_datagram(b"r9").await.unwrap();
    eventually("10 queued", || stream.receive_buffer_size() == 10).await;
    assert_eq!(
        stream.diagnose_issues(),
        vec!["receive queue nearly full: 10/10".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn average_send_time_above_the_threshold_is_reported() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(
        cs,
        with_thresholds(Thresholds {
            max_avg_send_time: Duration::ZERO,
            ..quiet_thresholds()
        }),
    )
    .unwrap();
    // Nothing sent yet: no average to judge.
    assert_eq!(stream.diagnose_issues(), Vec::<String>::new());
    send_ok(&stream, ss, 1).await;
    assert!(stream.stats().avg_send_time > Duration::ZERO);
    only_finding(&stream.diagnose_issues(), "slow sending");
}

// ---------------------------------------------------------------------------------------
// Heartbeat and throughput
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn heartbeat_reaches_the_peer_and_stops() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let interval = Duration::from_millis(20);
    assert!(matches!(
        stream.start_heartbeat(Duration::ZERO),
        Err(Error::InvalidArgument(_))
    ));
    stream.start_heartbeat(interval).unwrap();
    assert_eq!(stream.debug_state()["heartbeat_running"], true);
    for _ in 0..3 {
        let d = recv_raw(ss).await;
        assert!(
            is_heartbeat(&d),
            "not a heartbeat: {:?}",
            String::from_utf8_lossy(&d)
        );
    }
    // Single thread: the heartbeat task is not running while this runs, so after
    // stop_heartbeat it never enqueues again.
    stream.stop_heartbeat();
    assert_eq!(stream.debug_state()["heartbeat_running"], false);
    // Drain whatever was queued before the stop.
    stream.send(b"marker-1", 0, None).unwrap();
    loop {
        let d = recv_raw(ss).await;
        if d == b"marker-1" {
            break;
        }
        assert!(is_heartbeat(&d));
    }
    // Several intervals later: not a single heartbeat more.
    tokio::time::sleep(interval * 5).await;
    stream.send(b"marker-2", 0, None).unwrap();
    let mut late = 0;
    loop {
        let d = recv_raw(ss).await;
        if d == b"marker-2" {
            break;
        }
        late += 1;
    }
    assert_eq!(late, 0, "heartbeats after stop_heartbeat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_test_reports_consistent_figures() {
    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    let size = 1000;
    let duration = Duration::from_millis(400);
    let mut calls: Vec<ThroughputResult> = Vec::new();
    let r = within(datagram_throughput_test(&stream, duration, size, |p| {
        calls.push(p.clone())
    }))
    .await
    .unwrap();
    assert!(r.datagrams_sent > 0, "{r:?}");
    assert_eq!(r.errors, 0, "{r:?}");
    assert_eq!(r.error_rate, 0.0);
    assert!(r.duration >= duration, "{r:?}");
    let secs = r.duration.as_secs_f64();
    assert!(
        close_to(r.datagrams_per_second, r.datagrams_sent as f64 / secs),
        "{r:?}"
    );
    assert!(
        close_to(
            r.bits_per_second,
            r.datagrams_sent as f64 * size as f64 * 8.0 / secs
        ),
        "{r:?}"
    );
    assert!(!calls.is_empty(), "progress never called");
    assert_eq!(calls.last(), Some(&r), "the last progress is the result");
    assert_eq!(stream.stats().datagrams_sent, r.datagrams_sent);
    assert_eq!(stream.stats().bytes_sent, r.datagrams_sent * size as u64);
    // Every datagram reached the peer (queued there or dropped by its full queue).
    eventually("the peer got every datagram", || {
        let p = ss.stats();
        p.datagrams_received + p.recv_dropped >= r.datagrams_sent
    })
    .await;
    let p = ss.stats();
    assert_eq!(p.datagrams_received + p.recv_dropped, r.datagrams_sent);
    assert_eq!(p.bytes_received, p.datagrams_received * size as u64);

    // Invalid sizes are refused up front.
    for bad in [0, TOO_LARGE] {
        assert!(matches!(
            datagram_throughput_test(&stream, duration, bad, |_| {}).await,
            Err(Error::InvalidArgument(_))
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Teardown
// ---------------------------------------------------------------------------------------

/// The application drops its stream and its session while the peer's datagrams keep
/// arriving. Whoever lets go last, nothing may deadlock: the runtime must still shut
/// down. (The stream's datagram handler runs under the session's lock; if the reference
/// it holds for the call is the last one, dropping it closes the session, which takes
/// that same lock.)
#[test]
fn last_handles_dropped_during_delivery_do_not_deadlock() {
    const ROUNDS: usize = 60;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = server();
            let client = client_for(&server);
            let url = url(&server, "/teardown");
            for _ in 0..ROUNDS {
                let (ss, cs) = within(pair(&server, &client, &url)).await;
                let stream = DatagramStream::new(&cs, StreamConfig::default()).unwrap();
                // Until the client side closes (bounded); the server side stays open.
                let flood = tokio::spawn(async move {
                    for i in 0..1_000_000u32 {
                        if ss.send_datagram(&i.to_be_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
                within(stream.receive(None)).await.unwrap();
                // Let go of everything while datagrams are still being delivered.
                drop(stream);
                drop(cs);
                within(flood).await.unwrap();
            }
        });
        // Joins the worker threads: never returns if one of them is deadlocked.
        drop(rt);
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(LIMIT * 3) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the runtime did not shut down: a worker thread is deadlocked")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("a round failed (see the panic above)")
        }
    }
}

/// The application's last step is receiving a datagram; it then drops everything and
/// shuts its runtime down at once, while the stream's handler that delivered the datagram
/// may still be finishing. Shutdown must complete.
#[test]
fn runtime_shutdown_during_delivery_does_not_deadlock() {
    const ROUNDS: usize = 400;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..ROUNDS {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let server = server();
                let client = client_for(&server);
                let url = url(&server, "/shutdown");
                let (ss, cs) = within(pair(&server, &client, &url)).await;
                let stream = DatagramStream::new(&cs, StreamConfig::default()).unwrap();
                ss.send_datagram(b"last").await.unwrap();
                within(stream.receive(None)).await.unwrap();
                // Everything is dropped here, and the runtime right after.
            });
            // Joins the worker threads: never returns if one of them is deadlocked.
            drop(rt);
        }
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(LIMIT * 3) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the runtime did not shut down: a worker thread is deadlocked")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("a round failed (see the panic above)")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_handler_never_takes_datagrams_from_a_stream() {
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use wtdatagram::DatagramHandler;

    struct Count(Arc<AtomicUsize>);
    impl DatagramHandler for Count {
        fn on_datagram(&self, _payload: Bytes) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst);
            true
        }
        fn on_closed(&self, _reason: &CloseReason) {}
    }

    let lp = loopback().await;
    let (ss, cs) = (&lp.ss, &lp.cs);
    // A plain handler is the session's default route...
    let plain = Arc::new(AtomicUsize::new(0));
    cs.set_datagram_handler(Arc::new(Count(plain.clone())))
        .unwrap();
    ss.send_datagram(b"to the handler").await.unwrap();
    eventually("the handler got it", || plain.load(Ordering::SeqCst) == 1).await;
    // ...which a stream claims from it (as the C ABI's event mode relies on).
    let stream = DatagramStream::new(cs, StreamConfig::default()).unwrap();
    // Once claimed, a handler cannot take the datagrams: refused, nothing changes.
    let thief = Arc::new(AtomicUsize::new(0));
    assert!(matches!(
        cs.set_datagram_handler(Arc::new(Count(thief.clone()))),
        Err(Error::InvalidState(_))
    ));
    ss.send_datagram(b"to the stream").await.unwrap();
    assert_eq!(
        &stream.receive(Some(LIMIT)).await.unwrap()[..],
        b"to the stream"
    );
    assert_eq!(thief.load(Ordering::SeqCst), 0);
    assert_eq!(plain.load(Ordering::SeqCst), 1);
    // Nor can a second owner claim them; a closed stream keeps its claim too.
    assert!(matches!(
        DatagramStream::new(cs, StreamConfig::default()),
        Err(Error::InvalidState(_))
    ));
    stream.close();
    assert!(matches!(
        cs.set_datagram_handler(Arc::new(Count(thief.clone()))),
        Err(Error::InvalidState(_))
    ));
}
