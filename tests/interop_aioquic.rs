//! Interop with aioquic 1.7 (Python) as an independent WebTransport peer, in both roles
//! and both dialects (draft-02 as aioquic ships it, draft-15 with WT_ENABLED and
//! `:protocol webtransport-h3`). The peer is `tests/interop/aioquic_peer.py`, run from the
//! venv that `scripts/setup-python-peers.sh` makes; without it these tests fail loudly.
//! `WTD_INTEROP_VERBOSE=1 cargo test --test interop_aioquic -- --nocapture` shows what the
//! peer logged (SETTINGS and requests it saw).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use wtdatagram::transport::tls;
use wtdatagram::{
    Client, ClientConfig, CloseReason, Dialect, Error, Server, ServerConfig, Session, Verify,
};

/// Every wait on the peer is bounded by this (safety net, never an assertion on speed).
const LIMIT: Duration = Duration::from_secs(30);
const COUNT: usize = 500;
const WINDOW: usize = 50;
/// Largest datagram the aioquic client sends to our server: below quinn's limit before
/// path-MTU discovery (1162 at the initial MTU of 1200, minus the 1-byte prefix), since
/// our echo must fit whatever it receives however early it arrives.
const CLIENT_MAX_SIZE: usize = 1150;

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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start the aioquic peer: {e}"));
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

async fn wtd_server_aioquic_client(dialect: Dialect) {
    common::init_log();
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
            "--max-size".into(),
            CLIENT_MAX_SIZE.to_string(),
        ],
    );
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
    assert_eq!(info.path, format!("/interop/aioquic?dialect={d}"));
    assert_eq!(info.origin(), Some("https://aioquic.test"));
    match dialect {
        Dialect::Draft15 => assert_eq!(info.protocol, "webtransport-h3"),
        _ => {
            assert_eq!(info.protocol, "webtransport");
            assert_eq!(info.header("sec-webtransport-http3-draft02"), Some("1"));
        }
    }
    let max = session.max_datagram_size().expect("datagrams negotiated");
    assert!(
        max >= CLIENT_MAX_SIZE,
        "our max datagram size {max} < {CLIENT_MAX_SIZE}"
    );

    let echo = tokio::spawn({
        let s = session.clone();
        async move {
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
        }
    });

    let result = peer.line("RESULT").await;
    let expected = format!("RESULT ok {COUNT} {COUNT}");
    if result != expected {
        peer.fail(&format!(
            "aioquic client reported {result:?}, expected {expected:?}"
        ));
    }
    let reason = match tokio::time::timeout(LIMIT, session.closed()).await {
        Ok(r) => r,
        Err(_) => peer.fail("our session did not see the aioquic client's close"),
    };
    assert_eq!(
        reason,
        CloseReason::Remote {
            code: 7,
            reason: "bye from aioquic".into()
        },
        "close seen by our server"
    );
    let status = peer.exit().await;
    if !status.success() {
        peer.fail(&format!("aioquic client exited with {status}"));
    }
    let (echoed, err) = tokio::time::timeout(LIMIT, echo)
        .await
        .expect("echo task ends with the session")
        .expect("echo task");
    assert_eq!(err, None, "echo send failed");
    assert_eq!(echoed, COUNT);
    let st = session.stats();
    assert_eq!(
        (st.datagrams_received, st.datagrams_sent, st.recv_dropped),
        (COUNT as u64, COUNT as u64, 0)
    );
    assert_eq!(session.connection_unknown_session_datagrams(), 0);
    println!(
        "aioquic {d} client -> wtdatagram server: dialect {:?}, {COUNT}/{COUNT} datagrams \
         (1..={CLIENT_MAX_SIZE} B) echoed intact, close seen as {reason}",
        info.dialect
    );
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

/// Datagram `i`: its index (big-endian, cut to the size) then a pattern derived from it.
fn payload(i: usize, size: usize) -> Vec<u8> {
    let head = (i as u32).to_be_bytes();
    if size <= 4 {
        return head[4 - size..].to_vec();
    }
    let mut p = head.to_vec();
    p.extend((0..size - 4).map(|k| ((i * 31 + k) % 251) as u8));
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

/// Send `COUNT` datagrams in windows of `WINDOW` and check every echo (any order within
/// a window, exact bytes, no duplicates). Returns the sizes actually sent (min, max).
async fn exchange(session: &Session, peer: &Peer) -> (usize, usize) {
    let (mut smallest, mut largest) = (usize::MAX, 0);
    for start in (0..COUNT).step_by(WINDOW) {
        // quinn's limit moves with path-MTU discovery: ask again for every window.
        let max = session.max_datagram_size().expect("datagrams negotiated");
        assert!(max >= 1100, "max datagram size {max}");
        let mut outstanding: HashMap<Vec<u8>, usize> = HashMap::new();
        for i in start..(start + WINDOW).min(COUNT) {
            let p = payload(i, size_of(i, max));
            smallest = smallest.min(p.len());
            largest = largest.max(p.len());
            session
                .send_datagram(&p)
                .await
                .unwrap_or_else(|e| peer.fail(&format!("send datagram {i}: {e}")));
            *outstanding.entry(p).or_default() += 1;
        }
        let mut left: usize = outstanding.values().sum();
        while left > 0 {
            let d =
                match tokio::time::timeout(Duration::from_secs(5), session.recv_datagram()).await {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => peer.fail(&format!("receive in window at {start}: {e}")),
                    Err(_) => peer.fail(&format!(
                        "window at {start}: {left} echoes missing after 5 s (stats {:?})",
                        session.stats()
                    )),
                };
            match outstanding.get_mut(&d[..]) {
                Some(n) if *n > 0 => *n -= 1,
                _ => peer.fail(&format!(
                    "window at {start}: unexpected echo of {} bytes starting {:02x?}",
                    d.len(),
                    &d[..d.len().min(8)]
                )),
            }
            left -= 1;
        }
    }
    (smallest, largest)
}

async fn aioquic_server_wtd_client(dialect: Dialect) {
    common::init_log();
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
    let session = match tokio::time::timeout(LIMIT, client.open_session(&url)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => peer.fail(&format!("open session at {url}: {e}")),
        Err(_) => peer.fail("opening the session timed out"),
    };
    assert_eq!(
        session.request().dialect,
        dialect,
        "dialect our client chose"
    );

    let (smallest, largest) = exchange(&session, &peer).await;

    // Oversize is refused on our side, counted, and nothing is sent.
    let max = session.max_datagram_size().unwrap();
    // Path MTU discovery may still raise the limit, so use a size no path allows.
    let big = vec![0u8; 65_536];
    assert!(matches!(
        session.try_send_datagram(&big),
        Err(Error::TooLarge { size: 65_536, max: m }) if m >= max
    ));
    assert!(matches!(
        session.send_datagram(&big).await,
        Err(Error::TooLarge { size: 65_536, .. })
    ));
    let st = session.stats();
    assert_eq!(st.send_too_large, 2);
    assert_eq!(
        (st.datagrams_sent, st.datagrams_received, st.recv_dropped),
        (COUNT as u64, COUNT as u64, 0)
    );

    session.close(4242, "bye from wtd");
    let closed = peer.line("CLOSED").await;
    if closed != "CLOSED 4242 bye from wtd" {
        peer.fail(&format!("aioquic server printed {closed:?}"));
    }
    let status = peer.exit().await;
    if !status.success() {
        peer.fail(&format!("aioquic server exited with {status}"));
    }
    assert_eq!(
        session.close_reason(),
        Some(CloseReason::Local {
            code: 4242,
            reason: "bye from wtd".into()
        })
    );
    println!(
        "wtdatagram client -> aioquic {d} server: dialect {:?}, {COUNT}/{COUNT} datagrams \
         ({smallest}..={largest} B, max {max}) echoed intact, oversize {} rejected, \
         aioquic saw {closed:?}",
        session.request().dialect,
        big.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_aioquic_server_draft02() {
    aioquic_server_wtd_client(Dialect::Draft02).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_aioquic_server_draft15() {
    aioquic_server_wtd_client(Dialect::Draft15).await;
}
