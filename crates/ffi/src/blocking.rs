//! How a C thread waits for a session's next datagram (`wtd_session_recv` and
//! `_recv_multiple`): the policy of blocking receives, which belongs to the C ABI, not
//! to the transport. The thread waits itself, on the session's async receive driven by
//! a waker that unparks it: no runtime task and no timer per call.
//!
//! When the session's previous wait ended within [`RECV_SPIN`], the thread first
//! watches the queue that long, yielding the CPU between looks: a thread that sleeps
//! is woken tens of microseconds after the datagram arrived, which doubled the echo
//! round trip through the C ABI. A session whose waits are longer (idle, or timing out)
//! stops spinning until a wait is short again, so an idle receiver costs no CPU.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wtdatagram::transport::{Error, Session};

/// How long a receive watches the queue before it sleeps (see the module doc).
const RECV_SPIN: Duration = Duration::from_micros(250);

/// How often a sleeping receive checks `abort` (the runtime was freed).
const ABORT_CHECK: Duration = Duration::from_millis(100);

/// Whether a session's next blocking receive starts by watching the queue.
#[derive(Debug)]
pub(crate) struct SpinHint(AtomicBool);

impl Default for SpinHint {
    fn default() -> Self {
        SpinHint(AtomicBool::new(true))
    }
}

/// Wakes the thread that waits.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static WAKER: Waker = Waker::from(Arc::new(Unpark(std::thread::current())));
}

/// The next datagram of `session`, blocking this thread until one arrives, the session
/// closes (then its close reason, once the queue is empty), `deadline` passes or
/// `abort()` turns true (both: `Ok(None)`; `abort` is checked at least every 100 ms).
pub(crate) fn recv(
    session: &Session,
    spin: &SpinHint,
    deadline: Option<Instant>,
    abort: &dyn Fn() -> bool,
) -> Result<Option<Bytes>, Error> {
    if let Some(d) = session.try_recv_datagram()? {
        return Ok(Some(d));
    }
    let start = Instant::now();
    let got = |d: Bytes| {
        spin.0.store(start.elapsed() < RECV_SPIN, Relaxed);
        Ok(Some(d))
    };
    if spin.0.load(Relaxed) {
        let until = deadline.map_or(start + RECV_SPIN, |d| d.min(start + RECV_SPIN));
        while Instant::now() < until {
            std::thread::yield_now();
            if let Some(d) = session.try_recv_datagram()? {
                return got(d);
            }
        }
    }
    let mut next = pin!(session.recv_datagram());
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(r) = next.as_mut().poll(&mut cx) {
                return r.and_then(got);
            }
            let now = Instant::now();
            if abort() || deadline.is_some_and(|d| d <= now) {
                if now - start >= RECV_SPIN {
                    spin.0.store(false, Relaxed);
                }
                return Ok(None);
            }
            let slice = now + ABORT_CHECK;
            let until = deadline.map_or(slice, |d| d.min(slice));
            // Spurious wake-ups only cost a poll.
            std::thread::park_timeout(until - now);
        }
    })
}
