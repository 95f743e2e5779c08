//! Handing a session's datagrams to their owner as they arrive.

use std::sync::Arc;

use bytes::Bytes;

use super::close::CloseReason;

/// Drop `arc` without running its destructor here if this is the last reference. For
/// handlers, which run under the session's lock: a last reference upgraded from a
/// `Weak` may own the session, and closing the session from its destructor would take
/// that lock again. The destructor then runs on a short-lived thread (not the runtime:
/// a runtime that is shutting down drops spawned futures on the spot, under our lock).
/// This path is rare: only when the application drops its last handle mid-delivery.
pub fn release_outside_lock<T: Send + Sync + 'static>(arc: Arc<T>, _rt: &tokio::runtime::Handle) {
    if let Some(last) = Arc::into_inner(arc) {
        // ManuallyDrop: if the thread cannot start, the closure is dropped right here,
        // and `last` must then leak rather than be destroyed under the lock.
        let last = std::mem::ManuallyDrop::new(last);
        let reaper = std::thread::Builder::new().name("wtd-release".into());
        if let Err(e) = reaper.spawn(move || drop(std::mem::ManuallyDrop::into_inner(last))) {
            // No thread to be had: leaking is better than deadlocking the connection.
            tracing::warn!("could not start a release thread ({e}); leaking one handle");
        }
    }
}

/// Receives a session's datagrams as they arrive, instead of the session's queue.
///
/// Both methods run while the session's internal lock is held, which is what keeps
/// `on_closed` after the last `on_datagram`: they must return quickly and must not call
/// back into the same session (forward to a channel or queue instead).
pub trait DatagramHandler: Send + Sync + 'static {
    /// A datagram arrived. Return false if it was dropped (it is counted).
    fn on_datagram(&self, payload: Bytes) -> bool;
    /// A burst of datagrams arrived, in order; take them all out of `burst`. Returns
    /// how many were dropped and their payload bytes (they are counted). The default
    /// hands each one to [`on_datagram`](Self::on_datagram); a handler that forwards
    /// to a queue can take the whole burst under one lock with one wake-up.
    fn on_datagrams(&self, burst: &mut Vec<Bytes>) -> (u64, u64) {
        let mut dropped = (0, 0);
        for payload in burst.drain(..) {
            let len = payload.len() as u64;
            if !self.on_datagram(payload) {
                dropped.0 += 1;
                dropped.1 += len;
            }
        }
        dropped
    }
    /// The session closed; called exactly once, after the last `on_datagram`.
    fn on_closed(&self, reason: &CloseReason);
}
