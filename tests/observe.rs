//! What a host can see of a connection and tune in it, end to end on loopback:
//! connection statistics after a real exchange, the tuning knobs (congestion
//! controller, initial MTU, MTU discovery, initial RTT) as they show in those
//! statistics, values refused, and failed handshakes reported by the server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use wtdatagram::{
    Client, ClientConfig, CongestionControl, Error, Server, ServerConfig, TransportOptions, Verify,
};

fn client_with(server: &Server, transport: TransportOptions) -> Client {
    Client::new(ClientConfig {
        verify: Verify::Hashes(vec![server.cert_sha256()]),
        transport,
        ..Default::default()
    })
    .expect("client")
}

/// Send `n` datagrams from `from` and receive them at `to`.
async fn exchange(from: &wtdatagram::Session, to: &wtdatagram::Session, n: usize, size: usize) {
    for i in 0..n {
        let mut payload = vec![b'x'; size];
        payload[..8].copy_from_slice(&(i as u64).to_be_bytes());
        from.send_datagram(&payload).await.unwrap();
        let d = within(to.recv_datagram()).await.unwrap();
        assert_eq!(d.len(), size);
    }
}

#[tokio::test]
async fn connection_stats_after_an_exchange() {
    let server = server();
    let client = client_for(&server);
    let conn = within(client.connect(&url(&server, "/"))).await.unwrap();
    let before = conn.stats();
    let (ss, cs) = tokio::join!(
        async { server.accept().await.unwrap().accept().await.unwrap() },
        conn.open_session("/stats", &[])
    );
    let cs = cs.unwrap();
    exchange(&cs, &ss, 200, 1000).await;
    exchange(&ss, &cs, 150, 1000).await;

    let c = cs.connection_stats();
    let s = ss.connection_stats();
    for (side, st) in [("client", &c), ("server", &s)] {
        assert!(st.rtt > Duration::ZERO, "{side}: {st:?}");
        assert!(
            st.min_rtt <= st.rtt * 4, // zero is possible on loopback (see `min_rtt`)
            "{side}: {st:?}"
        );
        assert!(st.congestion_window > 0, "{side}: {st:?}");
        assert!(
            st.packets_sent > 0 && st.packets_received > 0,
            "{side}: {st:?}"
        );
        assert!(st.bytes_sent > 0 && st.bytes_received > 0, "{side}: {st:?}");
        assert!(st.path_mtu >= 1200, "{side}: {st:?}");
        assert_eq!(st.congestion_controller, CongestionControl::Cubic, "{side}");
        // quinn 0.11 exposes neither.
        assert_eq!(st.rtt_variance, None);
        assert_eq!(st.bytes_in_flight, None);
        // Everything received was read: nothing waits in quinn or was dropped there.
        assert_eq!(st.datagrams_dropped, 0, "{side}: {st:?}");
    }
    // Each side sent what the other received (and nothing else went as datagrams).
    assert_eq!(c.datagrams_sent, 200);
    assert_eq!(s.datagrams_received, 200);
    assert_eq!(s.datagrams_sent, 150);
    assert_eq!(c.datagrams_received, 150);
    // 200 datagrams of 1000 bytes left in at least 200 packets.
    assert!(
        c.packets_sent >= 200 + before.packets_sent,
        "{c:?} {before:?}"
    );
    assert!(c.bytes_sent >= 200 * 1000, "{c:?}");
    // The connection's view is the same from a session and from the connection.
    assert_eq!(conn.stats().datagrams_sent, c.datagrams_sent);
}

async fn pair_with(
    server_opts: TransportOptions,
    client_opts: TransportOptions,
) -> (Server, Client, wtdatagram::Session, wtdatagram::Session) {
    let server = server_with(server_opts);
    let client = client_with(&server, client_opts);
    let u = url(&server, "/tuned");
    let (ss, cs) = within(pair(&server, &client, &u)).await;
    (server, client, ss, cs)
}

#[tokio::test]
async fn initial_mtu_without_discovery_is_the_path_mtu() {
    let opts = TransportOptions {
        mtu_discovery: false,
        initial_mtu: 1400,
        ..Default::default()
    };
    let (_server, _client, ss, cs) = pair_with(opts.clone(), opts).await;
    exchange(&cs, &ss, 50, 1300).await;
    exchange(&ss, &cs, 50, 1300).await;
    assert_eq!(cs.connection_stats().path_mtu, 1400);
    assert_eq!(ss.connection_stats().path_mtu, 1400);
    // The datagram limit follows: above 1200 bytes of packet, below 1400.
    let max = cs.max_datagram_size().unwrap();
    assert!(max > 1300 && max < 1400, "{max}");
    assert!(matches!(
        cs.send_datagram(&vec![0u8; max + 1]).await,
        Err(Error::TooLarge { .. })
    ));

    // The default without discovery: 1200 all along, so 1300-byte datagrams never fit.
    let off = TransportOptions {
        mtu_discovery: false,
        ..Default::default()
    };
    let (_server, _client, ss, cs) = pair_with(off.clone(), off).await;
    exchange(&cs, &ss, 20, 1000).await;
    assert_eq!(cs.connection_stats().path_mtu, 1200);
    assert!(cs.max_datagram_size().unwrap() < 1200);
}

#[tokio::test]
async fn mtu_discovery_raises_the_path_mtu() {
    // Default: discovery on, from 1200 up to 1452 (loopback carries it all).
    let (_server, _client, ss, cs) =
        pair_with(TransportOptions::default(), TransportOptions::default()).await;
    within(async {
        while cs.connection_stats().path_mtu <= 1200 {
            exchange(&cs, &ss, 1, 100).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(cs.connection_stats().path_mtu > 1200);
}

#[tokio::test]
async fn the_congestion_controller_in_use_is_the_configured_one() {
    for cc in [
        CongestionControl::Cubic,
        CongestionControl::NewReno,
        CongestionControl::Bbr,
    ] {
        let opts = TransportOptions {
            congestion: cc,
            ..Default::default()
        };
        let (_server, _client, ss, cs) = pair_with(opts.clone(), opts).await;
        exchange(&cs, &ss, 50, 1000).await;
        let st = cs.connection_stats();
        assert_eq!(st.congestion_controller, cc, "{st:?}");
        assert_eq!(ss.connection_stats().congestion_controller, cc);
        // Only BBR paces by rate; CUBIC and NewReno have a slow-start threshold only
        // after a congestion event (none on loopback at this rate).
        assert_eq!(
            st.pacing_rate.is_some(),
            cc == CongestionControl::Bbr,
            "{st:?}"
        );
    }
}

#[tokio::test]
async fn initial_rtt_gives_way_to_the_measured_rtt() {
    // The initial RTT only sets the handshake's first timeouts (quinn has no connection
    // to read before the handshake ends); that it reaches quinn is pinned by a unit test
    // in src/transport/endpoint.rs. Here: a connection made with it works, and the RTT
    // it reports is the measured one, not the 900 ms assumed at first.
    let opts = TransportOptions {
        initial_rtt: Duration::from_millis(900),
        ..Default::default()
    };
    let (_server, _client, ss, cs) = pair_with(opts.clone(), opts).await;
    exchange(&cs, &ss, 20, 100).await;
    let rtt = cs.connection_stats().rtt;
    assert!(
        rtt < Duration::from_millis(900),
        "measured, not assumed: {rtt:?}"
    );
}

#[tokio::test]
async fn out_of_range_tuning_is_refused() {
    let bad = [
        TransportOptions {
            initial_mtu: 1199,
            ..Default::default()
        },
        TransportOptions {
            initial_mtu: 65528,
            ..Default::default()
        },
        TransportOptions {
            initial_rtt: Duration::ZERO,
            ..Default::default()
        },
        TransportOptions {
            initial_rtt: Duration::from_secs(61),
            ..Default::default()
        },
    ];
    for opts in bad {
        let e = Server::bind(ServerConfig {
            transport: opts.clone(),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        let e = Client::new(ClientConfig {
            transport: opts,
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
}

#[tokio::test]
async fn failed_handshakes_are_reported_with_the_peer_and_the_tls_reason() {
    let server = Arc::new(server());
    let mut failures = server.handshake_failures();
    // A client that pins another certificate: it aborts the handshake.
    let client = Client::new(ClientConfig {
        verify: Verify::Hashes(vec![[7u8; 32]]),
        bind: Some("127.0.0.1:0".parse().unwrap()),
        ..Default::default()
    })
    .unwrap();
    let err = within(client.connect(&url(&server, "/")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    let f = within(failures.recv()).await.expect("a failure");
    assert_eq!(f.remote, client.local_addr().unwrap());
    assert!(f.tls_alert.is_some(), "{f:?}");
    assert!(f.reason.contains("TLS alert"), "{f:?}");
    assert_eq!(server.stats().handshakes_failed, 1);
    assert_eq!(failures.missed(), 0);
}

#[tokio::test]
async fn qlog_traces_one_file_per_connection() {
    let dir = std::env::temp_dir().join(format!("wtd-qlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let opts = TransportOptions {
        qlog_dir: Some(dir.clone()),
        ..Default::default()
    };
    let (_server, _client, ss, cs) = pair_with(opts.clone(), opts).await;
    exchange(&cs, &ss, 20, 500).await;
    exchange(&ss, &cs, 20, 500).await;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].starts_with("client-") && names[0].ends_with(".sqlog"),
        "{names:?}"
    );
    assert!(
        names[1].starts_with("server-") && names[1].ends_with(".sqlog"),
        "{names:?}"
    );
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        // JSON-SEQ: records start with RS (0x1e); the first is the trace header.
        let records: Vec<&str> = text
            .split('\u{1e}')
            .filter(|r| !r.trim().is_empty())
            .collect();
        assert!(
            records[0].contains("\"qlog_version\""),
            "{}",
            &text[..text.len().min(400)]
        );
        for r in &records {
            let _: serde_json::Value = serde_json::from_str(r.trim())
                .unwrap_or_else(|e| panic!("{}: {e}: {r}", f.display()));
        }
        // Packets both ways, more than the 40 datagrams' worth one way.
        let sent = records.iter().filter(|r| r.contains("packet_sent")).count();
        let received = records
            .iter()
            .filter(|r| r.contains("packet_received"))
            .count();
        assert!(
            sent >= 20 && received >= 20,
            "{}: {sent} sent, {received} received",
            f.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
