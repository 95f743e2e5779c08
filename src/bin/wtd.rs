//! `wtd`: a small WebTransport datagram tool built on `wtdatagram`.
//!
//! * `wtd serve`: an echo server that logs sessions.
//! * `wtd connect URL`: sends stdin lines (or a counted burst) as datagrams and prints
//!   what comes back.
//! * `wtd bench URL`: a datagram throughput test through the library's datagram stream.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use wtdatagram::datagram::{
    datagram_throughput_test, DatagramStream, StreamConfig, ThroughputResult,
};
use wtdatagram::{
    Client, ClientConfig, CloseReason, Connection, Error, Server, ServerConfig, ServerTls, Session,
    Verify,
};

#[path = "wtd/web.rs"]
mod web;

const USAGE: &str = "\
wtd: WebTransport datagrams over HTTP/3

USAGE:
    wtd serve [--bind ADDR] [--cert PEM --key PEM] [--max N] [--web ADDR] [LIMITS]
    wtd connect URL [--hash HEX | --insecure | --ca PEM] [--origin ORIGIN]
                    [--count N [--size BYTES]]
    wtd bench URL [--hash HEX | --insecure | --ca PEM] [--duration SECS]
                  [--size BYTES]
    wtd --help | --version

SERVE (echo server):
    --bind ADDR       UDP address to listen on (default 127.0.0.1:4433; port 0 picks one)
    --cert PEM        certificate chain (PEM); needs --key. Default: a fresh
                      self-signed certificate, valid 13 days
    --key PEM         private key (PEM: PKCS#8, PKCS#1 or SEC1)
    --max N           exit after N sessions have closed (default: run until killed)
    --web ADDR        also serve, over plain HTTP on ADDR (IP:PORT, or a PORT on
                      127.0.0.1), a page that connects to this server with the
                      JavaScript module and shows sessions, echoes, RTT, throughput
                      and statistics; prints 'web http://ADDR/' at start
  LIMITS (what peers may make the server hold; defaults in the README's Limits section):
    --max-connections N      connections at once, handshakes included (10000)
    --max-sessions N         sessions at once over all connections (10000)
    --request-timeout-ms MS  time a request stream has to deliver its headers (5000)
  Prints 'listening https://ADDR/' and 'cert-sha256 HEX' at start, then one
  'session ...' and one 'closed ...' line per session.

CONNECT:
    --hash HEX        trust only the certificate whose SHA-256 is HEX (64 hex digits,
                      ':' separators allowed), like serverCertificateHashes
    --insecure        trust any certificate (testing only)
    --ca PEM          trust certificates issued by these CA certificates
                      (default: the system trust store)
    --origin ORIGIN   send this 'origin' request header
    --count N         send N datagrams (64 in flight), wait for the echoes, print
                      stats; exit 0 only if all N came back
    --size BYTES      payload size for --count (default 64)
  Without --count, each stdin line is sent as one datagram and every datagram
  received is printed as '< TEXT'. At end of input, waits up to 1 s for echoes,
  closes the session and prints 'stats sent=N received=M dropped=D'.

BENCH (datagram throughput test, against an echo server such as 'wtd serve'):
    --hash, --insecure, --ca   as for connect
    --duration SECS   how long to send (default 5; fractions such as 0.5 allowed)
    --size BYTES      datagram payload size (default 1000; at most the session's
                      maximum datagram size)
  Sends as fast as the connection takes them, showing progress on stderr once a
  second; echoes are discarded. Then prints one line:
    'bench duration=S sent=N errors=E rate=DGRAM/S throughput=MBIT/S error_rate=R'

EXIT STATUS: 0 success, 1 runtime failure, 2 bad usage.
";

/// Datagrams in flight at most in `--count` mode.
const WINDOW: u64 = 64;
/// Bound on establishing the connection and the session.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `--count`: give up after this long without any echo.
const MAX_IDLE: Duration = Duration::from_secs(5);
/// `--count`: how long to let path MTU discovery raise the datagram limit to `--size`.
const PMTUD_WAIT: Duration = Duration::from_secs(2);
/// Interactive mode: how long to wait for echoes after end of input.
const DRAIN_WAIT: Duration = Duration::from_secs(1);
/// `bench`: defaults for `--duration` and `--size`.
const BENCH_DURATION: Duration = Duration::from_secs(5);
const BENCH_SIZE: usize = 1000;
/// `bench --duration`: at most a day (a bound that keeps the arithmetic sane).
const BENCH_MAX_SECS: f64 = 86_400.0;

/// How a command failed: bad usage (exit 2) or at run time (exit 1).
#[derive(Debug)]
enum Fail {
    Usage(String),
    Runtime(String),
}

fn usage<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Usage(msg.into()))
}

fn runtime(msg: impl Into<String>) -> Fail {
    Fail::Runtime(msg.into())
}

/// Print one line on stdout and flush; a closed stdout is not worth dying for.
fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn warn(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr().lock(), "wtd: warning: {}", line.as_ref());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(s: &str) -> Result<[u8; 32], Fail> {
    let digits: Vec<u8> = s.bytes().filter(|&b| b != b':').collect();
    let bad = || Fail::Usage(format!("--hash {s:?}: expected 64 hexadecimal digits"));
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Command-line words after the subcommand, with `--opt value` and `--opt=value`.
struct Args {
    words: std::vec::IntoIter<String>,
}

enum Arg {
    /// `--name` with its inline `=value`, if any.
    Opt(String, Option<String>),
    Positional(String),
}

impl Args {
    fn next(&mut self) -> Option<Arg> {
        let w = self.words.next()?;
        if let Some(opt) = w.strip_prefix("--").filter(|o| !o.is_empty()) {
            return Some(match opt.split_once('=') {
                Some((n, v)) => Arg::Opt(n.to_string(), Some(v.to_string())),
                None => Arg::Opt(opt.to_string(), None),
            });
        }
        Some(Arg::Positional(w))
    }

    fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, Fail> {
        match inline.or_else(|| self.words.next()) {
            Some(v) => Ok(v),
            None => usage(format!("--{name} needs a value")),
        }
    }

    fn number<T: std::str::FromStr>(
        &mut self,
        name: &str,
        inline: Option<String>,
    ) -> Result<T, Fail> {
        let v = self.value(name, inline)?;
        v.parse()
            .map_err(|_| Fail::Usage(format!("--{name} {v:?}: not a valid number")))
    }
}

fn no_value(name: &str, inline: &Option<String>) -> Result<(), Fail> {
    match inline {
        Some(_) => usage(format!("--{name} takes no value")),
        None => Ok(()),
    }
}

fn read_file(what: &str, path: &str) -> Result<Vec<u8>, Fail> {
    std::fs::read(path).map_err(|e| runtime(format!("reading {what} {path:?}: {e}")))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let code = match run(std::env::args().skip(1).collect()).await {
        Ok(code) => code,
        Err(Fail::Usage(msg)) => {
            eprintln!("wtd: error: {msg} (see 'wtd --help')");
            2
        }
        Err(Fail::Runtime(msg)) => {
            eprintln!("wtd: error: {msg}");
            1
        }
    };
    let _ = std::io::stdout().flush();
    // Exit without dropping the runtime: a pending blocking stdin read would hold it up.
    std::process::exit(code);
}

async fn run(argv: Vec<String>) -> Result<i32, Fail> {
    let mut words = argv.into_iter();
    let Some(cmd) = words.next() else {
        eprint!("{USAGE}");
        return Ok(2);
    };
    let args = Args { words };
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(0)
        }
        "-V" | "--version" => {
            say(format!("wtd {}", env!("CARGO_PKG_VERSION")));
            Ok(0)
        }
        "serve" => match parse_serve(args)? {
            Some(opts) => serve(opts).await,
            None => help(),
        },
        "connect" => match parse_connect(args)? {
            Some(opts) => connect(opts).await,
            None => help(),
        },
        "bench" => match parse_bench(args)? {
            Some(opts) => bench(opts).await,
            None => help(),
        },
        other if other.starts_with('-') => usage(format!("unknown option {other}")),
        other => usage(format!("unknown command {other:?}")),
    }
}

fn help() -> Result<i32, Fail> {
    print!("{USAGE}");
    Ok(0)
}

// ---------------------------------------------------------------------------------------
// serve

struct ServeOpts {
    bind: SocketAddr,
    cert: Option<(String, String)>,
    max: Option<u64>,
    max_connections: Option<usize>,
    max_sessions: Option<usize>,
    request_timeout: Option<Duration>,
    web: Option<SocketAddr>,
}

/// `None`: `--help` was asked for.
fn parse_serve(mut args: Args) -> Result<Option<ServeOpts>, Fail> {
    let mut bind: SocketAddr = "127.0.0.1:4433".parse().expect("literal address");
    let (mut cert, mut key, mut max) = (None, None, None);
    let (mut max_connections, mut max_sessions, mut request_timeout) = (None, None, None);
    let mut web = None;
    while let Some(arg) = args.next() {
        match arg {
            Arg::Opt(n, v) => match n.as_str() {
                "bind" => {
                    let v = args.value(&n, v)?;
                    bind = v.parse().map_err(|_| {
                        Fail::Usage(format!(
                            "--bind {v:?}: expected IP:PORT, e.g. 127.0.0.1:4433 or [::1]:0"
                        ))
                    })?;
                }
                "cert" => cert = Some(args.value(&n, v)?),
                "key" => key = Some(args.value(&n, v)?),
                "max" => {
                    let m: u64 = args.number(&n, v)?;
                    if m == 0 {
                        return usage("--max must be at least 1");
                    }
                    max = Some(m);
                }
                "max-connections" | "max-sessions" => {
                    let m: usize = args.number(&n, v)?;
                    if m == 0 {
                        return usage(format!("--{n} must be at least 1"));
                    }
                    if n == "max-connections" {
                        max_connections = Some(m);
                    } else {
                        max_sessions = Some(m);
                    }
                }
                "request-timeout-ms" => {
                    let ms: u64 = args.number(&n, v)?;
                    if !(1..=600_000).contains(&ms) {
                        return usage("--request-timeout-ms must be 1..=600000");
                    }
                    request_timeout = Some(Duration::from_millis(ms));
                }
                "web" => web = Some(web::parse_addr(&args.value(&n, v)?).map_err(Fail::Usage)?),
                "help" => return Ok(None),
                _ => return usage(format!("serve: unknown option --{n}")),
            },
            Arg::Positional(p) if p == "-h" => return Ok(None),
            Arg::Positional(p) => return usage(format!("serve: unexpected argument {p:?}")),
        }
    }
    let cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return usage("--cert and --key go together"),
    };
    Ok(Some(ServeOpts {
        bind,
        cert,
        max,
        max_connections,
        max_sessions,
        request_timeout,
        web,
    }))
}

async fn serve(opts: ServeOpts) -> Result<i32, Fail> {
    let tls = match &opts.cert {
        Some((cert, key)) => ServerTls::Pem {
            cert_chain: read_file("certificate", cert)?,
            key: read_file("key", key)?,
        },
        None => {
            let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
            let ip = opts.bind.ip();
            if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
                names.push(ip.to_string());
            }
            ServerTls::SelfSigned { names }
        }
    };
    let defaults = ServerConfig::default();
    let self_signed = opts.cert.is_none();
    let server = Server::bind(ServerConfig {
        bind: opts.bind,
        tls,
        max_connections: opts.max_connections.unwrap_or(defaults.max_connections),
        max_sessions: opts.max_sessions.unwrap_or(defaults.max_sessions),
        request_timeout: opts.request_timeout.unwrap_or(defaults.request_timeout),
        ..defaults
    })
    .map_err(|e| runtime(format!("cannot serve on {}: {e}", opts.bind)))?;
    let server = Arc::new(server);
    say(format!("listening https://{}/", server.local_addr()));
    say(format!("cert-sha256 {}", hex(&server.cert_sha256())));
    let sessions = web::Sessions::default();
    if let Some(addr) = opts.web {
        let at = web::serve(addr, server.clone(), sessions.clone(), self_signed)
            .await
            .map_err(|e| runtime(format!("cannot serve the web page on {addr}: {e}")))?;
        say(format!("web http://{at}/"));
    }

    let closed = Arc::new(AtomicU64::new(0));
    let all_done = Arc::new(Notify::new());
    let mut next_id: u64 = 0;
    loop {
        let req = tokio::select! {
            r = server.accept() => r,
            _ = all_done.notified() => return Ok(0),
        };
        let Some(req) = req else {
            return Err(runtime("the server stopped accepting sessions"));
        };
        next_id += 1;
        let id = next_id;
        let (closed, all_done, max) = (closed.clone(), all_done.clone(), opts.max);
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let path = req.path().to_string();
            let origin = req.origin().unwrap_or("-").to_string();
            let dialect = req.info().dialect.name();
            let remote = req.remote_addr();
            match req.accept().await {
                Ok(session) => {
                    say(format!(
                        "session {id} path={path} origin={origin} dialect={dialect}"
                    ));
                    let shown = sessions.track(id, &session);
                    let reason = echo(&session).await;
                    drop(shown);
                    say(format!("closed {id} {reason}"));
                }
                Err(e) => warn(format!("accepting a session from {remote}: {e}")),
            }
            let n = closed.fetch_add(1, Ordering::SeqCst) + 1;
            if max.is_some_and(|m| n >= m) {
                all_done.notify_one();
            }
        });
    }
}

/// Echo every datagram back (waiting for room to send) until the session ends.
async fn echo(session: &Session) -> CloseReason {
    loop {
        let d = match session.recv_datagram().await {
            Ok(d) => d,
            Err(Error::Closed(r)) => return r,
            Err(e) => {
                session.close(1, &format!("receive failed: {e}"));
                break;
            }
        };
        match session.send_datagram(&d).await {
            Ok(()) => {}
            Err(Error::Closed(r)) => return r,
            // The peer's limit may differ from ours: drop this one, keep echoing.
            Err(Error::TooLarge { .. }) => {}
            Err(e) => {
                session.close(1, &format!("send failed: {e}"));
                break;
            }
        }
    }
    session.closed().await
}

// ---------------------------------------------------------------------------------------
// connect

struct ConnectOpts {
    url: String,
    verify: Verify,
    origin: Option<String>,
    count: Option<u64>,
    size: usize,
}

/// How a client command was told to trust the server, as given on the command line.
enum Trust {
    Hash([u8; 32]),
    Insecure,
    Ca(String),
}

/// The trust options of `connect` and `bench` (`--hash`, `--insecure`, `--ca`): at most
/// one of them.
#[derive(Default)]
struct TrustArg(Option<(String, Trust)>);

impl TrustArg {
    /// Take `--name` if it is a trust option: `Ok(true)` if it was one.
    fn take(&mut self, name: &str, inline: Option<String>, args: &mut Args) -> Result<bool, Fail> {
        let trust = match name {
            "hash" => Trust::Hash(parse_hash(&args.value(name, inline)?)?),
            "insecure" => {
                no_value(name, &inline)?;
                Trust::Insecure
            }
            "ca" => Trust::Ca(args.value(name, inline)?),
            _ => return Ok(false),
        };
        if let Some((prev, _)) = &self.0 {
            return usage(format!(
                "--{name} conflicts with --{prev}: give one of --hash, --insecure, --ca"
            ));
        }
        self.0 = Some((name.to_string(), trust));
        Ok(true)
    }

    /// What the client verifies (reads the `--ca` file).
    fn verify(self) -> Result<Verify, Fail> {
        Ok(match self.0.map(|(_, t)| t) {
            Some(Trust::Hash(h)) => Verify::Hashes(vec![h]),
            Some(Trust::Insecure) => Verify::Insecure,
            Some(Trust::Ca(path)) => Verify::CaPem(read_file("CA certificates", &path)?),
            None => Verify::WebPki,
        })
    }
}

/// The URL argument of `cmd`: present and https.
fn check_url(cmd: &str, url: Option<String>) -> Result<String, Fail> {
    let Some(url) = url else {
        return usage(format!("{cmd}: missing URL (e.g. https://127.0.0.1:4433/)"));
    };
    if !url.starts_with("https://") {
        return usage(format!("URL {url:?} must start with https://"));
    }
    Ok(url)
}

fn parse_connect(mut args: Args) -> Result<Option<ConnectOpts>, Fail> {
    let mut url = None;
    let mut trust = TrustArg::default();
    let (mut origin, mut count, mut size) = (None, None, None);
    while let Some(arg) = args.next() {
        match arg {
            Arg::Opt(n, v) => match n.as_str() {
                "hash" | "insecure" | "ca" => {
                    trust.take(&n, v, &mut args)?;
                }
                "origin" => origin = Some(args.value(&n, v)?),
                "count" => {
                    let c: u64 = args.number(&n, v)?;
                    if c == 0 {
                        return usage("--count must be at least 1");
                    }
                    count = Some(c);
                }
                "size" => size = Some(args.number::<usize>(&n, v)?),
                "help" => return Ok(None),
                _ => return usage(format!("connect: unknown option --{n}")),
            },
            Arg::Positional(p) if p == "-h" => return Ok(None),
            Arg::Positional(p) if url.is_none() => url = Some(p),
            Arg::Positional(p) => return usage(format!("connect: unexpected argument {p:?}")),
        }
    }
    let url = check_url("connect", url)?;
    if size.is_some() && count.is_none() {
        return usage("--size only applies with --count");
    }
    Ok(Some(ConnectOpts {
        url,
        verify: trust.verify()?,
        origin,
        count,
        size: size.unwrap_or(64),
    }))
}

fn connect_error(url: &str, e: Error) -> Fail {
    match e {
        Error::InvalidArgument(m) => Fail::Usage(m),
        Error::Tls(m) => runtime(format!(
            "TLS handshake with {url} failed (certificate not trusted?): {m}"
        )),
        other => runtime(format!("connecting to {url}: {other}")),
    }
}

/// A client, its connection to `url` and a session on it, within CONNECT_TIMEOUT.
async fn open(
    url: &str,
    verify: Verify,
    headers: Vec<(String, String)>,
) -> Result<(Client, Connection, Session), Fail> {
    let client = Client::new(ClientConfig {
        verify,
        headers,
        ..Default::default()
    })
    .map_err(|e| match e {
        Error::Tls(m) => runtime(format!("TLS configuration: {m}")),
        other => runtime(format!("creating the client: {other}")),
    })?;
    let opening = async {
        let conn = client.connect(url).await?;
        let session = conn.open_session(url, &[]).await?;
        Ok::<_, Error>((conn, session))
    };
    let (conn, session) = match tokio::time::timeout(CONNECT_TIMEOUT, opening).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(Error::Rejected(status))) => {
            return Err(runtime(format!(
                "{url}: session rejected by the server with HTTP status {status}"
            )))
        }
        Ok(Err(e)) => return Err(connect_error(url, e)),
        Err(_) => {
            return Err(runtime(format!(
                "connecting to {url}: timed out after {} s (no answer from the server)",
                CONNECT_TIMEOUT.as_secs()
            )))
        }
    };
    Ok((client, conn, session))
}

async fn connect(opts: ConnectOpts) -> Result<i32, Fail> {
    let headers = match &opts.origin {
        Some(o) => vec![("origin".to_string(), o.clone())],
        None => Vec::new(),
    };
    let url = opts.url.as_str();
    let (client, conn, session) = open(url, opts.verify.clone(), headers).await?;
    let max = session.max_datagram_size().unwrap_or(0);
    say(format!(
        "connected {url} dialect={} max-datagram={max}",
        session.request().dialect.name()
    ));
    let result = match opts.count {
        Some(n) => burst(&session, n, opts.size).await,
        None => interactive(&session).await,
    };
    finish(&client, conn, session).await;
    result
}

/// Counts (and, if `print`, prints) received datagrams; publishes the count on `tx`.
/// Ends when the session closes, dropping `tx`.
fn spawn_receiver(session: Session, print: bool) -> (watch::Receiver<u64>, RecvTask) {
    let (tx, rx) = watch::channel(0u64);
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            match session.recv_datagram().await {
                Ok(d) => {
                    n += 1;
                    if print {
                        say(format!("< {}", String::from_utf8_lossy(&d)));
                    }
                    tx.send_replace(n);
                }
                Err(Error::Closed(r)) => return Some(r),
                Err(_) => return None,
            }
        }
    });
    (rx, task)
}

type RecvTask = tokio::task::JoinHandle<Option<CloseReason>>;

/// Stop the receiver (its session clone must go before the session can be released).
async fn stop_receiver(task: RecvTask) {
    task.abort();
    let _ = task.await;
}

/// Lines of stdin without their line ending, read on a thread of their own (tokio's
/// stdin needs the `io-std` feature, and a blocking read there would hold up shutdown).
fn stdin_lines() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        loop {
            let mut line = Vec::new();
            let item = match input.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    Ok(line)
                }
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// Lines of stdin out as datagrams, echoes printed as they come.
async fn interactive(session: &Session) -> Result<i32, Fail> {
    let (mut rx, task) = spawn_receiver(session.clone(), true);
    let mut input = stdin_lines();
    let mut sent = 0u64;
    loop {
        let line = tokio::select! {
            l = input.recv() => match l {
                Some(Ok(line)) => line,
                Some(Err(e)) => {
                    stop_receiver(task).await;
                    return Err(runtime(format!("reading stdin: {e}")));
                }
                None => break,
            },
            r = session.closed() => {
                stop_receiver(task).await;
                return Err(runtime(format!("session ended: {r}")));
            }
        };
        match session.send_datagram(&line).await {
            Ok(()) => sent += 1,
            Err(Error::TooLarge { size, max }) => {
                warn(format!(
                    "line of {size} bytes not sent: the limit is {max} bytes"
                ));
            }
            Err(Error::Closed(r)) => {
                stop_receiver(task).await;
                return Err(runtime(format!("session ended: {r}")));
            }
            Err(e) => {
                stop_receiver(task).await;
                return Err(runtime(format!("sending: {e}")));
            }
        }
    }
    let _ = tokio::time::timeout(DRAIN_WAIT, rx.wait_for(|&r| r >= sent)).await;
    let received = *rx.borrow();
    stop_receiver(task).await;
    say(format!(
        "stats sent={sent} received={received} dropped={}",
        session.stats().recv_dropped
    ));
    Ok(0)
}

/// Wait (up to PMTUD_WAIT) until datagrams of `size` bytes fit the session's limit:
/// the limit grows as path MTU discovery proceeds, so give it a moment before refusing.
async fn wait_for_room(session: &Session, size: usize) -> Result<(), Fail> {
    let deadline = Instant::now() + PMTUD_WAIT;
    let mut max = session.max_datagram_size().unwrap_or(0);
    while size > max && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        max = session.max_datagram_size().unwrap_or(0);
    }
    if size > max {
        return Err(runtime(format!(
            "--size {size} exceeds the session's maximum datagram size of {max} bytes"
        )));
    }
    Ok(())
}

/// `--count`: N datagrams of `size` bytes, at most WINDOW unanswered at a time.
async fn burst(session: &Session, n: u64, size: usize) -> Result<i32, Fail> {
    wait_for_room(session, size).await?;
    let (mut rx, task) = spawn_receiver(session.clone(), false);
    let mut payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut sent = 0u64;
    // Datagrams presumed lost (no echo for a while): they no longer hold the window.
    let mut written_off = 0u64;
    let mut last_progress = (Instant::now(), 0u64);
    let mut failure = None;
    while sent < n {
        let received = *rx.borrow_and_update();
        if received != last_progress.1 {
            last_progress = (Instant::now(), received);
        }
        if sent.saturating_sub(received + written_off) >= WINDOW {
            match tokio::time::timeout(Duration::from_millis(500), rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break, // session closed
                Err(_) if last_progress.0.elapsed() >= MAX_IDLE => break,
                Err(_) => written_off = sent - received,
            }
            continue;
        }
        let tag = sent.to_be_bytes();
        let k = tag.len().min(size);
        payload[..k].copy_from_slice(&tag[tag.len() - k..]);
        match session.send_datagram(&payload).await {
            Ok(()) => sent += 1,
            Err(e) => {
                failure = Some(format!("sending datagram {}: {e}", sent + 1));
                break;
            }
        }
    }
    // Wait for the rest of the echoes: until all are back or nothing arrives for MAX_IDLE.
    while *rx.borrow_and_update() < sent {
        match tokio::time::timeout(MAX_IDLE, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    let received = (*rx.borrow()).min(n);
    let closed = if task.is_finished() {
        task.await.ok().flatten()
    } else {
        stop_receiver(task).await;
        None
    };
    say(format!(
        "stats sent={sent} received={received} dropped={}",
        session.stats().recv_dropped
    ));
    if let Some(f) = failure {
        return Err(runtime(f));
    }
    if let Some(r) = closed {
        return Err(runtime(format!("session ended: {r}")));
    }
    Ok(if sent == n && received == n { 0 } else { 1 })
}

/// Close the session with "bye" and give the close a moment to reach the server.
async fn finish(client: &Client, conn: Connection, session: Session) {
    session.close(0, "bye");
    drop(session);
    drop(conn);
    // Let the close capsule reach the server, then close the endpoint for good and give
    // the CONNECTION_CLOSE a moment to leave.
    wtdatagram::transport::finish_closing(Duration::from_secs(5)).await;
    client.close();
    tokio::time::sleep(Duration::from_millis(20)).await;
}

// ---------------------------------------------------------------------------------------
// bench

struct BenchOpts {
    url: String,
    verify: Verify,
    duration: Duration,
    size: usize,
}

fn parse_bench(mut args: Args) -> Result<Option<BenchOpts>, Fail> {
    let mut url = None;
    let mut trust = TrustArg::default();
    let (mut duration, mut size) = (BENCH_DURATION, BENCH_SIZE);
    while let Some(arg) = args.next() {
        match arg {
            Arg::Opt(n, v) => match n.as_str() {
                "hash" | "insecure" | "ca" => {
                    trust.take(&n, v, &mut args)?;
                }
                "duration" => {
                    let secs: f64 = args.number(&n, v)?;
                    // Also refuses NaN and infinities.
                    if !(secs > 0.0 && secs <= BENCH_MAX_SECS) {
                        return usage(format!(
                            "--duration {secs}: expected seconds, more than 0 and at most {BENCH_MAX_SECS}"
                        ));
                    }
                    duration = Duration::from_secs_f64(secs);
                }
                "size" => {
                    size = args.number(&n, v)?;
                    if size == 0 {
                        return usage("--size must be at least 1");
                    }
                }
                "help" => return Ok(None),
                _ => return usage(format!("bench: unknown option --{n}")),
            },
            Arg::Positional(p) if p == "-h" => return Ok(None),
            Arg::Positional(p) if url.is_none() => url = Some(p),
            Arg::Positional(p) => return usage(format!("bench: unexpected argument {p:?}")),
        }
    }
    let url = check_url("bench", url)?;
    Ok(Some(BenchOpts {
        url,
        verify: trust.verify()?,
        duration,
        size,
    }))
}

async fn bench(opts: BenchOpts) -> Result<i32, Fail> {
    let url = opts.url.as_str();
    let (client, conn, session) = open(url, opts.verify.clone(), Vec::new()).await?;
    let result = bench_session(&session, &opts).await;
    finish(&client, conn, session).await;
    result
}

/// The throughput test on an open session; prints the result line.
async fn bench_session(session: &Session, opts: &BenchOpts) -> Result<i32, Fail> {
    eprintln!(
        "connected {} dialect={} max-datagram={}",
        opts.url,
        session.request().dialect.name(),
        session.max_datagram_size().unwrap_or(0)
    );
    wait_for_room(session, opts.size).await?;
    let stream = DatagramStream::new(session, StreamConfig::default())
        .map_err(|e| runtime(format!("creating the datagram stream: {e}")))?;
    eprintln!(
        "sending {}-byte datagrams for {:.3} s",
        opts.size,
        opts.duration.as_secs_f64()
    );
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let result =
        datagram_throughput_test(&stream, opts.duration, opts.size, |r| progress.show(r)).await;
    progress.end();
    // Echoes only count arrivals: the stream's receive queue keeps the first few.
    eprintln!(
        "echoes received {} (discarded)",
        stream.stats().datagrams_received
    );
    // Stop the stream (queued datagrams and echoes are discarded) before the session.
    stream.close();
    drop(stream);
    let r = result.map_err(|e| match e {
        Error::Closed(r) => runtime(format!("session ended during the test: {r}")),
        other => runtime(format!("throughput test: {other}")),
    })?;
    say(format!(
        "bench duration={:.3} sent={} errors={} rate={:.1} throughput={:.2} error_rate={:.4}",
        r.duration.as_secs_f64(),
        r.datagrams_sent,
        r.errors,
        r.datagrams_per_second,
        r.bits_per_second / 1e6,
        r.error_rate
    ));
    Ok(0)
}

/// `bench` progress on stderr: one line rewritten in place on a terminal, otherwise a
/// line per update.
struct Progress {
    tty: bool,
    /// Length of the line now on the terminal (0: none).
    shown: usize,
}

impl Progress {
    fn new(tty: bool) -> Progress {
        Progress { tty, shown: 0 }
    }

    fn show(&mut self, r: &ThroughputResult) {
        let line = format!(
            "{:5.1} s  {} datagrams  {:.1} Mbit/s  {:.0} dgram/s  errors {}",
            r.duration.as_secs_f64(),
            r.datagrams_sent,
            r.bits_per_second / 1e6,
            r.datagrams_per_second,
            r.errors
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            // Blank out what is left of a longer previous line.
            let pad = self.shown.saturating_sub(line.len());
            let _ = write!(err, "\r{line}{:pad$}", "");
            self.shown = line.len();
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// End the rewritten line, if any.
    fn end(&mut self) {
        if self.tty && self.shown > 0 {
            let _ = writeln!(std::io::stderr().lock());
            self.shown = 0;
        }
    }
}
