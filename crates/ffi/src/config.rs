//! Configuration builders. Not thread-safe: build on one thread, then hand to a
//! constructor, which copies what it needs (the builder can be freed right after).

use std::ffi::c_char;
use std::net::SocketAddr;
use std::time::Duration;

use super::error::*;
use super::handle::{self, Boxed, Castable};
use super::types::{
    wtd_client_config, wtd_congestion_controller, wtd_server_config, wtd_transport_config,
};
use wtd_result::*;
use wtdatagram::transport::{tls, ClientConfig, ServerConfig, ServerTls, TransportOptions, Verify};

c_enum!(wtd_congestion_controller {
    WTD_CONGESTION_CUBIC,
    WTD_CONGESTION_NEW_RENO,
    WTD_CONGESTION_BBR,
});

/// The C enum types of this module as exported functions receive them (see [`CEnum`]).
pub mod c {
    /// cbindgen:ignore
    pub type wtd_congestion_controller =
        crate::error::CEnum<crate::types::wtd_congestion_controller>;
}

/// What `wtd_transport_config` holds.
#[derive(Clone)]
pub(crate) struct TransportConfig {
    pub(crate) opts: TransportOptions,
    pub(crate) datagram_events: bool,
}

// SAFETY: wtd_transport_config pointers are made only by into_c_box from a
// TransportConfig.
unsafe impl Castable for wtd_transport_config {
    type Rust = TransportConfig;
    type Own = Boxed;
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            opts: TransportOptions::default(),
            datagram_events: true,
        }
    }
}

/// Create transport options with defaults: idle timeout 30 s, keep-alive 5 s, socket
/// buffers 4 MiB each, quinn datagram buffers 1 MiB send / 4 MiB receive, GSO on, receive
/// queue 65536 datagrams and 16 MiB per session, 256 sessions per connection, field
/// sections of at most 16384 bytes and 128 fields, datagrams as events, CUBIC congestion
/// control, initial RTT 333 ms, initial MTU 1200 with path MTU discovery on (up to 1452),
/// no TLS key log, no qlog.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_new(
    out_config: *mut *mut wtd_transport_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_config` is NULL or writable (the header's contract).
        let o = unsafe { out(out_config, "out_config") }?;
        *o = handle::into_c_box(TransportConfig::default());
        Ok(())
    })
}

/// Free transport options; NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_free(config: *mut wtd_transport_config) {
    // SAFETY: NULL or a live builder the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(config) }));
}

/// Close a connection after `ms` milliseconds without packets from the peer (1..=600000).
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_idle_timeout_ms(
    config: *mut wtd_transport_config,
    ms: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let ms = in_range(ms, 1..=600_000, "idle timeout", " ms")?;
        c.opts.idle_timeout = Duration::from_millis(u64::from(ms));
        Ok(())
    })
}

/// Send keep-alive PINGs every `ms` milliseconds when idle; 0 turns keep-alive off.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_keep_alive_ms(
    config: *mut wtd_transport_config,
    ms: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        c.opts.keep_alive = (ms > 0).then(|| Duration::from_millis(u64::from(ms)));
        Ok(())
    })
}

/// Requested UDP socket buffer sizes in bytes (SO_SNDBUF / SO_RCVBUF; the kernel may
/// grant a different size). 0 leaves the system default.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_socket_buffers(
    config: *mut wtd_transport_config,
    send_bytes: usize,
    recv_bytes: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        c.opts.socket_send_buffer = send_bytes;
        c.opts.socket_recv_buffer = recv_bytes;
        Ok(())
    })
}

/// quinn's per-connection datagram buffers in bytes (both must be > 0). The maximum
/// datagram size is capped at `send_bytes - 32`, so a buffer below ~1500 bytes also
/// limits datagram size. The send buffer
/// bounds what non-blocking sends can queue before WTD_ERR_WOULD_BLOCK.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_datagram_buffers(
    config: *mut wtd_transport_config,
    send_bytes: usize,
    recv_bytes: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if send_bytes == 0 || recv_bytes == 0 {
            return Err(FfiError::arg("datagram buffers must be non-zero"));
        }
        c.opts.datagram_send_buffer = send_bytes;
        c.opts.datagram_recv_buffer = recv_bytes;
        Ok(())
    })
}

/// Datagrams buffered per session before new arrivals are dropped and counted
/// (`recv_dropped`); in event mode, undelivered DATAGRAM events per session. >= 1.
/// Default 65536; the payload bytes are bounded too (see
/// wtd_transport_config_set_recv_queue_bytes). A queue that drained gives its memory
/// back, so idle sessions hold none.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_recv_queue(
    config: *mut wtd_transport_config,
    datagrams: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if datagrams == 0 {
            return Err(FfiError::arg("receive queue must hold at least 1 datagram"));
        }
        c.opts.recv_queue = datagrams;
        Ok(())
    })
}

/// Payload bytes buffered per session (or in its undelivered DATAGRAM events) before new
/// arrivals are dropped and counted (`recv_dropped`); a session with nothing queued takes
/// any one datagram. >= 1. Default 16 MiB: at loopback speed (~400 MB/s) a receiving
/// thread may be descheduled for ~40 ms without loss.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_recv_queue_bytes(
    config: *mut wtd_transport_config,
    bytes: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if bytes == 0 {
            return Err(FfiError::arg("receive queue must hold at least 1 byte"));
        }
        c.opts.recv_queue_bytes = bytes;
        Ok(())
    })
}

/// UDP generic segmentation offload on (default) or off.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_segmentation_offload(
    config: *mut wtd_transport_config,
    enabled: bool,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        c.opts.segmentation_offload = enabled;
        Ok(())
    })
}

/// Sessions a peer may keep open on one connection (server: more get 429). >= 1.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_max_sessions(
    config: *mut wtd_transport_config,
    sessions: u64,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if sessions == 0 || sessions > 1 << 20 {
            return Err(FfiError::arg("max sessions must be 1..=1048576"));
        }
        c.opts.max_sessions_per_connection = sessions;
        Ok(())
    })
}

/// Largest field section (request or response headers) accepted, counted as RFC 9114
/// §4.2.2 does (name + value + 32 bytes per field), and announced to the peer as
/// SETTINGS_MAX_FIELD_SECTION_SIZE (256..=1048576; default 16384). A server answers a
/// larger request 431 (its connection and other sessions go on); a client fails the
/// session open with WTD_ERR_PROTOCOL. Decoding stops at the limit, so a small block
/// of compressed header references cannot make the library hold more.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_max_field_section_size(
    config: *mut wtd_transport_config,
    bytes: u64,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let bytes = in_range(bytes, 256..=1 << 20, "max field section size", " bytes")?;
        c.opts.max_field_section_size = bytes;
        Ok(())
    })
}

/// Most header fields in one request or response (1..=65536; default 128). A server
/// answers a request with more 431.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_max_header_fields(
    config: *mut wtd_transport_config,
    fields: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let fields = in_range(fields, 1..=65536, "max header fields", "")?;
        c.opts.max_header_fields = fields;
        Ok(())
    })
}

/// true (default): received datagrams arrive as WTD_EVENT_DATAGRAM events. false: they
/// wait in each session's queue for wtd_session_recv (SESSION_CLOSED is still an event).
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_datagram_events(
    config: *mut wtd_transport_config,
    enabled: bool,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        c.datagram_events = enabled;
        Ok(())
    })
}

/// The congestion controller of each connection: WTD_CONGESTION_CUBIC (default),
/// WTD_CONGESTION_NEW_RENO, or WTD_CONGESTION_BBR (experimental: see its documentation).
/// The one in use shows in wtd_connection_stats. A value outside wtd_congestion_controller
/// is WTD_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_congestion_controller(
    config: *mut wtd_transport_config,
    controller: c::wtd_congestion_controller,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        c.opts.congestion = controller.get("controller")?.into();
        Ok(())
    })
}

/// The round-trip time assumed until the first sample (it sets the handshake's first
/// retransmission timeouts), in milliseconds: 1..=60000, default 333 (RFC 9002). Lower it
/// on networks known to be fast so a lost first packet is resent sooner; raise it on
/// long paths (satellite) to avoid spurious retransmissions.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_initial_rtt_ms(
    config: *mut wtd_transport_config,
    ms: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let ms = in_range(ms, 1..=60_000, "initial RTT", " ms")?;
        c.opts.initial_rtt = Duration::from_millis(u64::from(ms));
        Ok(())
    })
}

/// Path MTU discovery on (default) or off. On, quinn probes for larger packets after the
/// handshake, up to 1452 bytes of UDP payload (or the initial MTU if larger), and the
/// maximum datagram size grows with it; off, the path MTU stays at the initial MTU
/// (wtd_transport_config_set_initial_mtu), which suits paths that drop probes.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_mtu_discovery(
    config: *mut wtd_transport_config,
    enabled: bool,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        c.opts.mtu_discovery = enabled;
        Ok(())
    })
}

/// The UDP payload size used from the start, in bytes: 1200..=65527, default 1200 (what
/// QUIC guarantees every path carries). Larger values allow larger datagrams at once
/// (visible in wtd_connection_stats.path_mtu and wtd_session_max_datagram_size); on a
/// path that cannot carry them packets are lost until quinn's black-hole detection falls
/// back to 1200.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_initial_mtu(
    config: *mut wtd_transport_config,
    bytes: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        use wtdatagram::transport::{MAX_MTU, MIN_MTU};
        let bytes = in_range(
            bytes,
            u32::from(MIN_MTU)..=u32::from(MAX_MTU),
            "initial MTU",
            " bytes",
        )?;
        // In range, so within u16.
        c.opts.initial_mtu = bytes as u16;
        Ok(())
    })
}

/// TLS key logging for Wireshark: true writes the TLS secrets of every connection made
/// with these options (client and server) to the file named by the SSLKEYLOGFILE
/// environment variable when the client or server is created (NSS key log format:
/// lines such as "CLIENT_HANDSHAKE_TRAFFIC_SECRET <client random> <secret>", appended).
/// Default false. With SSLKEYLOGFILE unset nothing is written; a file that cannot be
/// opened is logged at WARN. Anyone with the file can decrypt the traffic: debugging only.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_key_log(
    config: *mut wtd_transport_config,
    enabled: bool,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        c.opts.key_log = enabled;
        Ok(())
    })
}

/// Write a qlog trace of every connection made with these options into the directory
/// `dir` (which must exist): one JSON-SEQ file per connection,
/// `<client|server>-<unix ms>-<peer address>-<n>.sqlog`, with quinn's events (packets
/// sent, received and lost; RTT, congestion window and bytes in flight as they change),
/// for qvis or other qlog tools. NULL turns it off (the default). A path that is not a
/// directory is WTD_ERR_INVALID_ARGUMENT; a file that cannot be created later is logged
/// at WARN and the connection goes on without a trace. For debugging: a trace grows with
/// every packet.
#[no_mangle]
pub unsafe extern "C" fn wtd_transport_config_set_qlog_dir(
    config: *mut wtd_transport_config,
    dir: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if dir.is_null() {
            c.opts.qlog_dir = None;
            return Ok(());
        }
        // SAFETY: `dir` is a NUL-terminated string (the header's contract).
        let d = unsafe { cstr(dir, "dir") }?;
        if !std::path::Path::new(d).is_dir() {
            return Err(FfiError::arg(format!(
                "qlog directory {d:?} is not a directory"
            )));
        }
        c.opts.qlog_dir = Some(d.into());
        Ok(())
    })
}

pub(crate) fn parse_addr(s: &str) -> FfiResult<SocketAddr> {
    s.parse().map_err(|_| {
        FfiError::arg(format!(
            "{s:?} is not an address like 127.0.0.1:4433 or [::1]:0"
        ))
    })
}

/// What `wtd_server_config` holds.
pub(crate) struct ServerConfigHandle {
    pub(crate) cfg: ServerConfig,
    pub(crate) transport: TransportConfig,
}

// SAFETY: wtd_server_config pointers are made only by into_c_box from a
// ServerConfigHandle.
unsafe impl Castable for wtd_server_config {
    type Rust = ServerConfigHandle;
    type Own = Boxed;
}

/// Create server options: bind 127.0.0.1:0, self-signed certificate for localhost,
/// 127.0.0.1 and ::1, default transport options, request backlog 256, at most 10000
/// connections and 10000 sessions, request timeout 5000 ms.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_new(
    out_config: *mut *mut wtd_server_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_config` is NULL or writable (the header's contract).
        let o = unsafe { out(out_config, "out_config") }?;
        *o = handle::into_c_box(ServerConfigHandle {
            cfg: ServerConfig::default(),
            transport: TransportConfig::default(),
        });
        Ok(())
    })
}

/// Free server options; NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_free(config: *mut wtd_server_config) {
    // SAFETY: NULL or a live builder the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(config) }));
}

/// UDP address to listen on, e.g. "0.0.0.0:4433", "[::]:4433", "127.0.0.1:0" (port 0
/// picks a free port; read it with wtd_server_port).
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_bind(
    config: *mut wtd_server_config,
    address: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        c.cfg.bind = parse_addr(unsafe { cstr(address, "address") }?)?;
        Ok(())
    })
}

/// Use a PEM certificate chain and private key (PKCS#8, PKCS#1 or SEC1) from memory.
/// Parsed now: bad PEM is WTD_ERR_TLS and leaves the configuration unchanged.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_cert_pem(
    config: *mut wtd_server_config,
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        // SAFETY: `cert_pem` is NULL or readable for its length (the header's contract).
        let cert = unsafe { bytes(cert_pem, cert_len, "cert_pem") }?;
        // SAFETY: `key_pem` is NULL or readable for its length (the header's contract).
        let key = unsafe { bytes(key_pem, key_len, "key_pem") }?;
        tls::from_pem(cert, key)?;
        c.cfg.tls = ServerTls::Pem {
            cert_chain: cert.to_vec(),
            key: key.to_vec(),
        };
        Ok(())
    })
}

/// Like wtd_server_config_set_cert_pem, reading both files now (WTD_ERR_IO if one
/// cannot be read).
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_cert_pem_files(
    config: *mut wtd_server_config,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let read = |p: &str| {
            std::fs::read(p).map_err(|e| FfiError::new(WTD_ERR_IO, format!("reading {p}: {e}")))
        };
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        let cert = read(unsafe { cstr(cert_path, "cert_path") }?)?;
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        let key = read(unsafe { cstr(key_path, "key_path") }?)?;
        tls::from_pem(&cert, &key)?;
        c.cfg.tls = ServerTls::Pem {
            cert_chain: cert,
            key,
        };
        Ok(())
    })
}

/// Generate a self-signed ECDSA P-256 certificate valid 13 days (browsers accept it via
/// serverCertificateHashes) for `count` names (DNS names or IP literals); count 0 means
/// "localhost". The hash is available from wtd_server_cert_hash.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_self_signed(
    config: *mut wtd_server_config,
    names: *const *const c_char,
    count: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if names.is_null() && count > 0 {
            return Err(FfiError::arg("names is NULL but count is not 0"));
        }
        let mut v = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
            v.push(unsafe { cstr(*names.add(i), "names[i]") }?.to_string());
        }
        c.cfg.tls = ServerTls::SelfSigned { names: v };
        Ok(())
    })
}

/// Copy transport options into the server options.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_transport(
    config: *mut wtd_server_config,
    transport: *const wtd_transport_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        // SAFETY: `transport` is NULL or a live handle (the header's contract).
        c.transport = unsafe { handle::borrow(transport, "transport") }?.clone();
        Ok(())
    })
}

/// Session requests that may wait unanswered before new ones get 503. >= 1 (default
/// 256). A request counts from its arrival until the application accepts, rejects or
/// frees it, including while its WTD_EVENT_SESSION_REQUEST event waits to be pulled:
/// a host that is slow to take events holds at most this many requests.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_request_backlog(
    config: *mut wtd_server_config,
    requests: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if requests == 0 {
            return Err(FfiError::arg("backlog must be at least 1"));
        }
        c.cfg.request_backlog = requests;
        Ok(())
    })
}

/// Connections the server holds at once, handshakes in progress included
/// (1..=1000000; default 10000). Further connection attempts are refused
/// (CONNECTION_REFUSED) and counted in wtd_server_stats.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_max_connections(
    config: *mut wtd_server_config,
    connections: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let connections = in_range(connections, 1..=1_000_000, "max connections", "")?;
        c.cfg.max_connections = connections;
        Ok(())
    })
}

/// Sessions the server holds at once over all its connections: open, being answered,
/// or closing (1..=10000000; default 10000). Further session requests are answered 503
/// and counted in wtd_server_stats. (wtd_transport_config_set_max_sessions is the limit
/// per connection.)
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_max_sessions(
    config: *mut wtd_server_config,
    sessions: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let sessions = in_range(sessions, 1..=10_000_000, "max sessions", "")?;
        c.cfg.max_sessions = sessions;
        Ok(())
    })
}

/// How long a request stream may take, from its opening, to deliver its complete
/// request headers (and the client its SETTINGS) (1..=600000 ms; default 5000). A late
/// stream is reset with H3_REQUEST_REJECTED and counted in wtd_server_stats.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_config_set_request_timeout_ms(
    config: *mut wtd_server_config,
    ms: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let ms = in_range(ms, 1..=600_000, "request timeout", " ms")?;
        c.cfg.request_timeout = Duration::from_millis(u64::from(ms));
        Ok(())
    })
}

/// What `wtd_client_config` holds.
pub(crate) struct ClientConfigHandle {
    pub(crate) bind: Option<SocketAddr>,
    pub(crate) ca_pem: Vec<u8>,
    pub(crate) hashes: Vec<[u8; 32]>,
    pub(crate) insecure: bool,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) transport: TransportConfig,
}

// SAFETY: wtd_client_config pointers are made only by into_c_box from a
// ClientConfigHandle.
unsafe impl Castable for wtd_client_config {
    type Rust = ClientConfigHandle;
    type Own = Boxed;
}

impl ClientConfigHandle {
    pub(crate) fn to_rust(&self) -> ClientConfig {
        let verify = if self.insecure {
            Verify::Insecure
        } else if !self.hashes.is_empty() {
            Verify::Hashes(self.hashes.clone())
        } else if !self.ca_pem.is_empty() {
            Verify::CaPem(self.ca_pem.clone())
        } else {
            Verify::WebPki
        };
        ClientConfig {
            bind: self.bind,
            verify,
            headers: self.headers.clone(),
            transport: self.transport.opts.clone(),
        }
    }
}

/// Create client options: bind [::]:0 (or 0.0.0.0:0), verify against the system trust
/// store (bundled Mozilla roots if it is empty), no extra headers, default transport.
/// Verification precedence: insecure > pinned hashes > custom CAs > system roots.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_config_new(
    out_config: *mut *mut wtd_client_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_config` is NULL or writable (the header's contract).
        let o = unsafe { out(out_config, "out_config") }?;
        *o = handle::into_c_box(ClientConfigHandle {
            bind: None,
            ca_pem: Vec::new(),
            hashes: Vec::new(),
            insecure: false,
            headers: Vec::new(),
            transport: TransportConfig::default(),
        });
        Ok(())
    })
}

/// Free client options; NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_config_free(config: *mut wtd_client_config) {
    // SAFETY: NULL or a live builder the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(config) }));
}

/// Local UDP address to bind, e.g. "0.0.0.0:0".
#[no_mangle]
pub unsafe extern "C" fn wtd_client_config_set_bind(
    config: *mut wtd_client_config,
    address: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        c.bind = Some(parse_addr(unsafe { cstr(address, "address") }?)?);
        Ok(())
    })
}

/// Trust the CA certificates in this PEM (instead of the system roots). Checked now:
/// WTD_ERR_TLS if it holds no valid certificate.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_config_add_ca_pem(
    config: *mut wtd_client_config,
    pem: *const u8,
    len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        // SAFETY: `pem` is NULL or readable for its length (the header's contract).
        let pem = unsafe { bytes(pem, len, "pem") }?;
        tls::client_crypto(&Verify::CaPem(pem.to_vec()))?;
        c.ca_pem.extend_from_slice(pem);
        c.ca_pem.push(b'\n');
        Ok(())
    })
}

/// Trust a server certificate whose DER has this SHA-256 (32 bytes; `len` must be 32),
/// like a browser's serverCertificateHashes. May be called several times.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_config_add_cert_hash(
    config: *mut wtd_client_config,
    sha256: *const u8,
    len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        // SAFETY: `sha256` is NULL or readable for its length (the header's contract).
        let h = unsafe { bytes(sha256, len, "sha256") }?;
        let h: [u8; 32] = h
            .try_into()
            .map_err(|_| FfiError::arg(format!("a SHA-256 hash is 32 bytes, got {len}")))?;
        c.hashes.push(h);
        Ok(())
    })
}

/// Accept any server certificate. FOR TESTS ONLY: no protection against interception.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_config_set_insecure(
    config: *mut wtd_client_config,
    insecure: bool,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only.
        unsafe { handle::borrow_mut(config, "config") }?.insecure = insecure;
        Ok(())
    })
}

/// Add a request header sent with every session request (e.g. "origin"). Names are
/// lowercased; CR, LF and NUL are refused.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_config_add_header(
    config: *mut wtd_client_config,
    name: *const c_char,
    value: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        let (n, v) = (unsafe { cstr(name, "name") }?, unsafe {
            cstr(value, "value")
        }?);
        if n.is_empty()
            || n.starts_with(':')
            || n.contains(['\r', '\n', ' ', ':'])
            || v.contains(['\r', '\n'])
        {
            return Err(FfiError::arg(format!("invalid header {n:?}")));
        }
        c.headers.push((n.to_ascii_lowercase(), v.to_string()));
        Ok(())
    })
}

/// Copy transport options into the client options.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_config_set_transport(
    config: *mut wtd_client_config,
    transport: *const wtd_transport_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        // SAFETY: `transport` is NULL or a live handle (the header's contract).
        c.transport = unsafe { handle::borrow(transport, "transport") }?.clone();
        Ok(())
    })
}

/// Parse 64 hex digits into a 32-byte hash (`out_len` must be >= 32), e.g. the hash
/// `wtd serve` prints.
#[no_mangle]
pub unsafe extern "C" fn wtd_hash_from_hex(
    hex: *const c_char,
    out_hash: *mut u8,
    out_len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        let s = unsafe { cstr(hex, "hex") }?.trim();
        // SAFETY: `out_hash` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(out_hash, out_len, "out_hash") }?;
        if buf.len() < 32 {
            return Err(FfiError::arg("out_hash must hold 32 bytes"));
        }
        let h = tls::parse_sha256_hex(s)?;
        put(buf, 0, &h);
        Ok(())
    })
}
