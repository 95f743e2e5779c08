//! Interop with pywebtransport 0.21 (Python, a Rust core behind an asyncio API) in both
//! roles, draft-15 (issue 6). pywebtransport needs Python >= 3.12, so it runs in the Debian
//! trixie root that `scripts/setup-pywebtransport.sh` builds (`.peers/trixie`), through
//! `scripts/run-in-trixie.sh`; without it these tests fail and say so. The peer is
//! `tests/interop/pywebtransport_peer.py`, driven over stdin/stdout lines (protocol in its
//! docstring).
//!
//! Each pair: the session is established in the draft-15 dialect (`:protocol
//! webtransport-h3`); 1,000 datagrams each way in windows of 50, content and count checked
//! by the receiver (the peer checks ours, we check its), sizes from 1 byte up to the
//! sender's maximum; oversize refused on our side (`Error::TooLarge`) and on the peer's;
//! the close code and reason seen on the other side (the peer closes in one pair, we close
//! in the other). pywebtransport carries one session per connection unless both sides
//! announce draft-15 flow control (WT_INITIAL_MAX_DATA/STREAMS settings, which we don't):
//! its client refuses a second session locally and its server answers 429, checked here.
//! `WTD_INTEROP_VERBOSE=1 cargo test --test interop_pywebtransport -- --nocapture` shows
//! what the peer logged.

mod common;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use wtdatagram::{
    Client, ClientConfig, CloseReason, Dialect, Error, Server, ServerConfig, Session, Verify,
};

/// Every wait on the peer is bounded by this (safety net, never an assertion on speed).
const LIMIT: Duration = Duration::from_secs(30);
/// Datagrams each way (issue 6: 1,000 each way, content and count checked).
const COUNT: usize = 1000;
/// Datagrams in flight: far below what either side queues, so loopback loses none.
const WINDOW: usize = 50;
const OUR_CODE: u32 = 4242;
const OUR_REASON: &str = "bye from wtd";
const PEER_CODE: u32 = 7;
const PEER_REASON: &str = "bye from pywebtransport";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// "pywebtransport 0.21.1": the version pinned in the committed requirements file.
fn peer_label() -> String {
    let reqs =
        std::fs::read_to_string(repo().join("tests/interop/pywebtransport-requirements.txt"))
            .expect("tests/interop/pywebtransport-requirements.txt");
    let v = reqs
        .lines()
        .find_map(|l| l.trim().strip_prefix("pywebtransport=="))
        .expect("a pywebtransport==<version> pin");
    format!("pywebtransport {v}")
}

/// Fails (never skips) when the trixie root with pywebtransport is missing.
fn require_peer() {
    let marker = repo().join(".peers/trixie/.wtd-pywebtransport-ready");
    if !marker.exists() {
        let why = std::fs::read_to_string(
            common::matrix_dir().join("pywebtransport-0.21__any__draft-15"),
        )
        .ok()
        .and_then(|cell| cell.trim_end().rsplit('\t').next().map(str::to_string))
        .map(|r| format!(" The setup script reported: {r}"))
        .unwrap_or_default();
        panic!(
            "pywebtransport interop peer not installed: {} is missing. Run \
             scripts/setup-pywebtransport.sh as root (debootstraps Debian trixie into .peers/trixie \
             and installs tests/interop/pywebtransport-requirements.txt from PyPI).{why}",
            marker.display()
        );
    }
}

/// A running pywebtransport peer: its stdout lines, its stdin for commands, its stderr
/// kept for diagnostics, and the process killed when this is dropped (also on a failed
/// assertion; run-in-trixie.sh execs, so the pid is the Python process itself).
struct Peer {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Lines read while looking for another one.
    backlog: VecDeque<String>,
    stderr: Arc<Mutex<String>>,
}

impl Peer {
    fn spawn(name: &str, args: &[String]) -> Peer {
        require_peer();
        let mut child = Command::new("bash")
            .arg(repo().join("scripts/run-in-trixie.sh"))
            .arg(repo().join("tests/interop/pywebtransport_peer.py"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start the pywebtransport peer: {e}"));
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
        let stdin = child.stdin.take().expect("piped stdin");
        Peer {
            name: name.to_string(),
            child,
            stdin,
            lines,
            backlog: VecDeque::new(),
            stderr,
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{}: {what}\n(unread peer lines: {:?})\n--- pywebtransport peer stderr ---\n{}",
            self.name,
            self.backlog,
            self.stderr.lock().unwrap()
        )
    }

    async fn send(&mut self, line: &str) {
        let r = async {
            self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
            self.stdin.flush().await
        }
        .await;
        if let Err(e) = r {
            self.fail(&format!("writing {line:?} to the peer: {e}"));
        }
    }

    /// The next line starting with one of `prefixes` (other lines are kept for later).
    async fn line_of(&mut self, prefixes: &[&str]) -> String {
        let wanted = |l: &str| prefixes.iter().any(|p| l.starts_with(p));
        if let Some(at) = self.backlog.iter().position(|l| wanted(l)) {
            return self.backlog.remove(at).expect("position is in range");
        }
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) if wanted(&l) => return l,
                Ok(Some(l)) if l.starts_with("FATAL") => self.fail(&format!(
                    "peer reported {l:?} while we waited for {prefixes:?}"
                )),
                Ok(Some(l)) => self.backlog.push_back(l),
                Ok(None) => self.fail(&format!("peer exited before printing {prefixes:?}")),
                Err(_) => self.fail(&format!("no {prefixes:?} from the peer within {LIMIT:?}")),
            }
        }
    }

    async fn line(&mut self, prefix: &str) -> String {
        self.line_of(&[prefix]).await
    }

    /// Send a command and return its answer (`OK <cmd> ...`); `ERR` fails the test.
    async fn command(&mut self, line: &str) -> String {
        let cmd = line.split(' ').next().unwrap_or_default().to_string();
        self.send(line).await;
        let answer = self
            .line_of(&[&format!("OK {cmd}"), &format!("ERR {cmd}")])
            .await;
        if answer.starts_with("ERR") {
            self.fail(&format!("{line:?} answered {answer:?}"));
        }
        answer
    }

    /// Lines already printed, without waiting (for failure messages).
    fn drain(&mut self) -> Vec<String> {
        while let Ok(l) = self.lines.try_recv() {
            self.backlog.push_back(l);
        }
        self.backlog.iter().cloned().collect()
    }

    async fn quit(&mut self) {
        self.send("quit").await;
        self.line("BYE").await;
        let status = match tokio::time::timeout(LIMIT, self.child.wait()).await {
            Ok(Ok(st)) => st,
            Ok(Err(e)) => self.fail(&format!("waiting for the peer: {e}")),
            Err(_) => self.fail(&format!("peer still running after {LIMIT:?}")),
        };
        if !status.success() {
            self.fail(&format!("peer exited with {status}"));
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

/// Datagram `i`: its index (big-endian, cut to the size) then a pattern derived from it;
/// the peer builds and checks the same bytes.
fn payload(i: usize, size: usize) -> Vec<u8> {
    let head = (i as u32).to_be_bytes();
    if size <= 4 {
        return head[4 - size..].to_vec();
    }
    let mut p = head.to_vec();
    p.extend((0..size - 4).map(|k| ((i * 31 + k) % 251) as u8));
    p
}

/// Every window opens with a datagram of the sender's live maximum, then one of 1 byte.
fn size_of(i: usize, max: usize) -> usize {
    match i % WINDOW {
        0 => max,
        1 => 1,
        _ => 1 + (i * 97) % max,
    }
}

/// quinn's limit grows with path-MTU discovery after the handshake. Wait (bounded) until
/// it has stayed the same for 10 polls, so the sizes used are the settled maximum.
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

/// `info 0` -> the peer's largest datagram payload and its negotiated protocol.
async fn peer_info(peer: &mut Peer) -> (usize, String) {
    let info = peer.command("info 0").await;
    let field = |k: &str| {
        info.split(' ')
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
    };
    match (
        field("max=").and_then(|m| m.parse().ok()),
        field("protocol="),
    ) {
        (Some(max), Some(p)) => (max, p),
        _ => peer.fail(&format!("unexpected info answer {info:?}")),
    }
}

/// Parses `<WORD> 0 ok <n> <bytes> <smallest> <largest>`.
fn report(line: &str, word: &str) -> Option<[usize; 4]> {
    let rest = line.strip_prefix(&format!("{word} 0 ok "))?;
    let n: Vec<usize> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
    n.try_into().ok()
}

/// Peer -> us: the peer sends `COUNT` datagrams in windows, sizes 1..=its maximum; we check
/// each window's content (any order, exact bytes, no duplicates) and then ask for the next.
/// Returns (peer's maximum, bytes received).
async fn peer_to_us(peer: &mut Peer, session: &Session) -> (usize, usize) {
    let ok = peer.command(&format!("send 0 {COUNT} 0 {WINDOW}")).await;
    let max: usize = match ok.strip_prefix("OK send 0 max=").map(str::parse) {
        Some(Ok(m)) => m,
        _ => peer.fail(&format!("unexpected send answer {ok:?}")),
    };
    let mut bytes = 0;
    for start in (0..COUNT).step_by(WINDOW) {
        if start > 0 {
            peer.send("next 0").await;
        }
        let end = (start + WINDOW).min(COUNT);
        let mut expected: HashMap<Vec<u8>, usize> = HashMap::new();
        for i in start..end {
            *expected.entry(payload(i, size_of(i, max))).or_default() += 1;
        }
        for _ in start..end {
            let d =
                match tokio::time::timeout(Duration::from_secs(5), session.recv_datagram()).await {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => peer.fail(&format!("receive in window {start}..{end}: {e}")),
                    Err(_) => {
                        let lines = peer.drain();
                        peer.fail(&format!(
                            "window {start}..{end}: datagrams missing after 5 s (stats {:?}, \
                         peer said {lines:?})",
                            session.stats()
                        ))
                    }
                };
            match expected.get_mut(&d[..]) {
                Some(n) if *n > 0 => *n -= 1,
                _ => peer.fail(&format!(
                    "window {start}..{end}: unexpected datagram of {} bytes starting {:02x?}",
                    d.len(),
                    &d[..d.len().min(8)]
                )),
            }
            bytes += d.len();
        }
    }
    let sent = peer.line_of(&["SENT 0 "]).await;
    match report(&sent, "SENT") {
        Some([n, b, 1, hi]) if n == COUNT && b == bytes && hi == max => {}
        _ => peer.fail(&format!(
            "peer reported {sent:?}; we received {COUNT} datagrams, {bytes} bytes, 1..={max}"
        )),
    }
    (max, bytes)
}

/// Us -> peer: we send `COUNT` datagrams in windows, each window opening with our live
/// maximum; the peer checks them and reports every complete window. Returns (largest sent,
/// bytes sent).
async fn us_to_peer(peer: &mut Peer, session: &Session) -> (usize, usize) {
    let base = settled_max(session).await;
    assert!(base >= 1100, "our max datagram size {base}");
    peer.command(&format!("recv 0 {COUNT} {base} {WINDOW}"))
        .await;
    let (mut bytes, mut largest) = (0, 0);
    for start in (0..COUNT).step_by(WINDOW) {
        let end = (start + WINDOW).min(COUNT);
        let live = session.max_datagram_size().expect("datagrams negotiated");
        for i in start..end {
            let size = if i == start { live } else { size_of(i, base) };
            let p = payload(i, size);
            if let Err(e) = session.send_datagram(&p).await {
                peer.fail(&format!("send datagram {i}: {e}"));
            }
            bytes += size;
            largest = largest.max(size);
        }
        let progress = peer.line_of(&["PROGRESS 0 ", "RECVD 0 "]).await;
        if progress != format!("PROGRESS 0 {end}") {
            peer.fail(&format!(
                "after window {start}..{end} the peer said {progress:?}"
            ));
        }
    }
    let recvd = peer.line("RECVD 0 ").await;
    match report(&recvd, "RECVD") {
        Some([n, b, 1, hi]) if n == COUNT && b == bytes && hi == largest => {}
        _ => peer.fail(&format!(
            "peer reported {recvd:?}; we sent {COUNT} datagrams, {bytes} bytes, 1..={largest}"
        )),
    }
    (largest, bytes)
}

/// The oversize checks on our side: refused before anything is sent, and counted.
async fn assert_oversize_refused(session: &Session) {
    let max = session.max_datagram_size().expect("datagrams negotiated");
    // No loopback path allows 2,000 B (quinn's path MTU stops at 1452); 65,536 is beyond
    // any QUIC datagram.
    for size in [2_000usize, 65_536] {
        let big = vec![0u8; size];
        match session.try_send_datagram(&big) {
            Err(Error::TooLarge { size: s, max: m }) if s == size && m >= max => {}
            other => panic!("oversize try_send of {size} B (max {max}): {other:?}"),
        }
        match session.send_datagram(&big).await {
            Err(Error::TooLarge { size: s, .. }) if s == size => {}
            other => panic!("oversize send of {size} B (max {max}): {other:?}"),
        }
    }
    assert_eq!(session.stats().send_too_large, 4);
}

/// The peer refuses one byte over its own limit (pywebtransport's DatagramError).
async fn assert_peer_refuses_oversize(peer: &mut Peer, peer_max: usize) {
    let answer = peer.command("oversize 0").await;
    let want = format!("OK oversize 0 rejected {} DatagramError", peer_max + 1);
    if !answer.starts_with(&want) {
        peer.fail(&format!("oversize answered {answer:?}, expected {want}..."));
    }
}

fn assert_counts(session: &Session) {
    let st = session.stats();
    assert_eq!(
        (st.datagrams_sent, st.datagrams_received, st.recv_dropped),
        (COUNT as u64, COUNT as u64, 0),
        "our session's counters"
    );
    assert_eq!(session.connection_unknown_session_datagrams(), 0);
}

// ------------------------------------------------------------ our server, pywebtransport client

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pywebtransport_client_to_wtd_server() {
    common::init_log();
    let label = peer_label();
    let cell = common::MatrixCell::start(&label, "client", Dialect::Draft15.name());
    let server = Server::bind(ServerConfig::default()).expect("bind server");
    let url = format!(
        "https://127.0.0.1:{}/interop/pywebtransport",
        server.local_addr().port()
    );
    let mut peer = Peer::spawn(
        &format!("{label} client -> wtdatagram server"),
        &["client".into(), "--url".into(), url.clone()],
    );

    let req = match tokio::time::timeout(LIMIT, server.accept()).await {
        Ok(Some(r)) => r,
        Ok(None) => peer.fail("server closed before a request"),
        Err(_) => peer.fail("no session request from the pywebtransport client"),
    };
    let session = req
        .accept()
        .await
        .expect("accept the pywebtransport session");
    let info = session.request().clone();
    if info.dialect != Dialect::Draft15 || info.protocol != "webtransport-h3" {
        peer.fail(&format!(
            "expected draft-15 with :protocol webtransport-h3: {info:?}"
        ));
    }
    assert_eq!(info.path, "/interop/pywebtransport");
    let version = label.strip_prefix("pywebtransport ").unwrap();
    assert_eq!(
        info.header("user-agent"),
        Some(format!("PyWebTransport/{version}").as_str()),
        "{info:?}"
    );
    let opened = peer.line("SESSION 0 ").await;
    assert_eq!(opened, "SESSION 0 0 /interop/pywebtransport");
    let (peer_max, protocol) = peer_info(&mut peer).await;
    // pywebtransport's limit is its QUIC datagram frame limit (1162 at its 1200-byte
    // initial MTU, fixed) minus the 1-byte prefix.
    assert!(peer_max >= 1100, "pywebtransport's max {peer_max}");

    let (in_max, in_bytes) = peer_to_us(&mut peer, &session).await;
    let (out_max, out_bytes) = us_to_peer(&mut peer, &session).await;
    assert_oversize_refused(&session).await;
    assert_peer_refuses_oversize(&mut peer, peer_max).await;
    assert_counts(&session);

    // A second session on the same connection: pywebtransport's client refuses it itself
    // (no draft-15 flow control negotiated), so nothing reaches us.
    peer.send("open /interop/pywebtransport/2").await;
    let second = peer.line_of(&["OK open", "ERR open"]).await;
    if !second.starts_with("ERR open ConnectionError: wt_session validate exceeded") {
        peer.fail(&format!("second session: {second:?}"));
    }

    // The peer closes: its code and reason arrive in CLOSE_WEBTRANSPORT_SESSION.
    peer.send(&format!("close 0 {PEER_CODE} {PEER_REASON}"))
        .await;
    let reason = match tokio::time::timeout(LIMIT, session.closed()).await {
        Ok(r) => r,
        Err(_) => peer.fail("our session did not see the pywebtransport client's close"),
    };
    assert_eq!(
        reason,
        CloseReason::Remote {
            code: PEER_CODE,
            reason: PEER_REASON.into()
        },
        "close seen by our server"
    );
    peer.line("OK close 0").await;
    assert_eq!(
        peer.line("CLOSED 0 ").await,
        format!("CLOSED 0 {PEER_CODE} {PEER_REASON}")
    );
    peer.quit().await;

    let detail = format!(
        "{COUNT}/{COUNT} datagrams each way intact (peer->us 1..={in_max} B, {in_bytes} B; \
         us->peer 1..={out_max} B, {out_bytes} B), oversize refused on both sides, \
         :protocol webtransport-h3 (wt_protocol {protocol}), peer's close {PEER_CODE} + reason \
         seen here; 2nd session on the connection refused by the peer (no draft-15 flow control)"
    );
    println!("{label} client -> wtdatagram server: {detail}");
    cell.pass(&detail);
}

// ------------------------------------------------------------ pywebtransport server, our client

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_pywebtransport_server() {
    common::init_log();
    let label = peer_label();
    let cell = common::MatrixCell::start(&label, "server", Dialect::Draft15.name());
    let mut peer = Peer::spawn(
        &format!("wtdatagram client -> {label} server"),
        &["server".into()],
    );
    let ready = peer.line("READY ").await;
    let (port, hash) = match ready.split(' ').collect::<Vec<_>>().as_slice() {
        ["READY", port, hash] if hash.len() == 64 => (
            port.parse::<u16>().expect("port"),
            (0..32)
                .map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).expect("hex"))
                .collect::<Vec<u8>>(),
        ),
        _ => peer.fail(&format!("expected READY <port> <sha256>, got {ready:?}")),
    };
    // pywebtransport generated its certificate; we pin its SHA-256.
    let client = Client::new(ClientConfig {
        verify: Verify::Hashes(vec![hash.try_into().expect("32 bytes")]),
        ..Default::default()
    })
    .expect("client");
    let url = format!("https://127.0.0.1:{port}/interop/wtd");
    let conn = match tokio::time::timeout(LIMIT, client.connect(&url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => peer.fail(&format!("connect to {url}: {e}")),
        Err(_) => peer.fail("connecting timed out"),
    };
    assert_eq!(
        conn.peer_dialect(),
        Some(Dialect::Draft15),
        "dialect from pywebtransport's SETTINGS"
    );
    let session = match tokio::time::timeout(LIMIT, conn.open_session(&url, &[])).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => peer.fail(&format!("open session at {url}: {e}")),
        Err(_) => peer.fail("opening the session timed out"),
    };
    assert_eq!(session.request().dialect, Dialect::Draft15);
    assert_eq!(session.request().protocol, "webtransport-h3");
    let opened = peer.line("SESSION 0 ").await;
    assert_eq!(opened, format!("SESSION 0 {} /interop/wtd", session.id()));
    let (peer_max, protocol) = peer_info(&mut peer).await;
    assert!(peer_max >= 1100, "pywebtransport's max {peer_max}");

    let (in_max, in_bytes) = peer_to_us(&mut peer, &session).await;
    let (out_max, out_bytes) = us_to_peer(&mut peer, &session).await;
    assert_oversize_refused(&session).await;
    assert_peer_refuses_oversize(&mut peer, peer_max).await;
    assert_counts(&session);

    // A second session on the same connection: pywebtransport's server answers 429 (it
    // allows one session per connection without draft-15 flow control) and the first
    // session is unaffected.
    match tokio::time::timeout(LIMIT, conn.open_session("/interop/wtd/2", &[])).await {
        Ok(Err(Error::Rejected(429))) => {}
        other => peer.fail(&format!("second session on the connection: {other:?}")),
    }
    assert!(!session.is_closed());
    assert_eq!(conn.session_count(), 1);

    // We close: the peer reports our code and reason.
    session.close(OUR_CODE, OUR_REASON);
    assert_eq!(
        peer.line("CLOSED 0 ").await,
        format!("CLOSED 0 {OUR_CODE} {OUR_REASON}"),
        "our close as pywebtransport saw it"
    );
    assert_eq!(
        session.close_reason(),
        Some(CloseReason::Local {
            code: OUR_CODE,
            reason: OUR_REASON.into()
        })
    );
    peer.quit().await;

    let detail = format!(
        "{COUNT}/{COUNT} datagrams each way intact (peer->us 1..={in_max} B, {in_bytes} B; \
         us->peer 1..={out_max} B, {out_bytes} B), oversize refused on both sides, \
         :protocol webtransport-h3 (wt_protocol {protocol}), our close {OUR_CODE} + reason \
         seen by the peer; 2nd session on the connection answered 429 (no draft-15 flow control)"
    );
    println!("wtdatagram client -> {label} server: {detail}");
    cell.pass(&detail);
}
