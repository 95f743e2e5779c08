//! A session's counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::config::CongestionControl;

/// Counters of one session, read with [`Session::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub datagrams_received: u64,
    pub bytes_received: u64,
    /// Received datagrams dropped because the receive queue was full.
    pub recv_dropped: u64,
    /// Non-blocking sends that found no room and queued nothing.
    pub send_would_block: u64,
    /// Sends rejected for exceeding the maximum datagram size.
    pub send_too_large: u64,
}

/// The live counters behind [`SessionStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub datagrams_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub datagrams_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub recv_dropped: AtomicU64,
    pub send_would_block: AtomicU64,
    pub send_too_large: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SessionStats {
        SessionStats {
            datagrams_sent: self.datagrams_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            datagrams_received: self.datagrams_received.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            recv_dropped: self.recv_dropped.load(Relaxed),
            send_would_block: self.send_would_block.load(Relaxed),
            send_too_large: self.send_too_large.load(Relaxed),
        }
    }
}

/// Transport statistics of one QUIC connection (shared by every session on it), read
/// with [`Session::connection_stats`](super::session::Session::connection_stats) or
/// [`Connection::stats`](super::client::Connection::stats). A snapshot of quinn's
/// figures: `Connection::stats()`, its path data and its congestion controller.
///
/// quinn 0.11 does not expose the RTT variance nor the bytes in flight: those fields
/// are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Smoothed round-trip time (RFC 9002 §5.3); the configured initial RTT until the
    /// first sample.
    pub rtt: Duration,
    /// RTT variance (RFC 9002 §5.3). Not exposed by quinn 0.11: always `None`.
    pub rtt_variance: Option<Duration>,
    /// Smallest RTT sample seen. Can be zero on loopback (quinn saturates a sample whose
    /// receive time precedes the send time it is measured against).
    pub min_rtt: Duration,
    /// Congestion window, in bytes.
    pub congestion_window: u64,
    /// Slow-start threshold in bytes, once the controller has one (CUBIC, NewReno
    /// after the first congestion event).
    pub slow_start_threshold: Option<u64>,
    /// The controller's pacing rate in bits/s, for those that set one (BBR: 0 until it
    /// has a bandwidth estimate).
    pub pacing_rate: Option<u64>,
    /// Bytes sent and not yet acknowledged nor declared lost. Not exposed by quinn 0.11:
    /// always `None`.
    pub bytes_in_flight: Option<u64>,
    /// Congestion events (loss or ECN congestion signals that reduced the window).
    pub congestion_events: u64,
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// UDP datagrams received (quinn counts datagrams, not packets: a datagram carries
    /// several coalesced QUIC packets only during the handshake).
    pub packets_received: u64,
    /// QUIC packets declared lost.
    pub packets_lost: u64,
    /// Bytes of the packets declared lost.
    pub bytes_lost: u64,
    /// UDP payload bytes sent and received.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// The current path MTU: the largest UDP payload quinn sends (path MTU discovery
    /// moves it from the initial MTU).
    pub path_mtu: u16,
    /// Path MTU black holes detected (the MTU fell back to 1200).
    pub black_holes_detected: u64,
    /// QUIC DATAGRAM frames sent and received on the connection, all sessions together.
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    /// Received QUIC datagrams the transport dropped before the library read them
    /// (quinn's receive buffer was full): DATAGRAM frames received minus datagrams
    /// read. A datagram that arrived and waits in quinn's buffer at this very moment
    /// (the reader takes them at once) counts until it is read.
    pub datagrams_dropped: u64,
    /// The congestion controller in use on the connection, read from quinn.
    pub congestion_controller: CongestionControl,
}

/// Read a connection's figures from quinn; `datagrams_read`: what the library's reader
/// took from it.
pub(crate) fn connection_stats(quic: &quinn::Connection, datagrams_read: u64) -> ConnectionStats {
    let s = quic.stats();
    let controller = quic.congestion_state();
    let metrics = controller.metrics();
    let any = controller.into_any();
    let congestion_controller = if any.is::<quinn::congestion::NewReno>() {
        CongestionControl::NewReno
    } else if any.is::<quinn::congestion::Bbr>() {
        CongestionControl::Bbr
    } else {
        CongestionControl::Cubic
    };
    ConnectionStats {
        rtt: s.path.rtt,
        rtt_variance: None,
        min_rtt: s.path.min_rtt,
        congestion_window: s.path.cwnd,
        slow_start_threshold: metrics.ssthresh.filter(|&t| t != u64::MAX),
        pacing_rate: metrics.pacing_rate,
        bytes_in_flight: None,
        congestion_events: s.path.congestion_events,
        packets_sent: s.path.sent_packets,
        packets_received: s.udp_rx.datagrams,
        packets_lost: s.path.lost_packets,
        bytes_lost: s.path.lost_bytes,
        bytes_sent: s.udp_tx.bytes,
        bytes_received: s.udp_rx.bytes,
        path_mtu: s.path.current_mtu,
        black_holes_detected: s.path.black_holes_detected,
        datagrams_sent: s.frame_tx.datagram,
        datagrams_received: s.frame_rx.datagram,
        datagrams_dropped: s.frame_rx.datagram.saturating_sub(datagrams_read),
        congestion_controller,
    }
}
