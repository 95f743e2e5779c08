//! Session handles: send, receive, close, inspect.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;

use super::blocking::{self, SpinHint};
use super::error::*;
use super::events::{Event, EventSource};
use super::handle::{self, Castable, Shared};
use super::runtime::RuntimeInner;
use super::types::{
    close_parts, wtd_buffer, wtd_close_kind, wtd_congestion_controller, wtd_dialect, wtd_session,
};
use super::versioned::{self, versioned};
use wtd_result::*;
use wtdatagram::transport::{CloseReason, ConnectionStats, DatagramHandler, Session};

/// What `wtd_session` holds.
pub(crate) struct SessionHandle {
    pub(crate) session: Session,
    pub(crate) runtime: Arc<RuntimeInner>,
    userdata: AtomicPtr<c_void>,
    freed: AtomicBool,
    /// DATAGRAM events of this session waiting in the runtime queue, and their bytes.
    pending: AtomicUsize,
    pending_bytes: AtomicUsize,
    events_mode: bool,
    path: CString,
    /// How this session's blocking receives wait (see `blocking`).
    spin: SpinHint,
}

// SAFETY: wtd_session pointers are made only by into_c_arc from an Arc<SessionHandle>
// (make_session).
unsafe impl Castable for wtd_session {
    type Rust = SessionHandle;
    type Own = Shared;

    /// A session whose runtime was freed can do no I/O.
    fn check_live(s: &SessionHandle) -> FfiResult<()> {
        s.runtime.check_open("session")
    }
}

impl EventSource for SessionHandle {
    fn handle_ptr(&self) -> *mut c_void {
        handle::c_ptr_of::<wtd_session>(self).cast()
    }
    fn is_freed(&self) -> bool {
        self.freed.load(Ordering::Acquire)
    }
    fn userdata(&self) -> *mut c_void {
        self.userdata.load(Ordering::Acquire)
    }
    fn datagram_done(&self, len: usize) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
        self.pending_bytes.fetch_sub(len, Ordering::AcqRel);
    }
}

/// Turns datagrams into DATAGRAM events, at most `cap` (and `cap_bytes` of payload)
/// waiting per session.
struct EventHandler {
    session: Weak<SessionHandle>,
    cap: usize,
    cap_bytes: usize,
}

impl DatagramHandler for EventHandler {
    fn on_datagram(&self, payload: Bytes) -> bool {
        let Some(s) = self.session.upgrade() else {
            return false;
        };
        let pending = s.pending.load(Ordering::Acquire);
        let full = pending >= self.cap
            || (pending > 0
                && s.pending_bytes.load(Ordering::Acquire) + payload.len() > self.cap_bytes);
        if EventSource::is_freed(&*s) || s.runtime.is_closed() || full {
            // We run under the session's lock: never drop the last handle here.
            let rt = s.session.runtime_handle();
            wtdatagram::transport::release_outside_lock(s, &rt);
            return false;
        }
        s.pending.fetch_add(1, Ordering::AcqRel);
        s.pending_bytes.fetch_add(payload.len(), Ordering::AcqRel);
        let rt = s.runtime.clone();
        rt.events.push(Event::Datagram {
            session: s,
            data: payload,
        });
        true
    }
    fn on_datagrams(&self, burst: &mut Vec<Bytes>) -> (u64, u64) {
        let mut dropped = (0u64, 0u64);
        let Some(s) = self.session.upgrade() else {
            for d in burst.drain(..) {
                dropped.0 += 1;
                dropped.1 += d.len() as u64;
            }
            return dropped;
        };
        let rt = s.runtime.clone();
        if EventSource::is_freed(&*s) || rt.is_closed() {
            for d in burst.drain(..) {
                dropped.0 += 1;
                dropped.1 += d.len() as u64;
            }
        } else {
            // The whole burst goes into the event queue under one lock, with one wake-up.
            let (cap, cap_bytes) = (self.cap, self.cap_bytes);
            rt.events.push_many(burst.drain(..).filter_map(|payload| {
                let pending = s.pending.load(Ordering::Acquire);
                let full = pending >= cap
                    || (pending > 0
                        && s.pending_bytes.load(Ordering::Acquire) + payload.len() > cap_bytes);
                if full {
                    dropped.0 += 1;
                    dropped.1 += payload.len() as u64;
                    return None;
                }
                s.pending.fetch_add(1, Ordering::AcqRel);
                s.pending_bytes.fetch_add(payload.len(), Ordering::AcqRel);
                Some(Event::Datagram {
                    session: s.clone(),
                    data: payload,
                })
            }));
        }
        // We run under the session's lock: never drop the last handle here.
        let handle = s.session.runtime_handle();
        wtdatagram::transport::release_outside_lock(s, &handle);
        dropped
    }

    fn on_closed(&self, _reason: &CloseReason) {}
}

/// Wrap an established session in a handle for C, wiring its events.
pub(crate) fn make_session(
    session: Session,
    runtime: Arc<RuntimeInner>,
    events_mode: bool,
    cap: usize,
) -> *mut wtd_session {
    let core = Arc::new(SessionHandle {
        spin: SpinHint::default(),
        path: CString::new(session.request().path.clone()).unwrap_or_default(),
        session,
        runtime,
        userdata: AtomicPtr::new(std::ptr::null_mut()),
        freed: AtomicBool::new(false),
        pending: AtomicUsize::new(0),
        pending_bytes: AtomicUsize::new(0),
        events_mode,
    });
    if events_mode {
        // A new session's datagrams are never claimed yet, so this cannot fail; a
        // stream created later on this handle takes them over from the events.
        let _ = core.session.set_datagram_handler(Arc::new(EventHandler {
            session: Arc::downgrade(&core),
            cap: cap.max(1),
            cap_bytes: core.session.transport_options().recv_queue_bytes.max(1),
        }));
    }
    let weak = Arc::downgrade(&core);
    core.session.on_close(move |reason| {
        if let Some(s) = weak.upgrade() {
            if s.runtime.is_closed() {
                // Nothing will deliver the event; do not drop the last handle under the lock.
                let rt = s.session.runtime_handle();
                wtdatagram::transport::release_outside_lock(s, &rt);
                return;
            }
            let rt = s.runtime.clone();
            rt.events.push(Event::SessionClosed {
                session: s,
                reason: reason.clone(),
            });
        }
    });
    handle::into_c_arc(core)
}

/// Send a datagram without waiting (the payload is copied). WTD_OK: queued for sending.
/// WTD_ERR_WOULD_BLOCK: the connection's send buffer is full, nothing was queued and no
/// earlier datagram was dropped. WTD_ERR_TOO_LARGE: longer than
/// wtd_session_max_datagram_size. WTD_ERR_CLOSED: the session is closed.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_send(
    session: *const wtd_session,
    data: *const u8,
    len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(session, "session") }?;
        // SAFETY: `data` is NULL or readable for its length (the header's contract).
        let d = unsafe { bytes(data, len, "data") }?;
        match s.session.try_send_datagram(d)? {
            true => Ok(()),
            false => Err(FfiError::new(
                WTD_ERR_WOULD_BLOCK,
                "send buffer full; datagram not queued",
            )),
        }
    })
}

/// Send a datagram, waiting up to `timeout_ms` (negative: forever) for room in the send
/// buffer (backpressure). Errors as wtd_session_send, plus WTD_ERR_TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_send_wait(
    session: *const wtd_session,
    data: *const u8,
    len: usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(session, "session") }?;
        // SAFETY: `data` is NULL or readable for its length (the header's contract).
        let d = unsafe { bytes(data, len, "data") }?;
        s.runtime.wait_here(timeout_ms, s.session.send_datagram(d))
    })
}

/// Send `count` datagrams (`items[i]`, each copied) in order, waiting up to `timeout_ms`
/// in all (negative: forever) for room in the send buffer, like wtd_session_send_wait
/// for each, in one call. WTD_OK with `*out_sent` = how many were queued, the first
/// `*out_sent` of `items`: all of them, or fewer when the time ran out or a later one
/// failed (call again with the rest to learn why). An error, and nothing queued, when
/// not even the first could be queued: as wtd_session_send_wait (WTD_ERR_TIMEOUT,
/// WTD_ERR_TOO_LARGE, WTD_ERR_CLOSED, ...). `count` 0: WTD_OK, `*out_sent` = 0.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_send_multiple(
    session: *const wtd_session,
    items: *const wtd_buffer,
    count: usize,
    timeout_ms: i32,
    out_sent: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(session, "session") }?;
        // SAFETY: `out_sent` is NULL or writable (the header's contract).
        let o = unsafe { out(out_sent, "out_sent") }?;
        // SAFETY: `items` is NULL or `count` readable buffers (the header's contract).
        let items = unsafe { buffers(items, count, "items") }?;
        let deadline = (timeout_ms >= 0).then(|| {
            std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64)
        });
        let mut sent = 0usize;
        for d in items {
            let left = match deadline {
                None => -1,
                Some(end) => end
                    .saturating_duration_since(std::time::Instant::now())
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
            };
            match s.runtime.wait_here(left, s.session.send_datagram(d)) {
                Ok(()) => sent += 1,
                Err(e) if sent == 0 => return Err(e),
                Err(_) => break,
            }
        }
        *o = sent;
        Ok(())
    })
}

/// Receive up to `max_count` datagrams in one call (only when datagram events are off,
/// as wtd_session_recv): waits up to `timeout_ms` (0: poll, negative: forever) for the
/// first, then takes what is queued, without waiting again. They are packed back to
/// back into `buf` (`cap` bytes), with their sizes in `lens[0..*out_count]`. A datagram
/// that does not fit stays queued for the next call; if not even the first fits,
/// WTD_ERR_BUFFER_TOO_SMALL with `lens[0]` set to its size. WTD_ERR_TIMEOUT when none
/// came; WTD_ERR_CLOSED once the session closed and its queue is empty. Waits like
/// wtd_session_recv.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_recv_multiple(
    session: *const wtd_session,
    buf: *mut u8,
    cap: usize,
    lens: *mut usize,
    max_count: usize,
    out_count: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(session, "session") }?;
        // SAFETY: `out_count` is NULL or writable (the header's contract).
        let oc = unsafe { out(out_count, "out_count") }?;
        // SAFETY: `buf` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf, cap, "buf") }?;
        // SAFETY: `lens` is NULL or writable for its capacity (the header's contract).
        let lens = unsafe { out_buf(lens, max_count, "lens") }?;
        if max_count == 0 {
            *oc = 0;
            return Ok(());
        }
        if s.events_mode {
            return Err(FfiError::new(
                WTD_ERR_INVALID_STATE,
                "datagrams are delivered as events on this session",
            ));
        }
        let first = recv_next(s, timeout_ms)?;
        if first.len() > cap {
            lens[0].write(first.len());
            let n = first.len();
            s.session.unreceive_datagram(first);
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                format!("datagram of {n} bytes does not fit in {cap}"),
            ));
        }
        let mut used = first.len();
        let mut rest = Vec::new();
        if max_count > 1 {
            s.session.recv_queued(max_count - 1, &mut rest, |len| {
                if used + len > cap {
                    return false;
                }
                used += len;
                true
            });
        }
        let mut at = 0usize;
        for (i, d) in std::iter::once(&first).chain(rest.iter()).enumerate() {
            put(buf, at, d);
            lens[i].write(d.len());
            at += d.len();
        }
        *oc = 1 + rest.len();
        Ok(())
    })
}

/// The next queued datagram, waiting up to `timeout_ms` (0: poll, negative: forever) on
/// this thread itself: no runtime task or timer per call (see `blocking`).
fn recv_next(s: &SessionHandle, timeout_ms: i32) -> FfiResult<Bytes> {
    if timeout_ms == 0 {
        // A look, not a wait (event loops poll this way after DATAGRAMS_READY).
        return s
            .session
            .try_recv_datagram()?
            .ok_or_else(|| FfiError::new(WTD_ERR_TIMEOUT, "no datagram queued"));
    }
    let deadline = (timeout_ms > 0)
        .then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64));
    if tokio::runtime::Handle::try_current().is_ok() {
        if let Some(d) = s.session.try_recv_datagram()? {
            return Ok(d);
        }
        return Err(FfiError::new(
            WTD_ERR_WOULD_DEADLOCK,
            "blocking call made from inside the library's async runtime",
        ));
    }
    let rt = &s.runtime;
    match blocking::recv(&s.session, &s.spin, deadline, &|| rt.is_closed())? {
        Some(d) => Ok(d),
        None if rt.is_closed() => Err(FfiError::new(
            WTD_ERR_CLOSED,
            "the session's runtime has been freed",
        )),
        None => Err(FfiError::new(
            WTD_ERR_TIMEOUT,
            format!("timed out after {timeout_ms} ms"),
        )),
    }
}

/// Receive the next datagram into `buf` (only when datagram events are off, see
/// wtd_transport_config_set_datagram_events; else WTD_ERR_INVALID_STATE). Waits up to
/// `timeout_ms` (0: poll, negative: forever); WTD_ERR_TIMEOUT if none came. If `cap` is
/// too small the datagram stays queued, `*out_len` is set to its size and
/// WTD_ERR_BUFFER_TOO_SMALL is returned. Queued datagrams are still returned after the
/// session closed; then WTD_ERR_CLOSED. The calling thread waits itself (no runtime
/// task): when the session's previous wait ended within 250 us it first watches the
/// queue that long, yielding the CPU between looks, then sleeps; a thread blocked
/// without a timeout returns WTD_ERR_CLOSED within 100 ms of wtd_runtime_free.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_recv(
    session: *const wtd_session,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(session, "session") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let out_len = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf, cap, "buf") }?;
        if s.events_mode {
            return Err(FfiError::new(
                WTD_ERR_INVALID_STATE,
                "datagrams are delivered as events on this session",
            ));
        }
        let d = recv_next(s, timeout_ms)?;
        if d.len() > cap {
            *out_len = d.len();
            let n = d.len();
            s.session.unreceive_datagram(d);
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                format!("datagram of {n} bytes does not fit in {cap}"),
            ));
        }
        put(buf, 0, &d);
        *out_len = d.len();
        Ok(())
    })
}

/// Ask for one WTD_EVENT_DATAGRAMS_READY event about `session` once a datagram waits in
/// its queue (only when datagram events are off, as wtd_session_recv; else
/// WTD_ERR_INVALID_STATE): at once if one waits now, else when the next arrives. It is
/// readiness, like EPOLLONESHOT: after the event, receive with a timeout of 0 until
/// WTD_ERR_TIMEOUT, then call this again. A second call before the event came still
/// gives one event. So one thread can serve many sessions without a thread blocked in
/// wtd_session_recv for each. WTD_ERR_CLOSED once the session closed and its queue is
/// empty (no event will come; SESSION_CLOSED is the session's last event, and an event
/// asked for before the close does not come either); WTD_ERR_INVALID_STATE also when a
/// stream or layer took the session's datagrams over.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_notify_readable(session: *const wtd_session) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(session, "session") }?;
        if s.events_mode {
            return Err(FfiError::new(
                WTD_ERR_INVALID_STATE,
                "datagrams are delivered as events on this session",
            ));
        }
        // SAFETY: as above; the hook keeps only a weak reference, so a registered hook
        // never keeps a session the application freed.
        let weak = Arc::downgrade(&unsafe { handle::clone_arc(session, "session") }?);
        s.session.notify_readable(Box::new(move || {
            let Some(s) = weak.upgrade() else { return };
            if EventSource::is_freed(&*s) || s.runtime.is_closed() {
                // Nobody will take the event. If the application freed its handle
                // meanwhile this may be the last one: it is not destroyed (closing the
                // session) on the runtime thread that delivers datagrams.
                let rt = s.session.runtime_handle();
                wtdatagram::transport::release_outside_lock(s, &rt);
                return;
            }
            let rt = s.runtime.clone();
            rt.events.push(Event::DatagramsReady { session: s });
        }))?;
        Ok(())
    })
}

/// The largest payload a send accepts right now (it can grow with path MTU discovery).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_max_datagram_size(
    session: *const wtd_session,
    out_size: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(session, "session") }?;
        // SAFETY: `out_size` is NULL or writable (the header's contract).
        let o = unsafe { out(out_size, "out_size") }?;
        *o = s.session.max_datagram_size()?;
        Ok(())
    })
}

/// Close the session with an application code and a UTF-8 reason (at most 1024 bytes
/// are sent). The peer sees both. No-op if already closed. A SESSION_CLOSED event with
/// WTD_CLOSE_LOCAL follows.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_close(
    session: *const wtd_session,
    code: u32,
    reason: *const u8,
    reason_len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(session, "session") }?;
        // SAFETY: `reason` is NULL or readable for its length (the header's contract).
        let r = unsafe { utf8(reason, reason_len, "reason") }?;
        s.session.close(code, r);
        Ok(())
    })
}

/// Whether the session has closed, or its runtime was freed (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_is_closed(session: *const wtd_session) -> bool {
    guard_value(false, || {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        unsafe { handle::get(session) }
            .is_some_and(|s| s.runtime.is_closed() || s.session.is_closed())
    })
}

/// How a session ended.
#[repr(C)]
pub struct wtd_close_info {
    pub kind: wtd_close_kind,
    /// Application code (LOCAL/REMOTE) or HTTP/3 / QUIC error code (other kinds).
    pub code: u64,
    /// Bytes of `reason` before its terminating NUL.
    pub reason_len: usize,
    /// UTF-8 reason, NUL-terminated, truncated to 1024 bytes.
    pub reason: [c_char; 1025],
}

/// Write `r` into C's `wtd_close_info` (whose old contents, an enum field among them,
/// may be anything: it is written whole, never read).
fn fill_close_info(out: &mut std::mem::MaybeUninit<wtd_close_info>, r: &CloseReason) {
    let (kind, code, text) = close_parts(r);
    let text = wtdatagram_proto::capsule::truncate_utf8(&text, 1024);
    let mut info = wtd_close_info {
        kind,
        code,
        reason_len: text.len(),
        reason: [0; 1025],
    };
    for (i, b) in text.bytes().enumerate() {
        info.reason[i] = b as c_char;
    }
    out.write(info);
}

/// Why the session ended. WTD_ERR_INVALID_STATE while it is open.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_close_info(
    session: *const wtd_session,
    out_info: *mut wtd_close_info,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        // SAFETY: `out_info` is NULL or writable (the header's contract).
        let o = unsafe { out_uninit(out_info, "out_info") }?;
        let r = s
            .session
            .close_reason()
            .ok_or_else(|| FfiError::new(WTD_ERR_INVALID_STATE, "session is open"))?;
        fill_close_info(o, &r);
        Ok(())
    })
}

/// Wait up to `timeout_ms` (negative: forever) for the session to close, then fill
/// `out_info` (may be NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_wait_closed(
    session: *const wtd_session,
    timeout_ms: i32,
    out_info: *mut wtd_close_info,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        let r = match s.session.close_reason() {
            Some(r) => r,
            None => s.runtime.block_on(timeout_ms, s.session.closed())?,
        };
        if !out_info.is_null() {
            // SAFETY: `out_info` is writable (the header's contract).
            let o = unsafe { out_uninit(out_info, "out_info") }?;
            fill_close_info(o, &r);
        }
        Ok(())
    })
}

/// Counters of a session.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_session_stats {
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub datagrams_received: u64,
    pub bytes_received: u64,
    /// Received datagrams dropped because the session's queue (or event budget) was full.
    pub recv_dropped: u64,
    /// Non-blocking sends that returned WTD_ERR_WOULD_BLOCK.
    pub send_would_block: u64,
    /// Sends refused with WTD_ERR_TOO_LARGE.
    pub send_too_large: u64,
    /// Datagrams on this session's connection addressed to no open session (dropped).
    pub connection_unknown_session: u64,
}

/// Read the session's counters.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_get_stats(
    session: *const wtd_session,
    out_stats: *mut wtd_session_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        // SAFETY: `out_stats` is NULL or writable (the header's contract).
        let o = unsafe { out(out_stats, "out_stats") }?;
        let st = s.session.stats();
        *o = wtd_session_stats {
            datagrams_sent: st.datagrams_sent,
            bytes_sent: st.bytes_sent,
            datagrams_received: st.datagrams_received,
            bytes_received: st.bytes_received,
            recv_dropped: st.recv_dropped,
            send_would_block: st.send_would_block,
            send_too_large: st.send_too_large,
            connection_unknown_session: s.session.connection_unknown_session_datagrams(),
        };
        Ok(())
    })
}

/// The session id (its CONNECT stream's QUIC stream id); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_id(session: *const wtd_session) -> u64 {
    guard_value(0, || {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        unsafe { handle::get(session) }.map_or(0, |s| s.session.id())
    })
}

/// The request path (with query) that opened the session; valid while the handle lives.
/// NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_path(session: *const wtd_session) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        unsafe { handle::get(session) }.map_or(std::ptr::null(), |s| s.path.as_ptr())
    })
}

/// The session's WebTransport dialect (WTD_DIALECT_DRAFT02 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_dialect(session: *const wtd_session) -> wtd_dialect {
    guard_value(wtd_dialect::WTD_DIALECT_DRAFT02, || {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        unsafe { handle::get(session) }.map_or(wtd_dialect::WTD_DIALECT_DRAFT02, |s| {
            s.session.request().dialect.into()
        })
    })
}

/// Attach an application pointer, returned in this session's events and by
/// wtd_session_userdata. The library never dereferences or frees it.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_set_userdata(
    session: *const wtd_session,
    userdata: *mut c_void,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(session, "session") }?
            .userdata
            .store(userdata, Ordering::Release);
        Ok(())
    })
}

/// The pointer given to wtd_session_set_userdata (NULL if none, or for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_userdata(session: *const wtd_session) -> *mut c_void {
    guard_value(std::ptr::null_mut(), || {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        unsafe { handle::get(session) }.map_or(std::ptr::null_mut(), |s| s.userdata())
    })
}

/// Close the session (code 0) if it is open and release the handle. Events of this
/// session still queued are discarded, so no callback sees it afterwards. NULL: no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_free(session: *mut wtd_session) {
    if session.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: a live session the caller gives up (the header's contract).
        if let Some(s) = unsafe { handle::take_arc(session) } {
            s.freed.store(true, Ordering::Release);
            s.session.close(0, "");
        }
    })
}

/// Transport statistics of a QUIC connection (shared by all its sessions), read with
/// wtd_session_connection_stats or wtd_connection_get_stats. Set `size` to
/// sizeof(wtd_connection_stats) before the call; the library fills only the fields that
/// fit in `size` bytes, so programs built against an older, shorter version keep working
/// when fields are added at the end.
///
/// Figures quinn 0.11 does not expose read UINT64_MAX (documented per field).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wtd_connection_stats {
    /// Set by the caller: sizeof(wtd_connection_stats).
    pub size: usize,
    /// Smoothed round-trip time in microseconds (RFC 9002 §5.3); the initial RTT
    /// (wtd_transport_config_set_initial_rtt_ms) until the first sample.
    pub rtt_us: u64,
    /// RTT variance in microseconds: UINT64_MAX, quinn 0.11 does not expose it.
    pub rtt_variance_us: u64,
    /// Smallest RTT sample in microseconds. Can be 0 on loopback: quinn saturates a sample
    /// taken against a receive time earlier than the send, and truncation drops sub-microsecond ones.
    pub min_rtt_us: u64,
    /// Congestion window in bytes.
    pub congestion_window: u64,
    /// Bytes sent and neither acknowledged nor declared lost: UINT64_MAX, quinn 0.11 does
    /// not expose it.
    pub bytes_in_flight: u64,
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// UDP datagrams received (quinn counts datagrams, not packets; a datagram carries
    /// several coalesced QUIC packets only during the handshake).
    pub packets_received: u64,
    /// QUIC packets declared lost.
    pub packets_lost: u64,
    /// Bytes of the packets declared lost.
    pub bytes_lost: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// Congestion events (loss or ECN signals that reduced the congestion window).
    pub congestion_events: u64,
    /// Current path MTU: the largest UDP payload sent now (path MTU discovery moves it
    /// from the initial MTU; see wtd_transport_config_set_mtu_discovery).
    pub path_mtu: u64,
    /// Path MTU black holes detected (the path MTU fell back to 1200).
    pub black_holes_detected: u64,
    /// QUIC DATAGRAM frames sent on the connection (all sessions together).
    pub datagrams_sent: u64,
    /// QUIC DATAGRAM frames received on the connection (all sessions together).
    pub datagrams_received: u64,
    /// Received datagrams the transport dropped before the library read them (quinn's
    /// datagram receive buffer was full; wtd_transport_config_set_datagram_buffers): frames
    /// received minus datagrams read, so a datagram waiting in that buffer at the moment
    /// of the call counts until it is read. Datagrams the library then dropped from a full
    /// session queue are in wtd_session_stats.recv_dropped.
    pub datagrams_dropped: u64,
    /// Slow-start threshold in bytes; UINT64_MAX while the controller has none (CUBIC and
    /// NewReno before their first congestion event, BBR always).
    pub slow_start_threshold: u64,
    /// The controller's pacing rate in bits/s (BBR: 0 until it has a bandwidth
    /// estimate); UINT64_MAX for controllers that set none (CUBIC, NewReno: quinn paces
    /// them by congestion window and RTT).
    pub pacing_rate: u64,
    /// The congestion controller in use on the connection, as quinn reports it.
    pub congestion_controller: wtd_congestion_controller,
}
versioned!(
    wtd_connection_stats,
    first_version = std::mem::offset_of!(wtd_connection_stats, rtt_us) + 8
);

/// Write `st` into the caller's `out`, at most the `size` bytes it announced.
///
/// # Safety
/// `out` must be NULL or point to a caller-owned wtd_connection_stats of this or an
/// older, shorter version, writable for the `size` it holds.
pub(crate) unsafe fn fill_connection_stats(
    out: *mut wtd_connection_stats,
    st: &ConnectionStats,
) -> FfiResult<()> {
    let us = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let full = wtd_connection_stats {
        size: 0,
        rtt_us: us(st.rtt),
        rtt_variance_us: st.rtt_variance.map_or(u64::MAX, us),
        min_rtt_us: us(st.min_rtt),
        congestion_window: st.congestion_window,
        bytes_in_flight: st.bytes_in_flight.unwrap_or(u64::MAX),
        packets_sent: st.packets_sent,
        packets_received: st.packets_received,
        packets_lost: st.packets_lost,
        bytes_lost: st.bytes_lost,
        bytes_sent: st.bytes_sent,
        bytes_received: st.bytes_received,
        congestion_events: st.congestion_events,
        path_mtu: u64::from(st.path_mtu),
        black_holes_detected: st.black_holes_detected,
        datagrams_sent: st.datagrams_sent,
        datagrams_received: st.datagrams_received,
        datagrams_dropped: st.datagrams_dropped,
        slow_start_threshold: st.slow_start_threshold.unwrap_or(u64::MAX),
        pacing_rate: st.pacing_rate.unwrap_or(u64::MAX),
        congestion_controller: st.congestion_controller.into(),
    };
    // SAFETY: this function's contract is `versioned::write`'s.
    unsafe { versioned::write(out, full) }
}

/// Read the transport statistics of the session's QUIC connection (RTT, congestion
/// window, loss, path MTU; see wtd_connection_stats) into `out_stats`, whose `size` the
/// caller set. Works after the session closed too (the connection's last figures).
/// WTD_ERR_INVALID_ARGUMENT if `size` is smaller than the first version of the struct
/// (`size` plus `rtt_us`).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_connection_stats(
    session: *const wtd_session,
    out_stats: *mut wtd_connection_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        let st = s.session.connection_stats();
        // SAFETY: `out_stats` is NULL or a caller-owned struct as the header requires.
        unsafe { fill_connection_stats(out_stats, &st) }
    })
}
