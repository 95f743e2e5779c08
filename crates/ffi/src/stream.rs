//! Datagram stream handles (`wtd_stream`): priority/TTL sending, receiving with
//! metadata, JSON and structured messages, statistics and diagnostics, heartbeats and
//! the throughput test. Fixed-shape results are C structs (stats, queue stats, metadata,
//! throughput); open-ended ones are JSON text (debug state, diagnostics).

use std::ffi::c_char;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::time::Duration;

use super::error::*;
use super::handle::{self, Boxed, Castable};
use super::runtime::RuntimeInner;
use super::session::SessionHandle;
use super::types::{wtd_buffer, wtd_session, wtd_stream, wtd_stream_config};
use wtd_result::*;
use wtdatagram::datagram::{self, DatagramMessage, DatagramStream, Overflow, StreamConfig};

/// What a full receive queue drops.
#[repr(C)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wtd_overflow {
    /// Refuse the arriving datagram (default).
    WTD_OVERFLOW_DROP_NEWEST = 0,
    /// Discard the oldest queued datagram.
    WTD_OVERFLOW_DROP_OLDEST = 1,
}

c_enum!(wtd_overflow {
    WTD_OVERFLOW_DROP_NEWEST,
    WTD_OVERFLOW_DROP_OLDEST,
});

/// This module's C enums as exported functions receive them (see `error::CEnum`).
mod c {
    /// cbindgen:ignore
    pub type wtd_overflow = crate::error::CEnum<super::wtd_overflow>;
}

/// What `wtd_stream_config` holds.
pub(crate) struct StreamConfigHandle {
    cfg: StreamConfig,
}

// SAFETY: wtd_stream_config pointers are made only by into_c_box from a
// StreamConfigHandle.
unsafe impl Castable for wtd_stream_config {
    type Rust = StreamConfigHandle;
    type Own = Boxed;
}

/// What `wtd_stream` holds.
pub(crate) struct StreamHandle {
    stream: DatagramStream,
    session: Arc<SessionHandle>,
    runtime: Arc<RuntimeInner>,
}

// SAFETY: wtd_stream pointers are made only by into_c_box from a StreamHandle.
unsafe impl Castable for wtd_stream {
    type Rust = StreamHandle;
    type Own = Boxed;

    /// A stream whose runtime was freed can do no I/O.
    fn check_live(s: &StreamHandle) -> FfiResult<()> {
        s.runtime.check_open("stream")
    }
}

impl StreamHandle {
    pub(crate) fn inner_stream(&self) -> &DatagramStream {
        &self.stream
    }
    pub(crate) fn runtime_inner(&self) -> &Arc<RuntimeInner> {
        &self.runtime
    }
}

/// What the stream knows about a received datagram.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_datagram_metadata {
    /// Per-stream arrival number, from 0.
    pub sequence: u64,
    /// Arrival time, Unix seconds.
    pub received_at: f64,
    /// Payload size in bytes.
    pub size: u64,
    /// Seconds between arrival and this call taking it.
    pub age: f64,
}

/// Stream counters and timings (times in seconds; sizes cover both directions).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_stream_stats {
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Every arrival, including those the full receive queue dropped.
    pub datagrams_received: u64,
    pub bytes_received: u64,
    /// Taken from the queue but the session failed to send them.
    pub send_failures: u64,
    /// Evicted from a full queue by a higher-priority datagram.
    pub send_drops_evicted: u64,
    /// Time-to-live passed before reaching the wire.
    pub send_drops_expired: u64,
    /// Refused for exceeding the maximum datagram size.
    pub send_drops_too_large: u64,
    /// Refused because the queue was full with nothing lower to evict.
    pub send_drops_queue_full: u64,
    /// Arrivals dropped by the full receive queue.
    pub receive_drops: u64,
    /// Received datagrams that failed to decode as JSON or structured.
    pub receive_errors: u64,
    pub min_datagram_size: u64,
    pub max_datagram_size: u64,
    pub avg_datagram_size: f64,
    /// Queue-to-wire time.
    pub avg_send_time: f64,
    pub max_send_time: f64,
    /// Arrival-to-application time.
    pub avg_receive_time: f64,
    pub max_receive_time: f64,
    /// sent / all send attempts (1.0 before any).
    pub send_success_rate: f64,
    /// (received - receive_drops - receive_errors) / received (1.0 before any).
    pub receive_success_rate: f64,
}

/// Datagrams waiting in the stream's queues.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_queue_stats {
    /// Send queue, per priority 0, 1, 2.
    pub send: [usize; 3],
    pub send_total: usize,
    pub send_limit: usize,
    pub receive: usize,
    pub receive_limit: usize,
}

/// Result of wtd_stream_throughput_test.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_throughput_result {
    /// Seconds.
    pub duration: f64,
    pub datagrams_sent: u64,
    pub errors: u64,
    pub datagrams_per_second: f64,
    pub bits_per_second: f64,
    pub error_rate: f64,
}

fn ttl(ms: i32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms as u64))
}

/// Create stream options: queues of 100 datagrams each way, arrivals refused when the
/// receive queue is full, diagnostics thresholds 0.9 / 0.1 / 0.9 / 100 ms.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_config_new(
    out_config: *mut *mut wtd_stream_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_config` is NULL or writable (the header's contract).
        let o = unsafe { out(out_config, "out_config") }?;
        *o = handle::into_c_box(StreamConfigHandle {
            cfg: StreamConfig::default(),
        });
        Ok(())
    })
}

/// Free stream options; NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_config_free(config: *mut wtd_stream_config) {
    // SAFETY: NULL or a live handle the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(config) }));
}

/// Queue limits in datagrams (each >= 1): send (all priorities together) and receive.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_config_set_queues(
    config: *mut wtd_stream_config,
    send: usize,
    receive: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if send == 0 || receive == 0 {
            return Err(FfiError::arg("queue limits must be at least 1"));
        }
        c.cfg.send_queue = send;
        c.cfg.recv_queue = receive;
        Ok(())
    })
}

/// What a full receive queue drops (WTD_ERR_INVALID_ARGUMENT for a value that is no
/// wtd_overflow).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_config_set_recv_overflow(
    config: *mut wtd_stream_config,
    overflow: c::wtd_overflow,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        c.cfg.recv_overflow = match overflow.get("overflow")? {
            wtd_overflow::WTD_OVERFLOW_DROP_NEWEST => Overflow::DropNewest,
            wtd_overflow::WTD_OVERFLOW_DROP_OLDEST => Overflow::DropOldest,
        };
        Ok(())
    })
}

/// Thresholds of wtd_stream_diagnose: minimum send success rate, maximum drop rate,
/// maximum queue fill (rates 0..=1) and maximum average send time in milliseconds.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_config_set_thresholds(
    config: *mut wtd_stream_config,
    min_send_success_rate: f64,
    max_drop_rate: f64,
    max_queue_fill: f64,
    max_avg_send_time_ms: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        for (v, n) in [
            (min_send_success_rate, "min_send_success_rate"),
            (max_drop_rate, "max_drop_rate"),
            (max_queue_fill, "max_queue_fill"),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(FfiError::arg(format!("{n} must be within 0..=1")));
            }
        }
        c.cfg.thresholds = datagram::Thresholds {
            min_send_success_rate,
            max_drop_rate,
            max_queue_fill,
            max_avg_send_time: Duration::from_millis(u64::from(max_avg_send_time_ms)),
        };
        Ok(())
    })
}

/// Create the datagram stream of `session` (`config` may be NULL for defaults). The
/// stream takes over the session's datagrams: WTD_EVENT_DATAGRAM events stop and
/// wtd_session_recv no longer applies. A session has at most one stream
/// (WTD_ERR_INVALID_STATE for a second); WTD_ERR_CLOSED if the session is closed. The
/// session handle must outlive the stream.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_new(
    session: *mut wtd_session,
    config: *const wtd_stream_config,
    out_stream: *mut *mut wtd_stream,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        // SAFETY: `out_stream` is NULL or writable (the header's contract).
        let o = unsafe { out(out_stream, "out_stream") }?;
        <wtd_session as Castable>::check_live(s)?;
        // SAFETY: `config` is NULL or a live handle (the header's contract).
        let cfg = unsafe { handle::get(config) }
            .map(|c| c.cfg.clone())
            .unwrap_or_default();
        let stream = DatagramStream::new(&s.session, cfg)?;
        // SAFETY: `session` is a live handle (checked above; the header's contract).
        let session = unsafe { handle::clone_arc(session, "session") }?;
        *o = handle::into_c_box(StreamHandle {
            stream,
            runtime: session.runtime.clone(),
            session,
        });
        Ok(())
    })
}

/// Close the stream (queued datagrams are discarded) and release it; the session stays
/// open. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_free(stream: *mut wtd_stream) {
    guard_value((), || {
        // SAFETY: NULL or a live handle the caller gives up (the header's contract).
        let Some(s) = (unsafe { handle::take_box(stream) }) else {
            return;
        };
        s.stream.close();
    });
}

/// The session the stream belongs to (borrowed; NULL for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_session(stream: *const wtd_stream) -> *mut wtd_session {
    guard_value(std::ptr::null_mut(), || {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        unsafe { handle::get(stream) }.map_or(std::ptr::null_mut(), |s| {
            Arc::as_ptr(&s.session) as *mut wtd_session
        })
    })
}

/// Queue a datagram (copied) with `priority` 0 (low), 1 (normal-high) or 2 (highest)
/// and a time-to-live in ms (<= 0: none; an expired datagram never reaches the wire).
/// WTD_ERR_QUEUE_FULL when full with nothing lower to evict (a lower one is evicted
/// otherwise), WTD_ERR_TOO_LARGE, WTD_ERR_CLOSED, WTD_ERR_INVALID_ARGUMENT (priority).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_send(
    stream: *const wtd_stream,
    data: *const u8,
    len: usize,
    priority: u8,
    ttl_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        Ok(s.stream
            // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
            .send(unsafe { bytes(data, len, "data") }?, priority, ttl(ttl_ms))?)
    })
}

/// Like wtd_stream_send; returns whether the datagram was queued and never sets an
/// error (false for NULL or bad arguments too).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_try_send(
    stream: *const wtd_stream,
    data: *const u8,
    len: usize,
    priority: u8,
    ttl_ms: i32,
) -> bool {
    guard_value(false, || {
        // SAFETY: `stream` is NULL or a live handle, `data` NULL or readable for `len`
        // bytes (the header's contract).
        let (Ok(s), Ok(d)) =
            (unsafe { (handle::live(stream, "stream"), bytes(data, len, "data")) })
        else {
            return false;
        };
        s.stream.try_send(d, priority, ttl(ttl_ms))
    })
}

/// Like wtd_stream_send, but waits up to `timeout_ms` (negative: forever) for room in
/// the send queue instead of returning WTD_ERR_QUEUE_FULL.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_send_wait(
    stream: *const wtd_stream,
    data: *const u8,
    len: usize,
    priority: u8,
    ttl_ms: i32,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `data` is NULL or readable for its length (the header's contract).
        let d = unsafe { bytes(data, len, "data") }?;
        s.runtime
            .wait_here(timeout_ms, s.stream.send_wait(d, priority, ttl(ttl_ms)))
    })
}

/// Queue `count` datagrams in one call; `*out_queued` tells how many were queued (the
/// others failed as wtd_stream_send would and are counted in the stats).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_send_multiple(
    stream: *const wtd_stream,
    items: *const wtd_buffer,
    count: usize,
    priority: u8,
    ttl_ms: i32,
    out_queued: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `out_queued` is NULL or writable (the header's contract).
        let o = unsafe { out(out_queued, "out_queued") }?;
        // SAFETY: `items` is NULL or `count` readable buffers (the header's contract).
        let slices = unsafe { buffers(items, count, "items") }?;
        if usize::from(priority) > 2 {
            return Err(FfiError::arg(format!(
                "priority {priority} is not 0, 1 or 2"
            )));
        }
        *o = s.stream.send_multiple(&slices, priority, ttl(ttl_ms));
        Ok(())
    })
}

/// Send JSON text as pywebtransport's send_json sends it: the text is read as Python's
/// json.loads reads it (NaN, Infinity and -Infinity allowed; a repeated key keeps its
/// first place and its last value; WTD_ERR_INVALID_ARGUMENT if it is not JSON) and
/// sent as Python's `json.dumps(data, separators=(",", ":"))` writes it: members in
/// their order, no whitespace, non-ASCII escaped as \uXXXX, floats spelled like
/// Python (`1e-05`, `1.0`). E.g. `{ "b" : "é", "a" : 1E2 }` is sent as
/// `{"b":"\u00e9","a":100.0}`.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_send_json(
    stream: *const wtd_stream,
    json: *const c_char,
    len: usize,
    priority: u8,
    ttl_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `json as *const u8` is NULL or readable for its length (the header's contract).
        let text = unsafe { bytes(json as *const u8, len, "json") }?;
        let v = datagram::json::from_slice(text)
            .map_err(|e| FfiError::arg(format!("json is not valid JSON: {e}")))?;
        let data = datagram::json::to_vec(&v, datagram::json::Separators::Compact)
            .map_err(|e| FfiError::arg(format!("json: {e}")))?;
        Ok(s.stream.send(&data, priority, ttl(ttl_ms))?)
    })
}

/// Send a structured datagram `[u8 type_len][type][payload]` (pywebtransport's layout);
/// `type` is 1..=255 bytes of UTF-8.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_send_structured(
    stream: *const wtd_stream,
    type_: *const c_char,
    payload: *const u8,
    len: usize,
    priority: u8,
    ttl_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `type_` is NULL or NUL-terminated (the header's contract).
        let t = unsafe { cstr(type_, "type") }?;
        // SAFETY: `payload` is NULL or readable for `len` bytes (the header's contract).
        let p = unsafe { bytes(payload, len, "payload") }?;
        Ok(s.stream.send_structured(t, p, priority, ttl(ttl_ms))?)
    })
}

/// Take the next datagram, waiting up to `timeout_ms` (0: do not wait; negative:
/// forever). WTD_ERR_TIMEOUT if none came; WTD_ERR_CLOSED once closed and drained.
fn next(s: &StreamHandle, timeout_ms: i32) -> FfiResult<DatagramMessage> {
    if timeout_ms == 0 {
        return match s.stream.receive_now()? {
            Some(m) => Ok(m),
            None => Err(FfiError::new(WTD_ERR_TIMEOUT, "no datagram queued")),
        };
    }
    Ok(s.runtime
        .block_on(timeout_ms, s.stream.receive_with_metadata(None))??)
}

/// Copy `m` into `buf` or put it back: BUFFER_TOO_SMALL sets `*out_len` to its size.
fn deliver(
    s: &StreamHandle,
    m: DatagramMessage,
    buf: &mut [MaybeUninit<u8>],
    out_len: &mut usize,
) -> FfiResult<DatagramMessage> {
    if m.data.len() > buf.len() {
        *out_len = m.data.len();
        let n = m.data.len();
        s.stream.unreceive(m);
        return Err(FfiError::new(
            WTD_ERR_BUFFER_TOO_SMALL,
            format!("datagram of {n} bytes does not fit in {}", buf.len()),
        ));
    }
    put(buf, 0, &m.data);
    *out_len = m.data.len();
    Ok(m)
}

/// Receive the next datagram into `buf`, waiting up to `timeout_ms` (0: no wait,
/// negative: forever). WTD_ERR_TIMEOUT when none came; WTD_ERR_CLOSED once the stream
/// (or its session) is closed and nothing is queued. If it does not fit, it stays
/// queued, `*out_len` gets its size and WTD_ERR_BUFFER_TOO_SMALL is returned.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_receive(
    stream: *const wtd_stream,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let o = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf, cap, "buf") }?;
        let m = next(s, timeout_ms)?;
        deliver(s, m, buf, o).map(drop)
    })
}

/// Receive without waiting: WTD_ERR_WOULD_BLOCK when nothing is queued,
/// WTD_ERR_CLOSED when nothing is queued and the stream (or its session) is closed.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_try_receive(
    stream: *const wtd_stream,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let o = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf, cap, "buf") }?;
        let m = s
            .stream
            .receive_now()?
            .ok_or_else(|| FfiError::new(WTD_ERR_WOULD_BLOCK, "no datagram queued"))?;
        deliver(s, m, buf, o).map(drop)
    })
}

/// Receive up to `max_count` datagrams in one call: waits up to `timeout_ms` for the
/// first, then takes what is queued. They are packed back to back into `buf`, with
/// their sizes in `lens[0..*out_count]`. A datagram that does not fit stays queued for
/// the next call; if not even the first fits, WTD_ERR_BUFFER_TOO_SMALL with `lens[0]`
/// set to its size. Errors as wtd_stream_receive.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_receive_multiple(
    stream: *const wtd_stream,
    buf: *mut u8,
    cap: usize,
    lens: *mut usize,
    max_count: usize,
    out_count: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
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
        let first = next(s, timeout_ms)?;
        let mut used = 0usize;
        let mut n = 0usize;
        let mut m = Some(first);
        while let Some(msg) = m.take() {
            if used + msg.data.len() > cap {
                if n == 0 {
                    lens[0].write(msg.data.len());
                }
                s.stream.unreceive(msg);
                break;
            }
            put(buf, used, &msg.data);
            lens[n].write(msg.data.len());
            used += msg.data.len();
            n += 1;
            if n < max_count {
                // A close after the first one ends the batch; the next call reports it.
                m = s.stream.receive_now().ok().flatten();
            }
        }
        if n == 0 {
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                "the first datagram does not fit",
            ));
        }
        *oc = n;
        Ok(())
    })
}

/// Receive the next datagram with its metadata (sequence, arrival time, size, age).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_receive_with_metadata(
    stream: *const wtd_stream,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    out_meta: *mut wtd_datagram_metadata,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let o = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `out_meta` is NULL or writable (the header's contract).
        let meta = unsafe { out(out_meta, "out_meta") }?;
        // SAFETY: `buf` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf, cap, "buf") }?;
        let m = deliver(s, next(s, timeout_ms)?, buf, o)?;
        *meta = wtd_datagram_metadata {
            sequence: m.sequence,
            received_at: m
                .received_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            size: m.data.len() as u64,
            age: m.age.as_secs_f64(),
        };
        Ok(())
    })
}

/// Receive the next datagram as JSON text, as received (UTF-8, not NUL-terminated). A
/// datagram that Python's json.loads would not read (NaN and Infinity are fine) is
/// consumed, counted in receive_errors, and WTD_ERR_INVALID_DATA is returned; the
/// stream keeps working.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_receive_json(
    stream: *const wtd_stream,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let o = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf as *mut u8` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf as *mut u8, cap, "buf") }?;
        let m = next(s, timeout_ms)?;
        if let Err(e) = datagram::message::decode_json(&m.data) {
            s.stream.count_receive_error();
            return Err(FfiError::new(WTD_ERR_INVALID_DATA, e.to_string()));
        }
        deliver(s, m, buf, o).map(drop)
    })
}

/// Receive the next structured datagram: its type (NUL-terminated into `type_buf`;
/// 256 bytes always suffice) and payload. A malformed one is consumed, counted in
/// receive_errors, and WTD_ERR_INVALID_DATA is returned. If a buffer is too small the
/// datagram stays queued, `*out_type_len`/`*out_payload_len` get the sizes needed and
/// WTD_ERR_BUFFER_TOO_SMALL is returned.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_receive_structured(
    stream: *const wtd_stream,
    type_buf: *mut c_char,
    type_cap: usize,
    out_type_len: *mut usize,
    payload_buf: *mut u8,
    payload_cap: usize,
    out_payload_len: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `out_type_len` is NULL or writable (the header's contract).
        let otl = unsafe { out(out_type_len, "out_type_len") }?;
        // SAFETY: `out_payload_len` is NULL or writable (the header's contract).
        let opl = unsafe { out(out_payload_len, "out_payload_len") }?;
        // SAFETY: `type_buf as *mut u8` is NULL or writable for its capacity (the header's contract).
        let type_buf = unsafe { out_buf(type_buf as *mut u8, type_cap, "type_buf") }?;
        // SAFETY: `payload_buf` is NULL or writable for its capacity (the header's contract).
        let payload_buf = unsafe { out_buf(payload_buf, payload_cap, "payload_buf") }?;
        let m = next(s, timeout_ms)?;
        let (ty, payload) = match datagram::message::decode_structured(&m.data) {
            Ok(x) => x,
            Err(e) => {
                s.stream.count_receive_error();
                return Err(FfiError::new(WTD_ERR_INVALID_DATA, e.to_string()));
            }
        };
        if type_cap < ty.len() + 1 || payload.len() > payload_cap {
            *otl = ty.len();
            *opl = payload.len();
            s.stream.unreceive(m);
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                "type or payload buffer too small",
            ));
        }
        put(type_buf, 0, ty.as_bytes());
        type_buf[ty.len()].write(0);
        put(payload_buf, 0, &payload);
        *otl = ty.len();
        *opl = payload.len();
        Ok(())
    })
}

/// Whether the stream or its session is closed (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_is_closed(stream: *const wtd_stream) -> bool {
    guard_value(false, || {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        unsafe { handle::get(stream) }
            .is_some_and(|s| s.runtime.is_closed() || s.stream.is_closed())
    })
}

/// Close the stream: queued datagrams are discarded (both ways), waiting calls and every
/// receive from now on return WTD_ERR_CLOSED. The session stays open.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_close(stream: *const wtd_stream) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(stream, "stream") }?.stream.close();
        Ok(())
    })
}

/// The largest payload a send accepts now.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_max_datagram_size(
    stream: *const wtd_stream,
    out_size: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        *unsafe { out(out_size, "out_size") }? = s.stream.max_datagram_size()?;
        Ok(())
    })
}

/// Read the stream's counters and timings.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_get_stats(
    stream: *const wtd_stream,
    out_stats: *mut wtd_stream_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(stream, "stream") }?;
        // SAFETY: `out_stats` is NULL or writable (the header's contract).
        let o = unsafe { out(out_stats, "out_stats") }?;
        let st = s.stream.stats();
        *o = wtd_stream_stats {
            datagrams_sent: st.datagrams_sent,
            bytes_sent: st.bytes_sent,
            datagrams_received: st.datagrams_received,
            bytes_received: st.bytes_received,
            send_failures: st.send_failures,
            send_drops_evicted: st.send_drops_evicted,
            send_drops_expired: st.send_drops_expired,
            send_drops_too_large: st.send_drops_too_large,
            send_drops_queue_full: st.send_drops_queue_full,
            receive_drops: st.receive_drops,
            receive_errors: st.receive_errors,
            min_datagram_size: st.min_datagram_size,
            max_datagram_size: st.max_datagram_size,
            avg_datagram_size: st.avg_datagram_size,
            avg_send_time: st.avg_send_time.as_secs_f64(),
            max_send_time: st.max_send_time.as_secs_f64(),
            avg_receive_time: st.avg_receive_time.as_secs_f64(),
            max_receive_time: st.max_receive_time.as_secs_f64(),
            send_success_rate: st.send_success_rate,
            receive_success_rate: st.receive_success_rate,
        };
        Ok(())
    })
}

/// Read the queue lengths and limits.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_get_queue_stats(
    stream: *const wtd_stream,
    out_stats: *mut wtd_queue_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(stream, "stream") }?;
        let q = s.stream.queue_stats();
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        *unsafe { out(out_stats, "out_stats") }? = wtd_queue_stats {
            send: q.send,
            send_total: q.send_total,
            send_limit: q.send_limit,
            receive: q.receive,
            receive_limit: q.receive_limit,
        };
        Ok(())
    })
}

/// Datagrams waiting to be sent (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_send_buffer_size(stream: *const wtd_stream) -> usize {
    guard_value(0, || {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        unsafe { handle::get(stream) }.map_or(0, |s| s.stream.send_buffer_size())
    })
}

/// Datagrams waiting to be received (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_receive_buffer_size(stream: *const wtd_stream) -> usize {
    guard_value(0, || {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        unsafe { handle::get(stream) }.map_or(0, |s| s.stream.receive_buffer_size())
    })
}

/// Write `text` NUL-terminated into `buf`; `*out_len` gets its length (without the
/// NUL) whether it fits or not.
fn write_text(text: &str, buf: &mut [MaybeUninit<u8>], out_len: &mut usize) -> FfiResult<()> {
    *out_len = text.len();
    if buf.len() < text.len() + 1 {
        return Err(FfiError::new(
            WTD_ERR_BUFFER_TOO_SMALL,
            format!("needs {} bytes", text.len() + 1),
        ));
    }
    put(buf, 0, text.as_bytes());
    buf[text.len()].write(0);
    Ok(())
}

/// A JSON object describing the stream's internals (config, queues, stats,
/// diagnostics), NUL-terminated into `buf`. `*out_len` is its length without the NUL,
/// also when WTD_ERR_BUFFER_TOO_SMALL is returned.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_debug_state(
    stream: *const wtd_stream,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(stream, "stream") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let o = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf as *mut u8` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf as *mut u8, cap, "buf") }?;
        write_text(&s.stream.debug_state().to_string(), buf, o)
    })
}

/// Health findings as a JSON array of strings (empty: healthy), NUL-terminated into
/// `buf`; `*out_count` (may be NULL) gets the number of findings. Buffer handling as in
/// wtd_stream_debug_state.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_diagnose(
    stream: *const wtd_stream,
    buf: *mut c_char,
    cap: usize,
    out_len: *mut usize,
    out_count: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(stream, "stream") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let o = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf as *mut u8` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf as *mut u8, cap, "buf") }?;
        let findings = s.stream.diagnose_issues();
        // SAFETY: `out_count` is NULL or writable (the header's contract).
        if let Some(c) = unsafe { out_count.as_mut() } {
            *c = findings.len();
        }
        write_text(&serde_json::Value::from(findings).to_string(), buf, o)
    })
}

/// Send a heartbeat datagram (see wtd_heartbeat_create) every `interval_ms`, priority
/// 0, time-to-live one interval. Replaces a running heartbeat.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_start_heartbeat(
    stream: *const wtd_stream,
    interval_ms: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        let _enter = s.runtime.enter()?;
        Ok(s.stream
            .start_heartbeat(Duration::from_millis(u64::from(interval_ms)))?)
    })
}

/// Stop the periodic heartbeat, if running.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_stop_heartbeat(stream: *const wtd_stream) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(stream, "stream") }?
            .stream
            .stop_heartbeat();
        Ok(())
    })
}

/// Write a heartbeat payload, `HEARTBEAT:<unix seconds>` (ASCII, pywebtransport's
/// format), into `buf`; 32 bytes always suffice.
#[no_mangle]
pub unsafe extern "C" fn wtd_heartbeat_create(
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let o = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf, cap, "buf") }?;
        let hb = datagram::create_heartbeat_datagram();
        if buf.len() < hb.len() {
            *o = hb.len();
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                format!("needs {} bytes", hb.len()),
            ));
        }
        put(buf, 0, &hb);
        *o = hb.len();
        Ok(())
    })
}

/// Whether `data` is a heartbeat datagram: it starts with `HEARTBEAT:`, whatever follows
/// (pywebtransport's `data.startswith(b"HEARTBEAT:")`). False for NULL.
#[no_mangle]
pub unsafe extern "C" fn wtd_is_heartbeat(data: *const u8, len: usize) -> bool {
    guard_value(false, || {
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        unsafe { bytes(data, len, "data") }.is_ok_and(datagram::is_heartbeat)
    })
}

/// Send `datagram_size`-byte datagrams through the stream for `duration_ms`, with
/// backpressure, and report what reached the wire. Blocks for about `duration_ms`.
#[no_mangle]
pub unsafe extern "C" fn wtd_stream_throughput_test(
    stream: *const wtd_stream,
    duration_ms: u32,
    datagram_size: usize,
    out_result: *mut wtd_throughput_result,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::live(stream, "stream") }?;
        // SAFETY: `out_result` is NULL or writable (the header's contract).
        let o = unsafe { out(out_result, "out_result") }?;
        let d = Duration::from_millis(u64::from(duration_ms));
        let r = s.runtime.block_on(
            -1,
            datagram::datagram_throughput_test(&s.stream, d, datagram_size, |_| {}),
        )??;
        *o = wtd_throughput_result {
            duration: r.duration.as_secs_f64(),
            datagrams_sent: r.datagrams_sent,
            errors: r.errors,
            datagrams_per_second: r.datagrams_per_second,
            bits_per_second: r.bits_per_second,
            error_rate: r.error_rate,
        };
        Ok(())
    })
}
