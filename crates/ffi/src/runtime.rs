//! The runtime handle: owns the tokio runtime, the event queue (pull API + pollable fd)
//! and, in callback mode, the dispatcher thread that runs the application's callback.

use std::cell::Cell;
use std::ffi::c_void;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::error::*;
use super::events::wtd_event;
use super::handle::{self, Boxed, Castable};
use super::queue::EventQueue;
use super::types::{wtd_runtime, wtd_runtime_config, wtd_userdata_free};
use wtd_result::*;

/// Called for every event in callback mode, on the library's dispatcher thread. `event`
/// and everything it points to are borrowed for the duration of the call.
pub type wtd_event_callback =
    Option<unsafe extern "C" fn(event: *const wtd_event, userdata: *mut c_void)>;

#[derive(Clone, Copy)]
pub(crate) struct Callback {
    pub func: unsafe extern "C" fn(*const wtd_event, *mut c_void),
    pub userdata: *mut c_void,
    pub free: wtd_userdata_free,
}

// SAFETY: the application promises its callback and userdata may be used from the
// dispatcher thread (documented in the header); we never touch `userdata` ourselves.
unsafe impl Send for Callback {}
// SAFETY: as for Send: a Callback is only a function pointer and an opaque pointer.
unsafe impl Sync for Callback {}

impl Callback {
    /// Run the application's userdata_free, if any (exactly once per registration).
    fn free_userdata(self) {
        if let Some(free) = self.free {
            // SAFETY: the application's destructor for its own userdata, called once:
            // every caller gives up the registration it frees.
            unsafe { free(self.userdata) };
        }
    }
}

/// What `wtd_runtime_config` holds.
pub(crate) struct RuntimeConfig {
    workers: usize,
    callback: Option<Callback>,
}

// SAFETY: wtd_runtime_config pointers are made only by into_c_box from a RuntimeConfig.
unsafe impl Castable for wtd_runtime_config {
    type Rust = RuntimeConfig;
    type Own = Boxed;
}

impl Drop for RuntimeConfig {
    fn drop(&mut self) {
        // A callback registered here but never handed to a runtime still gets its
        // userdata freed exactly once.
        if let Some(cb) = self.callback.take() {
            cb.free_userdata();
        }
    }
}

thread_local! {
    static ON_DISPATCHER: Cell<bool> = const { Cell::new(false) };
}

pub(crate) fn on_dispatcher_thread() -> bool {
    ON_DISPATCHER.with(|c| c.get())
}

pub(crate) struct RuntimeInner {
    pub handle: tokio::runtime::Handle,
    rt: Mutex<Option<tokio::runtime::Runtime>>,
    pub events: EventQueue,
    callback: Option<Callback>,
    dispatcher: Mutex<Option<std::thread::JoinHandle<()>>>,
    closed: AtomicBool,
}

impl RuntimeInner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn callback_mode(&self) -> bool {
        self.callback.is_some()
    }

    /// WTD_ERR_CLOSED once the runtime was freed: a handle tied to it can do no I/O.
    pub(crate) fn check_open(&self, what: &str) -> FfiResult<()> {
        if self.is_closed() {
            return Err(FfiError::new(
                WTD_ERR_CLOSED,
                format!("the {what}'s runtime has been freed"),
            ));
        }
        Ok(())
    }

    /// Run a future to completion on the runtime from a foreign thread, with a timeout
    /// in milliseconds (negative: none).
    pub(crate) fn block_on<F: Future>(&self, timeout_ms: i32, fut: F) -> FfiResult<F::Output> {
        if self.is_closed() {
            return Err(FfiError::new(WTD_ERR_CLOSED, "the runtime has been freed"));
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(FfiError::new(
                WTD_ERR_WOULD_DEADLOCK,
                "blocking call made from inside the library's async runtime",
            ));
        }
        if timeout_ms < 0 {
            return Ok(self.handle.block_on(fut));
        }
        let d = Duration::from_millis(timeout_ms as u64);
        self.handle
            .block_on(async { tokio::time::timeout(d, fut).await })
            .map_err(|_| FfiError::new(WTD_ERR_TIMEOUT, format!("timed out after {timeout_ms} ms")))
    }

    /// Poll `fut` once on this thread and only if it is not ready block on it in the
    /// runtime (up to `timeout_ms`, negative: forever; 0: not at all): a send that finds
    /// room costs no trip into the runtime.
    pub(crate) fn wait_here<T, E, F>(&self, timeout_ms: i32, fut: F) -> FfiResult<T>
    where
        F: Future<Output = Result<T, E>>,
        FfiError: From<E>,
    {
        let mut fut = std::pin::pin!(fut);
        match wtdatagram::transport::poll_once(fut.as_mut()) {
            Some(r) => Ok(r?),
            // A timeout of 0 is a look: no trip into the runtime, no timer.
            None if timeout_ms == 0 => Err(FfiError::new(WTD_ERR_TIMEOUT, "not ready (timeout 0)")),
            None => Ok(self.block_on(timeout_ms, fut)??),
        }
    }

    /// Enter the runtime context (for constructors that spawn tasks).
    pub(crate) fn enter(&self) -> FfiResult<tokio::runtime::EnterGuard<'_>> {
        if self.is_closed() {
            return Err(FfiError::new(WTD_ERR_CLOSED, "the runtime has been freed"));
        }
        Ok(self.handle.enter())
    }
}

/// What `wtd_runtime` holds.
pub(crate) struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

// SAFETY: wtd_runtime pointers are made only by into_c_box from a Runtime.
unsafe impl Castable for wtd_runtime {
    type Rust = Runtime;
    type Own = Boxed;
}

/// Events the dispatcher takes from the queue per lock (callback mode).
const DISPATCH_BATCH: usize = 256;

fn dispatch(inner: Arc<RuntimeInner>, cb: Callback) {
    ON_DISPATCHER.with(|c| c.set(true));
    // Taken in batches (one lock and one wake-up check per batch, not per event), then
    // called back one by one in queue order: the order callbacks see is the queue's.
    let mut batch = Vec::with_capacity(DISPATCH_BATCH);
    while inner.events.pop_batch(DISPATCH_BATCH, None, &mut batch) {
        for ev in batch.drain(..) {
            if inner.is_closed() {
                break; // wtd_runtime_free: the rest of the batch is dropped, undelivered
            }
            if let Some(c_event) = ev.into_c() {
                // A panic cannot come from C; guard against our own code only.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: the application's callback, called on the dispatcher thread
                    // as the header documents, with an event that stays alive for the call.
                    unsafe { (cb.func)(&c_event.event, cb.userdata) }
                }));
            }
        }
    }
}

/// Create runtime options with defaults: worker threads = 2, pull mode (no callback).
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_config_new(
    out_config: *mut *mut wtd_runtime_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_config` is NULL or writable, per the header.
        let out = unsafe { out(out_config, "out_config") }?;
        *out = handle::into_c_box(RuntimeConfig {
            workers: 2,
            callback: None,
        });
        Ok(())
    })
}

/// Free runtime options (NULL is a no-op). A callback's userdata_free runs here if the
/// options were never used to create a runtime.
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_config_free(config: *mut wtd_runtime_config) {
    // SAFETY: `config` is NULL or a runtime config the caller gives up, per the header.
    guard_value((), || drop(unsafe { handle::take_box(config) }));
}

/// Number of tokio worker threads (1..=256). Default 2.
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_config_set_worker_threads(
    config: *mut wtd_runtime_config,
    workers: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live config used from this thread only (builders
        // are not thread-safe, per the header).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let workers = in_range(workers, 1..=256, "worker threads", "")?;
        c.workers = workers as usize;
        Ok(())
    })
}

/// Deliver every event by calling `callback(event, userdata)` on a library-owned
/// dispatcher thread, in order (so per session too). Any wtd_ call is allowed inside the
/// callback. Without a callback the runtime is in pull mode (`wtd_runtime_next_event`).
/// `userdata_free` (may be NULL) runs exactly once, after the last callback. Replacing
/// a callback frees the previous userdata.
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_config_set_event_callback(
    config: *mut wtd_runtime_config,
    callback: wtd_event_callback,
    userdata: *mut c_void,
    userdata_free: wtd_userdata_free,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live config used from this thread only.
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let func = callback.ok_or_else(|| FfiError::arg("callback is NULL"))?;
        if let Some(old) = c.callback.replace(Callback {
            func,
            userdata,
            free: userdata_free,
        }) {
            old.free_userdata();
        }
        Ok(())
    })
}

/// Start a runtime. `config` may be NULL for defaults; it is not consumed (the callback
/// moves to the runtime). Free with `wtd_runtime_free` after every other handle.
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_new(
    config: *mut wtd_runtime_config,
    out_runtime: *mut *mut wtd_runtime,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_runtime` is NULL or writable, per the header.
        let out = unsafe { out(out_runtime, "out_runtime") }?;
        let (workers, callback) = if config.is_null() {
            (2, None)
        } else {
            // SAFETY: non-NULL: a live config used from this thread only.
            let c = unsafe { handle::borrow_mut(config, "config") }?;
            (c.workers, c.callback.take())
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("wtd-worker")
            .enable_all()
            .build()
            .map_err(|e| FfiError::new(WTD_ERR_IO, format!("starting runtime: {e}")))?;
        let inner = Arc::new(RuntimeInner {
            handle: rt.handle().clone(),
            rt: Mutex::new(Some(rt)),
            events: EventQueue::new()?,
            callback,
            dispatcher: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        if let Some(cb) = callback {
            let i = inner.clone();
            let t = std::thread::Builder::new()
                .name("wtd-dispatch".into())
                .spawn(move || dispatch(i, cb))
                .map_err(|e| FfiError::new(WTD_ERR_IO, format!("starting dispatcher: {e}")))?;
            *inner.dispatcher.lock() = Some(t);
        }
        *out = handle::into_c_box(Runtime { inner });
        Ok(())
    })
}

/// Stop the runtime: sessions closed just before get up to 2 s to deliver their close
/// capsules (and servers freed or closed just before, to close their connections after
/// them; only this runtime's: closes under way on another runtime are not waited for),
/// undelivered events are dropped (session requests in them are
/// refused with 503), the dispatcher thread is joined, the callback's userdata_free
/// runs, and the worker threads stop. Handles still alive afterwards answer
/// WTD_ERR_CLOSED and must still be freed. NULL is a no-op (WTD_OK). Called from inside
/// a callback it does nothing and returns WTD_ERR_WOULD_DEADLOCK.
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_free(runtime: *mut wtd_runtime) -> wtd_result {
    if runtime.is_null() {
        return WTD_OK;
    }
    guard(|| {
        if on_dispatcher_thread() {
            return Err(FfiError::new(
                WTD_ERR_WOULD_DEADLOCK,
                "wtd_runtime_free called from inside an event callback",
            ));
        }
        // SAFETY: a live runtime the caller gives up, per the header.
        let Some(rt) = (unsafe { handle::take_box(runtime) }) else {
            return Ok(());
        };
        let inner = rt.inner.clone();
        drop(rt);
        inner.closed.store(true, Ordering::Release);
        let rest = inner.events.close();
        if let Some(t) = inner.dispatcher.lock().take() {
            let _ = t.join();
        }
        drop(rest);
        if let Some(cb) = inner.callback {
            cb.free_userdata();
        }
        // Only this runtime's closes: another runtime's are not ours to wait for.
        let flush = wtdatagram::transport::finish_closing_on(&inner.handle, Duration::from_secs(2));
        inner.handle.block_on(flush);
        if let Some(tokio_rt) = inner.rt.lock().take() {
            tokio_rt.shutdown_timeout(Duration::from_secs(2));
        }
        Ok(())
    })
}

/// Pull mode: wait up to `timeout_ms` (0: poll, negative: forever) for the next event and
/// write it to `out_event`. Its pointers stay valid until `wtd_event_release(out_event)`,
/// which must be called once per event received. Returns WTD_ERR_TIMEOUT when none came,
/// WTD_ERR_INVALID_STATE in callback mode, WTD_ERR_CLOSED after `wtd_runtime_free`.
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_next_event(
    runtime: *const wtd_runtime,
    out_event: *mut wtd_event,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `runtime` is NULL or live; `out_event` NULL or writable (the header).
        let (rt, out) = unsafe {
            (
                handle::borrow(runtime, "runtime")?,
                // Uninitialised: the caller's event may hold anything (no &mut wtd_event
                // over it).
                out_uninit(out_event, "out_event")?,
            )
        };
        if rt.inner.callback_mode() {
            return Err(FfiError::new(
                WTD_ERR_INVALID_STATE,
                "events go to the callback in callback mode",
            ));
        }
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if rt.inner.is_closed() {
                return Err(FfiError::new(WTD_ERR_CLOSED, "the runtime has been freed"));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let Some(ev) = rt.inner.events.pop(left) else {
                return Err(FfiError::new(WTD_ERR_TIMEOUT, "no event"));
            };
            // Events of freed sessions are skipped.
            if let Some(c) = ev.into_c() {
                out.write(c.into_owned_event());
                return Ok(());
            }
        }
    })
}

/// Pull mode, several events per call: wait up to `timeout_ms` (0: poll, negative:
/// forever) for the first event, then take the events already queued behind it, without
/// waiting again, up to `max_events` in all. They are written to
/// `out_events[0..*out_count]`, in queue order (so in order per session too), exactly as
/// wtd_runtime_next_event would have returned them one by one: each one's pointers stay
/// valid until `wtd_event_release` of that event, which must be called once for each of
/// the `*out_count` events (and never for the rest of the array, which is left as it
/// was). Until it is released, a DATAGRAM event counts against its session's receive
/// queue bounds (wtd_transport_config_set_recv_queue / _bytes), as with
/// wtd_runtime_next_event. A `wtd_event` is a plain value: it may be copied or moved to
/// other memory before release; release exactly one copy, once (the others are then
/// invalid). Component callbacks (reliability reports, monitor alerts, ...) run inside
/// this call, in queue order: one queued after an event of this batch runs in a later
/// call. `max_events` 0: WTD_OK with `*out_count` = 0 at once (`out_events` may then be
/// NULL). Returns WTD_ERR_TIMEOUT when none came (`*out_count` untouched),
/// WTD_ERR_INVALID_STATE in callback mode, WTD_ERR_CLOSED after `wtd_runtime_free`,
/// WTD_ERR_INVALID_ARGUMENT for a NULL `runtime`, `out_count`, or `out_events` with
/// `max_events` > 0.
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_next_events(
    runtime: *const wtd_runtime,
    out_events: *mut wtd_event,
    max_events: usize,
    out_count: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `runtime` is NULL or live; `out_count` NULL or writable; `out_events`
        // NULL or writable for `max_events` events, whose current contents may be
        // anything (borrowed as uninitialised memory) (the header's contract).
        let (rt, count, slots) = unsafe {
            (
                handle::borrow(runtime, "runtime")?,
                out(out_count, "out_count")?,
                out_buf(out_events, max_events, "out_events")?,
            )
        };
        if rt.inner.callback_mode() {
            return Err(FfiError::new(
                WTD_ERR_INVALID_STATE,
                "events go to the callback in callback mode",
            ));
        }
        if slots.is_empty() {
            *count = 0;
            return Ok(());
        }
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut raw = Vec::with_capacity(slots.len().min(256));
        let mut ready = Vec::with_capacity(raw.capacity());
        loop {
            if rt.inner.is_closed() {
                return Err(FfiError::new(WTD_ERR_CLOSED, "the runtime has been freed"));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if !rt.inner.events.pop_batch(slots.len(), left, &mut raw) {
                return Err(FfiError::new(WTD_ERR_TIMEOUT, "no event"));
            }
            // Events of freed handles are skipped (an Invoke runs here and yields none).
            ready.extend(raw.drain(..).filter_map(|ev| ev.into_c()));
            if !ready.is_empty() {
                break;
            }
        }
        // Nothing below can fail: every event taken is handed out.
        let n = ready.len();
        for (slot, c) in slots.iter_mut().zip(ready) {
            slot.write(c.into_owned_event());
        }
        *count = n;
        Ok(())
    })
}

/// A file descriptor that is readable while events are waiting in pull mode (for
/// epoll/poll/select or an event loop). Do not read or close it. -1 if `runtime` is NULL
/// (and on systems without eventfd).
#[no_mangle]
pub unsafe extern "C" fn wtd_runtime_event_fd(runtime: *const wtd_runtime) -> i32 {
    guard_value(-1, || {
        // SAFETY: `runtime` is NULL or a live runtime, per the header.
        match unsafe { handle::borrow(runtime, "runtime") } {
            Ok(rt) => rt.inner.events.fd(),
            Err(_) => -1,
        }
    })
}
