//! The session layer end to end on loopback: both roles of this crate talking to each other.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::relay::Relay;
use common::*;
use wtdatagram::{CloseReason, Dialect, Error, TransportOptions};

#[tokio::test]
async fn datagrams_both_ways_with_content_checked() {
    let server = server();
    let client = client_for(&server);
    let url = url(&server, "/echo?x=1");
    let (ss, cs) = within(pair(&server, &client, &url)).await;
    assert_eq!(ss.request().path, "/echo?x=1");
    assert_eq!(
        ss.request().authority,
        format!("127.0.0.1:{}", server.local_addr().port())
    );
    assert_eq!(
        ss.request().dialect,
        Dialect::Draft15,
        "our client speaks draft-15 to a server announcing WT_ENABLED"
    );
    assert_eq!(cs.id(), ss.id());

    const N: usize = 2000;
    const WINDOW: usize = 250; // below the 1024-datagram receive queue: nothing may drop
                               // Client -> server, then server -> client, window by window; every datagram distinct.
    for (from, to, tag) in [(&cs, &ss, "c2s"), (&ss, &cs, "s2c")] {
        let mut seen = HashSet::new();
        for w in 0..N / WINDOW {
            for i in w * WINDOW..(w + 1) * WINDOW {
                let payload = format!("{tag}-{i:05}-{}", "x".repeat(i % 700));
                from.send_datagram(payload.as_bytes()).await.unwrap();
            }
            for _ in 0..WINDOW {
                let d = within(to.recv_datagram()).await.unwrap();
                let s = std::str::from_utf8(&d).unwrap();
                let i: usize = s[4..9].parse().unwrap();
                assert_eq!(s, format!("{tag}-{i:05}-{}", "x".repeat(i % 700)));
                assert!(seen.insert(i), "duplicate {i}");
            }
        }
        assert_eq!(seen.len(), N);
    }
    let st = cs.stats();
    assert_eq!(st.datagrams_received, N as u64);
    assert_eq!(st.datagrams_sent, N as u64);
    assert_eq!(st.recv_dropped, 0);
    assert_eq!(ss.stats().datagrams_received, N as u64);
}

#[tokio::test]
async fn many_sessions_on_one_connection_are_routed_by_id() {
    let server = Arc::new(server());
    spawn_echo(server.clone());
    let client = client_for(&server);
    let conn = within(client.connect(&url(&server, "/"))).await.unwrap();
    // 70 sessions: ids 0, 4, ... 276, so quarter ids pass 63 and the prefix grows to 2 bytes.
    let mut sessions = Vec::new();
    for i in 0..70 {
        let s = within(conn.open_session(&format!("/s{i}"), &[]))
            .await
            .unwrap();
        assert_eq!(s.request().path, format!("/s{i}"));
        sessions.push(s);
    }
    assert!(
        sessions.iter().any(|s| s.id() / 4 > 63),
        "some session id must need a 2-byte prefix"
    );
    assert_eq!(conn.session_count(), 70);
    for round in 0..3 {
        for (i, s) in sessions.iter().enumerate() {
            s.send_datagram(format!("{i}:{round}").as_bytes())
                .await
                .unwrap();
        }
        for (i, s) in sessions.iter().enumerate() {
            let d = within(s.recv_datagram()).await.unwrap();
            assert_eq!(
                &d[..],
                format!("{i}:{round}").as_bytes(),
                "session {i} got another session's datagram"
            );
        }
    }
    assert_eq!(conn.unknown_session_datagrams(), 0);
}

#[tokio::test]
async fn oversize_datagram_is_rejected_not_dropped() {
    let server = Arc::new(server());
    spawn_echo(server.clone());
    let client = client_for(&server);
    let s = within(client.open_session(&url(&server, "/")))
        .await
        .unwrap();
    let max = s.max_datagram_size().unwrap();
    assert!(max >= 1100, "max datagram size {max}");
    // Path MTU discovery may still raise the limit (1161 -> 1381 -> 1413 on loopback),
    // so "one byte too many" is checked against a size no path allows.
    let big = vec![0u8; 65_536];
    assert!(matches!(
        s.try_send_datagram(&big),
        Err(Error::TooLarge { size: 65_536, max: m }) if m >= max
    ));
    assert!(matches!(
        s.send_datagram(&big).await,
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(s.stats().send_too_large, 2);
    // Exactly the current max still goes through and comes back intact.
    let max = s.max_datagram_size().unwrap();
    let exact: Vec<u8> = (0..max).map(|i| i as u8).collect();
    s.send_datagram(&exact).await.unwrap();
    let back = within(s.recv_datagram()).await.unwrap();
    assert_eq!(&back[..], &exact[..]);
}

#[tokio::test]
async fn close_code_and_reason_reach_the_peer_both_ways() {
    let server = server();
    let client = client_for(&server);
    let url = url(&server, "/");
    for client_closes in [true, false] {
        let (ss, cs) = within(pair(&server, &client, &url)).await;
        let (closer, other) = if client_closes {
            (&cs, &ss)
        } else {
            (&ss, &cs)
        };
        closer.close(4242, "game over ✓");
        assert_eq!(
            closer.close_reason(),
            Some(CloseReason::Local {
                code: 4242,
                reason: "game over ✓".into()
            })
        );
        let seen = within(other.closed()).await;
        assert_eq!(
            seen,
            CloseReason::Remote {
                code: 4242,
                reason: "game over ✓".into()
            }
        );
        assert!(matches!(
            other.try_send_datagram(b"x"),
            Err(Error::Closed(_))
        ));
        assert!(matches!(other.recv_datagram().await, Err(Error::Closed(_))));
    }
}

#[tokio::test]
async fn rejected_session_reports_the_status() {
    let server = server();
    let client = client_for(&server);
    let url = url(&server, "/private");
    let (req, cs) = tokio::join!(
        async { server.accept().await.unwrap().reject(403).await },
        client.open_session(&url)
    );
    req.unwrap();
    assert_eq!(cs.unwrap_err(), Error::Rejected(403));
}

#[tokio::test]
async fn connection_loss_is_detected() {
    let server = server();
    let client = client_for(&server);
    let url = url(&server, "/");
    let (ss, cs) = within(pair(&server, &client, &url)).await;
    // The server closes the whole connection: the client session learns it with the code.
    drop(ss);
    server.close();
    let r = within(cs.closed()).await;
    match r {
        CloseReason::ConnectionLost { code, .. } => assert_eq!(code, 0x100),
        CloseReason::Remote { code: 0, .. } => {}
        other => panic!("unexpected close reason {other:?}"),
    }
}

/// The idle timeout itself: the client talks to the server through a relay that then
/// drops every packet both ways, with no keep-alive on either side. Nothing closes
/// anything; quinn's idle timer is the only thing that can end the sessions, and both
/// ends must report exactly that.
#[tokio::test]
async fn idle_timeout_ends_sessions_when_the_peer_goes_silent() {
    let idle = TransportOptions {
        idle_timeout: std::time::Duration::from_millis(500),
        keep_alive: None,
        ..Default::default()
    };
    let server = server_with(idle.clone());
    let client = wtdatagram::Client::new(wtdatagram::ClientConfig {
        verify: wtdatagram::Verify::Hashes(vec![server.cert_sha256()]),
        transport: idle,
        ..Default::default()
    })
    .unwrap();
    let relay = Relay::start(server.local_addr()).await;
    let url = format!("https://127.0.0.1:{}/idle", relay.addr.port());
    let (ss, cs) = within(pair(&server, &client, &url)).await;
    // The path works while the relay forwards.
    cs.send_datagram(b"ping").await.unwrap();
    assert_eq!(&within(ss.recv_datagram()).await.unwrap()[..], b"ping");

    relay.go_silent();
    assert_eq!(within(cs.closed()).await, CloseReason::TimedOut);
    assert_eq!(within(ss.closed()).await, CloseReason::TimedOut);
    assert!(matches!(
        cs.try_send_datagram(b"x"),
        Err(Error::Closed(CloseReason::TimedOut))
    ));
    assert!(matches!(
        ss.recv_datagram().await,
        Err(Error::Closed(CloseReason::TimedOut))
    ));
}

/// `Client::close` ends every connection of the client at once: its sessions see the
/// connection closed locally, the server's sessions see the client's close code.
#[tokio::test]
async fn closing_the_client_ends_its_sessions_on_both_sides() {
    let server = server();
    let client = client_for(&server);
    let url = url(&server, "/");
    let mut pairs = Vec::new();
    for _ in 0..2 {
        pairs.push(within(pair(&server, &client, &url)).await);
    }
    client.close();
    for (ss, cs) in &pairs {
        // Locally: the connection was closed here (quinn's LocallyClosed, no code).
        match within(cs.closed()).await {
            CloseReason::ConnectionLost { code: 0, reason } => {
                assert_eq!(reason, "closed", "quinn's LocallyClosed");
            }
            other => panic!("client side ended with {other:?}"),
        }
        match within(ss.closed()).await {
            CloseReason::ConnectionLost { code, reason } => {
                assert_eq!(code, 0x100, "H3_NO_ERROR");
                assert!(reason.contains("client closed"), "{reason}");
            }
            other => panic!("server side ended with {other:?}"),
        }
        assert!(matches!(cs.try_send_datagram(b"x"), Err(Error::Closed(_))));
    }
    assert!(matches!(
        client.open_session(&url).await,
        Err(Error::Closed(_))
    ));
}

/// Sessions the server closes right before the server itself closes (or is dropped)
/// still reach their clients as `Remote { code, reason }`: the server holds each
/// connection until the close capsules went out and were answered. Sessions left open
/// see the connection close afterwards.
#[tokio::test]
async fn server_close_delivers_the_close_codes_of_sessions_closed_just_before() {
    for drop_server in [false, true] {
        let server = server();
        let client = client_for(&server);
        let url = url(&server, "/");
        // Three sessions on one connection, two more on a connection each.
        let conn = within(client.connect(&url)).await.expect("connect");
        let mut shared = Vec::new();
        for i in 0..3 {
            let path = format!("/shared/{i}");
            let (req, cs) = within(async {
                tokio::join!(
                    async { server.accept().await.expect("request").accept().await },
                    conn.open_session(&path, &[])
                )
            })
            .await;
            shared.push((req.expect("accept"), cs.expect("open")));
        }
        let mut single = Vec::new();
        for _ in 0..2 {
            single.push(within(pair(&server, &client, &url)).await);
        }
        let (kept_server_side, kept_client_side) = within(pair(&server, &client, &url)).await;
        let closes: Vec<(u32, String)> = (0..4)
            .map(|i| (4000 + i, format!("round over #{i} ✓")))
            .collect();
        let mut expect = Vec::new();
        let (dropped_ss, dropped_cs) = shared.pop().unwrap();
        for ((ss, cs), (code, reason)) in shared.into_iter().chain(single).zip(&closes) {
            ss.close(*code, reason);
            expect.push((
                cs,
                CloseReason::Remote {
                    code: *code,
                    reason: reason.clone(),
                },
            ));
        }
        // The last handle of a session dropped: closed with code 0.
        drop(dropped_ss);
        expect.push((
            dropped_cs,
            CloseReason::Remote {
                code: 0,
                reason: String::new(),
            },
        ));
        if drop_server {
            drop(server);
        } else {
            server.close();
        }
        for (i, (cs, want)) in expect.iter().enumerate() {
            let seen = within(cs.closed()).await;
            assert_eq!(&seen, want, "session {i}, server dropped: {drop_server}");
        }
        // A session still open when the server closed sees its connection close.
        match within(kept_client_side.closed()).await {
            CloseReason::ConnectionLost { code, reason } => {
                assert_eq!(code, 0x100, "{reason}");
                assert!(reason.contains("server closed"), "{reason}");
            }
            other => panic!("open session ended with {other:?}"),
        }
        assert!(matches!(
            kept_server_side.close_reason(),
            Some(CloseReason::ConnectionLost { .. })
        ));
    }
}

/// `notify_readable`: the hook runs once a datagram waits (at once if one does, on the
/// runtime when the next one is queued), once per registration; it is refused once the
/// session closed and drained, and while a handler takes the datagrams.
#[tokio::test]
async fn notify_readable_runs_once_per_registration() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = server();
    let client = client_for(&server);
    let url = url(&server, "/readable");
    let (ss, cs) = within(pair(&server, &client, &url)).await;
    let fired = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let hook = |fired: &Arc<AtomicUsize>, tx: &tokio::sync::mpsc::UnboundedSender<()>| {
        let (fired, tx) = (fired.clone(), tx.clone());
        Box::new(move || {
            fired.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(());
        }) as Box<dyn FnOnce() + Send>
    };
    // Nothing queued: registered, not run; a second registration replaces the first.
    cs.notify_readable(hook(&fired, &tx)).unwrap();
    cs.notify_readable(hook(&fired, &tx)).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 0);
    ss.send_datagram(b"one").await.unwrap();
    ss.send_datagram(b"two").await.unwrap();
    within(rx.recv()).await.unwrap();
    // Wait until both arrived: the hook ran once for the burst.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while cs.stats().datagrams_received < 2 && std::time::Instant::now() < end {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    // Datagrams wait: it runs at once, on this thread.
    cs.notify_readable(hook(&fired, &tx)).unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 2);
    assert_eq!(&cs.try_recv_datagram().unwrap().unwrap()[..], b"one");
    assert_eq!(&cs.try_recv_datagram().unwrap().unwrap()[..], b"two");
    assert!(cs.try_recv_datagram().unwrap().is_none());
    // Closed and drained: refused; a registration from before the close never runs.
    cs.notify_readable(hook(&fired, &tx)).unwrap();
    ss.close(5, "done");
    within(cs.closed()).await;
    assert!(matches!(
        cs.notify_readable(hook(&fired, &tx)),
        Err(Error::Closed(_))
    ));
    assert_eq!(fired.load(Ordering::SeqCst), 2);
}
