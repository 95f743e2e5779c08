//! Interop with the independent Rust WebTransport stacks (issue 6), each in every role it
//! has: wtransport 0.7 (client and server), web-transport-quinn 0.13 (client and server),
//! h3-webtransport 0.1 on h3 0.0.8 + h3-quinn (server only: the h3 client cannot announce
//! WebTransport). The peers are one binary, `rust-peer`, from the separate Cargo package
//! `tests/interop/rust-peers` (never a dependency of this crate), built by
//! `scripts/setup-rust-peers.sh` into `.peers/rust-target`; without it these tests fail
//! loudly. The binary is driven over stdin/stdout lines (protocol in its `main.rs`).
//!
//! Every pair: sessions established with the expected dialect, 1,000 datagrams each way
//! per session in windows of 50 (content and count checked; loopback loses none), sizes
//! from 1 byte up to the settled maximum both sides can carry, an oversize datagram
//! refused on our side (`Error::TooLarge`), one session closed by us and one by the peer
//! with the code and reason checked wherever the peer exposes them.
//!
//! None of these stacks carries several sessions on one connection (wtransport and
//! web-transport-quinn keep one CONNECT stream per connection; h3-webtransport's session
//! takes the whole h3 connection and h3-datagram 0.0.2 writes quarter stream id 0 on
//! every datagram), so each pair runs `SESSIONS` sessions on as many connections at once.
//! `WTD_INTEROP_VERBOSE=1 cargo test --test interop_rust_peers -- --nocapture` shows what
//! the peer logged (requests, headers it saw).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::exchange::{
    assert_counts, assert_echoed, assert_oversize_refused, echoed_exchange, payload as pattern,
    settled_max, spawn_counting_echo,
};
use common::peer::{repo, Peer, TempDir, LIMIT};
use tokio::process::Command;
use wtdatagram::transport::tls;
use wtdatagram::{
    Client, ClientConfig, CloseReason, Dialect, Server, ServerConfig, Session, Verify,
};
/// Datagrams each way per session (issue 6: 1,000 each way, content and count checked).
const COUNT: usize = 1000;
const WINDOW: usize = 50;
/// Sessions per pair, each on its own connection (see the module docs).
const SESSIONS: usize = 2;
/// Our close: code and reason every peer that reads capsules must report.
const OUR_CODE: u32 = 4242;
const OUR_REASON: &str = "bye from wtd";
const PEER_CODE: u32 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    Wtransport,
    Wtq,
    H3,
}

impl Stack {
    fn arg(self) -> &'static str {
        match self {
            Stack::Wtransport => "wtransport",
            Stack::Wtq => "wtq",
            Stack::H3 => "h3",
        }
    }

    /// The peer's name in the interop matrix: crate and version from the peers' Cargo.lock.
    fn label(self) -> String {
        match self {
            Stack::Wtransport => format!("wtransport {}", locked_version("wtransport")),
            Stack::Wtq => format!(
                "web-transport-quinn {}",
                locked_version("web-transport-quinn")
            ),
            Stack::H3 => format!(
                "h3-webtransport {} (h3 {})",
                locked_version("h3-webtransport"),
                locked_version("h3")
            ),
        }
    }

    /// The dialect both sides settle on: wtransport and web-transport-quinn announce
    /// WEBTRANSPORT_MAX_SESSIONS 0xc671706a (draft-07), h3 only ENABLE_WEBTRANSPORT.
    fn dialect(self) -> Dialect {
        match self {
            Stack::Wtransport | Stack::Wtq => Dialect::Draft07,
            Stack::H3 => Dialect::Draft02,
        }
    }

    /// How our side sees the peer's close of a session with `PEER_CODE` and `reason`.
    fn peer_close_seen_here(self, reason: &str) -> CloseReason {
        match self {
            // CLOSE_WEBTRANSPORT_SESSION (in a DATA frame) before the connection closes.
            Stack::Wtq => CloseReason::Remote {
                code: PEER_CODE,
                reason: reason.into(),
            },
            // No session close in these APIs: the QUIC connection closes with the code.
            Stack::Wtransport | Stack::H3 => CloseReason::ConnectionLost {
                code: PEER_CODE as u64,
                reason: format!("closed by peer: {reason}"),
            },
        }
    }
}

fn peers_dir() -> PathBuf {
    repo().join("tests/interop/rust-peers")
}

/// The version of `name` in the peers' committed Cargo.lock.
fn locked_version(name: &str) -> String {
    let lock = std::fs::read_to_string(peers_dir().join("Cargo.lock")).expect("peers Cargo.lock");
    let key = format!("name = \"{name}\"\n");
    let at = lock
        .find(&key)
        .unwrap_or_else(|| panic!("{name} not in the peers' Cargo.lock"));
    lock[at + key.len()..]
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no version for {name} in the peers' Cargo.lock"))
        .to_string()
}

fn peer_binary() -> PathBuf {
    let bin = repo().join(".peers/rust-target/debug/rust-peer");
    if !bin.exists() {
        panic!(
            "Rust interop peers not built: {} is missing. Run scripts/setup-rust-peers.sh \
             (builds tests/interop/rust-peers: wtransport, web-transport-quinn, h3-webtransport \
             from crates.io).",
            bin.display()
        );
    }
    bin
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Largest datagram payload the peer can send on each of its sessions, last reported
/// (`MAX <i> <n>` and `SESSION <i> <path> <n>` lines).
type Maxes = Arc<Mutex<HashMap<usize, usize>>>;

fn peer_max(maxes: &Maxes, i: usize) -> usize {
    maxes.lock().unwrap().get(&i).copied().unwrap_or(0)
}

/// Start `rust-peer` with `args` for the pair `name`: its `MAX` reports are folded into
/// the returned [`Maxes`] and never seen as lines; `ERROR ...` and `TIMEOUT` lines fail
/// the test while we wait for another.
fn spawn_peer(name: &str, args: &[String]) -> (Peer, Maxes) {
    let maxes = Maxes::default();
    let m = maxes.clone();
    let peer = Peer::spawn_filtered(
        "rust-peer",
        name,
        Command::new(peer_binary()).args(args),
        move |line| {
            let words: Vec<&str> = line.split(' ').collect();
            let report = match words.as_slice() {
                ["MAX", i, n] => Some((i, n)),
                ["SESSION", i, _, n] => Some((i, n)),
                _ => None,
            };
            if let Some((Ok(i), Ok(n))) = report.map(|(i, n)| (i.parse(), n.parse())) {
                m.lock().unwrap().insert(i, n);
            }
            words[0] != "MAX"
        },
    )
    .fatal_lines(|l| l.starts_with("ERROR") || l == "TIMEOUT");
    (peer, maxes)
}
/// Datagram `k` of the peer's session `s`: the same bytes `rust-peer` builds (its index,
/// big-endian and cut to the size, then a pattern of index and session).
fn payload(s: usize, k: usize, size: usize) -> Vec<u8> {
    pattern(k as u32, k, size, s * 101)
}
// ------------------------------------------------------------ our server, peer client

async fn wtd_server_peer_client(stack: Stack) {
    common::init_log();
    let peer_name = stack.label();
    let cell = common::MatrixCell::start(&peer_name, "client", stack.dialect().name());
    let server = Server::bind(ServerConfig::default()).expect("bind server");
    let base = format!(
        "https://127.0.0.1:{}/interop/{}",
        server.local_addr().port(),
        stack.arg()
    );
    let (mut peer, maxes) = spawn_peer(
        &format!("{peer_name} client -> wtdatagram server"),
        &[
            stack.arg().into(),
            "client".into(),
            "--url".into(),
            base.clone(),
            "--cert-hash".into(),
            hex(&server.cert_sha256()),
            "--sessions".into(),
            SESSIONS.to_string(),
            "--count".into(),
            COUNT.to_string(),
            "--window".into(),
            WINDOW.to_string(),
        ],
    );

    // The peer opens session k at BASE/k, each on its own connection.
    let mut sessions: Vec<Option<Session>> = vec![None; SESSIONS];
    for _ in 0..SESSIONS {
        let session = peer.accept(&server, "session request from the peer").await;
        let info = session.request().clone();
        if info.dialect != stack.dialect() {
            peer.fail(&format!(
                "dialect {:?}, expected {:?}: {info:?}",
                info.dialect,
                stack.dialect()
            ));
        }
        assert_eq!(info.protocol, "webtransport", "{info:?}");
        let k: usize = info
            .path
            .strip_prefix(&format!("/interop/{}/", stack.arg()))
            .and_then(|k| k.parse().ok())
            .unwrap_or_else(|| panic!("unexpected path {}", info.path));
        assert!(sessions[k].is_none(), "session {k} requested twice");
        sessions[k] = Some(session);
    }
    let sessions: Vec<Session> = sessions.into_iter().map(Option::unwrap).collect();
    for k in 0..SESSIONS {
        let opened = peer.line(&format!("SESSION {k} ")).await;
        assert!(
            opened.starts_with(&format!("SESSION {k} /interop/{}/{k} ", stack.arg())),
            "{opened}"
        );
    }

    let echoes: Vec<_> = sessions.iter().map(spawn_counting_echo).collect();

    // The peer sends sizes from 1 byte up to min(its own max, our settled max): tell it
    // ours, then check an oversize send is refused here.
    let mut our_max = Vec::new();
    for (k, s) in sessions.iter().enumerate() {
        let max = settled_max(s).await;
        assert!(max >= 1100, "max datagram size {max}");
        peer.send_line(&format!("CAP {k} {max}")).await;
        our_max.push(max);
    }
    assert_oversize_refused(&sessions[0]).await;

    let (mut smallest, mut largest) = (usize::MAX, 0);
    for (k, &cap) in our_max.iter().enumerate() {
        let r = peer.line(&format!("RESULT {k} ")).await;
        let f: Vec<&str> = r.split(' ').collect();
        let nums: Vec<usize> = f.iter().skip(3).filter_map(|x| x.parse().ok()).collect();
        // The largest the peer sent: exactly min(our max, its own last reported max).
        let both = cap.min(peer_max(&maxes, k));
        match (f.get(2), nums.as_slice()) {
            (Some(&"ok"), &[sent, received, lo, hi])
                if sent == COUNT && received == COUNT && lo == 1 && hi == both =>
            {
                (smallest, largest) = (smallest.min(lo), largest.max(hi));
            }
            _ => peer.fail(&format!(
                "session {k}: peer reported {r:?}, expected RESULT {k} ok {COUNT} {COUNT} 1 {both}"
            )),
        }
    }
    assert!(largest >= 1100, "largest datagram {largest}");

    // Session 0: we close it; the peer must report our code and reason.
    sessions[0].close(OUR_CODE, OUR_REASON);
    let seen = peer.line("CLOSED 0 ").await;
    assert_eq!(
        seen,
        format!("CLOSED 0 remote {OUR_CODE} {OUR_REASON}"),
        "our close as the peer saw it"
    );
    // Session 1: the peer closes it.
    let peer_reason = format!("bye from {}", stack.arg());
    peer.send_line(&format!("CLOSE 1 {PEER_CODE} {peer_reason}"))
        .await;
    let reason = match tokio::time::timeout(LIMIT, sessions[1].closed()).await {
        Ok(r) => r,
        Err(_) => peer.fail("our session did not see the peer's close"),
    };
    assert_eq!(
        reason,
        stack.peer_close_seen_here(&peer_reason),
        "the peer's close as our server saw it"
    );
    assert_eq!(
        peer.line("CLOSED 1 ").await,
        format!("CLOSED 1 local {PEER_CODE} {peer_reason}")
    );
    peer.line("DONE").await;
    peer.exit_ok("peer client").await;
    assert_echoed(echoes, &sessions, COUNT).await;
    let detail = format!(
        "{SESSIONS} sessions (1 per connection: all the peer carries), {COUNT}/{COUNT} \
         datagrams each way per session ({smallest}..={largest} B) intact, oversize refused \
         here, our close {OUR_CODE} + reason seen by the peer, the peer's close seen here as {}",
        match stack {
            Stack::Wtq => "code + reason (capsule)",
            _ => "code + reason (QUIC connection close)",
        }
    );
    println!("{peer_name} client -> wtdatagram server: {detail}");
    cell.pass(&detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtransport_client_to_wtd_server() {
    wtd_server_peer_client(Stack::Wtransport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_transport_quinn_client_to_wtd_server() {
    wtd_server_peer_client(Stack::Wtq).await;
}

// ------------------------------------------------------------ peer server, our client

/// Send `COUNT` datagrams on `session` in windows of `WINDOW`, each window opening with
/// one of min(our max, the peer's reported max), and check every echo (any order within
/// a window, exact bytes, no duplicates). `s` is the peer's index of the session (the
/// payload pattern). Returns the sizes sent (min, max).
async fn exchange(
    session: &Session,
    s: usize,
    peer_max: impl Fn() -> usize,
) -> Result<(usize, usize), String> {
    echoed_exchange(session, s, COUNT, WINDOW, peer_max, |k, size| {
        payload(s, k, size)
    })
    .await
}
async fn peer_server_wtd_client(stack: Stack) {
    common::init_log();
    let peer_name = stack.label();
    let cell = common::MatrixCell::start(&peer_name, "server", stack.dialect().name());
    let dir = TempDir::new(&format!("rust-peer-{}", stack.arg()));
    let id = tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).expect("certificate");
    let cert = dir.path().join("cert.der");
    let key = dir.path().join("key.pk8");
    std::fs::write(&cert, &id.certs[0]).unwrap();
    std::fs::write(&key, id.key.secret_der()).unwrap();

    let (mut peer, maxes) = spawn_peer(
        &format!("wtdatagram client -> {peer_name} server"),
        &[
            stack.arg().into(),
            "server".into(),
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

    // Session k on a connection of its own at /interop/wtd/k; `index[k]` is the peer's
    // number for it (the order it accepted them in).
    let mut sessions: Vec<Session> = Vec::new();
    let mut index = Vec::new();
    for k in 0..SESSIONS {
        let url = format!("https://127.0.0.1:{port}/interop/wtd/{k}");
        let s = match tokio::time::timeout(LIMIT, client.open_session(&url)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => peer.fail(&format!("open session {k} at {url}: {e}")),
            Err(_) => peer.fail("opening a session timed out"),
        };
        assert_eq!(
            s.request().dialect,
            stack.dialect(),
            "dialect our client chose"
        );
        assert_eq!(s.id(), 0, "the first request stream of its connection");
        let line = peer.line("SESSION ").await;
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["SESSION", i, path, _] if *path == format!("/interop/wtd/{k}") => {
                index.push(i.parse::<usize>().expect("session index"))
            }
            _ => peer.fail(&format!(
                "expected SESSION <i> /interop/wtd/{k} <max>, got {line:?}"
            )),
        }
        sessions.push(s);
    }

    // Both sessions at once; sizes up to min(our settled max, the peer's).
    let mut ours = usize::MAX;
    for s in &sessions {
        ours = ours.min(settled_max(s).await);
    }
    let runs: Vec<_> = sessions
        .iter()
        .zip(&index)
        .map(|(s, &i)| {
            let s = s.clone();
            let maxes = maxes.clone();
            tokio::spawn(async move { exchange(&s, i, move || peer_max(&maxes, i)).await })
        })
        .collect();
    let (smallest, largest) = peer.join_exchanges(runs).await;
    assert_eq!(smallest, 1);
    assert!(
        largest >= 1100 && largest <= ours,
        "largest {largest}, our max {ours}"
    );
    assert_oversize_refused(&sessions[0]).await;
    assert_counts(&sessions, COUNT);

    // Session 0: we close it and let go of it, which closes its connection (H3_NO_ERROR)
    // once our capsule is acknowledged. h3-webtransport never reads the CONNECT stream,
    // so that connection close is all it sees.
    let (i0, i1) = (index[0], index[1]);
    let s1 = sessions.pop().expect("two sessions");
    let s0 = sessions.pop().expect("two sessions");
    s0.close(OUR_CODE, OUR_REASON);
    assert_eq!(
        s0.close_reason(),
        Some(CloseReason::Local {
            code: OUR_CODE,
            reason: OUR_REASON.into()
        })
    );
    drop(s0);
    let echoed = peer.line(&format!("ECHOED {i0} ")).await;
    assert_eq!(echoed, format!("ECHOED {i0} {COUNT}"));
    let seen = peer.line(&format!("CLOSED {i0} ")).await;
    let want = match stack {
        Stack::H3 => format!("CLOSED {i0} remote 256 "),
        _ => format!("CLOSED {i0} remote {OUR_CODE} {OUR_REASON}"),
    };
    assert_eq!(seen, want, "our close as the peer saw it");

    // Session 1: the peer closes it.
    let peer_reason = format!("bye from {}", stack.arg());
    peer.send_line(&format!("CLOSE {i1} {PEER_CODE} {peer_reason}"))
        .await;
    let reason = match tokio::time::timeout(LIMIT, s1.closed()).await {
        Ok(r) => r,
        Err(_) => peer.fail("our session did not see the peer's close"),
    };
    assert_eq!(
        reason,
        stack.peer_close_seen_here(&peer_reason),
        "the peer's close as our client saw it"
    );
    assert_eq!(
        peer.line(&format!("ECHOED {i1} ")).await,
        format!("ECHOED {i1} {COUNT}")
    );
    assert_eq!(
        peer.line(&format!("CLOSED {i1} ")).await,
        format!("CLOSED {i1} local {PEER_CODE} {peer_reason}")
    );
    peer.line("DONE").await;
    peer.exit_ok("peer server").await;
    let detail = format!(
        "{SESSIONS} sessions (1 per connection: all the peer carries), {COUNT}/{COUNT} \
         datagrams each way per session ({smallest}..={largest} B) intact, oversize refused \
         here, {}, the peer's close seen here as {}",
        match stack {
            Stack::H3 => "our close seen by the peer only as the connection ending \
                          (h3-webtransport reads no capsule)"
                .to_string(),
            _ => format!("our close {OUR_CODE} + reason seen by the peer"),
        },
        match stack {
            Stack::Wtq => "code + reason (capsule)",
            _ => "code + reason (QUIC connection close)",
        }
    );
    println!("wtdatagram client -> {peer_name} server: {detail}");
    cell.pass(&detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_wtransport_server() {
    peer_server_wtd_client(Stack::Wtransport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_web_transport_quinn_server() {
    peer_server_wtd_client(Stack::Wtq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_h3_webtransport_server() {
    peer_server_wtd_client(Stack::H3).await;
}
