//! Interop with aioquic 1.7 (Python) as an independent WebTransport peer, in both roles
//! and both dialects (draft-02 as aioquic ships it, draft-15 with WT_ENABLED and
//! `:protocol webtransport-h3`; in draft-15 the peer also declares datagram-only flow
//! control, as several sessions on one connection require, draft-ietf-webtrans-http3-15
//! §5.1). The peer is `tests/interop/aioquic_peer.py`, run from the
//! venv that `scripts/setup-python-peers.sh` makes; without it these tests fail loudly.
//! `WTD_INTEROP_VERBOSE=1 cargo test --test interop_aioquic -- --nocapture` shows what the
//! peer logged (SETTINGS and requests it saw).

mod common;

use std::path::PathBuf;

use common::exchange::{
    assert_counts, assert_echoed, echoed_exchange, payload as pattern, settled_max,
    spawn_counting_echo,
};
use common::peer::{pem, repo, Peer, TempDir, LIMIT};
use tokio::process::Command;
use wtdatagram::transport::tls;
use wtdatagram::{
    Client, ClientConfig, CloseReason, Dialect, Error, Server, ServerConfig, Session, Verify,
};

/// Datagrams each way per session (issue 6: 1,000 each way, content and count checked).
const COUNT: usize = 1000;
const WINDOW: usize = 50;
/// Sessions on one connection in every pair (aioquic supports several in both roles).
const SESSIONS: usize = 3;

fn dialect_arg(d: Dialect) -> &'static str {
    match d {
        Dialect::Draft02 => "draft02",
        Dialect::Draft15 => "draft15",
        other => panic!("no aioquic peer for {other:?}"),
    }
}

fn python() -> PathBuf {
    let py = repo().join(".venv-interop/bin/python");
    if !py.exists() {
        panic!(
            "aioquic interop peer not installed: {} is missing. \
             Run scripts/setup-python-peers.sh (creates .venv-interop with aioquic from PyPI).",
            py.display()
        );
    }
    py
}

/// Start `tests/interop/aioquic_peer.py` with `args` for the pair `name`.
fn spawn_peer(name: &str, args: &[String]) -> Peer {
    Peer::spawn(
        "aioquic peer",
        name,
        Command::new(python())
            .arg(repo().join("tests/interop/aioquic_peer.py"))
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )
}

#[test]
fn pem_encoding() {
    assert_eq!(
        pem("X", b"Man"),
        "-----BEGIN X-----\nTWFu\n-----END X-----\n"
    );
    assert_eq!(
        pem("X", b"Ma"),
        "-----BEGIN X-----\nTWE=\n-----END X-----\n"
    );
    assert_eq!(pem("X", b"M"), "-----BEGIN X-----\nTQ==\n-----END X-----\n");
}

// ------------------------------------------------------------ our server, aioquic client

/// The peer's name in the interop matrix (the version pinned in setup-python-peers.sh).
const PEER: &str = "aioquic 1.7.2";

fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Draft02 => "draft-02",
        Dialect::Draft15 => "draft-15",
        other => panic!("no aioquic peer for {other:?}"),
    }
}

async fn wtd_server_aioquic_client(dialect: Dialect) {
    common::init_log();
    let cell = common::MatrixCell::start(PEER, "client", dialect_name(dialect));
    let d = dialect_arg(dialect);
    let server = Server::bind(ServerConfig::default()).expect("bind server");
    let url = format!(
        "https://127.0.0.1:{}/interop/aioquic?dialect={d}",
        server.local_addr().port()
    );
    let mut peer = spawn_peer(
        &format!("aioquic {d} client -> wtdatagram server"),
        &[
            "client".into(),
            "--dialect".into(),
            d.into(),
            "--url".into(),
            url.clone(),
            "--count".into(),
            COUNT.to_string(),
            "--window".into(),
            WINDOW.to_string(),
            "--sessions".into(),
            SESSIONS.to_string(),
            "--wait-go".into(),
        ],
    );
    // SESSIONS requests on the peer's one connection; session k asked for `...&session=k`.
    let mut sessions: Vec<Option<Session>> = vec![None; SESSIONS];
    for _ in 0..SESSIONS {
        let session = peer
            .accept(&server, "session request from the aioquic client")
            .await;
        let info = session.request().clone();
        if info.dialect != dialect {
            peer.fail(&format!(
                "dialect {:?}, expected {dialect:?}: {info:?}",
                info.dialect
            ));
        }
        let k: usize = info
            .path
            .strip_prefix(&format!("/interop/aioquic?dialect={d}&session="))
            .and_then(|k| k.parse().ok())
            .unwrap_or_else(|| panic!("unexpected path {}", info.path));
        assert_eq!(info.origin(), Some("https://aioquic.test"));
        match dialect {
            Dialect::Draft15 => assert_eq!(info.protocol, "webtransport-h3"),
            _ => {
                assert_eq!(info.protocol, "webtransport");
                assert_eq!(info.header("sec-webtransport-http3-draft02"), Some("1"));
            }
        }
        assert!(sessions[k].is_none(), "session {k} requested twice");
        sessions[k] = Some(session);
    }
    let sessions: Vec<Session> = sessions.into_iter().map(Option::unwrap).collect();
    assert!(
        sessions
            .iter()
            .all(|s| s.remote_addr() == sessions[0].remote_addr()),
        "all sessions come from the peer's one connection (one UDP socket)"
    );
    let opened = peer.next_line("OPEN").await;
    assert_eq!(opened, format!("OPEN {SESSIONS}"));

    let echoes: Vec<_> = sessions.iter().map(spawn_counting_echo).collect();

    // The peer sends sizes from 1 byte up to our settled maximum, which aioquic (UDP
    // payloads up to 1472) can carry; then we check an oversize send is refused here.
    let max = settled_max(&sessions[0]).await;
    assert!(max >= 1100, "max datagram size {max}");
    peer.send_line(&format!("GO {max}")).await;
    let big = vec![0u8; 65_536];
    assert!(matches!(
        sessions[0].try_send_datagram(&big),
        Err(Error::TooLarge { size: 65_536, .. })
    ));

    let result = peer.next_line("RESULT").await;
    let total = COUNT * SESSIONS;
    let expected = format!("RESULT ok {total} {total} sessions {SESSIONS} max {max}");
    if result != expected {
        peer.fail(&format!(
            "aioquic client reported {result:?}, expected {expected:?}"
        ));
    }
    for (k, session) in sessions.iter().enumerate() {
        let reason = match tokio::time::timeout(LIMIT, session.closed()).await {
            Ok(r) => r,
            Err(_) => peer.fail("our session did not see the aioquic client's close"),
        };
        assert_eq!(
            reason,
            CloseReason::Remote {
                code: 7,
                reason: format!("bye from aioquic {k}")
            },
            "close of session {k} seen by our server"
        );
    }
    peer.exit_ok("aioquic client").await;
    assert_echoed(echoes, &sessions, COUNT).await;
    assert_eq!(sessions[0].stats().send_too_large, 1);
    let detail = format!(
        "{SESSIONS} sessions on 1 connection, {COUNT}/{COUNT} datagrams each way per session \
         (1..={max} B) intact, oversize refused here, close 7 + reason seen here"
    );
    println!("aioquic {d} client -> wtdatagram server: {detail}");
    cell.pass(&detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_client_draft02_to_wtd_server() {
    wtd_server_aioquic_client(Dialect::Draft02).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aioquic_client_draft15_to_wtd_server() {
    wtd_server_aioquic_client(Dialect::Draft15).await;
}

// ------------------------------------------------------------ aioquic server, our client

/// Datagram `i` of session `k`: its index (big-endian, cut to the size) then a pattern
/// derived from `i` and `k`, so an echo delivered to the wrong session does not match.
fn payload(i: usize, size: usize, k: usize) -> Vec<u8> {
    pattern(i as u32, i, size, 17 * k)
}

/// Send `COUNT` datagrams on session `k` in windows of `WINDOW` and check every echo (any
/// order within a window, exact bytes, no duplicates). Returns the sizes sent (min, max).
async fn exchange(session: &Session, k: usize) -> Result<(usize, usize), String> {
    echoed_exchange(
        session,
        k,
        COUNT,
        WINDOW,
        || usize::MAX,
        |i, size| payload(i, size, k),
    )
    .await
}

async fn aioquic_server_wtd_client(dialect: Dialect) {
    common::init_log();
    let cell = common::MatrixCell::start(PEER, "server", dialect_name(dialect));
    let d = dialect_arg(dialect);
    let dir = TempDir::new(&format!("aioquic-{d}"));
    let id = tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).expect("certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, pem("CERTIFICATE", &id.certs[0])).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", id.key.secret_der())).unwrap();

    let mut peer = spawn_peer(
        &format!("wtdatagram client -> aioquic {d} server"),
        &[
            "server".into(),
            "--dialect".into(),
            d.into(),
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
            "--sessions".into(),
            SESSIONS.to_string(),
        ],
    );
    let (port, _) = peer.ready().await;
    let client = Client::new(ClientConfig {
        verify: Verify::Hashes(vec![id.sha256]),
        ..Default::default()
    })
    .expect("client");
    let url = format!("https://127.0.0.1:{port}/interop/wtd");
    let conn = match tokio::time::timeout(LIMIT, client.connect(&url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => peer.fail(&format!("connect to {url}: {e}")),
        Err(_) => peer.fail("connecting timed out"),
    };
    // Several sessions on this one connection.
    let mut sessions = Vec::new();
    for k in 0..SESSIONS {
        let target = format!("/interop/wtd?session={k}");
        match tokio::time::timeout(LIMIT, conn.open_session(&target, &[])).await {
            Ok(Ok(s)) => sessions.push(s),
            Ok(Err(e)) => peer.fail(&format!("open session {k}: {e}")),
            Err(_) => peer.fail("opening a session timed out"),
        }
    }
    assert_eq!(conn.session_count(), SESSIONS);
    for s in &sessions {
        assert_eq!(s.request().dialect, dialect, "dialect our client chose");
    }

    // Every session at once, so their datagrams interleave on the connection.
    let runs: Vec<_> = sessions
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let s = s.clone();
            tokio::spawn(async move { exchange(&s, k).await })
        })
        .collect();
    let (smallest, largest) = peer.join_exchanges(runs).await;

    // Oversize is refused on our side, counted, and nothing is sent.
    let max = sessions[0].max_datagram_size().unwrap();
    // Path MTU discovery may still raise the limit, so use a size no path allows.
    let big = vec![0u8; 65_536];
    assert!(matches!(
        sessions[0].try_send_datagram(&big),
        Err(Error::TooLarge { size: 65_536, max: m }) if m >= max
    ));
    assert!(matches!(
        sessions[0].send_datagram(&big).await,
        Err(Error::TooLarge { size: 65_536, .. })
    ));
    assert_eq!(sessions[0].stats().send_too_large, 2);
    assert_counts(&sessions, COUNT);

    let mut seen = Vec::new();
    for (k, s) in sessions.iter().enumerate() {
        s.close(4242 + k as u32, &format!("bye from wtd {k}"));
    }
    for _ in 0..SESSIONS {
        seen.push(peer.next_line("CLOSED").await);
    }
    seen.sort();
    let mut want: Vec<String> = (0..SESSIONS)
        .map(|k| format!("CLOSED {} bye from wtd {k}", 4242 + k))
        .collect();
    want.sort();
    if seen != want {
        peer.fail(&format!(
            "aioquic server printed {seen:?}, expected {want:?}"
        ));
    }
    peer.exit_ok("aioquic server").await;
    assert_eq!(
        sessions[0].close_reason(),
        Some(CloseReason::Local {
            code: 4242,
            reason: "bye from wtd 0".into()
        })
    );
    let detail = format!(
        "{SESSIONS} sessions on 1 connection, {COUNT}/{COUNT} datagrams each way per session \
         ({smallest}..={largest} B, max {max}) intact, oversize refused here, close code + \
         reason seen by aioquic"
    );
    println!("wtdatagram client -> aioquic {d} server: {detail}");
    cell.pass(&detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_aioquic_server_draft02() {
    aioquic_server_wtd_client(Dialect::Draft02).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_aioquic_server_draft15() {
    aioquic_server_wtd_client(Dialect::Draft15).await;
}
