//! Interop with pywebtransport 0.21 (Python, a Rust core behind an asyncio API) in both
//! roles, draft-15 (issue 6). pywebtransport needs Python >= 3.12, so it runs in the Debian
//! trixie root that `scripts/setup-pywebtransport.sh` builds (`.peers/trixie`), through
//! `scripts/run-in-trixie.sh`; without it these tests fail and say so. The peer is
//! `tests/interop/pywebtransport_peer.py`, driven over stdin/stdout lines (protocol in its
//! docstring).
//!
//! Each pair puts `SESSIONS` sessions on one connection, all in the draft-15 dialect
//! (`:protocol webtransport-h3`). pywebtransport allows that only with draft-15 flow
//! control, enabled when both sides' SETTINGS declare it (draft-ietf-webtrans-http3-15
//! §5.1; its `Connection::has_flow_control`): without it, its client refuses a second
//! session itself ("wt_session validate exceeded") and its server answers 429. We declare
//! it datagram-only (WT_INITIAL_MAX_DATA 1, WT_INITIAL_MAX_STREAMS_UNI/_BIDI 0), and check
//! that pywebtransport reads it so and holds back a stream it is asked to open. Per
//! session: 1,000 datagrams each way in windows of 50, content (tagged with the session)
//! and count checked by the receiver (the peer checks ours, we check its), sizes from 1
//! byte up to the sender's maximum; oversize refused on our side (`Error::TooLarge`) and
//! on the peer's. Then the sessions close one by one, from both sides, each close code and
//! reason seen on the other side, and the remaining sessions still carry datagrams.
//! `WTD_INTEROP_VERBOSE=1 cargo test --test interop_pywebtransport -- --nocapture` shows
//! what the peer logged.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::exchange::{assert_counts, assert_oversize_refused, payload as pattern, settled_max};
use common::peer::{repo, Peer, LIMIT};
use tokio::process::Command;
use wtdatagram::{
    Client, ClientConfig, CloseReason, Dialect, Server, ServerConfig, Session, Verify,
};

/// Datagrams each way (issue 6: 1,000 each way, content and count checked).
const COUNT: usize = 1000;
/// Datagrams in flight: far below what either side queues, so loopback loses none.
const WINDOW: usize = 50;
const OUR_CODE: u32 = 4242;
const OUR_REASON: &str = "bye from wtd";
const PEER_CODE: u32 = 7;
const PEER_REASON: &str = "bye from pywebtransport";
/// Sessions on the one connection of each pair (pywebtransport's default limit with flow
/// control is 10).
const SESSIONS: usize = 3;

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

/// Start `tests/interop/pywebtransport_peer.py` with `args` in the trixie root for the
/// pair `name` (run-in-trixie.sh execs, so the pid is the Python process itself and is
/// killed on drop). A `FATAL` line fails the test while we wait for another.
fn spawn_peer(name: &str, args: &[String]) -> Peer {
    require_peer();
    Peer::spawn(
        "pywebtransport peer",
        name,
        Command::new("bash")
            .arg(repo().join("scripts/run-in-trixie.sh"))
            .arg(repo().join("tests/interop/pywebtransport_peer.py"))
            .args(args),
    )
    .fatal_lines(|l| l.starts_with("FATAL"))
}

/// Send a command and return its answer (`OK <cmd> ...`); `ERR` fails the test.
async fn command(peer: &mut Peer, line: &str) -> String {
    let cmd = line.split(' ').next().unwrap_or_default().to_string();
    peer.send_line(line).await;
    let answer = peer
        .line_of(&[&format!("OK {cmd}"), &format!("ERR {cmd}")])
        .await;
    if answer.starts_with("ERR") {
        peer.fail(&format!("{line:?} answered {answer:?}"));
    }
    answer
}

/// `quit`: the peer says BYE and exits successfully.
async fn quit(peer: &mut Peer) {
    peer.send_line("quit").await;
    peer.line("BYE").await;
    peer.exit_ok("peer").await;
}
/// Datagram `i` of the session the peer knows as `s`: `s << 24 | i` (big-endian, cut to
/// the size) then a pattern derived from `i` and `s`; the peer builds and checks the same
/// bytes, so a datagram delivered to the wrong session does not match.
fn payload(s: usize, i: usize, size: usize) -> Vec<u8> {
    pattern(((s as u32) << 24) | i as u32, i, size, s * 101)
}

/// Every window opens with a datagram of the sender's live maximum, then one of 1 byte.
fn size_of(i: usize, max: usize) -> usize {
    common::exchange::size_of(i, max, WINDOW)
}
/// What `info <s>` reports about the peer's session `s`.
struct PeerInfo {
    /// Largest datagram payload the peer sends.
    max: usize,
    /// The negotiated WT-Protocol (`-`: none).
    protocol: String,
    /// Whether pywebtransport runs the session with draft-15 flow control.
    fc: bool,
}

/// `info <s>`; also checks that pywebtransport read our flow-control SETTINGS as we send
/// them: WT_INITIAL_MAX_DATA 1, WT_INITIAL_MAX_STREAMS_UNI 0, _BIDI 0 (`peer_fc=1/0/0`),
/// and, if `require_fc`, that it runs the session with flow control (`fc=1`).
///
/// pywebtransport fixes a session's flow-control flag when the session is created
/// (`Connection::has_flow_control` at that moment). Its client waits for our SETTINGS
/// before it opens a session, so all its sessions have it. Its server creates a session
/// when the CONNECT is processed, and the draft allows the first CONNECT to arrive
/// before the client's SETTINGS (§3.1): then that session runs without flow control
/// (seen about once in ten runs; harmless for datagrams). A later session was admitted
/// only because flow control was on by then, so it has the flag.
async fn peer_info(peer: &mut Peer, s: usize, require_fc: bool) -> PeerInfo {
    let info = command(peer, &format!("info {s}")).await;
    let field = |k: &str| {
        info.split(' ')
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
    };
    let (Some(max), Some(protocol), Some(fc), Some(peer_fc)) = (
        field("max=").and_then(|m| m.parse().ok()),
        field("protocol="),
        field("fc="),
        field("peer_fc="),
    ) else {
        peer.fail(&format!("unexpected info answer {info:?}"))
    };
    if !(fc == "1" || (fc == "0" && !require_fc)) || peer_fc != "1/0/0" {
        peer.fail(&format!(
            "session {s}: draft-15 flow control not as announced: {info:?} (want fc=1{} \
             peer_fc=1/0/0)",
            if require_fc { "" } else { " or 0" }
        ));
    }
    // pywebtransport's limit is its QUIC datagram frame limit (1162 at its 1200-byte
    // initial MTU, fixed) minus the session's prefix.
    assert!(max >= 1100, "pywebtransport's max {max}");
    PeerInfo {
        max,
        protocol,
        fc: fc == "1",
    }
}

/// Parses `<WORD> <s> ok <n> <bytes> <smallest> <largest>`.
fn report(line: &str, word: &str, s: usize) -> Option<[usize; 4]> {
    let rest = line.strip_prefix(&format!("{word} {s} ok "))?;
    let n: Vec<usize> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
    n.try_into().ok()
}

/// Peer -> us on the peer's session `s`: the peer sends `count` datagrams in windows,
/// sizes 1..=its maximum; we check each window's content (any order, exact bytes, no
/// duplicates) and then ask for the next. Returns (peer's maximum, bytes received).
async fn peer_to_us(peer: &mut Peer, s: usize, session: &Session, count: usize) -> (usize, usize) {
    let ok = command(peer, &format!("send {s} {count} 0 {WINDOW}")).await;
    let max: usize = match ok
        .strip_prefix(&format!("OK send {s} max="))
        .map(str::parse)
    {
        Some(Ok(m)) => m,
        _ => peer.fail(&format!("unexpected send answer {ok:?}")),
    };
    let mut bytes = 0;
    for start in (0..count).step_by(WINDOW) {
        if start > 0 {
            peer.send_line(&format!("next {s}")).await;
        }
        let end = (start + WINDOW).min(count);
        let mut expected: HashMap<Vec<u8>, usize> = HashMap::new();
        for i in start..end {
            *expected.entry(payload(s, i, size_of(i, max))).or_default() += 1;
        }
        for _ in start..end {
            let d =
                match tokio::time::timeout(Duration::from_secs(5), session.recv_datagram()).await {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => peer.fail(&format!(
                        "session {s}: receive in window {start}..{end}: {e}"
                    )),
                    Err(_) => {
                        let lines = peer.drain();
                        peer.fail(&format!(
                            "session {s}: window {start}..{end}: datagrams missing after 5 s \
                             (stats {:?}, peer said {lines:?})",
                            session.stats()
                        ))
                    }
                };
            match expected.get_mut(&d[..]) {
                Some(n) if *n > 0 => *n -= 1,
                _ => peer.fail(&format!(
                    "session {s}: window {start}..{end}: unexpected datagram of {} bytes \
                     starting {:02x?}",
                    d.len(),
                    &d[..d.len().min(8)]
                )),
            }
            bytes += d.len();
        }
    }
    let sent = peer.line_of(&[&format!("SENT {s} ")]).await;
    match report(&sent, "SENT", s) {
        Some([n, b, 1, hi]) if n == count && b == bytes && hi == max => {}
        _ => peer.fail(&format!(
            "peer reported {sent:?}; we received {count} datagrams, {bytes} bytes, 1..={max}"
        )),
    }
    (max, bytes)
}

/// Us -> peer on the peer's session `s`: we send `count` datagrams in windows, each
/// window opening with our live maximum; the peer checks them and reports every complete
/// window. Returns (largest sent, bytes sent).
async fn us_to_peer(peer: &mut Peer, s: usize, session: &Session, count: usize) -> (usize, usize) {
    let base = settled_max(session).await;
    assert!(base >= 1100, "our max datagram size {base}");
    command(peer, &format!("recv {s} {count} {base} {WINDOW}")).await;
    let (mut bytes, mut largest) = (0, 0);
    for start in (0..count).step_by(WINDOW) {
        let end = (start + WINDOW).min(count);
        let live = session.max_datagram_size().expect("datagrams negotiated");
        for i in start..end {
            let size = if i == start { live } else { size_of(i, base) };
            if let Err(e) = session.send_datagram(&payload(s, i, size)).await {
                peer.fail(&format!("session {s}: send datagram {i}: {e}"));
            }
            bytes += size;
            largest = largest.max(size);
        }
        let progress = peer
            .line_of(&[&format!("PROGRESS {s} "), &format!("RECVD {s} ")])
            .await;
        if progress != format!("PROGRESS {s} {end}") {
            peer.fail(&format!(
                "session {s}: after window {start}..{end} the peer said {progress:?}"
            ));
        }
    }
    let recvd = peer.line(&format!("RECVD {s} ")).await;
    match report(&recvd, "RECVD", s) {
        Some([n, b, 1, hi]) if n == count && b == bytes && hi == largest => {}
        _ => peer.fail(&format!(
            "peer reported {recvd:?}; we sent {count} datagrams, {bytes} bytes, 1..={largest}"
        )),
    }
    (largest, bytes)
}

/// The peer refuses one byte over its own limit (pywebtransport's DatagramError).
async fn assert_peer_refuses_oversize(peer: &mut Peer, s: usize, peer_max: usize) {
    let answer = command(peer, &format!("oversize {s}")).await;
    let want = format!("OK oversize {s} rejected {} DatagramError", peer_max + 1);
    if !answer.starts_with(&want) {
        peer.fail(&format!("oversize answered {answer:?}, expected {want}..."));
    }
}

/// We announce WT_INITIAL_MAX_STREAMS_UNI/_BIDI 0 and never grant more, so pywebtransport
/// holds back a stream it is asked to open in session `s` (it sends WT_STREAMS_BLOCKED on
/// the CONNECT stream instead, which our session must take and ignore) until its
/// stream_create_timeout (the peer's STREAM_WAIT) ends the attempt.
async fn assert_peer_opens_no_stream(peer: &mut Peer, s: usize) {
    for kind in ["uni", "bidi"] {
        let answer = command(peer, &format!("stream {s} {kind}")).await;
        if !answer.starts_with(&format!("OK stream {s} {kind} blocked ")) {
            peer.fail(&format!("stream {s} {kind} answered {answer:?}"));
        }
    }
}

/// Totals of the full exchange over every session, for the matrix detail.
#[derive(Default)]
struct Totals {
    in_max: usize,
    in_bytes: usize,
    out_max: usize,
    out_bytes: usize,
    protocol: String,
    /// pywebtransport's flow-control flag of each session, in order ("1,1,1").
    fc: Vec<&'static str>,
}

impl Totals {
    /// The matrix cell's detail.
    fn detail(&self) -> String {
        format!(
            "{SESSIONS} sessions on 1 connection (draft-15 flow control, which pywebtransport \
             requires for a 2nd session: we announce WT_INITIAL_MAX_DATA 1, _STREAMS_UNI/_BIDI \
             0, it its own; its per-session flow-control flags {}; it held back the streams it \
             was asked to open), {COUNT}/{COUNT} datagrams each way per session intact \
             (peer->us 1..={} B, us->peer 1..={} B, {} B / {} B in all), oversize refused on \
             both sides, :protocol webtransport-h3 (wt_protocol {}), close code + reason both \
             ways, the other sessions carry on after each close",
            self.fc.join(","),
            self.in_max,
            self.out_max,
            self.in_bytes,
            self.out_bytes,
            self.protocol
        )
    }
}

/// The full exchange on the peer's session `s` (our `session`): flow-control info
/// (`require_fc`: see [`peer_info`]), stream attempts held back (`streams`), `COUNT`
/// datagrams each way, oversize on both sides.
async fn exchange(
    peer: &mut Peer,
    s: usize,
    session: &Session,
    require_fc: bool,
    streams: bool,
    t: &mut Totals,
) {
    let info = peer_info(peer, s, require_fc).await;
    if streams {
        assert_peer_opens_no_stream(peer, s).await;
    }
    let (in_max, in_bytes) = peer_to_us(peer, s, session, COUNT).await;
    let (out_max, out_bytes) = us_to_peer(peer, s, session, COUNT).await;
    assert_oversize_refused(session).await;
    assert_peer_refuses_oversize(peer, s, info.max).await;
    assert_counts(std::slice::from_ref(session), COUNT);
    t.in_max = t.in_max.max(in_max);
    t.in_bytes += in_bytes;
    t.out_max = t.out_max.max(out_max);
    t.out_bytes += out_bytes;
    t.protocol = info.protocol;
    t.fc.push(if info.fc { "1" } else { "0" });
}

/// After a session of the connection closed: each of `alive` still carries `AFTER`
/// datagrams each way.
async fn still_alive(peer: &mut Peer, alive: &[(usize, &Session)]) {
    for &(s, session) in alive {
        assert!(
            !session.is_closed(),
            "session {s} closed with its neighbour"
        );
        peer_to_us(peer, s, session, AFTER).await;
        us_to_peer(peer, s, session, AFTER).await;
    }
}

/// Datagrams each way on the sessions that stay open after a neighbour closed.
const AFTER: usize = 50;

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
    let mut peer = spawn_peer(
        &format!("{label} client -> wtdatagram server"),
        &["client".into(), "--url".into(), url.clone()],
    );

    // Session 0 comes with the peer's connection; it opens the others on the same one.
    let mut sessions: Vec<Session> = Vec::new();
    for k in 0..SESSIONS {
        let path = if k == 0 {
            "/interop/pywebtransport".to_string()
        } else {
            let path = format!("/interop/pywebtransport/{k}");
            peer.send_line(&format!("open {path}")).await;
            path
        };
        let session = peer
            .accept(&server, &format!("request for session {k} from the peer"))
            .await;
        let info = session.request().clone();
        if info.dialect != Dialect::Draft15 || info.protocol != "webtransport-h3" {
            peer.fail(&format!(
                "expected draft-15 with :protocol webtransport-h3: {info:?}"
            ));
        }
        assert_eq!(info.path, path);
        // WebTransportClient.connect sends a user-agent; a session opened on the
        // connection with create_session sends the headers it is given (none here).
        let version = label.strip_prefix("pywebtransport ").unwrap();
        let agent = format!("PyWebTransport/{version}");
        assert_eq!(
            info.header("user-agent"),
            (k == 0).then_some(agent.as_str()),
            "{info:?}"
        );
        // Session ids are the CONNECT stream ids: 0, 4, 8 on one connection.
        assert_eq!(session.id(), 4 * k as u64);
        let opened = if k == 0 {
            peer.line("SESSION 0 ").await
        } else {
            peer.line_of(&["OK open", "ERR open"]).await
        };
        let want = if k == 0 {
            "SESSION 0 0 /interop/pywebtransport".to_string()
        } else {
            format!("OK open {k} {}", 4 * k)
        };
        if opened != want {
            peer.fail(&format!("session {k}: peer said {opened:?}, want {want:?}"));
        }
        sessions.push(session);
    }
    assert!(
        sessions
            .iter()
            .all(|s| s.remote_addr() == sessions[0].remote_addr()),
        "all sessions come from the peer's one connection"
    );

    let mut t = Totals::default();
    for (k, session) in sessions.iter().enumerate() {
        exchange(&mut peer, k, session, true, k == 1, &mut t).await;
    }

    // The peer closes session 1: its code and reason arrive in CLOSE_WEBTRANSPORT_SESSION,
    // and sessions 0 and 2 carry on.
    peer.send_line(&format!("close 1 {PEER_CODE} {PEER_REASON}"))
        .await;
    let reason = match tokio::time::timeout(LIMIT, sessions[1].closed()).await {
        Ok(r) => r,
        Err(_) => peer.fail("our session 1 did not see the pywebtransport client's close"),
    };
    assert_eq!(
        reason,
        CloseReason::Remote {
            code: PEER_CODE,
            reason: PEER_REASON.into()
        },
        "close seen by our server"
    );
    peer.line("OK close 1").await;
    assert_eq!(
        peer.line("CLOSED 1 ").await,
        format!("CLOSED 1 {PEER_CODE} {PEER_REASON}")
    );
    still_alive(&mut peer, &[(0, &sessions[0]), (2, &sessions[2])]).await;

    // We close session 2: the peer reports our code and reason; session 0 carries on.
    sessions[2].close(OUR_CODE, OUR_REASON);
    assert_eq!(
        peer.line("CLOSED 2 ").await,
        format!("CLOSED 2 {OUR_CODE} {OUR_REASON}"),
        "our close as pywebtransport saw it"
    );
    still_alive(&mut peer, &[(0, &sessions[0])]).await;

    // The peer closes the last one.
    peer.send_line(&format!("close 0 {} {PEER_REASON}", PEER_CODE + 1))
        .await;
    match tokio::time::timeout(LIMIT, sessions[0].closed()).await {
        Ok(CloseReason::Remote { code, reason })
            if code == PEER_CODE + 1 && reason == PEER_REASON => {}
        other => peer.fail(&format!("session 0 closed with {other:?}")),
    }
    peer.line("OK close 0").await;
    quit(&mut peer).await;

    let detail = t.detail();
    println!("{label} client -> wtdatagram server: {detail}");
    cell.pass(&detail);
}

// ------------------------------------------------------------ pywebtransport server, our client

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wtd_client_to_pywebtransport_server() {
    common::init_log();
    let label = peer_label();
    let cell = common::MatrixCell::start(&label, "server", Dialect::Draft15.name());
    let mut peer = spawn_peer(
        &format!("wtdatagram client -> {label} server"),
        &["server".into()],
    );
    let (port, words) = peer.ready().await;
    let hash: Vec<u8> = match words.as_slice() {
        [hash] if hash.len() == 64 => (0..32)
            .map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).expect("hex"))
            .collect(),
        _ => peer.fail(&format!(
            "expected READY <port> <sha256>, got READY {port} {words:?}"
        )),
    };
    // pywebtransport generated its certificate; we pin its SHA-256.
    let client = Client::new(ClientConfig {
        verify: Verify::Hashes(vec![hash.try_into().expect("32 bytes")]),
        ..Default::default()
    })
    .expect("client");
    let base = format!("https://127.0.0.1:{port}/interop/wtd");
    let conn = match tokio::time::timeout(LIMIT, client.connect(&base)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => peer.fail(&format!("connect to {base}: {e}")),
        Err(_) => peer.fail("connecting timed out"),
    };
    assert_eq!(
        conn.peer_dialect(),
        Some(Dialect::Draft15),
        "dialect from pywebtransport's SETTINGS"
    );
    // SESSIONS sessions on this one connection, opened one after the other.
    let mut sessions: Vec<Session> = Vec::new();
    for k in 0..SESSIONS {
        let url = if k == 0 {
            base.clone()
        } else {
            format!("{base}/{k}")
        };
        let session = match tokio::time::timeout(LIMIT, conn.open_session(&url, &[])).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => peer.fail(&format!("open session {k} at {url}: {e}")),
            Err(_) => peer.fail(&format!("opening session {k} timed out")),
        };
        assert_eq!(session.request().dialect, Dialect::Draft15);
        assert_eq!(session.request().protocol, "webtransport-h3");
        assert_eq!(session.id(), 4 * k as u64);
        let path = url
            .strip_prefix(&format!("https://127.0.0.1:{port}"))
            .unwrap();
        let opened = peer.line(&format!("SESSION {k} ")).await;
        assert_eq!(opened, format!("SESSION {k} {} {path}", session.id()));
        sessions.push(session);
    }
    assert_eq!(conn.session_count(), SESSIONS);

    let mut t = Totals::default();
    for (k, session) in sessions.iter().enumerate() {
        // Session 0's flag depends on whether pywebtransport read our SETTINGS before
        // our first CONNECT (see peer_info).
        exchange(&mut peer, k, session, k > 0, k == 1, &mut t).await;
    }

    // We close session 1: the peer reports our code and reason; 0 and 2 carry on.
    sessions[1].close(OUR_CODE, OUR_REASON);
    assert_eq!(
        peer.line("CLOSED 1 ").await,
        format!("CLOSED 1 {OUR_CODE} {OUR_REASON}"),
        "our close as pywebtransport saw it"
    );
    assert_eq!(
        sessions[1].close_reason(),
        Some(CloseReason::Local {
            code: OUR_CODE,
            reason: OUR_REASON.into()
        })
    );
    still_alive(&mut peer, &[(0, &sessions[0]), (2, &sessions[2])]).await;

    // The peer closes session 2: we see its code and reason; session 0 carries on.
    peer.send_line(&format!("close 2 {PEER_CODE} {PEER_REASON}"))
        .await;
    let reason = match tokio::time::timeout(LIMIT, sessions[2].closed()).await {
        Ok(r) => r,
        Err(_) => peer.fail("our session 2 did not see the pywebtransport server's close"),
    };
    assert_eq!(
        reason,
        CloseReason::Remote {
            code: PEER_CODE,
            reason: PEER_REASON.into()
        },
        "close seen by our client"
    );
    peer.line("OK close 2").await;
    still_alive(&mut peer, &[(0, &sessions[0])]).await;
    assert_eq!(conn.session_count(), 1);

    // We close the last one.
    sessions[0].close(OUR_CODE + 1, OUR_REASON);
    assert_eq!(
        peer.line("CLOSED 0 ").await,
        format!("CLOSED 0 {} {OUR_REASON}", OUR_CODE + 1),
    );
    quit(&mut peer).await;

    let detail = t.detail();
    println!("wtdatagram client -> {label} server: {detail}");
    cell.pass(&detail);
}
