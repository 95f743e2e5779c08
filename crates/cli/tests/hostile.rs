//! Hostile peers against a real `wtd serve` process, measured by its memory (issue 11
//! §1): whatever a peer sends, the server holds memory in proportion to what that peer
//! is allowed (bounded field sections, a request deadline, connection and session
//! limits), and gives it back. Each test records the server's resident set size (RSS,
//! from /proc) before and while under attack and asserts a bound that the unbounded
//! server exceeded by orders of magnitude (4.1 GB for the amplification attack). The
//! attacker is the raw HTTP/3 peer of tests/common/raw.rs, on 127.0.0.1 only, and every
//! loop is bounded in count.
//!
//! `WTD_HOSTILE_BIN=/path/to/wtd` points the tests at another build of `wtd` (to
//! measure an older release); the numbers are printed either way.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::raw::*;
use wtdatagram::wire::codes::*;
use wtdatagram::wire::frame;

struct ServeProc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for ServeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> ServeProc {
    let bin = std::env::var("WTD_HOSTILE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wtd").into());
    let mut child = Command::new(bin)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wtd serve");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("first line");
    let addr = first
        .trim()
        .strip_prefix("listening https://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .parse()
        .expect("address");
    // Keep reading its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    ServeProc { child, addr }
}

/// Resident set size of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A CONNECT request followed by `refs` one-byte static references (`accept: */*`):
/// 64 KiB of them decoded into ~65,000 fields on the unbounded server.
fn amplified_request(authority: &str, refs: usize) -> Vec<u8> {
    let mut block = wtdatagram::wire::qpack::encode(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", "/amplified"),
        ("sec-webtransport-http3-draft02", "1"),
    ]);
    block.extend(std::iter::repeat_n(0xc0 | 29u8, refs));
    frame(frame::HEADERS, &block)
}

/// A normal session still works: the server is alive and serving after the attack.
async fn still_serves(addr: SocketAddr) {
    let mut raw = RawClient::connect_addr(addr).await;
    raw.control_ok().await;
    let (_send, mut recv) = raw.bidi(&connect_request(&raw.authority, "/after")).await;
    assert_eq!(
        status(&read_headers(&mut recv).await.expect("response")),
        200
    );
}

const MIB: u64 = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_amplification_does_not_grow_the_server() {
    // Two connections of 200 requests of 64,000 static references each: 12.8 MB on
    // the wire that decoded to 26 million fields (4.1 GB) on the unbounded server.
    // Now each is answered 431 from its frame header; then 2 x 200 sessions with the
    // largest request the limits allow (16 KiB, 128 fields) are accepted and held.
    let srv = serve(&[]);
    let pid = srv.child.id();
    still_serves(srv.addr).await;
    let before = rss_kib(pid);
    let mut conns = Vec::new();
    for _ in 0..2 {
        let mut raw = RawClient::connect_addr(srv.addr).await;
        raw.control_ok().await;
        conns.push(raw);
    }
    let mut refused = 0;
    for raw in &conns {
        let mut streams = Vec::new();
        for _ in 0..200 {
            streams.push(
                raw.bidi_stoppable(&amplified_request(&raw.authority, 64_000))
                    .await,
            );
        }
        for (_send, mut recv) in streams {
            let st = status(&read_headers(&mut recv).await.expect("response"));
            assert_eq!(st, 431);
            refused += 1;
        }
    }
    let after_refused = rss_kib(pid);
    // Sessions at the limits: 122 extra fields (128 in all) and a 10 KB value (15.4 KB as RFC 9114 counts).
    let big = "x".repeat(10_000);
    let mut held = Vec::new();
    for raw in &conns {
        for i in 0..200 {
            let mut fields: Vec<(&str, &str)> = vec![
                (":method", "CONNECT"),
                (":protocol", "webtransport"),
                (":scheme", "https"),
                (":authority", &raw.authority),
                (":path", "/held"),
                ("sec-webtransport-http3-draft02", "1"),
                ("x-big", &big),
            ];
            fields.extend(std::iter::repeat_n(("accept", "*/*"), 121));
            let (send, mut recv) = raw.bidi(&headers_frame(&fields)).await;
            let st = status(&read_headers(&mut recv).await.expect("response"));
            assert_eq!(st, 200, "session {i}");
            held.push((send, recv));
        }
    }
    let with_sessions = rss_kib(pid);
    eprintln!(
        "RSS KiB: before {before}, after {refused} amplified requests {after_refused}, \
         with {} sessions at the header limits {with_sessions}",
        held.len()
    );
    assert!(
        after_refused < before + 16 * MIB,
        "431-answered requests grew the server by {} KiB",
        after_refused - before
    );
    // 400 sessions, each allowed 16 KiB of request headers plus its own state.
    assert!(
        with_sessions < before + 64 * MIB,
        "400 sessions grew the server by {} KiB",
        with_sessions - before
    );
    still_serves(srv.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_partial_requests_are_bounded_and_reset() {
    // A slowloris: 4 connections, each with 200 request streams holding 15,000 bytes of
    // a HEADERS frame that declares 16,000 and never completes. Keep-alives hold the
    // connections up; the request deadline resets every stream with
    // H3_REQUEST_REJECTED, and the memory comes back.
    let srv = serve(&["--request-timeout-ms", "2000"]);
    let pid = srv.child.id();
    still_serves(srv.addr).await;
    let before = rss_kib(pid);
    let mut partial = vi(frame::HEADERS);
    partial.extend(vi(16_000));
    partial.extend(vec![0u8; 15_000]);
    let mut conns = Vec::new();
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut raw = RawClient::connect_addr(srv.addr).await;
        raw.control_ok().await;
        for _ in 0..200 {
            // open_bi waits for stream credit: the server grants more as requests come.
            let Ok(Ok((mut send, recv))) =
                tokio::time::timeout(std::time::Duration::from_secs(1), raw.conn.open_bi()).await
            else {
                break; // no more credit: the server's stream limit holds
            };
            // Flow control may hold part of it back: write what the server accepts.
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(200),
                send.write_all(&partial),
            )
            .await;
            streams.push((send, recv));
        }
        conns.push(raw);
    }
    let during = rss_kib(pid);
    let n = streams.len();
    let mut rejected = 0;
    for (_send, mut recv) in streams {
        if expect_reset(&mut recv).await == H3_REQUEST_REJECTED {
            rejected += 1;
        }
    }
    eprintln!("RSS KiB: before {before}, holding {n} partial requests {during}");
    assert_eq!(
        rejected, n,
        "every partial request is reset with H3_REQUEST_REJECTED"
    );
    assert!(n >= 64, "the attack opened only {n} streams");
    assert!(
        during < before + 48 * MIB,
        "{n} partial requests grew the server by {} KiB",
        during - before
    );
    for raw in &conns {
        raw.assert_open();
    }
    still_serves(srv.addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_flood_is_refused_beyond_the_limit() {
    // 100 connections against a limit of 20: 80 are refused during the handshake and
    // the server's memory follows the 20 it holds.
    let srv = serve(&["--max-connections", "20"]);
    let pid = srv.child.id();
    let before = rss_kib(pid);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        match RawClient::try_connect_addr(srv.addr).await {
            Ok(raw) => held.push(raw),
            Err(quinn::ConnectionError::ConnectionClosed(c))
                if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
            {
                refused += 1
            }
            Err(e) => panic!("unexpected handshake failure: {e}"),
        }
    }
    let during = rss_kib(pid);
    eprintln!(
        "RSS KiB: before {before}, with {} connections held {during}",
        held.len()
    );
    assert_eq!(held.len(), 20);
    assert_eq!(refused, 80);
    assert!(
        during < before + 32 * MIB,
        "grew by {} KiB",
        during - before
    );
    drop(held);
}
