//! Broadcaster handles (`wtd_broadcaster`): one datagram to many sessions and streams,
//! never waiting for any of them. See `wtdatagram::datagram::broadcast`.

use std::sync::Arc;
use std::time::Duration;

use super::error::*;
use super::runtime::{wtd_runtime, RuntimeInner};
use super::session::wtd_session;
use super::stream::wtd_stream;
use wtdatagram::datagram::broadcast::DatagramBroadcaster;
use wtd_result::*;

/// A set of sessions and datagram streams to broadcast to. Thread-safe.
pub struct wtd_broadcaster {
    b: DatagramBroadcaster,
    runtime: Arc<RuntimeInner>,
}

unsafe fn live<'a>(b: *const wtd_broadcaster) -> FfiResult<&'a wtd_broadcaster> {
    let b = arg(b, "broadcaster")?;
    if b.runtime.is_closed() {
        return Err(FfiError::new(
            WTD_ERR_CLOSED,
            "the broadcaster's runtime has been freed",
        ));
    }
    Ok(b)
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
        let rt = arg(runtime, "runtime")?;
        let o = out(out_broadcaster, "out_broadcaster")?;
        if rt.inner.is_closed() {
            return Err(FfiError::new(WTD_ERR_CLOSED, "the runtime has been freed"));
        }
        *o = Box::into_raw(Box::new(wtd_broadcaster {
            b: DatagramBroadcaster::new(),
            runtime: rt.inner.clone(),
        }));
        Ok(())
    })
}

/// Shut the broadcaster down and release it. NULL is a no-op. The members themselves
/// stay open.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_free(broadcaster: *mut wtd_broadcaster) {
    if !broadcaster.is_null() {
        guard_value((), || {
            let b = Box::from_raw(broadcaster);
            b.b.shutdown();
        });
    }
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
        let b = live(broadcaster)?;
        let s = arg(session, "session")?;
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
        let b = arg(broadcaster, "broadcaster")?;
        let s = arg(session, "session")?;
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
        let b = live(broadcaster)?;
        let s = arg(stream, "stream")?;
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
        let b = arg(broadcaster, "broadcaster")?;
        let s = arg(stream, "stream")?;
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
        broadcaster.as_ref().map_or(0, |b| b.b.session_count())
    })
}

/// Streams in the set (0 for NULL); closed ones leave at the next broadcast.
#[no_mangle]
pub unsafe extern "C" fn wtd_broadcaster_stream_count(
    broadcaster: *const wtd_broadcaster,
) -> usize {
    guard_value(0, || broadcaster.as_ref().map_or(0, |b| b.b.stream_count()))
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
        let b = live(broadcaster)?;
        let d = bytes(data, len, "data")?;
        let ttl = (ttl_ms > 0).then(|| Duration::from_millis(ttl_ms as u64));
        let n = b.b.broadcast(d, priority, ttl)?;
        if let Some(o) = out_accepted.as_mut() {
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
        arg(broadcaster, "broadcaster")?.b.shutdown();
        Ok(())
    })
}
