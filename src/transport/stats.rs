//! A session's counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
