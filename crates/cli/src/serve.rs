//! The accept loop `wtd serve` runs in both modes (echo, and relay through NATS).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use wtdatagram::{Server, Session};

use super::output::{runtime, warn, Fail};
use super::web::Sessions;

/// Accept sessions on `server` until `max` of them have ended (if given), numbering
/// them from 1. Each accepted session is shown in `sessions` (`--web`'s `/stats.json`)
/// while `handle(id, session, line)` runs; `line` is the `session ...` line, which the
/// handler prints once the session is ready for its datagrams (a relay joins its
/// channel first), followed by its own `closed ...` line.
pub async fn serve_sessions<F, Fut>(
    server: Arc<Server>,
    max: Option<u64>,
    sessions: Sessions,
    handle: F,
) -> Result<i32, Fail>
where
    F: Fn(u64, Session, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handle = Arc::new(handle);
    let closed = Arc::new(AtomicU64::new(0));
    let all_done = Arc::new(Notify::new());
    let mut next_id: u64 = 0;
    loop {
        let req = tokio::select! {
            r = server.accept() => r,
            _ = all_done.notified() => return Ok(0),
        };
        let Some(req) = req else {
            return Err(runtime("the server stopped accepting sessions"));
        };
        next_id += 1;
        let id = next_id;
        let (closed, all_done, handle) = (closed.clone(), all_done.clone(), handle.clone());
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let line = format!(
                "session {id} path={} origin={} dialect={}",
                req.path(),
                req.origin().unwrap_or("-"),
                req.info().dialect.name()
            );
            let remote = req.remote_addr();
            match req.accept().await {
                Ok(session) => {
                    let shown = sessions.track(id, &session);
                    handle(id, session, line).await;
                    drop(shown);
                }
                Err(e) => warn(format!("accepting a session from {remote}: {e}")),
            }
            let n = closed.fetch_add(1, Ordering::SeqCst) + 1;
            if max.is_some_and(|m| n >= m) {
                all_done.notify_one();
            }
        });
    }
}
