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
}

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
