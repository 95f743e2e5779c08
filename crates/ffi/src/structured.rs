//! Structured objects over datagrams (`wtd_structured`), wire-compatible with
//! pywebtransport's StructuredDatagramTransport: every datagram is
//! `[u16 big-endian type id][serialized object]`. In C an object is its type id plus its
//! already-serialized bytes in the transport's format (JSON or MessagePack).

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::callback::CallbackSlot;
use super::error::*;
use super::handle::{self, Boxed, Castable};
use super::runtime::RuntimeInner;
use super::session::SessionHandle;
use super::types::{wtd_session, wtd_structured, wtd_userdata_free};
use wtd_result::*;
use wtdatagram::datagram::structured::{
    JsonSerializer, MsgPackSerializer, ReceivedObject, Serializer, StructuredDatagramTransport,
    StructuredError, StructuredErrorKind, TypeRegistry,
};

/// The serialization format of a structured transport.
#[repr(C)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wtd_serializer {
    /// JSON exactly as pywebtransport's JSONSerializer sends it, Python's
    /// `json.dumps(obj)` with its default separators `(", ", ": ")`:
    /// `{"name": "zo\u00eb", "x": 1.0}` (non-ASCII escaped as \uXXXX, floats spelled
    /// like Python's repr, NaN/Infinity, members in order).
    WTD_SERIALIZER_JSON = 0,
    /// MessagePack exactly as pywebtransport's MsgPackSerializer sends it
    /// (msgpack-python's `packb(obj)`): an object is a map of field names to values,
    /// bytes are bin, every float a float 64, map keys keep their type.
    WTD_SERIALIZER_MSGPACK = 1,
    /// JSON as WTD_SERIALIZER_JSON but with compact separators `(",", ":")`:
    /// `{"name":"zo\u00eb","x":1.0}` (pywebtransport's
    /// `JSONSerializer(dump_kwargs={"separators": (",", ":")})`).
    WTD_SERIALIZER_JSON_COMPACT = 2,
}

/// This module's C enums as exported functions receive them (see `error::CEnum`).
pub(crate) mod c {
    /// cbindgen:ignore
    pub type wtd_serializer = crate::error::CEnum<super::wtd_serializer>;
}

c_enum!(wtd_serializer {
    WTD_SERIALIZER_JSON,
    WTD_SERIALIZER_MSGPACK,
    WTD_SERIALIZER_JSON_COMPACT,
});

/// What was wrong with a received datagram.
#[repr(C)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wtd_structured_error_kind {
    /// Its type id is not registered.
    WTD_STRUCTURED_UNKNOWN_TYPE = 0,
    /// It is shorter than the 2-byte type id header.
    WTD_STRUCTURED_TOO_SHORT = 1,
    /// Its payload does not decode in the transport's format.
    WTD_STRUCTURED_DECODE_ERROR = 2,
}

/// A received datagram the transport rejected (it was counted and skipped).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wtd_structured_error {
    pub kind: wtd_structured_error_kind,
    /// The datagram's type id (0 when `has_type_id` is false).
    pub type_id: u16,
    /// False for TOO_SHORT: the datagram had no complete type id.
    pub has_type_id: bool,
    /// Size of the whole datagram in bytes.
    pub size: usize,
    /// Description, NUL-terminated (truncated to fit).
    pub message: [c_char; 256],
}

/// Counters of a structured transport.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_structured_stats {
    /// Objects queued for sending.
    pub sent: u64,
    /// Datagrams that decoded into objects (including those counted in queue_drops).
    pub received: u64,
    /// Datagrams with an unregistered type id.
    pub unknown_type: u64,
    /// Datagrams shorter than the 2-byte header.
    pub too_short: u64,
    /// Payloads that did not decode.
    pub decode_errors: u64,
    /// Decoded objects dropped because the object queue was full.
    pub queue_drops: u64,
}

/// Called for every rejected datagram with its report (borrowed for the call) and the
/// userdata given to wtd_structured_set_error_callback.
pub type wtd_structured_error_callback =
    Option<unsafe extern "C" fn(error: *const wtd_structured_error, userdata: *mut c_void)>;

/// What `wtd_structured` holds.
pub(crate) struct StructuredHandle {
    t: StructuredDatagramTransport,
    _session: Arc<SessionHandle>,
    runtime: Arc<RuntimeInner>,
    callback: Arc<CallbackSlot<wtd_structured_error>>,
}

// SAFETY: wtd_structured pointers are made only by into_c_box from a StructuredHandle.
unsafe impl Castable for wtd_structured {
    type Rust = StructuredHandle;
    type Own = Boxed;

    /// A handle whose runtime was freed can do no I/O.
    fn check_live(h: &StructuredHandle) -> FfiResult<()> {
        h.runtime.check_open("structured transport")
    }
}

fn c_error(e: &StructuredError) -> wtd_structured_error {
    use wtd_structured_error_kind::*;
    let mut message = [0 as c_char; 256];
    let bytes = e.message.as_bytes();
    let mut n = bytes.len().min(255);
    while n > 0 && !e.message.is_char_boundary(n) {
        n -= 1;
    }
    for (d, s) in message.iter_mut().zip(&bytes[..n]) {
        *d = *s as c_char;
    }
    wtd_structured_error {
        kind: match e.kind {
            StructuredErrorKind::UnknownType => WTD_STRUCTURED_UNKNOWN_TYPE,
            StructuredErrorKind::TooShort => WTD_STRUCTURED_TOO_SHORT,
            StructuredErrorKind::DecodeError => WTD_STRUCTURED_DECODE_ERROR,
        },
        type_id: e.type_id.unwrap_or(0),
        has_type_id: e.type_id.is_some(),
        size: e.data.len(),
        message,
    }
}

/// Create a structured transport on `session` with `serializer` and object queues of
/// `queue_size` (>= 1; pywebtransport uses 100). No type ids are registered yet (see
/// wtd_structured_register_type). The transport takes over the session's datagrams:
/// a session's datagrams have exactly one owner, so a second transport, a wtd_stream
/// or another datagram layer on the same session fails with WTD_ERR_INVALID_STATE
/// (and DATAGRAM events stop). WTD_ERR_CLOSED if the session is closed,
/// WTD_ERR_INVALID_ARGUMENT for a `serializer` that is no wtd_serializer. The session
/// handle must outlive the transport.
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_new(
    session: *mut wtd_session,
    serializer: c::wtd_serializer,
    queue_size: usize,
    out_structured: *mut *mut wtd_structured,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        // SAFETY: `out_structured` is NULL or writable (the header's contract).
        let o = unsafe { out(out_structured, "out_structured") }?;
        <wtd_session as Castable>::check_live(s)?;
        let ser: Arc<dyn Serializer> = match serializer.get("serializer")? {
            wtd_serializer::WTD_SERIALIZER_JSON => Arc::new(JsonSerializer::new()),
            wtd_serializer::WTD_SERIALIZER_MSGPACK => Arc::new(MsgPackSerializer),
            wtd_serializer::WTD_SERIALIZER_JSON_COMPACT => Arc::new(JsonSerializer::compact()),
        };
        let t = StructuredDatagramTransport::new(&s.session, ser, TypeRegistry::new(), queue_size)?;
        // SAFETY: `session` is a live handle (checked above; the header's contract).
        let session = unsafe { handle::clone_arc(session, "session") }?;
        *o = handle::into_c_box(StructuredHandle {
            t,
            runtime: session.runtime.clone(),
            _session: session,
            callback: Arc::new(CallbackSlot::new()),
        });
        Ok(())
    })
}

/// Close the transport and release it; the session stays open. No error callback
/// starts after this returns; the callback's userdata_free runs once (here, or after a
/// callback already running finishes). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_free(structured: *mut wtd_structured) {
    guard_value((), || {
        // SAFETY: NULL or a live handle the caller gives up (the header's contract).
        let Some(s) = (unsafe { handle::take_box(structured) }) else {
            return;
        };
        s.t.set_on_error(None);
        s.callback.clear();
        s.t.close();
    });
}

/// Register `type_id` as a known object type. Received datagrams with an unregistered
/// id are rejected (UNKNOWN_TYPE) and sending one is WTD_ERR_INVALID_ARGUMENT, as is
/// registering an id twice.
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_register_type(
    structured: *const wtd_structured,
    type_id: u16,
) -> wtd_result {
    guard(|| {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        Ok(unsafe { handle::borrow(structured, "structured") }?
            .t
            .register_untyped(type_id)?)
    })
}

/// Whether `type_id` is registered (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_is_registered(
    structured: *const wtd_structured,
    type_id: u16,
) -> bool {
    guard_value(false, || {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        unsafe { handle::get(structured) }.is_some_and(|s| s.t.is_registered(type_id))
    })
}

/// Send an object: `payload`/`len` is the object already serialized in the transport's
/// format. JSON must be JSON as Python's json.loads reads it (NaN and Infinity allowed)
/// and is sent re-emitted as the transport's serializer writes it (WTD_SERIALIZER_JSON:
/// `{"b": 1, "a": "\u00e9"}`, WTD_SERIALIZER_JSON_COMPACT: `{"b":1,"a":"\u00e9"}`,
/// members in their order); MessagePack must decode as exactly one MessagePack value
/// and is sent unchanged. WTD_ERR_INVALID_ARGUMENT for an unregistered id or a payload that
/// does not decode; otherwise as wtd_stream_send (priority 0, no time-to-live).
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_send(
    structured: *const wtd_structured,
    type_id: u16,
    payload: *const u8,
    len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(structured, "structured") }?;
        // SAFETY: `payload` is NULL or readable for its length (the header's contract).
        let p = unsafe { bytes(payload, len, "payload") }?;
        Ok(s.t.send_payload(type_id, p, 0, None)?)
    })
}

fn next_obj(s: &StructuredHandle, timeout_ms: i32) -> FfiResult<ReceivedObject> {
    if timeout_ms == 0 {
        return match s.t.try_receive_obj() {
            Some(o) => Ok(o),
            None if s.t.is_closed() => Err(FfiError::new(WTD_ERR_CLOSED, "transport closed")),
            None => Err(FfiError::new(WTD_ERR_TIMEOUT, "no object queued")),
        };
    }
    Ok(s.runtime.block_on(timeout_ms, s.t.receive_obj(None))??)
}

/// Receive the next object, waiting up to `timeout_ms` (0: no wait, negative: forever):
/// its type id and its serialized payload as received (without the header).
/// WTD_ERR_TIMEOUT when none came, WTD_ERR_CLOSED once closed and drained. If the
/// payload does not fit in `cap` bytes it stays queued, `*out_type_id` and `*out_len`
/// get its id and size, and WTD_ERR_BUFFER_TOO_SMALL is returned.
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_receive(
    structured: *const wtd_structured,
    out_type_id: *mut u16,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(structured, "structured") }?;
        // SAFETY: `out_type_id` is NULL or writable (the header's contract).
        let oid = unsafe { out(out_type_id, "out_type_id") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let olen = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf, cap, "buf") }?;
        let o = next_obj(s, timeout_ms)?;
        let n = o.payload.len();
        *oid = o.type_id;
        *olen = n;
        if n > cap {
            s.t.unreceive(o);
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                format!("object of {n} bytes does not fit in {cap}"),
            ));
        }
        put(buf, 0, &o.payload);
        Ok(())
    })
}

/// Take the next report of a rejected datagram (unknown type id, shorter than the
/// header, undecodable payload), waiting up to `timeout_ms` (0: no wait, negative:
/// forever). WTD_ERR_TIMEOUT when none came, WTD_ERR_CLOSED once closed and drained.
/// Reports queue up to the transport's queue_size (the oldest is dropped beyond).
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_next_error(
    structured: *const wtd_structured,
    out_error: *mut wtd_structured_error,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(structured, "structured") }?;
        // SAFETY: `out_error` is NULL or writable (the header's contract).
        let o = unsafe { out_uninit(out_error, "out_error") }?;
        let e = if timeout_ms == 0 {
            match s.t.try_next_error() {
                Some(e) => e,
                None if s.t.is_closed() => {
                    return Err(FfiError::new(WTD_ERR_CLOSED, "transport closed"))
                }
                None => return Err(FfiError::new(WTD_ERR_TIMEOUT, "no error queued")),
            }
        } else {
            s.runtime.block_on(timeout_ms, s.t.next_error(None))??
        };
        o.write(c_error(&e));
        Ok(())
    })
}

/// Call `callback(error, userdata)` for every rejected datagram from now on, where
/// events are delivered (the dispatcher thread in callback mode, inside
/// wtd_runtime_next_event in pull mode). Reports also stay queued for
/// wtd_structured_next_error. `callback` NULL removes it. `userdata_free` (may be NULL)
/// runs exactly once, after the last call (when replaced, removed, or at
/// wtd_structured_free).
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_set_error_callback(
    structured: *const wtd_structured,
    callback: wtd_structured_error_callback,
    userdata: *mut c_void,
    userdata_free: wtd_userdata_free,
) -> wtd_result {
    guard(|| {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        let s = match unsafe { handle::borrow(structured, "structured") } {
            Ok(s) => s,
            Err(e) => {
                if let Some(free) = userdata_free {
                    // SAFETY: the application's destructor for the userdata it gave us, which no
                    // callback will use (the registration failed): freed once, now.
                    unsafe { free(userdata) };
                }
                return Err(e);
            }
        };
        // SAFETY: callback, userdata and userdata_free as the header's callback contract
        // requires of the application.
        unsafe { s.callback.set(callback, userdata, userdata_free) };
        if callback.is_none() {
            s.t.set_on_error(None);
            return Ok(());
        }
        let (slot, rt) = (s.callback.clone(), Arc::downgrade(&s.runtime));
        s.t.set_on_error(Some(Arc::new(move |e: &StructuredError| {
            if let Some(rt) = rt.upgrade() {
                slot.deliver(&rt, c_error(e));
            }
        })));
        Ok(())
    })
}

/// Read the transport's counters.
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_get_stats(
    structured: *const wtd_structured,
    out_stats: *mut wtd_structured_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(structured, "structured") }?;
        // SAFETY: `out_stats` is NULL or writable (the header's contract).
        let o = unsafe { out(out_stats, "out_stats") }?;
        let st = s.t.stats();
        *o = wtd_structured_stats {
            sent: st.sent,
            received: st.received,
            unknown_type: st.unknown_type,
            too_short: st.too_short,
            decode_errors: st.decode_errors,
            queue_drops: st.queue_drops,
        };
        Ok(())
    })
}

/// Close the transport: sending fails with WTD_ERR_CLOSED, queued objects stay
/// receivable, then receives return WTD_ERR_CLOSED. The session stays open.
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_close(structured: *const wtd_structured) -> wtd_result {
    guard(|| {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(structured, "structured") }?
            .t
            .close();
        Ok(())
    })
}

/// Whether the transport, or its session, is closed (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_structured_is_closed(structured: *const wtd_structured) -> bool {
    guard_value(false, || {
        // SAFETY: `structured` is NULL or a live handle (the header's contract).
        unsafe { handle::get(structured) }.is_some_and(|s| s.runtime.is_closed() || s.t.is_closed())
    })
}
