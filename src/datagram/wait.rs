//! Waiting on a layer's queue.

use std::time::Duration;

use crate::transport::Error;

/// Wait up to `timeout` (None: no limit) for `poll` to decide: `Some(Ok(item))`,
/// `Some(Err(closed))`, or `None` to wait for the next `notify`. Timing out is
/// [`Error::Timeout`]. Shared by every queue a layer reads from.
pub(crate) async fn wait_on<T>(
    notify: &tokio::sync::Notify,
    timeout: Option<Duration>,
    mut poll: impl FnMut() -> Option<Result<T, Error>>,
) -> Result<T, Error> {
    let wait = async {
        loop {
            let notified = notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = poll() {
                return r;
            }
            notified.await;
        }
    };
    match timeout {
        None => wait.await,
        Some(t) => tokio::time::timeout(t, wait)
            .await
            .map_err(|_| Error::Timeout)?,
    }
}
