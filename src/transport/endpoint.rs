//! UDP sockets with deliberate buffer sizes, and the quinn endpoint and transport
//! configuration built from [`TransportOptions`].

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{IdleTimeout, VarInt};
use socket2::{Domain, Protocol, Socket, Type};

use super::config::{CongestionControl, TransportOptions, MAX_INITIAL_RTT, MAX_MTU, MIN_MTU};
use super::error::Error;

/// Socket buffer sizes the kernel actually granted (Linux reports twice the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketBuffers {
    pub send: usize,
    pub recv: usize,
}

fn set_buffer(socket: &Socket, force: libc::c_int, size: usize) {
    // As root, SO_*BUFFORCE passes net.core.[rw]mem_max; otherwise fall back below.
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let v = size.min(i32::MAX as usize) as libc::c_int;
        // SAFETY: setsockopt on a valid fd with a pointer to a live c_int of the given size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                force,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
    let _ = (socket, force, size);
}

pub fn bind_socket(
    addr: SocketAddr,
    opts: &TransportOptions,
) -> Result<(std::net::UdpSocket, SocketBuffers), Error> {
    let io = |what: &str, e: std::io::Error| Error::Io(format!("{what} {addr}: {e}"));
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| io("socket", e))?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        let _ = socket.set_only_v6(false);
    }
    // A size of 0 keeps the system default: asking the kernel for 0 would give the
    // smallest buffer it allows (a few KiB), not its default.
    #[cfg(target_os = "linux")]
    {
        if opts.socket_send_buffer > 0 {
            set_buffer(&socket, libc::SO_SNDBUFFORCE, opts.socket_send_buffer);
        }
        if opts.socket_recv_buffer > 0 {
            set_buffer(&socket, libc::SO_RCVBUFFORCE, opts.socket_recv_buffer);
        }
    }
    if socket.send_buffer_size().unwrap_or(0) < opts.socket_send_buffer {
        let _ = socket.set_send_buffer_size(opts.socket_send_buffer);
    }
    if socket.recv_buffer_size().unwrap_or(0) < opts.socket_recv_buffer {
        let _ = socket.set_recv_buffer_size(opts.socket_recv_buffer);
    }
    socket.bind(&addr.into()).map_err(|e| io("bind", e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| io("nonblocking", e))?;
    let buffers = SocketBuffers {
        send: socket.send_buffer_size().unwrap_or(0),
        recv: socket.recv_buffer_size().unwrap_or(0),
    };
    Ok((socket.into(), buffers))
}

pub fn transport_config(
    opts: &TransportOptions,
    server: bool,
) -> Result<Arc<quinn::TransportConfig>, Error> {
    Ok(Arc::new(build_transport(opts, server)?))
}

/// The transport configuration of one connection with a qlog trace of its own, in
/// `opts.qlog_dir` (see [`TransportOptions::qlog_dir`]); `None` when no directory is
/// set, or when the file cannot be created (logged at WARN: the connection goes on
/// without a trace).
pub(crate) fn qlog_transport(
    opts: &TransportOptions,
    server: bool,
    remote: SocketAddr,
) -> Option<Arc<quinn::TransportConfig>> {
    let dir = opts.qlog_dir.as_ref()?;
    #[cfg(feature = "qlog")]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let role = if server { "server" } else { "client" };
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let peer = remote.to_string().replace([':', '[', ']'], "_");
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{role}-{ms}-{peer}-{n}.sqlog"));
        let file = match std::fs::File::create(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), "qlog trace not written: {e}");
                return None;
            }
        };
        let mut q = quinn::QlogConfig::default();
        // A record per line, written as it comes (a trace is readable while it grows).
        q.writer(Box::new(std::io::LineWriter::new(file)))
            .title(Some(format!("wtdatagram {role}, peer {remote}")));
        let mut t = build_transport(opts, server).ok()?;
        t.qlog_stream(q.into_stream());
        tracing::debug!(path = %path.display(), %remote, "qlog trace");
        Some(Arc::new(t))
    }
    #[cfg(not(feature = "qlog"))]
    {
        let _ = (dir, server, remote);
        None
    }
}

fn build_transport(opts: &TransportOptions, server: bool) -> Result<quinn::TransportConfig, Error> {
    if opts.qlog_dir.is_some() && !cfg!(feature = "qlog") {
        return Err(Error::NotSupported(
            "qlog traces need the library built with its `qlog` feature".into(),
        ));
    }
    let mut t = quinn::TransportConfig::default();
    let idle = IdleTimeout::try_from(opts.idle_timeout)
        .map_err(|_| Error::InvalidArgument("idle timeout out of range".into()))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(opts.keep_alive);
    t.datagram_send_buffer_size(opts.datagram_send_buffer);
    t.datagram_receive_buffer_size(Some(opts.datagram_recv_buffer.max(1)));
    t.enable_segmentation_offload(opts.segmentation_offload);
    apply_tuning(&mut t, opts)?;
    // Each session is one bidirectional CONNECT stream; allow a few more for probes.
    // A server starts small and raises the limit as sessions come (see
    // `bidi_stream_limits`): quinn keeps state for every stream the peer may open, about
    // 80 bytes each, so 264 allowed streams cost ~20 KiB on every connection.
    let bidi = if server {
        bidi_stream_limits(opts).0
    } else {
        16
    };
    t.max_concurrent_bidi_streams(
        VarInt::from_u64(bidi.min(1 << 20)).unwrap_or(VarInt::from_u32(1024)),
    );
    t.max_concurrent_uni_streams(VarInt::from_u32(16));
    // Streams carry only HEADERS and capsules here (datagrams have no flow control), so
    // small windows cost nothing and bound what a peer can make quinn buffer for
    // streams we are not reading yet (a request waiting for the application): without
    // them quinn allows 1.25 MB per stream and no connection-wide limit.
    t.stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW));
    t.receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW));
    Ok(t)
}

/// The tuning knobs of [`TransportOptions`]: congestion controller, initial RTT, initial
/// MTU and path MTU discovery. Out-of-range values are refused (quinn would clamp some
/// silently).
fn apply_tuning(t: &mut quinn::TransportConfig, opts: &TransportOptions) -> Result<(), Error> {
    if opts.initial_rtt.is_zero() || opts.initial_rtt > MAX_INITIAL_RTT {
        return Err(Error::InvalidArgument(format!(
            "initial RTT {:?} is outside 1 us..=60 s",
            opts.initial_rtt
        )));
    }
    if !(MIN_MTU..=MAX_MTU).contains(&opts.initial_mtu) {
        return Err(Error::InvalidArgument(format!(
            "initial MTU {} is outside {MIN_MTU}..={MAX_MTU}",
            opts.initial_mtu
        )));
    }
    t.initial_rtt(opts.initial_rtt);
    t.initial_mtu(opts.initial_mtu);
    // min_mtu stays 1200: a path that cannot carry a larger initial MTU falls back to it.
    if opts.mtu_discovery {
        let mut mtud = quinn::MtuDiscoveryConfig::default();
        // quinn's default upper bound is 1452; probing starts above the initial MTU.
        mtud.upper_bound(opts.initial_mtu.max(1452));
        t.mtu_discovery_config(Some(mtud));
    } else {
        t.mtu_discovery_config(None);
    }
    match opts.congestion {
        CongestionControl::Cubic => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()))
        }
        CongestionControl::NewReno => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::NewRenoConfig::default()))
        }
        CongestionControl::Bbr => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()))
        }
    };
    Ok(())
}

/// Unread stream data quinn accepts per stream, and per connection over all streams.
const STREAM_RECEIVE_WINDOW: u32 = 64 * 1024;
const CONNECTION_RECEIVE_WINDOW: u32 = 1 << 20;

/// A server's limit of concurrent peer-opened bidirectional streams: (initial, most).
/// The connection doubles the initial limit, up to the most, as requests arrive.
pub(crate) fn bidi_stream_limits(opts: &TransportOptions) -> (u64, u64) {
    let most = opts.max_sessions_per_connection.saturating_add(8);
    (most.min(16), most)
}

pub fn endpoint(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint, Error> {
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| Error::Io(format!("endpoint: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// quinn's TransportConfig has no getters: its Debug text shows what it was given.
    fn quinn_text(opts: &TransportOptions) -> String {
        format!(
            "{:?}",
            transport_config(opts, false).expect("valid options")
        )
    }

    #[test]
    fn tuning_reaches_quinn() {
        let d = quinn_text(&TransportOptions::default());
        assert!(d.contains("initial_rtt: 333ms"), "{d}");
        assert!(d.contains("initial_mtu: 1200"), "{d}");
        assert!(d.contains("mtu_discovery_config: Some("), "{d}");
        let opts = TransportOptions {
            initial_rtt: Duration::from_millis(900),
            initial_mtu: 1400,
            mtu_discovery: false,
            ..Default::default()
        };
        let d = quinn_text(&opts);
        assert!(d.contains("initial_rtt: 900ms"), "{d}");
        assert!(d.contains("initial_mtu: 1400"), "{d}");
        assert!(d.contains("mtu_discovery_config: None"), "{d}");
    }
}
