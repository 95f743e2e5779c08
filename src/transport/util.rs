//! Small helpers for futures.

/// Poll a future once without a waker that matters: `Some(output)` if it completed.
/// The send paths use it to queue a datagram without a trip into the runtime when
/// there is room (almost always).
pub fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
