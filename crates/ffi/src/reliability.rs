//! Reliability layer handles (`wtd_reliability`): acknowledged, retransmitted,
//! de-duplicated messages over a session's datagrams, byte-compatible with
//! pywebtransport's DatagramReliabilityLayer (see `wtdatagram::datagram::reliability`).

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

use super::callback::CallbackSlot;
use super::error::*;
use super::handle::{self, Boxed, Castable};
use super::runtime::RuntimeInner;
use super::session::SessionHandle;
use super::types::{wtd_reliability, wtd_reliability_config, wtd_session, wtd_userdata_free};
use wtd_result::*;
use wtdatagram::datagram::reliability::{
    DeliveryOutcome, DeliveryReport, ReliabilityConfig, ReliabilityLayer,
};

/// How a reliably sent message ended.
#[repr(C)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wtd_delivery_outcome {
    /// The peer acknowledged it.
    WTD_DELIVERY_DELIVERED = 0,
    /// No acknowledgement after the configured number of retransmissions.
    WTD_DELIVERY_GAVE_UP = 1,
}

/// The end of one message sent with wtd_reliability_send.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wtd_delivery_report {
    /// The id wtd_reliability_send returned.
    pub id: u64,
    pub outcome: wtd_delivery_outcome,
    /// Transmissions made (1 = no retransmission; max_retries + 1 when given up).
    pub attempts: u32,
}

/// Counters of a reliability layer.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_reliability_stats {
    /// Messages accepted by wtd_reliability_send.
    pub messages_sent: u64,
    /// Messages acknowledged by the peer.
    pub messages_delivered: u64,
    /// Messages given up after max_retries retransmissions.
    pub messages_given_up: u64,
    pub retransmissions: u64,
    pub acks_sent: u64,
    /// Well-formed ACKs received (also duplicates and unknown sequences).
    pub acks_received: u64,
    /// DATA received again (acknowledged again, not delivered again).
    pub duplicates_received: u64,
    /// New messages queued for wtd_reliability_receive.
    pub messages_received: u64,
    /// New DATA refused (and not acknowledged) because the receive queue was full.
    pub receive_drops: u64,
    /// Datagrams that were neither DATA nor ACK.
    pub invalid_received: u64,
    /// Reports dropped from the full report queue.
    pub reports_dropped: u64,
    /// Messages sent and not yet acknowledged or given up.
    pub in_flight: u64,
}

/// Called with each delivery report where events are delivered (the dispatcher thread
/// in callback mode, inside wtd_runtime_next_event in pull mode). `report` is borrowed
/// for the duration of the call.
pub type wtd_report_callback =
    Option<unsafe extern "C" fn(report: *const wtd_delivery_report, userdata: *mut c_void)>;

/// What `wtd_reliability_config` holds.
pub(crate) struct ReliabilityConfigHandle {
    cfg: ReliabilityConfig,
}

// SAFETY: wtd_reliability_config pointers are made only by into_c_box from a ReliabilityConfigHandle.
unsafe impl Castable for wtd_reliability_config {
    type Rust = ReliabilityConfigHandle;
    type Own = Boxed;
}

/// What `wtd_reliability` holds.
pub(crate) struct ReliabilityHandle {
    layer: ReliabilityLayer,
    #[allow(dead_code)]
    session: Arc<SessionHandle>,
    runtime: Arc<RuntimeInner>,
    callback: Arc<CallbackSlot<wtd_delivery_report>>,
}

// SAFETY: wtd_reliability pointers are made only by into_c_box from a ReliabilityHandle.
unsafe impl Castable for wtd_reliability {
    type Rust = ReliabilityHandle;
    type Own = Boxed;

    /// A handle whose runtime was freed can do no I/O.
    fn check_live(h: &ReliabilityHandle) -> FfiResult<()> {
        h.runtime.check_open("reliability layer")
    }
}

fn c_report(r: &DeliveryReport) -> wtd_delivery_report {
    wtd_delivery_report {
        id: r.id,
        outcome: match r.outcome {
            DeliveryOutcome::Delivered => wtd_delivery_outcome::WTD_DELIVERY_DELIVERED,
            DeliveryOutcome::GaveUp => wtd_delivery_outcome::WTD_DELIVERY_GAVE_UP,
        },
        attempts: r.attempts,
    }
}

fn closed_err() -> FfiError {
    FfiError::new(WTD_ERR_CLOSED, "reliability layer closed")
}

/// Create reliability options: ACK timeout 2000 ms, 5 retries, window 256 messages,
/// 4096 sequences remembered for duplicate detection, receive queue 1000, first
/// sequence 0.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_config_new(
    out_config: *mut *mut wtd_reliability_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_config` is NULL or writable (the header's contract).
        let o = unsafe { out(out_config, "out_config") }?;
        *o = handle::into_c_box(ReliabilityConfigHandle {
            cfg: ReliabilityConfig::default(),
        });
        Ok(())
    })
}

/// Free reliability options; NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_config_free(config: *mut wtd_reliability_config) {
    // SAFETY: NULL or a live handle the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(config) }));
}

/// Time to wait for an ACK before retransmitting, in ms (>= 1).
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_config_set_ack_timeout(
    config: *mut wtd_reliability_config,
    ack_timeout_ms: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if ack_timeout_ms == 0 {
            return Err(FfiError::arg("ack timeout must be at least 1 ms"));
        }
        c.cfg.ack_timeout = Duration::from_millis(u64::from(ack_timeout_ms));
        Ok(())
    })
}

/// Retransmissions before giving up (a message is sent at most max_retries + 1 times).
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_config_set_max_retries(
    config: *mut wtd_reliability_config,
    max_retries: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        unsafe { handle::borrow_mut(config, "config") }?
            .cfg
            .max_retries = max_retries;
        Ok(())
    })
}

/// Span of sequences in flight (1..=2^30): a message is sent only while it is less than
/// `window` sequences past the oldest unacknowledged one, so at most `window` messages
/// are unacknowledged; wtd_reliability_send waits for room beyond. A peer whose
/// dedup memory is at least this window never mistakes a late retransmission for an
/// old duplicate.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_config_set_window(
    config: *mut wtd_reliability_config,
    window: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if window == 0 || window > (1 << 30) {
            return Err(FfiError::arg("window must be within 1..=2^30"));
        }
        c.cfg.window = window;
        Ok(())
    })
}

/// Received messages waiting for wtd_reliability_receive (>= 1; when full, new DATA is
/// not acknowledged and the peer retransmits it), and received sequences remembered for
/// duplicate detection (1..=2^30; keep it at least the peer's window).
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_config_set_queues(
    config: *mut wtd_reliability_config,
    recv_queue: usize,
    dedup_memory: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if recv_queue == 0 {
            return Err(FfiError::arg("recv_queue must be at least 1"));
        }
        if dedup_memory == 0 || dedup_memory > (1 << 30) {
            return Err(FfiError::arg("dedup_memory must be within 1..=2^30"));
        }
        c.cfg.recv_queue = recv_queue;
        c.cfg.dedup_memory = dedup_memory;
        Ok(())
    })
}

/// Wire sequence (and id) of the first message sent (default 0); sequences wrap at
/// 2^32 on the wire while ids keep counting.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_config_set_initial_sequence(
    config: *mut wtd_reliability_config,
    sequence: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        unsafe { handle::borrow_mut(config, "config") }?
            .cfg
            .initial_sequence = sequence;
        Ok(())
    })
}

/// Create a reliability layer on `session` (`config` may be NULL for defaults). It takes
/// over the session's datagrams like wtd_stream_new: a session has at most one stream or
/// layer (WTD_ERR_INVALID_STATE for a second); WTD_ERR_CLOSED if the session is closed.
/// The session handle must outlive it.
/// Datagrams that arrived before this call are taken over too, unless they were already
/// delivered as WTD_EVENT_DATAGRAM: with datagram events on, a peer that sends right
/// after the session opens can lose its first messages to events the application does
/// not read (the peer then sees them acknowledged by nobody and retransmits, or gives
/// up). Turn datagram events off (wtd_transport_config_set_datagram_events) for
/// sessions that get a layer.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_new(
    session: *mut wtd_session,
    config: *const wtd_reliability_config,
    out_reliability: *mut *mut wtd_reliability,
) -> wtd_result {
    guard(|| {
        // SAFETY: `session` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(session, "session") }?;
        // SAFETY: `out_reliability` is NULL or writable (the header's contract).
        let o = unsafe { out(out_reliability, "out_reliability") }?;
        <wtd_session as Castable>::check_live(s)?;
        // SAFETY: `config` is NULL or a live handle (the header's contract).
        let cfg = unsafe { handle::get(config) }
            .map(|c| c.cfg.clone())
            .unwrap_or_default();
        let layer = ReliabilityLayer::new(&s.session, cfg)?;
        // SAFETY: `session` is a live handle (checked above; the header's contract).
        let session = unsafe { handle::clone_arc(session, "session") }?;
        let runtime = session.runtime.clone();
        let callback = Arc::new(CallbackSlot::new());
        let (slot, rt) = (callback.clone(), Arc::downgrade(&runtime));
        layer.on_report(Box::new(move |r| {
            if let Some(rt) = rt.upgrade() {
                slot.deliver(&rt, c_report(r));
            }
        }));
        *o = handle::into_c_box(ReliabilityHandle {
            layer,
            session,
            runtime,
            callback,
        });
        Ok(())
    })
}

/// Close the layer and release it (its callback's userdata_free runs once no report is
/// pending for it); the session stays open. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_free(reliability: *mut wtd_reliability) {
    guard_value((), || {
        // SAFETY: NULL or a live handle the caller gives up (the header's contract).
        let Some(r) = (unsafe { handle::take_box(reliability) }) else {
            return;
        };
        r.layer.close();
        r.layer.clear_report_hook();
        r.callback.clear();
    });
}

/// Send a message (copied) reliably, waiting up to `timeout_ms` (negative: forever, 0:
/// no wait) for room in the window. `*out_id` (may be NULL) gets its id, which its
/// delivery report carries. WTD_ERR_TIMEOUT: the window stayed full and nothing was
/// sent. WTD_ERR_TOO_LARGE: `len` + 9 exceeds the datagram size. WTD_ERR_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_send(
    reliability: *const wtd_reliability,
    data: *const u8,
    len: usize,
    timeout_ms: i32,
    out_id: *mut u64,
) -> wtd_result {
    guard(|| {
        // SAFETY: `reliability` is NULL or a live handle (the header's contract).
        let r = unsafe { handle::live(reliability, "reliability") }?;
        // SAFETY: `data` is NULL or readable for its length (the header's contract).
        let d = unsafe { bytes(data, len, "data") }?;
        let mut fut = std::pin::pin!(r.layer.send(d));
        let id = match wtdatagram::transport::poll_once(fut.as_mut()) {
            Some(x) => x?,
            None if timeout_ms == 0 => {
                return Err(FfiError::new(WTD_ERR_TIMEOUT, "the window is full"))
            }
            None => r.runtime.block_on(timeout_ms, fut)??,
        };
        // SAFETY: `out_id` is NULL or writable (the header's contract).
        if let Some(o) = unsafe { out_id.as_mut() } {
            *o = id;
        }
        Ok(())
    })
}

/// Receive the next message into `buf`, waiting up to `timeout_ms` (0: no wait,
/// negative: forever). WTD_ERR_TIMEOUT when none came; WTD_ERR_CLOSED once closed and
/// drained. If it does not fit, it stays queued, `*out_len` gets its size and
/// WTD_ERR_BUFFER_TOO_SMALL is returned.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_receive(
    reliability: *const wtd_reliability,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `reliability` is NULL or a live handle (the header's contract).
        let r = unsafe { handle::live(reliability, "reliability") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let o = unsafe { out(out_len, "out_len") }?;
        // SAFETY: `buf` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf, cap, "buf") }?;
        let m = if timeout_ms == 0 {
            match r.layer.try_receive() {
                Some(m) => m,
                None if r.layer.is_closed() => return Err(closed_err()),
                None => return Err(FfiError::new(WTD_ERR_TIMEOUT, "no message queued")),
            }
        } else {
            r.runtime.block_on(timeout_ms, r.layer.receive(None))??
        };
        if m.len() > cap {
            *o = m.len();
            let n = m.len();
            r.layer.unreceive(m);
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                format!("message of {n} bytes does not fit in {cap}"),
            ));
        }
        put(buf, 0, &m);
        *o = m.len();
        Ok(())
    })
}

/// Take the next delivery report, waiting up to `timeout_ms` (0: no wait, negative:
/// forever). Reports are queued whether or not a report callback is set.
/// WTD_ERR_TIMEOUT when none came; WTD_ERR_CLOSED once closed and drained.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_next_report(
    reliability: *const wtd_reliability,
    out_report: *mut wtd_delivery_report,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `reliability` is NULL or a live handle (the header's contract).
        let r = unsafe { handle::live(reliability, "reliability") }?;
        // SAFETY: `out_report` is NULL or writable (the header's contract).
        let o = unsafe { out_uninit(out_report, "out_report") }?;
        let rep = if timeout_ms == 0 {
            match r.layer.try_next_report() {
                Some(x) => x,
                None if r.layer.is_closed() => return Err(closed_err()),
                None => return Err(FfiError::new(WTD_ERR_TIMEOUT, "no report queued")),
            }
        } else {
            r.runtime
                .block_on(timeout_ms, r.layer.next_report(None))??
        };
        o.write(c_report(&rep));
        Ok(())
    })
}

/// Also deliver every report from now on to `callback(report, userdata)`, where events
/// are delivered (dispatcher thread in callback mode, inside wtd_runtime_next_event in
/// pull mode). NULL `callback` removes it. Replacing or removing the callback, or
/// wtd_reliability_free, stops reports to the old one; its `userdata_free` (may be NULL)
/// then runs exactly once, after any call to it already under way.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_set_report_callback(
    reliability: *const wtd_reliability,
    callback: wtd_report_callback,
    userdata: *mut c_void,
    userdata_free: wtd_userdata_free,
) -> wtd_result {
    guard(|| {
        // SAFETY: `reliability` is NULL or a live handle (the header's contract).
        let r = unsafe { handle::borrow(reliability, "reliability") }?;
        // SAFETY: callback, userdata and userdata_free as the header's callback contract
        // requires of the application.
        unsafe { r.callback.set(callback, userdata, userdata_free) };
        Ok(())
    })
}

/// Read the layer's counters.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_get_stats(
    reliability: *const wtd_reliability,
    out_stats: *mut wtd_reliability_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `reliability` is NULL or a live handle (the header's contract).
        let r = unsafe { handle::borrow(reliability, "reliability") }?;
        // SAFETY: `out_stats` is NULL or writable (the header's contract).
        let o = unsafe { out(out_stats, "out_stats") }?;
        let s = r.layer.stats();
        *o = wtd_reliability_stats {
            messages_sent: s.messages_sent,
            messages_delivered: s.messages_delivered,
            messages_given_up: s.messages_given_up,
            retransmissions: s.retransmissions,
            acks_sent: s.acks_sent,
            acks_received: s.acks_received,
            duplicates_received: s.duplicates_received,
            messages_received: s.messages_received,
            receive_drops: s.receive_drops,
            invalid_received: s.invalid_received,
            reports_dropped: s.reports_dropped,
            in_flight: s.in_flight,
        };
        Ok(())
    })
}

/// Stop the layer: background work ends, unacknowledged messages get no report,
/// waiting calls return WTD_ERR_CLOSED (queued messages and reports can still be
/// taken). The session stays open.
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_close(reliability: *const wtd_reliability) -> wtd_result {
    guard(|| {
        // SAFETY: `reliability` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(reliability, "reliability") }?
            .layer
            .close();
        Ok(())
    })
}

/// Whether the layer or its session is closed (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_reliability_is_closed(reliability: *const wtd_reliability) -> bool {
    guard_value(false, || {
        // SAFETY: `reliability` is NULL or a live handle (the header's contract).
        unsafe { handle::get(reliability) }
            .is_some_and(|r| r.runtime.is_closed() || r.layer.is_closed())
    })
}
