//! `rust-peer`: independent Rust WebTransport stacks as interop peers for
//! `tests/interop_rust_peers.rs`, driven over stdin/stdout lines like
//! `tests/interop/aioquic_peer.py`.
//!
//! ```text
//! rust-peer <stack> server --cert CERT.der --key KEY.pk8 [--sessions N]
//! rust-peer <stack> client --url BASE --cert-hash HEX [--sessions N] [--count C] [--window W]
//!   stack: wtransport (0.7) | wtq (web-transport-quinn 0.13) | h3 (h3-webtransport 0.1, server only)
//! ```
//!
//! Every stack here supports one session per QUIC connection, so N sessions are N
//! connections (the client opens `BASE/0` .. `BASE/N-1`). Lines printed (stdout):
//!
//! - `READY <port>` (server) once listening.
//! - `SESSION <i> <path> <max>` when session `i` is established; `<max>` is the
//!   stack's largest datagram payload then. `MAX <i> <n>` whenever it grows.
//! - client: `RESULT <i> ok <sent> <received> <smallest> <largest>` (or `RESULT <i> fail
//!   <why>`) after sending `--count` datagrams in windows of `--window` and checking every
//!   echo (exact bytes, any order inside a window). Each window opens with a datagram of
//!   exactly min(own max, CAP) and one of 1 byte, CAP being what the echoing side accepts.
//! - server: echoes every datagram of every session; `ECHOED <i> <n>` when a session ends.
//! - `CLOSED <i> <how> <code> <reason>`: how = `local` (closed on a CLOSE command),
//!   `remote` (the close code and reason the stack exposes: a CLOSE_WEBTRANSPORT_SESSION
//!   capsule, or the QUIC application close the stack reports), `lost` (anything else;
//!   code 0, reason = the error).
//! - `DONE` when every session ended, then exit 0. `TIMEOUT` and exit 2 after
//!   `--timeout` seconds.
//!
//! Commands read (stdin): `CAP <i> <n>` (client: largest datagram the other side can
//! echo on session i; sending waits for the first) and `CLOSE <i> <code> <reason>`
//! (close session i with that code and reason).

mod h3peer;
mod wt;
mod wtq;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};

/// How a session ended, as the stack reports it.
#[derive(Debug, Clone)]
pub struct End {
    pub how: &'static str,
    pub code: u64,
    pub reason: String,
}

impl End {
    pub fn remote(code: u64, reason: &[u8]) -> End {
        End {
            how: "remote",
            code,
            reason: String::from_utf8_lossy(reason).into_owned(),
        }
    }
    pub fn lost(what: impl std::fmt::Display) -> End {
        End {
            how: "lost",
            code: 0,
            reason: what.to_string().replace('\n', " "),
        }
    }
}

/// One established session of a stack, as the driver below uses it.
pub trait PeerSession: Send + Sync + 'static {
    /// Largest datagram payload the stack would send now.
    fn max(&self) -> usize;
    fn send(&self, data: Bytes) -> impl Future<Output = Result<(), String>> + Send;
    fn recv(&self) -> impl Future<Output = Result<Bytes, End>> + Send;
    /// Close with an application code and reason (the stack's own way of doing it).
    fn close(&self, code: u32, reason: &str);
    /// After `close`: wait (the caller bounds it) until the close has left.
    fn flush(&self) -> impl Future<Output = ()> + Send;
}

pub fn out(line: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

pub fn log(line: &str) {
    eprintln!("[rust-peer] {line}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

pub struct Args {
    pub stack: String,
    pub role: Role,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub url: Option<String>,
    pub cert_hash: Option<[u8; 32]>,
    pub sessions: usize,
    pub count: usize,
    pub window: usize,
    pub timeout: Duration,
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "rust-peer: {msg}\nusage: rust-peer <wtransport|wtq|h3> server --cert F --key F [--sessions N]\n       \
         rust-peer <wtransport|wtq> client --url BASE --cert-hash HEX [--sessions N] [--count C] [--window W]"
    );
    std::process::exit(64)
}

fn hex32(s: &str) -> [u8; 32] {
    let s = s.trim();
    if s.len() != 64 {
        usage("--cert-hash needs 64 hex digits");
    }
    let mut h = [0u8; 32];
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .unwrap_or_else(|_| usage("--cert-hash is not hex"));
    }
    h
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let stack = it.next().unwrap_or_else(|| usage("missing stack"));
    if !matches!(stack.as_str(), "wtransport" | "wtq" | "h3") {
        usage(&format!("unknown stack {stack:?}"));
    }
    let role = match it.next().as_deref() {
        Some("server") => Role::Server,
        Some("client") => Role::Client,
        _ => usage("role must be server or client"),
    };
    let mut a = Args {
        stack,
        role,
        cert: None,
        key: None,
        url: None,
        cert_hash: None,
        sessions: 1,
        count: 1000,
        window: 50,
        timeout: Duration::from_secs(60),
    };
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let num = |v: String| -> usize { v.parse().unwrap_or_else(|_| usage("bad number")) };
        match flag.as_str() {
            "--cert" => a.cert = Some(val()),
            "--key" => a.key = Some(val()),
            "--url" => a.url = Some(val()),
            "--cert-hash" => a.cert_hash = Some(hex32(&val())),
            "--sessions" => a.sessions = num(val()).max(1),
            "--count" => a.count = num(val()).max(2),
            "--window" => a.window = num(val()).max(2),
            "--timeout" => a.timeout = Duration::from_secs(num(val()) as u64),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    match a.role {
        Role::Server if a.cert.is_none() || a.key.is_none() => {
            usage("server needs --cert and --key")
        }
        Role::Client if a.url.is_none() || a.cert_hash.is_none() => {
            usage("client needs --url and --cert-hash")
        }
        Role::Client if a.stack == "h3" => usage("h3-webtransport is server-only"),
        _ => {}
    }
    a
}

pub fn read_file(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| usage(&format!("reading {path}: {e}")))
}

/// Commands from stdin, routed to sessions by index.
pub struct Control {
    caps: Vec<watch::Sender<usize>>,
    closes: Vec<mpsc::UnboundedSender<(u32, String)>>,
}

pub struct SessionControl {
    cap: watch::Receiver<usize>,
    close: mpsc::UnboundedReceiver<(u32, String)>,
}

impl Control {
    fn new(n: usize) -> (Arc<Control>, Vec<SessionControl>) {
        let mut caps = Vec::new();
        let mut closes = Vec::new();
        let mut ctls = Vec::new();
        for _ in 0..n {
            let (ct, cr) = watch::channel(0usize);
            let (xt, xr) = mpsc::unbounded_channel();
            caps.push(ct);
            closes.push(xt);
            ctls.push(SessionControl { cap: cr, close: xr });
        }
        (Arc::new(Control { caps, closes }), ctls)
    }

    fn apply(&self, line: &str) {
        let mut parts = line.splitn(4, ' ');
        let cmd = parts.next().unwrap_or("");
        let idx: Option<usize> = parts.next().and_then(|s| s.parse().ok());
        let Some(i) = idx.filter(|i| *i < self.caps.len()) else {
            log(&format!("ignoring command {line:?}"));
            return;
        };
        match cmd {
            "CAP" => match parts.next().and_then(|s| s.parse().ok()) {
                Some(n) => {
                    let _ = self.caps[i].send(n);
                }
                None => log(&format!("bad CAP {line:?}")),
            },
            "CLOSE" => {
                let code = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let reason = parts.next().unwrap_or("").to_string();
                let _ = self.closes[i].send((code, reason));
            }
            _ => log(&format!("unknown command {line:?}")),
        }
    }
}

/// Datagram `k` of session `s`: its index (big-endian, cut to the size) then a pattern
/// derived from both. tests/interop_rust_peers.rs builds the same bytes.
pub fn payload(s: usize, k: usize, size: usize) -> Bytes {
    let head = (k as u32).to_be_bytes();
    if size <= 4 {
        return Bytes::copy_from_slice(&head[4 - size..]);
    }
    let mut p = head.to_vec();
    p.extend((0..size - 4).map(|j| ((k * 31 + j + s * 101) % 251) as u8));
    p.into()
}

/// Size of datagram `k` when the largest allowed is `max`: every window opens with one
/// of exactly `max` and one of 1 byte.
pub fn size_of(k: usize, window: usize, max: usize) -> usize {
    match k % window {
        0 => max,
        1 => 1,
        _ => 1 + (k * 97) % max,
    }
}

/// Watch the session's max datagram size and print `MAX` when it grows.
struct MaxReporter {
    i: usize,
    last: usize,
}

impl MaxReporter {
    fn check<S: PeerSession>(&mut self, s: &S) {
        self.report(s.max());
    }

    fn report(&mut self, m: usize) {
        if m > self.last {
            self.last = m;
            out(&format!("MAX {} {m}", self.i));
        }
    }
}

async fn echo<S: PeerSession>(i: usize, s: &S, max: &mut MaxReporter, echoed: &AtomicUsize) -> End {
    loop {
        match s.recv().await {
            Ok(d) => {
                max.check(s);
                if let Err(e) = s.send(d).await {
                    log(&format!("session {i}: echo failed: {e}"));
                    return End::lost(format!("echo failed: {e}"));
                }
                echoed.fetch_add(1, Ordering::Relaxed);
            }
            Err(end) => return end,
        }
    }
}

async fn exchange<S: PeerSession>(
    i: usize,
    s: &S,
    cap: &mut watch::Receiver<usize>,
    count: usize,
    window: usize,
    max: &mut MaxReporter,
) -> Result<String, String> {
    if tokio::time::timeout(Duration::from_secs(20), cap.wait_for(|c| *c > 0))
        .await
        .is_err()
    {
        return Err("no CAP command within 20 s".into());
    }
    let (mut sent, mut received) = (0usize, 0usize);
    let (mut smallest, mut largest) = (usize::MAX, 0usize);
    for start in (0..count).step_by(window) {
        // The size used is exactly the last one reported in MAX (or SESSION).
        let own = s.max();
        max.report(own);
        let limit = own.min(*cap.borrow());
        if limit == 0 {
            return Err("datagrams not available".into());
        }
        let mut outstanding: HashMap<Bytes, usize> = HashMap::new();
        for k in start..(start + window).min(count) {
            let p = payload(i, k, size_of(k, window, limit));
            smallest = smallest.min(p.len());
            largest = largest.max(p.len());
            s.send(p.clone())
                .await
                .map_err(|e| format!("send {k} ({} B, limit {limit}): {e}", p.len()))?;
            sent += 1;
            *outstanding.entry(p).or_default() += 1;
        }
        let mut left: usize = outstanding.values().sum();
        while left > 0 {
            let d = match tokio::time::timeout(Duration::from_secs(5), s.recv()).await {
                Ok(Ok(d)) => d,
                Ok(Err(end)) => {
                    return Err(format!(
                        "session ended in window at {start}: {} {} {}",
                        end.how, end.code, end.reason
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "window at {start}: {left} echoes missing after 5 s"
                    ))
                }
            };
            match outstanding.get_mut(&d) {
                Some(n) if *n > 0 => *n -= 1,
                _ => {
                    return Err(format!(
                        "window at {start}: unexpected echo of {} bytes starting {:02x?}",
                        d.len(),
                        &d[..d.len().min(8)]
                    ))
                }
            }
            received += 1;
            left -= 1;
        }
    }
    Ok(format!("{sent} {received} {smallest} {largest}"))
}

/// Drive one established session until it ends (or a CLOSE command closes it).
pub async fn run_session<S: PeerSession>(
    i: usize,
    path: &str,
    s: S,
    role: Role,
    ctl: SessionControl,
    count: usize,
    window: usize,
) {
    let SessionControl { mut cap, mut close } = ctl;
    let echoed = AtomicUsize::new(0);
    let mut max = MaxReporter { i, last: 0 };
    let first = s.max();
    out(&format!("SESSION {i} {path} {first}"));
    max.last = first;
    let work = async {
        match role {
            Role::Server => echo(i, &s, &mut max, &echoed).await,
            Role::Client => {
                match exchange(i, &s, &mut cap, count, window, &mut max).await {
                    Ok(r) => out(&format!("RESULT {i} ok {r}")),
                    Err(e) => out(&format!("RESULT {i} fail {e}")),
                }
                // Anything after the exchange is unexpected; wait for the end.
                let mut extra = 0usize;
                loop {
                    match s.recv().await {
                        Ok(_) => extra += 1,
                        Err(end) => {
                            if extra > 0 {
                                log(&format!("session {i}: {extra} unexpected datagrams"));
                            }
                            break end;
                        }
                    }
                }
            }
        }
    };
    let end = tokio::select! {
        end = work => end,
        Some((code, reason)) = close.recv() => {
            s.close(code, &reason);
            let _ = tokio::time::timeout(Duration::from_secs(5), s.flush()).await;
            End { how: "local", code: code.into(), reason }
        }
    };
    if role == Role::Server {
        out(&format!("ECHOED {i} {}", echoed.load(Ordering::Relaxed)));
    }
    out(&format!(
        "CLOSED {i} {} {} {}",
        end.how, end.code, end.reason
    ));
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async move {
        let (control, ctls) = Control::new(args.sessions);
        tokio::spawn(async move {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                control.apply(line.trim_end());
            }
        });
        let timeout = args.timeout;
        let run = async move {
            match (args.stack.as_str(), args.role) {
                ("wtransport", Role::Server) => wt::server(&args, ctls).await,
                ("wtransport", Role::Client) => wt::client(&args, ctls).await,
                ("wtq", Role::Server) => wtq::server(&args, ctls).await,
                ("wtq", Role::Client) => wtq::client(&args, ctls).await,
                ("h3", Role::Server) => h3peer::server(&args, ctls).await,
                _ => Err("unsupported stack and role".into()),
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(())) => {
                out("DONE");
                0
            }
            Ok(Err(e)) => {
                log(&format!("error: {e}"));
                out(&format!("ERROR {e}"));
                1
            }
            Err(_) => {
                out("TIMEOUT");
                2
            }
        }
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}

/// Run `sessions` (one task each) to their end.
pub async fn join_all(tasks: Vec<tokio::task::JoinHandle<()>>) -> Result<(), String> {
    for t in tasks {
        t.await.map_err(|e| format!("session task: {e}"))?;
    }
    Ok(())
}
