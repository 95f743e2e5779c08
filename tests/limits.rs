//! Limits a server keeps against what peers send (DESIGN.md §7, issue 11): field
//! sections (431), the request deadline, sessions per connection counted with the
//! requests in flight, sessions and connections per server, and the request backlog.
//! A raw HTTP/3 peer (tests/common/raw.rs) plays the attacker; every check is on
//! behaviour (status codes, reset codes, counters), none on time.

mod common;

use std::time::Duration;

use common::raw::*;
use common::*;
use quinn::{ConnectionError, VarInt};
use wtdatagram::wire::codes::*;
use wtdatagram::wire::frame;
use wtdatagram::{Server, ServerConfig, TransportOptions};

fn server_cfg(f: impl FnOnce(&mut ServerConfig)) -> Server {
    init_log();
    let mut cfg = ServerConfig::default();
    f(&mut cfg);
    Server::bind(cfg).expect("bind")
}

/// A CONNECT request whose field section holds `extra` copies of `accept: */*` (one
/// byte each in QPACK: static index 29): small on the wire, large once decoded.
fn amplified_request(authority: &str, extra: usize) -> Vec<u8> {
    let mut block = qpack_block(authority);
    block.extend(std::iter::repeat_n(0xc0 | 29u8, extra));
    frame(frame::HEADERS, &block)
}

fn qpack_block(authority: &str) -> Vec<u8> {
    wtdatagram::wire::qpack::encode(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", "/amplified"),
        ("sec-webtransport-http3-draft02", "1"),
    ])
}

/// Wait (bounded by the test safety limit) until `cond` holds.
async fn wait_for(cond: impl Fn() -> bool) {
    within(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

async fn status_of(recv: &mut quinn::RecvStream) -> u16 {
    status(&read_headers(recv).await.expect("response HEADERS"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplified_field_section_is_answered_431() {
    // 15 KiB of one-byte static references (within the 16 KiB frame limit) would
    // decode to ~600 KB of fields; decoding stops at 16 KiB and the request gets 431.
    // Its connection and a proper session on it are unaffected.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (_send, mut recv) = raw
        .bidi_stoppable(&amplified_request(&raw.authority, 15_000))
        .await;
    assert_eq!(status_of(&mut recv).await, 431);
    // At the count limit of 128 fields (6 + 122), within the size limit: a request.
    let (_s2, mut r2) = raw
        .bidi_stoppable(&amplified_request(&raw.authority, 122))
        .await;
    let req = within(server.accept()).await.expect("request");
    assert_eq!(req.info().headers.len(), 1 + 122);
    drop(req); // answered 503 by its Drop
    assert_eq!(status_of(&mut r2).await, 503);
    // One field too many.
    let (_s3, mut r3) = raw
        .bidi_stoppable(&amplified_request(&raw.authority, 123))
        .await;
    assert_eq!(status_of(&mut r3).await, 431);
    raw.assert_open();
    let (ss, _s, _r) = raw.session(&server, "/fine").await;
    assert!(ss.close_reason().is_none());
    let st = server.stats();
    assert_eq!(st.requests_too_large, 2);
    assert_eq!(st.requests_received, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_limits_are_configurable_and_announced() {
    let server = server_cfg(|c| {
        c.transport = TransportOptions {
            max_field_section_size: 1024,
            max_header_fields: 8,
            ..Default::default()
        }
    });
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // The limit is announced in SETTINGS (SETTINGS_MAX_FIELD_SECTION_SIZE = 0x6).
    let peer = read_peer_settings(&raw).await;
    assert_eq!(
        peer.get(wtdatagram::wire::settings::MAX_FIELD_SECTION_SIZE),
        Some(1024)
    );
    let big = "v".repeat(1100);
    let (_send, mut recv) = raw
        .bidi(&headers_frame(&[
            (":method", "CONNECT"),
            (":protocol", "webtransport"),
            (":scheme", "https"),
            (":authority", &raw.authority),
            (":path", "/"),
            ("x-big", &big),
        ]))
        .await;
    assert_eq!(status_of(&mut recv).await, 431);
    let (ss, _s, _r) = raw.session(&server, "/small").await;
    assert!(ss.close_reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_are_reset_at_the_deadline() {
    // A slowloris: a HEADERS frame that never completes, a stream that sends only an
    // unknown frame, and one that sends nothing. Keep-alives hold the connection up;
    // the request deadline resets each stream with H3_REQUEST_REJECTED.
    let server = server_cfg(|c| c.request_timeout = Duration::from_millis(300));
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let mut partial = vi(frame::HEADERS);
    partial.extend(vi(4000));
    partial.extend([0u8; 10]);
    let (_a, mut ra) = raw.bidi(&partial).await;
    let (_b, mut rb) = raw.bidi(&frame(0x21, b"grease")).await;
    let (mut c, mut rc) = within(raw.conn.open_bi()).await.expect("open");
    c.write_all(&[]).await.expect("empty write");
    // quinn opens the stream on the wire with the first byte: send a 1-byte varint
    // prefix of a frame type and nothing more.
    c.write_all(&[0x40]).await.expect("write");
    for recv in [&mut ra, &mut rb, &mut rc] {
        assert_eq!(expect_reset(recv).await, H3_REQUEST_REJECTED);
    }
    raw.assert_open();
    assert_eq!(server.stats().requests_timed_out, 3);
    // The connection still serves a request that arrives in time.
    let (ss, _s, _r) = raw.session(&server, "/on-time").await;
    assert!(ss.close_reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_cannot_exceed_sessions_per_connection() {
    // 12 CONNECTs written at once on one connection with a limit of 4: requests being
    // answered count, so exactly 4 reach the application and 8 get 429.
    let server = server_with(TransportOptions {
        max_sessions_per_connection: 4,
        ..Default::default()
    });
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let mut streams = Vec::new();
    for i in 0..12 {
        streams.push(
            raw.bidi(&connect_request(&raw.authority, &format!("/s{i}")))
                .await,
        );
    }
    // Exactly 4 reach the application (they hold the places; being answered counts).
    let mut accepted = Vec::new();
    for _ in 0..4 {
        let req = within(server.accept()).await.expect("request");
        accepted.push(req.accept().await.expect("accept"));
    }
    let mut rejected = 0;
    // The request streams stay open (a finished CONNECT stream would end its session).
    let mut open = Vec::new();
    for (send, mut recv) in streams {
        open.push(send);
        match status_of(&mut recv).await {
            200 => {}
            429 => rejected += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(rejected, 8);
    assert_eq!(server.stats().requests_refused_connection_full, 8);
    assert_eq!(server.stats().pending_requests, 0);
    assert_eq!(raw_sessions(&server), 4);
}

fn raw_sessions(server: &Server) -> u64 {
    server.stats().sessions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_wide_session_limit_spans_connections() {
    let server = server_cfg(|c| c.max_sessions = 3);
    let mut a = RawClient::connect(&server).await;
    a.control_ok().await;
    let mut b = RawClient::connect(&server).await;
    b.control_ok().await;
    let (_s1, _x1, _y1) = a.session(&server, "/1").await;
    let (_s2, _x2, _y2) = a.session(&server, "/2").await;
    let (_s3, _x3, _y3) = b.session(&server, "/3").await;
    let (_send, mut recv) = b.bidi(&connect_request(&b.authority, "/4")).await;
    assert_eq!(status_of(&mut recv).await, 503);
    assert_eq!(server.stats().requests_refused_server_full, 1);
    assert_eq!(server.stats().sessions, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_backlog_bounds_unanswered_requests() {
    // The application takes no request: 2 wait, the others are answered 503 at once.
    // Requests the application holds unanswered still count.
    let server = server_cfg(|c| c.request_backlog = 2);
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let first = raw.bidi(&connect_request(&raw.authority, "/1")).await;
    let held = within(server.accept()).await.expect("request 1");
    let second = raw.bidi(&connect_request(&raw.authority, "/2")).await;
    // Requests are served concurrently: let /2 take the second place before the rest.
    wait_for(|| server.stats().pending_requests == 2).await;
    let mut refused = Vec::new();
    for i in 3..7 {
        refused.push(
            raw.bidi(&connect_request(&raw.authority, &format!("/{i}")))
                .await,
        );
    }
    for (_s, mut r) in refused {
        assert_eq!(status_of(&mut r).await, 503);
    }
    assert_eq!(server.stats().requests_refused_backlog, 4);
    assert_eq!(server.stats().pending_requests, 2);
    // Answering frees the places.
    let _s1 = held.accept().await.expect("accept 1");
    let _s2 = within(server.accept())
        .await
        .expect("request 2")
        .accept()
        .await
        .expect("accept 2");
    let (_a, mut r1) = first;
    let (_b, mut r2) = second;
    assert_eq!(status_of(&mut r1).await, 200);
    assert_eq!(status_of(&mut r2).await, 200);
    assert_eq!(server.stats().pending_requests, 0);
    let (ss, _x, _y) = raw.session(&server, "/after").await;
    assert!(ss.close_reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused() {
    let server = server_cfg(|c| c.max_connections = 2);
    let a = RawClient::connect(&server).await;
    let b = RawClient::connect(&server).await;
    let refused = RawClient::try_connect_addr(server.local_addr()).await;
    match refused {
        Err(ConnectionError::ConnectionClosed(c)) => {
            assert_eq!(c.error_code, quinn::TransportErrorCode::CONNECTION_REFUSED)
        }
        Err(other) => panic!("expected CONNECTION_REFUSED, got {other:?}"),
        Ok(_) => panic!("a third connection was accepted"),
    }
    assert_eq!(server.stats().connections_refused, 1);
    assert_eq!(server.stats().connections, 2);
    // A place comes back when a connection ends.
    a.conn.close(VarInt::from_u32(0x100), b"bye");
    within(a.conn.closed()).await;
    wait_for(|| server.stats().connections < 2).await;
    let _third = RawClient::connect(&server).await;
    drop(b);
}
