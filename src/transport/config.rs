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
    /// Sessions a peer may have open on one connection (advertised in SETTINGS).
    pub max_sessions_per_connection: u64,
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
    /// Session requests waiting for `accept` before new ones are answered 503.
    pub request_backlog: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1:0".parse().expect("literal address"),
            tls: ServerTls::default(),
            transport: TransportOptions::default(),
            request_backlog: 256,
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
