//! Broadcaster handles (`wtd_broadcaster`): one datagram to many sessions and streams,
//! never waiting for any of them. See `wtdatagram::datagram::broadcast`.

use std::sync::Arc;
use std::time::Duration;

use super::error::*;
use super::handle::{self, Boxed, Castable};
use super::runtime::RuntimeInner;
use super::types::{wtd_broadcaster, wtd_runtime, wtd_session, wtd_stream};
use wtd_result::*;
use wtdatagram::datagram::broadcast::DatagramBroadcaster;

/// What `wtd_broadcaster` holds.
pub(crate) struct BroadcasterHandle {
    /// The broadcaster (cluster.rs joins it to channels).
    pub(crate) b: DatagramBroadcaster,
    runtime: Arc<RuntimeInner>,
}

// SAFETY: wtd_broadcaster pointers are made only by into_c_box from a BroadcasterHandle.
unsafe impl Castable for wtd_broadcaster {
    type Rust = BroadcasterHandle;
    type Own = Boxed;

    /// A handle whose runtime was freed can do no I/O.
    fn check_live(h: &BroadcasterHandle) -> FfiResult<()> {
        h.runtime.check_open("broadcaster")
    }
}

fn not_found(what: &str) -> FfiError {
    FfiError::new(WTD_ERR_NOT_FOUND, format!("the {what} is not a member"))
}

/// Create an empty broadcaster on `runtime`.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_new(
    runtime: *const wtd_runtime,
    out_broadcaster: *mut *mut wtd_broadcaster,
) -> wtd_result {
    guard(|| {
        // SAFETY: `runtime` is NULL or a live handle (the header's contract).
        let rt = unsafe { handle::borrow(runtime, "runtime") }?;
        // SAFETY: `out_broadcaster` is NULL or writable (the header's contract).
        let o = unsafe { out(out_broadcaster, "out_broadcaster") }?;
        if rt.inner.is_closed() {
            return Err(FfiError::new(WTD_ERR_CLOSED, "the runtime has been freed"));
        }
        *o = handle::into_c_box(BroadcasterHandle {
            b: DatagramBroadcaster::new(),
            runtime: rt.inner.clone(),
        });
        Ok(())
    })
}

/// Shut the broadcaster down and release it. NULL is a no-op. The members themselves
/// stay open.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_free(broadcaster: *mut wtd_broadcaster) {
    guard_value((), || {
        // SAFETY: NULL or a live handle the caller gives up (the header's contract).
        let Some(b) = (unsafe { handle::take_box(broadcaster) }) else {
            return;
        };
        b.b.shutdown();
    });
}

/// Add a session: broadcasts reach it as raw datagrams, without waiting (a full
/// connection send buffer means "not accepted"); priority and time-to-live do not apply.
/// It leaves the set by itself when it closes (including wtd_session_free). Adding a
/// member again is a no-op. WTD_ERR_CLOSED for a closed session, WTD_ERR_INVALID_STATE
/// after wtd_broadcaster_shutdown.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_add_session(
    broadcaster: *const wtd_broadcaster,
    session: *const wtd_session,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let b = unsafe { handle::live(broadcaster, "broadcaster") }?;
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        b.b.add_session(s.session.clone())?;
        Ok(())
    })
}

/// Remove a session; WTD_ERR_NOT_FOUND if it is not a member.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_remove_session(
    broadcaster: *const wtd_broadcaster,
    session: *const wtd_session,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let b = unsafe { handle::borrow(broadcaster, "broadcaster") }?;
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        if !b.b.remove_session(&s.session) {
            return Err(not_found("session"));
        }
        Ok(())
    })
}

/// Add a datagram stream: broadcasts are queued on it with the broadcast's priority
/// and time-to-live (a full queue, too large or closed means "not accepted"). It leaves
/// the set at the first broadcast after it closed (including wtd_stream_free). Adding a
/// member again is a no-op. WTD_ERR_CLOSED for a closed stream, WTD_ERR_INVALID_STATE
/// after wtd_broadcaster_shutdown.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_add_stream(
    broadcaster: *const wtd_broadcaster,
    stream: *const wtd_stream,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let b = unsafe { handle::live(broadcaster, "broadcaster") }?;
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(stream, "stream") }?;
        b.b.add_stream(s.inner_stream().clone())?;
        Ok(())
    })
}

/// Remove a stream; WTD_ERR_NOT_FOUND if it is not a member.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_remove_stream(
    broadcaster: *const wtd_broadcaster,
    stream: *const wtd_stream,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let b = unsafe { handle::borrow(broadcaster, "broadcaster") }?;
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(stream, "stream") }?;
        if !b.b.remove_stream(s.inner_stream()) {
            return Err(not_found("stream"));
        }
        Ok(())
    })
}

/// Sessions in the set (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_session_count(
    broadcaster: *const wtd_broadcaster,
) -> usize {
    guard_value(0, || {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        unsafe { handle::get(broadcaster) }.map_or(0, |b| b.b.session_count())
    })
}

/// Streams in the set (0 for NULL); closed ones leave at the next broadcast.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_stream_count(
    broadcaster: *const wtd_broadcaster,
) -> usize {
    guard_value(0, || {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        unsafe { handle::get(broadcaster) }.map_or(0, |b| b.b.stream_count())
    })
}

/// Send a datagram (copied once, shared by all) to every member without waiting for
/// any; `*out_accepted` gets how many accepted it (may be NULL). `priority` 0..=2 and
/// `ttl_ms` (<= 0: none) apply to streams only. WTD_ERR_INVALID_ARGUMENT for a bad
/// priority. After wtd_broadcaster_shutdown it reaches nobody (0, WTD_OK).
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_broadcast(
    broadcaster: *const wtd_broadcaster,
    data: *const u8,
    len: usize,
    priority: u8,
    ttl_ms: i32,
    out_accepted: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let b = unsafe { handle::live(broadcaster, "broadcaster") }?;
        // SAFETY: `data` is NULL or readable for its length (the header's contract).
        let d = unsafe { bytes(data, len, "data") }?;
        let ttl = (ttl_ms > 0).then(|| Duration::from_millis(ttl_ms as u64));
        let n = b.b.broadcast(d, priority, ttl)?;
        // SAFETY: `out_accepted` is NULL or writable (the header's contract).
        if let Some(o) = unsafe { out_accepted.as_mut() } {
            *o = n;
        }
        Ok(())
    })
}

/// Empty the set and refuse new members (WTD_ERR_INVALID_STATE) from now on.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_shutdown(
    broadcaster: *const wtd_broadcaster,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(broadcaster, "broadcaster") }?
            .b
            .shutdown();
        Ok(())
    })
}
