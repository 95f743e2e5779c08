//! UDP sockets with deliberate buffer sizes, and the quinn endpoint and transport
//! configuration built from [`TransportOptions`].

use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{IdleTimeout, VarInt};
use socket2::{Domain, Protocol, Socket, Type};

use super::config::TransportOptions;
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
    let mut t = quinn::TransportConfig::default();
    let idle = IdleTimeout::try_from(opts.idle_timeout)
        .map_err(|_| Error::InvalidArgument("idle timeout out of range".into()))?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(opts.keep_alive);
    t.datagram_send_buffer_size(opts.datagram_send_buffer);
    t.datagram_receive_buffer_size(Some(opts.datagram_recv_buffer.max(1)));
    t.enable_segmentation_offload(opts.segmentation_offload);
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
    Ok(Arc::new(t))
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
