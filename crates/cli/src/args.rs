//! The command line, parsed by clap (derive).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wtdatagram::transport::tls;

/// `bench --duration`: at most a day (a bound that keeps the arithmetic sane).
const BENCH_MAX_SECS: f64 = 86_400.0;

/// wtd: WebTransport datagrams over HTTP/3
#[derive(Parser, Debug)]
#[command(
    name = "wtd",
    version,
    override_usage = "wtd serve [--bind ADDR] [--cert PEM --key PEM] [--max N] [--web ADDR] \
                      [LIMITS] [--nats URL --relay CHANNEL [--nats-creds FILE]]\n       \
                      wtd connect URL [--hash HEX | --insecure | --ca PEM] [--origin ORIGIN] \
                      [--count N [--size BYTES]]\n       \
                      wtd bench URL [--hash HEX | --insecure | --ca PEM] [--duration SECS] \
                      [--size BYTES]",
    after_help = "LOGS: the library's log records go to stderr (stdout stays the command's \
                  output): warnings and errors by default, -v adds INFO (failed handshakes, \
                  refused requests, protocol errors), -vv DEBUG of wtd and the library \
                  (connections and sessions opened and closed), -vvv DEBUG of everything \
                  (quinn, rustls), -vvvv TRACE. RUST_LOG, when set, decides instead \
                  (tracing-subscriber's EnvFilter syntax, e.g. \
                  RUST_LOG=wtdatagram=debug,quinn=info).\n\n\
                  EXIT STATUS: 0 success, 1 runtime failure, 2 bad usage."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log records on stderr: -v INFO, -vv DEBUG of wtd and the library, -vvv
    /// DEBUG of all, -vvvv TRACE (RUST_LOG, when set, decides instead)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Write the TLS secrets of every connection to the file SSLKEYLOGFILE names (NSS
    /// key log format, for Wireshark); anyone with it can read the traffic
    #[arg(long, global = true)]
    pub keylog: bool,
    /// Write a qlog trace of every connection into DIR (an existing directory; one
    /// .sqlog file per connection, for qvis)
    #[arg(long, value_name = "DIR", global = true, value_parser = existing_dir)]
    pub qlog: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Echo server that logs its sessions (or, with --nats and --relay, a relay node)
    ///
    /// Accepts every session and echoes its datagrams. Prints 'listening https://ADDR/'
    /// and 'cert-sha256 HEX' at start (and 'web http://ADDR/' with --web), then one
    /// 'session ...' and one 'closed ...' line per session, and a 'handshake-failed ADDR
    /// REASON' line for every connection whose QUIC/TLS handshake failed (all on stdout).
    ///
    /// With --nats URL --relay CHANNEL (README 'Scaling'), instead of echoing, every
    /// datagram a client sends reaches every client of CHANNEL on every node joined to
    /// it through NATS (the sender included). Also prints 'relay channel=.. subject=..
    /// origin=..', 'bus ready reconnects=N' or 'bus down' as the bus comes and goes,
    /// and 'stats ...' lines.
    Serve(ServeArgs),
    /// Send stdin lines (or a counted burst) as datagrams, print what comes back
    ///
    /// Each stdin line is sent as one datagram and every datagram received is printed
    /// as '< TEXT'. At end of input it waits up to 1 s for echoes, closes the session
    /// and prints 'stats sent=N received=M dropped=D rtt_ms=R min_rtt_ms=R
    /// packets_sent=P packets_lost=L congestion_events=C cwnd=BYTES path_mtu=BYTES'
    /// (the connection's figures from QUIC). With --count, a burst instead.
    Connect(ConnectArgs),
    /// Datagram throughput test against an echo server such as 'wtd serve'
    ///
    /// Sends as fast as the connection takes them, showing progress on stderr once a
    /// second; echoes are discarded. Then prints one line:
    /// 'bench duration=S sent=N errors=E rate=DGRAM/S throughput=MBIT/S error_rate=R
    /// rtt_ms=R min_rtt_ms=R packets_sent=P packets_lost=L congestion_events=C
    /// cwnd=BYTES path_mtu=BYTES' (the last seven: the connection's figures from QUIC).
    Bench(BenchArgs),
}

/// `wtd serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// UDP address to listen on (port 0 picks one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4433")]
    pub bind: SocketAddr,
    /// Certificate chain (PEM); needs --key. Default: a fresh self-signed certificate,
    /// valid 13 days
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Exit after N sessions have closed (default: run until killed)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max: Option<u64>,
    /// Connections held at once, handshakes included [default: 10000]
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub max_connections: Option<usize>,
    /// Sessions held at once over all connections [default: 10000]
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub max_sessions: Option<usize>,
    /// Time a request stream has to deliver its headers, in ms [default: 5000]
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub request_timeout_ms: Option<u64>,
    /// Also serve, over plain HTTP on ADDR (IP:PORT, or a PORT on 127.0.0.1), a page
    /// that connects to this server with the JavaScript module and shows sessions,
    /// echoes, RTT, throughput and statistics; prints 'web http://ADDR/' at start. With
    /// --relay the page is one more client of the channel
    #[arg(long, value_name = "ADDR", value_parser = web_addr)]
    pub web: Option<SocketAddr>,
    /// NATS server(s), nats://HOST:PORT: relay mode, with --relay (repeat or separate
    /// by commas)
    #[arg(
        long,
        value_name = "URL",
        value_delimiter = ',',
        help_heading = "Relay"
    )]
    pub nats: Vec<String>,
    /// The channel to relay: every datagram a client sends reaches every client of
    /// CHANNEL on every node joined to it (the sender included); with --nats
    #[arg(long, value_name = "CHANNEL", help_heading = "Relay")]
    pub relay: Option<String>,
    /// NATS credentials file (.creds); with --nats and --relay
    #[arg(long, value_name = "FILE", help_heading = "Relay")]
    pub nats_creds: Option<PathBuf>,
}

impl ServeArgs {
    /// The relay options, if relay mode was asked for: `--nats` and `--relay` go
    /// together, and `--nats-creds` needs them. A usage error otherwise.
    pub fn relay(&self) -> Result<Option<RelayArgs>, String> {
        let urls: Vec<String> = self
            .nats
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
        match (urls.is_empty(), &self.relay) {
            (true, None) if self.nats_creds.is_none() && self.nats.is_empty() => Ok(None),
            (false, Some(channel)) => Ok(Some(RelayArgs {
                urls,
                channel: channel.clone(),
                creds: self.nats_creds.clone(),
            })),
            _ => Err("--nats and --relay go together (--nats-creds needs them)".into()),
        }
    }
}

/// `wtd serve --nats URL --relay CHANNEL [--nats-creds FILE]`, checked.
#[derive(Debug)]
pub struct RelayArgs {
    /// NATS server URLs (at least one).
    pub urls: Vec<String>,
    pub channel: String,
    pub creds: Option<PathBuf>,
}

/// How `connect` and `bench` trust the server: at most one of these.
#[derive(Args, Debug)]
#[group(multiple = false)]
pub struct TrustArgs {
    /// Trust only the certificate whose SHA-256 is HEX (64 hex digits, ':' separators
    /// allowed), like serverCertificateHashes
    #[arg(long, value_name = "HEX", value_parser = sha256_hex)]
    pub hash: Option<[u8; 32]>,
    /// Trust any certificate (testing only)
    #[arg(long)]
    pub insecure: bool,
    /// Trust certificates issued by these CA certificates (default: the system trust
    /// store)
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
}

/// `wtd connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The session URL, e.g. https://127.0.0.1:4433/chat
    #[arg(value_name = "URL", value_parser = https_url)]
    pub url: String,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Send this 'origin' request header
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// Send N datagrams (64 in flight), wait for the echoes, print stats; exit 0 only if
    /// all N came back
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Payload size for --count [default: 64]
    #[arg(long, value_name = "BYTES", requires = "count", value_parser = at_least_one)]
    pub size: Option<usize>,
}

/// `wtd bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The URL of an echo server, e.g. https://127.0.0.1:4433/
    #[arg(value_name = "URL", value_parser = https_url)]
    pub url: String,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// How long to send, in seconds (fractions such as 0.5 allowed)
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = bench_duration)]
    pub duration: Duration,
    /// Datagram payload size (at most the session's maximum datagram size)
    #[arg(long, value_name = "BYTES", default_value_t = 1000, value_parser = at_least_one)]
    pub size: usize,
}

/// `--web ADDR`: `IP:PORT`, or a bare `PORT` on 127.0.0.1 (loopback by default).
fn web_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| "expected IP:PORT or PORT, e.g. 127.0.0.1:8080 or 8080".to_string())
}

fn sha256_hex(s: &str) -> Result<[u8; 32], String> {
    tls::parse_sha256_hex(s).map_err(|_| "expected 64 hexadecimal digits".to_string())
}

fn https_url(s: &str) -> Result<String, String> {
    if s.starts_with("https://") {
        Ok(s.to_string())
    } else {
        Err("the URL must start with https://".into())
    }
}

fn existing_dir(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_dir() {
        Ok(p)
    } else {
        Err("not an existing directory".into())
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err("not a valid number".into()),
    }
}

fn bench_duration(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| "not a number of seconds".to_string())?;
    // Also refuses NaN and infinities.
    if !(secs > 0.0 && secs <= BENCH_MAX_SECS) {
        return Err(format!(
            "expected seconds, more than 0 and at most {BENCH_MAX_SECS}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}
