//! The event queue between the library and a C host: a FIFO that wakes a waiting
//! thread and, on Linux, keeps an eventfd readable while events wait.

use std::collections::VecDeque;
#[cfg(target_os = "linux")]
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::error::FfiResult;
#[cfg(target_os = "linux")]
use super::error::{wtd_result::WTD_ERR_IO, FfiError};
use super::events::Event;

/// Events the queue keeps room for once it drains; more (left by a burst) is freed.
const KEEP_CAPACITY: usize = 1024;

/// FIFO of events with an eventfd that is readable exactly while the queue is non-empty.
///
/// Bounded by what feeds it, kind by kind, rather than by one count: session requests by
/// the server's request backlog (a request counts until the application answers it),
/// datagrams by each session's receive-queue bounds (events waiting per session, in
/// count and bytes), one SESSION_CLOSED per session, and component callbacks by their
/// components' own windows. A single bounded channel would have to drop or block on the
/// events that must never be lost (a session's close, a delivery report) on a runtime
/// worker thread.
pub(crate) struct EventQueue {
    q: Mutex<VecDeque<Event>>,
    cv: Condvar,
    closed: AtomicBool,
    signal: Signal,
}

impl EventQueue {
    pub(crate) fn new() -> FfiResult<EventQueue> {
        Ok(EventQueue {
            q: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
            closed: AtomicBool::new(false),
            signal: Signal::new()?,
        })
    }

    /// The file descriptor readable while events wait (-1 where there is none).
    pub(crate) fn fd(&self) -> i32 {
        self.signal.fd()
    }

    pub(crate) fn push(&self, ev: Event) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut q = self.q.lock();
        if q.is_empty() {
            self.signal.raise();
        }
        q.push_back(ev);
        drop(q);
        self.cv.notify_one();
    }

    /// Queue several events in order under one lock, with one wake-up. Nothing is
    /// taken from `evs` once the queue is closed.
    pub(crate) fn push_many(&self, evs: impl Iterator<Item = Event>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut q = self.q.lock();
        let before = q.len();
        q.extend(evs);
        if q.len() == before {
            return;
        }
        if before == 0 {
            self.signal.raise();
        }
        drop(q);
        self.cv.notify_one();
    }

    /// Next event, waiting up to `timeout` (None: forever). None on timeout or close.
    pub(crate) fn pop(&self, timeout: Option<Duration>) -> Option<Event> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut q = self.q.lock();
        loop {
            if let Some(ev) = q.pop_front() {
                if q.is_empty() {
                    if q.capacity() > KEEP_CAPACITY {
                        // A burst is over: give its memory back.
                        *q = VecDeque::new();
                    }
                    self.signal.lower();
                }
                return Some(ev);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            match deadline {
                None => self.cv.wait(&mut q),
                Some(d) => {
                    if self.cv.wait_until(&mut q, d).timed_out() && q.is_empty() {
                        return None;
                    }
                }
            }
        }
    }

    /// Wait up to `timeout` (None: forever) for the first event like [`pop`](Self::pop),
    /// then move up to `max` events (at least 1) into `out` under the same lock, without
    /// waiting again. False on timeout or close (nothing moved).
    ///
    /// An `Invoke` (a component callback, run when the batch is converted) is taken only
    /// while no other event is in the batch: one queued after an event the application
    /// has not seen yet stays queued for the next batch, so callbacks still run after the
    /// events queued before them were handed out, as with one event at a time.
    pub(crate) fn pop_batch(
        &self,
        max: usize,
        timeout: Option<Duration>,
        out: &mut Vec<Event>,
    ) -> bool {
        let Some(first) = self.pop(timeout) else {
            return false;
        };
        let mut seen_event = !matches!(first, Event::Invoke(_));
        out.push(first);
        if max <= 1 {
            return true;
        }
        let mut q = self.q.lock();
        let mut taken = 1;
        while taken < max {
            let invoke = match q.front() {
                None => break,
                Some(ev) => matches!(ev, Event::Invoke(_)),
            };
            if invoke && seen_event {
                break;
            }
            let Some(ev) = q.pop_front() else { break };
            seen_event |= !invoke;
            out.push(ev);
            taken += 1;
        }
        if q.is_empty() {
            if q.capacity() > KEEP_CAPACITY {
                *q = VecDeque::new();
            }
            self.signal.lower();
        }
        true
    }

    pub(crate) fn close(&self) -> VecDeque<Event> {
        self.closed.store(true, Ordering::Release);
        let mut q = self.q.lock();
        let rest = std::mem::take(&mut *q);
        drop(q);
        self.cv.notify_all();
        rest
    }
}

/// A file descriptor that is readable exactly while the queue holds events, for hosts
/// that wait in poll/epoll/kqueue or an event loop. Linux: an eventfd.
#[cfg(target_os = "linux")]
struct Signal {
    efd: libc::c_int,
}

#[cfg(target_os = "linux")]
impl Signal {
    fn new() -> FfiResult<Signal> {
        // SAFETY: a plain syscall with constant flags; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(FfiError::new(
                WTD_ERR_IO,
                format!("eventfd: {}", std::io::Error::last_os_error()),
            ));
        }
        Ok(Signal { efd })
    }

    fn fd(&self) -> i32 {
        self.efd
    }

    /// Make the fd readable (the queue became non-empty).
    fn raise(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to the eventfd we own.
        unsafe { libc::write(self.efd, (&one as *const u64).cast::<c_void>(), 8) };
    }

    /// Make it unreadable again (the queue drained): reading resets the counter to 0.
    fn lower(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from the eventfd we own (non-blocking).
        unsafe { libc::read(self.efd, (&mut v as *mut u64).cast::<c_void>(), 8) };
    }
}

#[cfg(target_os = "linux")]
impl Drop for Signal {
    fn drop(&mut self) {
        // SAFETY: we own the fd and close it once.
        unsafe { libc::close(self.efd) };
    }
}

/// Elsewhere there is no event fd (wtd_runtime_event_fd returns -1): hosts wait in
/// wtd_runtime_next_event or use callback mode.
#[cfg(not(target_os = "linux"))]
struct Signal;

#[cfg(not(target_os = "linux"))]
impl Signal {
    fn new() -> FfiResult<Signal> {
        Ok(Signal)
    }
    fn fd(&self) -> i32 {
        -1
    }
    fn raise(&self) {}
    fn lower(&self) {}
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::super::events::{Event, EventSource};
    use super::EventQueue;

    struct Source;
    impl EventSource for Source {
        fn handle_ptr(&self) -> *mut std::ffi::c_void {
            std::ptr::null_mut()
        }
        fn is_freed(&self) -> bool {
            false
        }
        fn userdata(&self) -> *mut std::ffi::c_void {
            std::ptr::null_mut()
        }
    }

    fn datagram(tag: &'static [u8]) -> Event {
        Event::Datagram {
            session: Arc::new(Source),
            data: Bytes::from_static(tag),
        }
    }

    /// What a batch holds: the payload of each datagram, "invoke" for a callback.
    fn names(batch: &[Event]) -> Vec<String> {
        batch
            .iter()
            .map(|ev| match ev {
                Event::Datagram { data, .. } => String::from_utf8_lossy(data).into_owned(),
                Event::Invoke(_) => "invoke".into(),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn a_batch_keeps_the_queue_order_and_its_size() {
        let q = EventQueue::new().unwrap();
        q.push_many(
            ["a", "b", "c", "d", "e"]
                .map(|t| datagram(t.as_bytes()))
                .into_iter(),
        );
        let mut batch = Vec::new();
        assert!(q.pop_batch(2, Some(std::time::Duration::ZERO), &mut batch));
        assert_eq!(names(&batch), ["a", "b"]);
        batch.clear();
        assert!(q.pop_batch(10, Some(std::time::Duration::ZERO), &mut batch));
        assert_eq!(names(&batch), ["c", "d", "e"]);
        batch.clear();
        assert!(!q.pop_batch(10, Some(std::time::Duration::ZERO), &mut batch));
        assert!(batch.is_empty());
    }

    #[test]
    fn a_callback_after_an_event_waits_for_the_next_batch() {
        let q = EventQueue::new().unwrap();
        q.push(Event::Invoke(Box::new(|| {})));
        q.push(datagram(b"x"));
        q.push(Event::Invoke(Box::new(|| {})));
        q.push(datagram(b"y"));
        let zero = Some(std::time::Duration::ZERO);
        let mut batch = Vec::new();
        // A callback first may lead a batch; one behind an event the application has
        // not seen yet may not.
        assert!(q.pop_batch(10, zero, &mut batch));
        assert_eq!(names(&batch), ["invoke", "x"]);
        batch.clear();
        assert!(q.pop_batch(10, zero, &mut batch));
        assert_eq!(names(&batch), ["invoke", "y"]);
    }
}
