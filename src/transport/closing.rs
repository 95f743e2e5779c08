//! Closes still under way (a close capsule on its way, a server closing its
//! connections), counted per runtime so that shutting one down waits for its own.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::driver::ConnInner;

/// Session closes whose capsule is still on its way, and closing servers still waiting
/// for theirs, per tokio runtime (the one their tasks run on; see [`finish_closing`]):
/// a runtime that shuts down waits for its own closes only, never for another
/// runtime's. Entries are removed when their count drops to 0, so this holds at most
/// one entry per runtime with a close in flight.
static CLOSING: parking_lot::Mutex<Vec<(tokio::runtime::Id, usize)>> =
    parking_lot::Mutex::new(Vec::new());

/// Closes in flight on the runtime `rt`.
pub(crate) fn closes_in_flight_on(rt: &tokio::runtime::Handle) -> usize {
    let id = rt.id();
    CLOSING
        .lock()
        .iter()
        .find(|(r, _)| *r == id)
        .map_or(0, |(_, n)| *n)
}

/// Counts one in-flight close on its runtime (for [`finish_closing`]) and on its
/// connection, if any (for a closing server, which waits for the closes on its
/// connections); dropping it (the task finished, or was dropped unrun because the
/// runtime is gone) uncounts it.
pub(crate) struct ClosingGuard {
    rt: tokio::runtime::Id,
    conn: Option<Arc<ConnInner>>,
}

impl ClosingGuard {
    /// Count a close whose task runs on `rt`.
    pub(crate) fn new(rt: &tokio::runtime::Handle, conn: Option<Arc<ConnInner>>) -> ClosingGuard {
        let id = rt.id();
        {
            let mut closing = CLOSING.lock();
            match closing.iter_mut().find(|(r, _)| *r == id) {
                Some((_, n)) => *n += 1,
                None => closing.push((id, 1)),
            }
        }
        if let Some(c) = &conn {
            c.closes_in_flight.fetch_add(1, Relaxed);
        }
        ClosingGuard { rt: id, conn }
    }
}

impl Drop for ClosingGuard {
    fn drop(&mut self) {
        if let Some(c) = &self.conn {
            c.closes_in_flight.fetch_sub(1, Relaxed);
        }
        let mut closing = CLOSING.lock();
        if let Some(i) = closing.iter().position(|(r, _)| *r == self.rt) {
            closing[i].1 -= 1;
            if closing[i].1 == 0 {
                closing.swap_remove(i);
            }
        }
    }
}

/// Wait, at most `limit`, until every session closed on the runtime this is awaited on
/// has delivered its CLOSE_WEBTRANSPORT_SESSION capsule (or given up), and every server
/// of that runtime that is closing has closed its connections (see
/// [`Server::close`](super::Server::close)). Call before shutting the runtime down so
/// peers see the close code and reason instead of a dead connection. Closes on other
/// runtimes are not waited for (see [`finish_closing_on`]).
///
/// # Panics
/// Outside a tokio runtime (like `tokio::time::sleep`).
pub async fn finish_closing(limit: Duration) {
    finish_closing_on(&tokio::runtime::Handle::current(), limit).await
}

/// Like [`finish_closing`], for the closes of the runtime `rt` (sessions whose
/// connection runs on it, servers bound on it), wherever this is awaited.
pub async fn finish_closing_on(rt: &tokio::runtime::Handle, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while closes_in_flight_on(rt) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Client, ClientConfig, CloseReason, Server, ServerConfig, Verify};

    /// Every wait is bounded by this safety net (never a timing assertion).
    const LIMIT: Duration = Duration::from_secs(20);

    fn multi_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// Runtime B has a session close in flight, held open by a peer that does not answer
    /// (its runtime is not driven). Waiting for runtime A's closes returns at once,
    /// with B's close still counted; B's own wait ends once the peer answers.
    #[test]
    fn finish_closing_waits_only_for_its_own_runtime() {
        let peer_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (rt_a, rt_b) = (multi_thread(), multi_thread());
        let server = {
            let _in = peer_rt.enter();
            Server::bind(ServerConfig::default()).expect("bind")
        };
        let client = {
            let _in = rt_b.enter();
            Client::new(ClientConfig {
                verify: Verify::Hashes(vec![server.cert_sha256()]),
                ..Default::default()
            })
            .expect("client")
        };
        let url = format!("https://127.0.0.1:{}/held", server.local_addr().port());
        let open = rt_b.spawn({
            let client = client.clone();
            async move { client.open_session(&url).await }
        });
        // The peer runs only inside this block_on: it accepts, then falls silent.
        let (peer, session) = peer_rt.block_on(async {
            tokio::time::timeout(LIMIT, async {
                let req = server.accept().await.expect("request");
                let peer = req.accept().await.expect("accept");
                let session = open.await.expect("task").expect("open");
                (peer, session)
            })
            .await
            .expect("safety limit")
        });

        session.close(9, "held");
        assert_eq!(closes_in_flight_on(rt_b.handle()), 1);
        assert_eq!(closes_in_flight_on(rt_a.handle()), 0);

        // A waits for A's closes only: there are none, so this returns while B's
        // close is still held open by the silent peer. (With one count for the whole
        // process it would only return once B's close had given up: count 0.)
        rt_a.block_on(finish_closing_on(rt_a.handle(), LIMIT));
        rt_a.block_on(async { finish_closing(LIMIT).await });
        assert_eq!(
            closes_in_flight_on(rt_b.handle()),
            1,
            "runtime A waited for runtime B's close"
        );

        // B's wait ends when its close does: let the peer run until then.
        peer_rt.block_on(async {
            tokio::time::timeout(LIMIT, finish_closing_on(rt_b.handle(), LIMIT))
                .await
                .expect("safety limit")
        });
        assert_eq!(closes_in_flight_on(rt_b.handle()), 0);
        assert_eq!(
            peer.close_reason(),
            Some(CloseReason::Remote {
                code: 9,
                reason: "held".into()
            }),
            "the peer got the close capsule"
        );
        drop((peer, session, client));
        let _in = peer_rt.enter();
        drop(server);
    }
}
