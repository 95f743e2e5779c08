//! Interop with aioquic 1.7 (Python) as an independent WebTransport peer, in both roles
//! and both dialects (draft-02 as aioquic ships it, draft-15 with WT_ENABLED and
//! `:protocol webtransport-h3`; in draft-15 the peer also declares datagram-only flow
//! control, as several sessions on one connection require, draft-ietf-webtrans-http3-15
//! §5.1). The peer is `tests/interop/aioquic_peer.py`, run from the
//! venv that `scripts/setup-python-peers.sh` makes; without it these tests fail loudly.
//! `WTD_INTEROP_VERBOSE=1 cargo test --test interop_aioquic -- --nocapture` shows what the
//! peer logged (SETTINGS and requests it saw).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use wtdatagram::transport::tls;
use wtdatagram::{
    Client, ClientConfig, CloseReason, Dialect, Error, Server, ServerConfig, Session, Verify,
};

/// Every wait on the peer is bounded by this (safety net, never an assertion on speed).
const LIMIT: Duration = Duration::from_secs(30);
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
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-interop/bin/python");
    if !py.exists() {
        panic!(
            "aioquic interop peer not installed: {} is missing. \
             Run scripts/setup-python-peers.sh (creates .venv-interop with aioquic from PyPI).",
            py.display()
        );
    }
    py
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/aioquic_peer.py")
}

/// A running aioquic peer: its stdout lines, its stderr kept for diagnostics, and the
/// process killed when this is dropped (also on a failed assertion).
struct Peer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Peer {
    fn spawn(name: &str, args: &[String]) -> Peer {
        let mut child = Command::new(python())
            .arg(peer_script())
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start the aioquic peer: {e}"));
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped stderr");
        let keep = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                keep.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Peer {
            name: name.to_string(),
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{}: {what}\n--- aioquic peer stderr ---\n{}",
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    /// The next stdout line of the peer.
    async fn line(&mut self, waiting_for: &str) -> String {
        match tokio::time::timeout(LIMIT, self.lines.recv()).await {
            Ok(Some(l)) => l,
            Ok(None) => self.fail(&format!("peer exited before printing {waiting_for}")),
            Err(_) => self.fail(&format!("no {waiting_for} from the peer within {LIMIT:?}")),
        }
    }

    /// One line to the peer's stdin.
    async fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("peer stdin");
        if let Err(e) = stdin.write_all(format!("{line}\n").as_bytes()).await {
            self.fail(&format!("writing {line:?} to the peer: {e}"));
        }
        let _ = stdin.flush().await;
    }

    async fn exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(LIMIT, self.child.wait()).await {
            Ok(Ok(st)) => st,
            Ok(Err(e)) => self.fail(&format!("waiting for the peer: {e}")),
            Err(_) => self.fail(&format!("peer still running after {LIMIT:?}")),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::env::var_os("WTD_INTEROP_VERBOSE").is_some() {
            eprintln!(
                "--- {} stderr ---\n{}",
                self.name,
                self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
            );
        }
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "wtd-aioquic-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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

/// quinn's limit grows with path-MTU discovery after the handshake (1161 -> 1381 -> 1413
/// on loopback). Wait (bounded) until it has stayed the same for 10 polls, so that the
/// sizes we tell the peer to use are the settled maximum, which our echo can carry.
async fn settled_max(session: &Session) -> usize {
    let mut last = 0;
    let mut same = 0;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while same < 10 && tokio::time::Instant::now() < deadline {
        let m = session.max_datagram_size().expect("datagrams negotiated");
        if m == last {
            same += 1;
        } else {
            (last, same) = (m, 0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
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
    let mut peer = Peer::spawn(
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
        let req = match tokio::time::timeout(LIMIT, server.accept()).await {
            Ok(Some(r)) => r,
            Ok(None) => peer.fail("server closed before a request"),
            Err(_) => peer.fail("no session request from the aioquic client"),
        };
        let session = req.accept().await.expect("accept the aioquic session");
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
    let opened = peer.line("OPEN").await;
    assert_eq!(opened, format!("OPEN {SESSIONS}"));

    let echoes: Vec<_> = sessions
        .iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut echoed = 0usize;
                loop {
                    match s.recv_datagram().await {
                        Ok(d) => match s.send_datagram(&d).await {
                            Ok(()) => echoed += 1,
                            Err(e) => return (echoed, Some(e)),
                        },
                        Err(_) => return (echoed, None),
                    }
                }
            })
        })
        .collect();

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

    let result = peer.line("RESULT").await;
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
    let status = peer.exit().await;
    if !status.success() {
        peer.fail(&format!("aioquic client exited with {status}"));
    }
    for (k, (echo, session)) in echoes.into_iter().zip(&sessions).enumerate() {
        let (echoed, err) = tokio::time::timeout(LIMIT, echo)
            .await
            .expect("echo task ends with the session")
            .expect("echo task");
        assert_eq!(err, None, "echo send failed on session {k}");
        assert_eq!(echoed, COUNT, "session {k}");
        let st = session.stats();
        assert_eq!(
            (st.datagrams_received, st.datagrams_sent, st.recv_dropped),
            (COUNT as u64, COUNT as u64, 0),
            "session {k}"
        );
    }
    assert_eq!(sessions[0].stats().send_too_large, 1);
    assert_eq!(sessions[0].connection_unknown_session_datagrams(), 0);
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
    let head = (i as u32).to_be_bytes();
    if size <= 4 {
        return head[4 - size..].to_vec();
    }
    let mut p = head.to_vec();
    p.extend((0..size - 4).map(|j| ((i * 31 + j + 17 * k) % 251) as u8));
    p
}

/// Size of datagram `i` when the session's maximum is `max`: every window starts with one
/// of exactly `max` (which grows while path-MTU discovery runs) and one of 1 byte.
fn size_of(i: usize, max: usize) -> usize {
    match i % WINDOW {
        0 => max,
        1 => 1,
        _ => 1 + (i * 97) % max,
    }
}

/// Send `COUNT` datagrams on session `k` in windows of `WINDOW` and check every echo (any
/// order within a window, exact bytes, no duplicates). Returns the sizes sent (min, max).
async fn exchange(session: &Session, k: usize) -> Result<(usize, usize), String> {
    let (mut smallest, mut largest) = (usize::MAX, 0);
    for start in (0..COUNT).step_by(WINDOW) {
        // quinn's limit moves with path-MTU discovery: ask again for every window.
        let max = session.max_datagram_size().map_err(|e| e.to_string())?;
        if max < 1100 {
            return Err(format!("max datagram size {max}"));
        }
        let mut outstanding: HashMap<Vec<u8>, usize> = HashMap::new();
        for i in start..(start + WINDOW).min(COUNT) {
            let p = payload(i, size_of(i, max), k);
            smallest = smallest.min(p.len());
            largest = largest.max(p.len());
            session
                .send_datagram(&p)
                .await
                .map_err(|e| format!("session {k}: send datagram {i}: {e}"))?;
            *outstanding.entry(p).or_default() += 1;
        }
        let mut left: usize = outstanding.values().sum();
        while left > 0 {
            let d =
                match tokio::time::timeout(Duration::from_secs(5), session.recv_datagram()).await {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => return Err(format!("session {k}: receive at {start}: {e}")),
                    Err(_) => {
                        return Err(format!(
                            "session {k} window at {start}: {left} echoes missing after 5 s \
                         (stats {:?})",
                            session.stats()
                        ))
                    }
                };
            match outstanding.get_mut(&d[..]) {
                Some(n) if *n > 0 => *n -= 1,
                _ => {
                    return Err(format!(
                        "session {k} window at {start}: unexpected echo of {} bytes \
                         starting {:02x?}",
                        d.len(),
                        &d[..d.len().min(8)]
                    ))
                }
            }
            left -= 1;
        }
    }
    Ok((smallest, largest))
}

async fn aioquic_server_wtd_client(dialect: Dialect) {
    common::init_log();
    let cell = common::MatrixCell::start(PEER, "server", dialect_name(dialect));
    let d = dialect_arg(dialect);
    let dir = TempDir::new(d);
    let id = tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).expect("certificate");
    let cert = dir.0.join("cert.pem");
    let key = dir.0.join("key.pem");
    std::fs::write(&cert, pem("CERTIFICATE", &id.certs[0])).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", id.key.secret_der())).unwrap();

    let mut peer = Peer::spawn(
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
    let ready = peer.line("READY").await;
    let port: u16 = match ready.strip_prefix("READY ").and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => peer.fail(&format!("expected READY <port>, got {ready:?}")),
    };
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
    let (mut smallest, mut largest) = (usize::MAX, 0);
    for r in runs {
        match r.await.expect("exchange task") {
            Ok((lo, hi)) => (smallest, largest) = (smallest.min(lo), largest.max(hi)),
            Err(e) => peer.fail(&e),
        }
    }

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
    for (k, s) in sessions.iter().enumerate() {
        let st = s.stats();
        assert_eq!(
            (st.datagrams_sent, st.datagrams_received, st.recv_dropped),
            (COUNT as u64, COUNT as u64, 0),
            "session {k}"
        );
    }

    let mut seen = Vec::new();
    for (k, s) in sessions.iter().enumerate() {
        s.close(4242 + k as u32, &format!("bye from wtd {k}"));
    }
    for _ in 0..SESSIONS {
        seen.push(peer.line("CLOSED").await);
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
    let status = peer.exit().await;
    if !status.success() {
        peer.fail(&format!("aioquic server exited with {status}"));
    }
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
