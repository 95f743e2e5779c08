//! Monitor handles (`wtd_monitor`): periodic samples of a datagram stream, alerts and an
//! alert callback. See `wtdatagram::datagram::monitor`.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::callback::CallbackSlot;
use super::error::*;
use super::handle::{self, Boxed, Castable};
use super::runtime::RuntimeInner;
use super::types::{wtd_monitor, wtd_monitor_config, wtd_stream, wtd_userdata_free};
use wtd_result::*;
use wtdatagram::datagram::monitor::{Alert, AlertKind, DatagramMonitor, MonitorConfig, Sample};

/// Which rule raised an alert.
#[repr(C)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wtd_alert_kind {
    /// The send queue is fuller than the threshold share of its limit (value: fill 0..=1).
    WTD_ALERT_HIGH_QUEUE_SIZE = 1,
    /// The send success rate is below the threshold (value: the rate).
    WTD_ALERT_LOW_SUCCESS_RATE = 2,
    /// The average send time rises across the trend window (value: later/earlier ratio).
    WTD_ALERT_INCREASING_SEND_TIME = 3,
}

/// What `wtd_monitor_config` holds.
pub(crate) struct MonitorConfigHandle {
    cfg: MonitorConfig,
}

// SAFETY: wtd_monitor_config pointers are made only by into_c_box from a
// MonitorConfigHandle.
unsafe impl Castable for wtd_monitor_config {
    type Rust = MonitorConfigHandle;
    type Own = Boxed;
}

/// One sample of a stream (times in seconds).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_monitor_sample {
    /// Unix seconds.
    pub timestamp: f64,
    /// Datagrams waiting in the send queue.
    pub queue_size: usize,
    /// The send queue's limit.
    pub queue_limit: usize,
    pub send_success_rate: f64,
    /// Average queue-to-wire time so far.
    pub avg_send_time: f64,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    /// Send attempts so far (sent + failed + dropped).
    pub send_attempts: u64,
}

/// One alert. `message` is NUL-terminated UTF-8 (truncated to fit).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wtd_monitor_alert {
    pub kind: wtd_alert_kind,
    /// Unix seconds.
    pub timestamp: f64,
    /// See wtd_alert_kind.
    pub value: f64,
    pub message: [c_char; 256],
}

/// Receives each alert (borrowed for the call) and the callback's userdata.
pub type wtd_alert_callback =
    Option<unsafe extern "C" fn(alert: *const wtd_monitor_alert, userdata: *mut c_void)>;

/// What `wtd_monitor` holds.
pub(crate) struct MonitorHandle {
    m: DatagramMonitor,
    runtime: Arc<RuntimeInner>,
    callback: Arc<CallbackSlot<wtd_monitor_alert>>,
}

// SAFETY: wtd_monitor pointers are made only by into_c_box from a MonitorHandle.
unsafe impl Castable for wtd_monitor {
    type Rust = MonitorHandle;
    type Own = Boxed;

    /// A handle whose runtime was freed can do no I/O.
    fn check_live(h: &MonitorHandle) -> FfiResult<()> {
        h.runtime.check_open("monitor")
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl From<&Sample> for wtd_monitor_sample {
    fn from(s: &Sample) -> Self {
        wtd_monitor_sample {
            timestamp: unix(s.timestamp),
            queue_size: s.queue_size,
            queue_limit: s.queue_limit,
            send_success_rate: s.send_success_rate,
            avg_send_time: s.avg_send_time.as_secs_f64(),
            datagrams_sent: s.datagrams_sent,
            datagrams_received: s.datagrams_received,
            send_attempts: s.send_attempts,
        }
    }
}

impl From<&Alert> for wtd_monitor_alert {
    fn from(a: &Alert) -> Self {
        let mut message = [0 as c_char; 256];
        // Truncate on a UTF-8 boundary, leaving room for the NUL.
        let mut n = a.message.len().min(message.len() - 1);
        while !a.message.is_char_boundary(n) {
            n -= 1;
        }
        for (d, s) in message.iter_mut().zip(a.message.as_bytes()[..n].iter()) {
            *d = *s as c_char;
        }
        wtd_monitor_alert {
            kind: match a.kind {
                AlertKind::HighQueueSize => wtd_alert_kind::WTD_ALERT_HIGH_QUEUE_SIZE,
                AlertKind::LowSuccessRate => wtd_alert_kind::WTD_ALERT_LOW_SUCCESS_RATE,
                AlertKind::IncreasingSendTime => wtd_alert_kind::WTD_ALERT_INCREASING_SEND_TIME,
            },
            timestamp: unix(a.timestamp),
            value: a.value,
            message,
        }
    }
}

/// Create monitor options: a sample every 5000 ms, 100 samples and 50 alerts kept,
/// alerts at a send queue over 90% full, a send success rate under 0.8, and an average
/// send time whose mean over the last 5 of 10 samples exceeds 1.25x the first 5's.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_config_new(
    out_config: *mut *mut wtd_monitor_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_config` is NULL or writable (the header's contract).
        let o = unsafe { out(out_config, "out_config") }?;
        *o = handle::into_c_box(MonitorConfigHandle {
            cfg: MonitorConfig::default(),
        });
        Ok(())
    })
}

/// Free monitor options; NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_config_free(config: *mut wtd_monitor_config) {
    // SAFETY: NULL or a live handle the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(config) }));
}

/// Time between samples of the periodic task, in milliseconds (>= 1).
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_config_set_interval(
    config: *mut wtd_monitor_config,
    interval_ms: u32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if interval_ms == 0 {
            return Err(FfiError::arg("interval_ms must be at least 1"));
        }
        c.cfg.interval = Duration::from_millis(u64::from(interval_ms));
        Ok(())
    })
}

/// How many samples and alerts are kept (each >= 1; the oldest are dropped first).
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_config_set_capacities(
    config: *mut wtd_monitor_config,
    samples: usize,
    alerts: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        if samples == 0 || alerts == 0 {
            return Err(FfiError::arg("capacities must be at least 1"));
        }
        c.cfg.sample_capacity = samples;
        c.cfg.alert_capacity = alerts;
        Ok(())
    })
}

/// Alert thresholds: send queue fill above `high_queue_fill` (0..=1), send success rate
/// below `min_success_rate` (0..=1), and over the last `trend_window` samples (>= 2) a
/// later half's mean average send time above `trend_factor` (>= 0) times the earlier's.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_config_set_thresholds(
    config: *mut wtd_monitor_config,
    high_queue_fill: f64,
    min_success_rate: f64,
    trend_window: usize,
    trend_factor: f64,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the header's contract).
        let c = unsafe { handle::borrow_mut(config, "config") }?;
        let mut cfg = c.cfg.clone();
        cfg.high_queue_fill = high_queue_fill;
        cfg.min_success_rate = min_success_rate;
        cfg.trend_window = trend_window;
        cfg.trend_factor = trend_factor;
        // Validated like wtd_monitor_new would, so a bad value fails here.
        cfg.validate()?;
        c.cfg = cfg;
        Ok(())
    })
}

/// Create a monitor of `stream` (`config` may be NULL for defaults). It samples nothing
/// until wtd_monitor_start or wtd_monitor_sample_now. The stream handle must outlive it.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_new(
    stream: *const wtd_stream,
    config: *const wtd_monitor_config,
    out_monitor: *mut *mut wtd_monitor,
) -> wtd_result {
    guard(|| {
        // SAFETY: `stream` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(stream, "stream") }?;
        // SAFETY: `out_monitor` is NULL or writable (the header's contract).
        let o = unsafe { out(out_monitor, "out_monitor") }?;
        if s.runtime_inner().is_closed() {
            return Err(FfiError::new(
                WTD_ERR_CLOSED,
                "the stream's runtime has been freed",
            ));
        }
        // SAFETY: `config` is NULL or a live handle (the header's contract).
        let cfg = unsafe { handle::get(config) }
            .map(|c| c.cfg.clone())
            .unwrap_or_default();
        let m = DatagramMonitor::new(s.inner_stream(), cfg)?;
        *o = handle::into_c_box(MonitorHandle {
            m,
            runtime: s.runtime_inner().clone(),
            callback: Arc::new(CallbackSlot::new()),
        });
        Ok(())
    })
}

/// Stop the monitor and release it; the alert callback's userdata_free runs once no
/// queued callback is left (callbacks queued before are skipped). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_free(monitor: *mut wtd_monitor) {
    guard_value((), || {
        // SAFETY: NULL or a live handle the caller gives up (the header's contract).
        let Some(m) = (unsafe { handle::take_box(monitor) }) else {
            return;
        };
        m.m.stop();
        m.m.clear_alert_callback();
        m.callback.clear();
    });
}

/// Start sampling every interval on the library's runtime (the first sample one
/// interval from now). No-op if running; WTD_ERR_CLOSED if the stream is closed.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_start(monitor: *const wtd_monitor) -> wtd_result {
    guard(|| {
        // SAFETY: `monitor` is NULL or a live handle (the header's contract).
        Ok(unsafe { handle::live(monitor, "monitor") }?.m.start()?)
    })
}

/// Stop the periodic sampling (samples and alerts stay). No-op when not running.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_stop(monitor: *const wtd_monitor) -> wtd_result {
    guard(|| {
        // SAFETY: `monitor` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(monitor, "monitor") }?.m.stop();
        Ok(())
    })
}

/// Whether the periodic sampling runs (false for NULL). It also stops by itself when the
/// stream closes.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_is_monitoring(monitor: *const wtd_monitor) -> bool {
    guard_value(false, || {
        // SAFETY: `monitor` is NULL or a live handle (the header's contract).
        unsafe { handle::get(monitor) }.is_some_and(|m| m.m.is_monitoring())
    })
}

/// Take one sample now and evaluate the alert rules on it (the alerts are recorded
/// before this returns; the callback, if any, is queued). `out_sample` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_sample_now(
    monitor: *const wtd_monitor,
    out_sample: *mut wtd_monitor_sample,
) -> wtd_result {
    guard(|| {
        // SAFETY: `monitor` is NULL or a live handle (the header's contract).
        let m = unsafe { handle::live(monitor, "monitor") }?;
        let s = m.m.sample_now();
        // SAFETY: `out_sample` is NULL or writable (the header's contract).
        if let Some(o) = unsafe { out_sample.as_mut() } {
            *o = (&s).into();
        }
        Ok(())
    })
}

/// Copy the newest `cap` samples, oldest first, into `out` (may be NULL when `cap` is 0);
/// `*out_count` gets how many were copied.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_get_samples(
    monitor: *const wtd_monitor,
    out: *mut wtd_monitor_sample,
    cap: usize,
    out_count: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `monitor` is NULL or a live handle (the header's contract).
        let m = unsafe { handle::borrow(monitor, "monitor") }?;
        // SAFETY: `out_count` is NULL or writable (the header's contract).
        let oc = unsafe { super::error::out(out_count, "out_count") }?;
        // SAFETY: `out` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(out, cap, "out") }?;
        let v = m.m.get_samples(Some(cap));
        for (slot, s) in buf.iter_mut().zip(v.iter()) {
            slot.write(s.into());
        }
        *oc = v.len();
        Ok(())
    })
}

/// Copy the newest `cap` alerts, oldest first, into `out` (may be NULL when `cap` is 0);
/// `*out_count` gets how many were copied.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_get_alerts(
    monitor: *const wtd_monitor,
    out: *mut wtd_monitor_alert,
    cap: usize,
    out_count: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `monitor` is NULL or a live handle (the header's contract).
        let m = unsafe { handle::borrow(monitor, "monitor") }?;
        // SAFETY: `out_count` is NULL or writable (the header's contract).
        let oc = unsafe { super::error::out(out_count, "out_count") }?;
        // SAFETY: `out` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(out, cap, "out") }?;
        let all = m.m.get_alerts();
        let v = &all[all.len() - cap.min(all.len())..];
        for (slot, a) in buf.iter_mut().zip(v.iter()) {
            slot.write(a.into());
        }
        *oc = v.len();
        Ok(())
    })
}

/// Call `callback(alert, userdata)` for every alert from now on. Calls are delivered
/// like events: on the runtime's dispatcher thread in callback mode, or inside
/// wtd_runtime_next_event in pull mode (in order with the other events). `callback`
/// NULL removes it. `userdata_free` (may be NULL) runs exactly once, after the last
/// call: when the callback is replaced or removed, the monitor freed, or the runtime
/// freed — and at once when `callback` is NULL or `monitor` is NULL (an error). Calls
/// still queued for a replaced
/// callback or a freed monitor are skipped.
#[no_mangle]
pub unsafe extern "C" fn wtd_monitor_set_alert_callback(
    monitor: *const wtd_monitor,
    callback: wtd_alert_callback,
    userdata: *mut c_void,
    userdata_free: wtd_userdata_free,
) -> wtd_result {
    guard(|| {
        // SAFETY: `monitor` is NULL or a live handle (the header's contract).
        let m = match unsafe { handle::borrow(monitor, "monitor") } {
            Ok(m) => m,
            Err(e) => {
                if let Some(f) = userdata_free {
                    // SAFETY: the application's destructor for the userdata it gave us, which no
                    // callback will use (the registration failed): freed once, now.
                    unsafe { f(userdata) };
                }
                return Err(e);
            }
        };
        // SAFETY: callback, userdata and userdata_free as the header's callback contract
        // requires of the application.
        unsafe { m.callback.set(callback, userdata, userdata_free) };
        if callback.is_none() {
            m.m.clear_alert_callback();
            return Ok(());
        }
        let (slot, rt) = (m.callback.clone(), Arc::downgrade(&m.runtime));
        m.m.on_alert(Box::new(move |a: &Alert| {
            if let Some(rt) = rt.upgrade() {
                slot.deliver(&rt, a.into());
            }
        }));
        Ok(())
    })
}
