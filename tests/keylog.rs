//! TLS key logging for Wireshark: with `TransportOptions::key_log` on, both ends append
//! the connection's TLS secrets to the file `SSLKEYLOGFILE` names (NSS key log format);
//! off (the default), nothing is written. One test in its own binary: it sets the
//! process environment.

mod common;

use common::*;
use wtdatagram::TransportOptions;

/// The key log's lines by label: (label, client random, secret), each checked for shape.
fn entries(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 3, "{l:?}");
            assert_eq!(parts[1].len(), 64, "client random, 32 bytes: {l:?}");
            assert!(parts[2].len() >= 64, "a secret of 32 bytes or more: {l:?}");
            assert!(
                parts[1..]
                    .iter()
                    .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit())),
                "{l:?}"
            );
            (parts[0].into(), parts[1].into(), parts[2].into())
        })
        .collect()
}

#[tokio::test]
async fn key_log_writes_the_tls_secrets_only_when_enabled() {
    let dir = std::env::temp_dir().join(format!("wtd-keylog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.log");
    let _ = std::fs::remove_file(&path);
    // Read when a configuration with key logging is built (this binary's only test).
    std::env::set_var("SSLKEYLOGFILE", &path);

    // Off by default: a connection leaves no file behind.
    let server = server();
    let client = client_for(&server);
    let (ss, cs) = within(pair(&server, &client, &url(&server, "/plain"))).await;
    cs.send_datagram(b"hi").await.unwrap();
    assert_eq!(&within(ss.recv_datagram()).await.unwrap()[..], b"hi");
    assert!(!path.exists(), "nothing may be logged unless asked for");
    drop((ss, cs, client, server));

    // On, at both ends.
    let opts = TransportOptions {
        key_log: true,
        ..Default::default()
    };
    let server = server_with(opts.clone());
    let client = wtdatagram::Client::new(wtdatagram::ClientConfig {
        verify: wtdatagram::Verify::Hashes(vec![server.cert_sha256()]),
        transport: opts,
        ..Default::default()
    })
    .unwrap();
    let (ss, cs) = within(pair(&server, &client, &url(&server, "/keys"))).await;
    cs.send_datagram(b"secret").await.unwrap();
    assert_eq!(&within(ss.recv_datagram()).await.unwrap()[..], b"secret");

    let text = std::fs::read_to_string(&path).expect("the key log file");
    let lines = entries(&text);
    // TLS 1.3 secrets of one connection, written by the client and by the server.
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        let found: Vec<_> = lines.iter().filter(|(l, _, _)| l == label).collect();
        assert_eq!(found.len(), 2, "{label} from each end:\n{text}");
        assert_eq!(found[0].1, found[1].1, "one connection, one client random");
        assert_eq!(found[0].2, found[1].2, "both ends derive the same secret");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
