//! `wtd`: a small WebTransport datagram tool built on `wtdatagram`.
//!
//! * `wtd serve`: an echo server that logs sessions; with `--nats URL --relay CHANNEL` a
//!   relay node of a cluster (`relay`); with `--web ADDR`, in either mode, also a page
//!   that connects to it from a browser through the JavaScript module (`web`).
//! * `wtd connect URL`: sends stdin lines (or a counted burst) as datagrams and prints
//!   what comes back.
//! * `wtd bench URL`: a datagram throughput test through the library's datagram stream.

mod args;
mod output;
mod relay;
mod serve;
mod web;

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use wtdatagram::datagram::{
    datagram_throughput_test, DatagramStream, StreamConfig, ThroughputResult,
};
use wtdatagram::transport::tls;
use wtdatagram::{
    Client, ClientConfig, CloseReason, Connection, Error, Server, ServerConfig, ServerTls, Session,
    TransportOptions, Verify,
};

use output::{runtime, say, warn, Fail};

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

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>, Fail> {
    std::fs::read(path).map_err(|e| runtime(format!("reading {what} {}: {e}", path.display())))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let code = match parse(&argv) {
        Ok(cli) => match run(cli).await {
            Ok(code) => code,
            Err(Fail::Usage(msg)) => {
                eprintln!("wtd: error: {msg} (see 'wtd --help')");
                2
            }
            Err(Fail::Runtime(msg)) => {
                eprintln!("wtd: error: {msg}");
                1
            }
        },
        Err(code) => code,
    };
    let _ = std::io::stdout().flush();
    // Exit without dropping the runtime: a pending blocking stdin read would hold it up.
    std::process::exit(code);
}

/// Parse the command line; on `--help`/`--version` print and give 0, on a usage error
/// print one line (`wtd: error: ...`) and give 2.
fn parse(argv: &[String]) -> Result<args::Cli, i32> {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};
    if argv.len() <= 1 {
        let usage = args::Cli::command().render_usage().to_string();
        let lines: Vec<&str> = usage
            .trim_start_matches("Usage: ")
            .lines()
            .map(str::trim)
            .collect();
        eprintln!(
            "wtd: WebTransport datagrams over HTTP/3\n\nUSAGE:\n    {}\n\nSee 'wtd --help'.",
            lines.join("\n    ")
        );
        return Err(2);
    }
    match args::Cli::try_parse_from(argv) {
        Ok(cli) => Ok(cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(0)
        }
        Err(e) => {
            // clap's message without its "error: " prefix, usage and tips, on one line:
            // its first paragraph, whose later lines name what it is about (e.g. the
            // missing arguments of a `requires`).
            let rendered = e.render().to_string();
            let detail: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let detail = match detail.join(" ") {
                d if d.is_empty() => e.kind().to_string(),
                d => d.trim_start_matches("error: ").to_string(),
            };
            eprintln!("wtd: error: {detail} (see 'wtd --help')");
            Err(2)
        }
    }
}

/// Log records to stderr (stdout is the commands' output): RUST_LOG when set, else the
/// level `-v` asks for.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info",
            2 => "wtd=debug,wtdatagram=debug,info",
            3 => "debug",
            _ => "trace",
        }),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Transport options of every command: the defaults, with `--keylog` and `--qlog`.
fn transport(keylog: bool, qlog: Option<PathBuf>) -> TransportOptions {
    if keylog && std::env::var_os("SSLKEYLOGFILE").is_none() {
        warn("--keylog: SSLKEYLOGFILE is not set, no TLS secrets will be written");
    }
    TransportOptions {
        key_log: keylog,
        qlog_dir: qlog,
        ..Default::default()
    }
}

async fn run(cli: args::Cli) -> Result<i32, Fail> {
    init_logging(cli.verbose);
    let transport = transport(cli.keylog, cli.qlog);
    match cli.command {
        args::Command::Serve(a) => {
            let relay = a.relay().map_err(Fail::Usage)?;
            serve(ServeOpts {
                transport,
                bind: a.bind,
                cert: a.cert.zip(a.key),
                max: a.max,
                max_connections: a.max_connections,
                max_sessions: a.max_sessions,
                request_timeout: a.request_timeout_ms.map(Duration::from_millis),
                relay,
                web: a.web,
            })
            .await
        }
        args::Command::Connect(a) => {
            connect(ConnectOpts {
                transport,
                url: a.url,
                verify: verify(a.trust)?,
                origin: a.origin,
                count: a.count,
                size: a.size.unwrap_or(64),
            })
            .await
        }
        args::Command::Bench(a) => {
            bench(BenchOpts {
                transport,
                url: a.url,
                verify: verify(a.trust)?,
                duration: a.duration,
                size: a.size,
            })
            .await
        }
    }
}

/// What a client verifies, from the trust options (reads the `--ca` file).
fn verify(t: args::TrustArgs) -> Result<Verify, Fail> {
    Ok(match (t.hash, t.insecure, t.ca) {
        (Some(h), _, _) => Verify::Hashes(vec![h]),
        (_, true, _) => Verify::Insecure,
        (_, _, Some(path)) => Verify::CaPem(read_file("CA certificates", &path)?),
        _ => Verify::WebPki,
    })
}

// ---------------------------------------------------------------------------------------
// serve

struct ServeOpts {
    transport: TransportOptions,
    bind: SocketAddr,
    cert: Option<(PathBuf, PathBuf)>,
    max: Option<u64>,
    max_connections: Option<usize>,
    max_sessions: Option<usize>,
    request_timeout: Option<Duration>,
    /// Relay mode (`--nats`, `--relay`) instead of echo.
    relay: Option<args::RelayArgs>,
    /// `--web ADDR`: also serve the page (`web`), in either mode.
    web: Option<SocketAddr>,
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
        transport: opts.transport.clone(),
        ..defaults
    })
    .map_err(|e| runtime(format!("cannot serve on {}: {e}", opts.bind)))?;
    let server = Arc::new(server);
    say(format!("listening https://{}/", server.local_addr()));
    say(format!(
        "cert-sha256 {}",
        tls::sha256_hex(&server.cert_sha256())
    ));
    // One line per failed handshake, with the peer and the TLS reason (both modes).
    let mut failures = server.handshake_failures();
    tokio::spawn(async move {
        while let Some(f) = failures.recv().await {
            say(format!("handshake-failed {} {}", f.remote, f.reason));
        }
    });
    let sessions = web::Sessions::default();
    if let Some(addr) = opts.web {
        let page = web::Page {
            server: server.clone(),
            sessions: sessions.clone(),
            self_signed,
            relay: opts.relay.as_ref().map(|r| r.channel.clone()),
        };
        let at = web::serve(addr, page)
            .await
            .map_err(|e| runtime(format!("cannot serve the web page on {addr}: {e}")))?;
        say(format!("web http://{at}/"));
    }
    if let Some(r) = opts.relay {
        return relay::relay(server, r, opts.max, sessions).await;
    }

    serve::serve_sessions(server, opts.max, sessions, |id, session, line| async move {
        say(line);
        let reason = echo(&session).await;
        say(format!("closed {id} {reason}"));
    })
    .await
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
    transport: TransportOptions,
    url: String,
    verify: Verify,
    origin: Option<String>,
    count: Option<u64>,
    size: usize,
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
    transport: TransportOptions,
) -> Result<(Client, Connection, Session), Fail> {
    let client = Client::new(ClientConfig {
        verify,
        headers,
        transport,
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
    let (client, conn, session) =
        open(url, opts.verify.clone(), headers, opts.transport.clone()).await?;
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
        "stats sent={sent} received={received} dropped={} {}",
        session.stats().recv_dropped,
        connection_fields(session)
    ));
    Ok(0)
}

/// The connection's figures from QUIC, as `key=value` fields: smoothed and smallest
/// RTT, packets sent and lost, congestion events, congestion window and path MTU.
fn connection_fields(session: &Session) -> String {
    let c = session.connection_stats();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "rtt_ms={:.3} min_rtt_ms={:.3} packets_sent={} packets_lost={} congestion_events={} \
         cwnd={} path_mtu={}",
        ms(c.rtt),
        ms(c.min_rtt),
        c.packets_sent,
        c.packets_lost,
        c.congestion_events,
        c.congestion_window,
        c.path_mtu
    )
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
        "stats sent={sent} received={received} dropped={} {}",
        session.stats().recv_dropped,
        connection_fields(session)
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
    transport: TransportOptions,
    url: String,
    verify: Verify,
    duration: Duration,
    size: usize,
}

async fn bench(opts: BenchOpts) -> Result<i32, Fail> {
    let url = opts.url.as_str();
    let (client, conn, session) =
        open(url, opts.verify.clone(), Vec::new(), opts.transport.clone()).await?;
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
        "bench duration={:.3} sent={} errors={} rate={:.1} throughput={:.2} error_rate={:.4} {}",
        r.duration.as_secs_f64(),
        r.datagrams_sent,
        r.errors,
        r.datagrams_per_second,
        r.bits_per_second / 1e6,
        r.error_rate,
        connection_fields(session)
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
