//! Bounded counts a server keeps of what peers hold (connections, sessions, requests
//! waiting for an answer) and the counters of what it refused.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// A count with a ceiling: each holder keeps a [`Held`], which gives its place back
/// when dropped.
#[derive(Debug)]
pub(crate) struct Gauge {
    current: AtomicUsize,
    max: usize,
}

impl Gauge {
    pub(crate) fn new(max: usize) -> Arc<Gauge> {
        Arc::new(Gauge {
            current: AtomicUsize::new(0),
            max,
        })
    }

    /// Take a place, unless all `max` are taken.
    pub(crate) fn try_hold(self: &Arc<Self>) -> Option<Held> {
        self.current
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        Some(Held(self.clone()))
    }

    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }
}

/// One place in a [`Gauge`].
#[derive(Debug)]
pub(crate) struct Held(Arc<Gauge>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a server holds and what it refused, read with
/// `Server::stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections held now (handshakes in progress included).
    pub connections: u64,
    /// Sessions held now over all connections: open, being answered, or closing.
    pub sessions: u64,
    /// Session requests received and not yet answered.
    pub pending_requests: u64,
    /// Connections accepted since the start (handshake completed).
    pub connections_accepted: u64,
    /// Connection attempts refused because `max_connections` were held.
    pub connections_refused: u64,
    /// Handshakes that failed (TLS, version, timeout).
    pub handshakes_failed: u64,
    /// Session requests handed to the application since the start.
    pub requests_received: u64,
    /// Requests answered 503 because `max_sessions` sessions were held.
    pub requests_refused_server_full: u64,
    /// Requests answered 429 because their connection held its maximum of sessions.
    pub requests_refused_connection_full: u64,
    /// Requests answered 503 because `request_backlog` requests waited for an answer.
    pub requests_refused_backlog: u64,
    /// Requests answered 431: their field section exceeded the limits.
    pub requests_too_large: u64,
    /// Request streams reset (H3_REQUEST_REJECTED) for not delivering their headers
    /// within `request_timeout`.
    pub requests_timed_out: u64,
}

/// The live counts and counters behind [`ServerStats`].
#[derive(Debug)]
pub(crate) struct ServerLimits {
    pub connections: Arc<Gauge>,
    pub sessions: Arc<Gauge>,
    pub backlog: Arc<Gauge>,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub requests_received: AtomicU64,
    pub refused_server_full: AtomicU64,
    pub refused_connection_full: AtomicU64,
    pub refused_backlog: AtomicU64,
    pub too_large: AtomicU64,
    pub timed_out: AtomicU64,
}

impl ServerLimits {
    pub(crate) fn new(cfg: &super::config::ServerConfig) -> Arc<ServerLimits> {
        Arc::new(ServerLimits {
            connections: Gauge::new(cfg.max_connections.max(1)),
            sessions: Gauge::new(cfg.max_sessions.max(1)),
            backlog: Gauge::new(cfg.request_backlog.max(1)),
            connections_accepted: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            handshakes_failed: AtomicU64::new(0),
            requests_received: AtomicU64::new(0),
            refused_server_full: AtomicU64::new(0),
            refused_connection_full: AtomicU64::new(0),
            refused_backlog: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        })
    }

    pub(crate) fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> ServerStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStats {
            connections: self.connections.current() as u64,
            sessions: self.sessions.current() as u64,
            pending_requests: self.backlog.current() as u64,
            connections_accepted: r(&self.connections_accepted),
            connections_refused: r(&self.connections_refused),
            handshakes_failed: r(&self.handshakes_failed),
            requests_received: r(&self.requests_received),
            requests_refused_server_full: r(&self.refused_server_full),
            requests_refused_connection_full: r(&self.refused_connection_full),
            requests_refused_backlog: r(&self.refused_backlog),
            requests_too_large: r(&self.too_large),
            requests_timed_out: r(&self.timed_out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_holds_at_most_max_and_gives_places_back() {
        let g = Gauge::new(2);
        let a = g.try_hold().unwrap();
        let b = g.try_hold().unwrap();
        assert!(g.try_hold().is_none());
        assert_eq!(g.current(), 2);
        drop(a);
        let c = g.try_hold().unwrap();
        drop((b, c));
        assert_eq!(g.current(), 0);
    }
}
