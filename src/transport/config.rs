//! Configuration of servers, clients and the QUIC transport under them.

use std::net::SocketAddr;
use std::time::Duration;

/// Knobs of the QUIC transport and of the sessions on it, shared by clients and servers.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Close the connection after this long without any packet from the peer.
    pub idle_timeout: Duration,
    /// Send a keep-alive PING this often when nothing else is sent (`None`: never).
    pub keep_alive: Option<Duration>,
    /// Requested SO_SNDBUF / SO_RCVBUF of the UDP socket (DESIGN.md §3: 4 MiB removes
    /// loopback burst loss). The kernel may grant less; see `Server::socket_buffers`.
    /// 0 keeps the system default.
    pub socket_send_buffer: usize,
    pub socket_recv_buffer: usize,
    /// quinn's outgoing datagram buffer, in bytes, shared by all sessions of a connection.
    pub datagram_send_buffer: usize,
    /// quinn's incoming datagram buffer, in bytes.
    pub datagram_recv_buffer: usize,
    /// UDP generic segmentation offload (GSO), ~3.7x faster at 1200 B on loopback.
    pub segmentation_offload: bool,
    /// Datagrams buffered per session before new ones are dropped (and counted), within
    /// `recv_queue_bytes`. With the defaults, 65536 datagrams and 16 MiB, a receiving
    /// thread may be descheduled for ~40 ms at 400 MB/s (loopback speed) without loss.
    /// A queue that drained frees its memory: idle sessions hold none.
    pub recv_queue: usize,
    /// Payload bytes buffered per session before new datagrams are dropped (and
    /// counted); an empty queue takes any one datagram.
    pub recv_queue_bytes: usize,
    /// Sessions a peer may have open on one connection (advertised in SETTINGS); requests
    /// still being answered count too.
    pub max_sessions_per_connection: u64,
    /// Largest field section (request or response headers) accepted, counted as RFC 9114
    /// §4.2.2 does (name + value + 32 bytes per field) and announced to the peer as
    /// SETTINGS_MAX_FIELD_SECTION_SIZE. A HEADERS frame larger than this is refused from
    /// its frame header, and decoding stops at the first field past it; a server answers
    /// such a request 431. It also bounds what a session keeps of its request.
    pub max_field_section_size: u64,
    /// Most fields in one field section (a server answers 431 beyond).
    pub max_header_fields: usize,
    /// The congestion controller of each connection (default [`CongestionControl::Cubic`]).
    pub congestion: CongestionControl,
    /// The round-trip time assumed before the first sample is taken (it sets the first
    /// retransmission timeouts of the handshake). Default 333 ms (RFC 9002 §6.2.2).
    pub initial_rtt: Duration,
    /// Path MTU discovery (RFC 8899 DPLPMTUD, quinn's): probes for larger packets after
    /// the handshake, up to 1452 bytes of UDP payload, and with them larger datagrams.
    /// Default on. Off, the path MTU stays at `initial_mtu`.
    pub mtu_discovery: bool,
    /// UDP payload size used from the start (1200..=65527; default 1200, the size QUIC
    /// guarantees). Larger saves packets, but a path that cannot carry it loses packets
    /// until quinn's black-hole detection falls back to 1200.
    pub initial_mtu: u16,
    /// Write the TLS secrets of every connection to the file named by the
    /// `SSLKEYLOGFILE` environment variable (NSS key log format, what Wireshark reads to
    /// decrypt QUIC). Default off; with it on and the variable unset nothing is written.
    /// Anyone with the file can read the traffic: for debugging only.
    pub key_log: bool,
    /// Write a qlog trace (JSON-SEQ, `.sqlog`, for qvis and other qlog tools) of every
    /// connection into this directory: one file per connection, named
    /// `<client|server>-<unix ms>-<peer address>-<n>.sqlog`. Default `None` (off).
    /// quinn's qlog: packets sent, received and lost, and recovery metrics (RTT,
    /// congestion window, bytes in flight). Needs the `qlog` cargo feature (on by
    /// default); without it a directory is [`Error::NotSupported`](super::error::Error).
    pub qlog_dir: Option<std::path::PathBuf>,
}

/// A connection's congestion controller (quinn's implementations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionControl {
    /// CUBIC (RFC 9438), quinn's default.
    #[default]
    Cubic,
    /// NewReno (RFC 9002 §7).
    NewReno,
    /// BBR, EXPERIMENTAL: quinn's 2021 port of BBR (v1) from Google's quiche, which quinn
    /// itself marks "Experimental! Use at your own risk". Known limits: it predates the
    /// IETF BBR drafts (no BBRv2/v3 loss and ECN response), is known to be unfair to
    /// CUBIC/NewReno flows and to cause heavy loss on shallow buffers, handles
    /// application-limited traffic (most datagram workloads) poorly, and has no tests
    /// in quinn that compare its behaviour to the specification. Use it only to
    /// experiment, and measure.
    Bbr,
}

impl CongestionControl {
    /// The name used in logs and statistics: "cubic", "newreno", "bbr".
    pub fn name(self) -> &'static str {
        match self {
            CongestionControl::Cubic => "cubic",
            CongestionControl::NewReno => "newreno",
            CongestionControl::Bbr => "bbr",
        }
    }
}

/// quinn's (and RFC 9002's) initial RTT.
pub const DEFAULT_INITIAL_RTT: Duration = Duration::from_millis(333);
/// The smallest UDP payload QUIC guarantees (RFC 9000 §14): the initial MTU's default and
/// lower bound.
pub const MIN_MTU: u16 = 1200;
/// The largest UDP payload (65535 - 8 bytes of UDP header): the initial MTU's upper bound.
pub const MAX_MTU: u16 = 65527;
/// The longest initial RTT accepted (quinn computes timeouts from it).
pub const MAX_INITIAL_RTT: Duration = Duration::from_secs(60);

impl TransportOptions {
    pub(crate) fn field_limits(&self) -> wtdatagram_proto::qpack::FieldLimits {
        wtdatagram_proto::qpack::FieldLimits {
            max_section_size: self.max_field_section_size,
            max_fields: self.max_header_fields,
        }
    }
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            idle_timeout: Duration::from_secs(30),
            keep_alive: Some(Duration::from_secs(5)),
            socket_send_buffer: 4 << 20,
            socket_recv_buffer: 4 << 20,
            datagram_send_buffer: 1 << 20,
            datagram_recv_buffer: 4 << 20,
            segmentation_offload: true,
            recv_queue: 65536,
            recv_queue_bytes: 16 << 20,
            max_sessions_per_connection: 256,
            max_field_section_size: 16 * 1024,
            max_header_fields: 128,
            congestion: CongestionControl::Cubic,
            initial_rtt: DEFAULT_INITIAL_RTT,
            mtu_discovery: true,
            initial_mtu: MIN_MTU,
            key_log: false,
            qlog_dir: None,
        }
    }
}

/// Where a server's certificate comes from.
#[derive(Debug, Clone)]
pub enum ServerTls {
    /// A fresh ECDSA P-256 certificate valid for 13 days, for these DNS names / IPs.
    /// Browsers accept it through `serverCertificateHashes`.
    SelfSigned { names: Vec<String> },
    /// PEM-encoded certificate chain and private key (PKCS#8, PKCS#1 or SEC1).
    Pem { cert_chain: Vec<u8>, key: Vec<u8> },
}

impl Default for ServerTls {
    fn default() -> Self {
        ServerTls::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub tls: ServerTls,
    pub transport: TransportOptions,
    /// Session requests received and not yet answered (waiting for `accept`, or held by
    /// the application) before new ones are answered 503.
    pub request_backlog: usize,
    /// Connections (handshakes included) the server holds at once; more are refused
    /// (CONNECTION_REFUSED) and counted.
    pub max_connections: usize,
    /// Sessions the server holds at once over all connections (open, being answered, or
    /// closing); more requests are answered 503 and counted.
    pub max_sessions: usize,
    /// How long a request stream may take, from its opening, to deliver its HEADERS (and
    /// the client its SETTINGS); a late one is reset with H3_REQUEST_REJECTED and counted.
    pub request_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:0".parse().expect("literal address"),
            tls: ServerTls::default(),
            transport: TransportOptions::default(),
            request_backlog: 256,
            max_connections: 10_000,
            max_sessions: 10_000,
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// How a client decides to trust the server's certificate.
#[derive(Debug, Clone, Default)]
pub enum Verify {
    /// The system's trust store, or the bundled Mozilla roots when it is empty.
    #[default]
    WebPki,
    /// Only these PEM-encoded CA certificates.
    CaPem(Vec<u8>),
    /// A certificate whose SHA-256 (of the DER) is one of these, like a browser's
    /// `serverCertificateHashes`.
    Hashes(Vec<[u8; 32]>),
    /// Any certificate. For tests only: it offers no protection against interception.
    Insecure,
}

#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// Local address to bind; `None` picks `[::]:0` (dual stack) or `0.0.0.0:0`.
    pub bind: Option<SocketAddr>,
    pub verify: Verify,
    /// Extra request headers sent with every session request (e.g. `origin`).
    pub headers: Vec<(String, String)>,
    pub transport: TransportOptions,
}
