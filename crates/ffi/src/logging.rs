//! The library's logs for a C host: `wtd_set_log_callback`.
//!
//! The library logs through `tracing` (and rustls through `log`). The first registration
//! installs, for this copy of the library, a global `tracing` subscriber: a
//! `tracing-subscriber` formatting layer (message, fields, span context) filtered by the
//! registered level, whose output goes, one record at a time, into a bounded queue. A
//! library-owned thread, `wtd-log`, takes the records from the queue and calls the
//! application's callback with them.
//!
//! Why a thread of its own: records are emitted everywhere, on runtime workers and on
//! application threads, sometimes while a lock is held (quinn logs under its connection
//! lock). A callback called there that calls back into the library (to send, or to read
//! statistics) would deadlock on that lock. On the log thread the callback runs with no
//! library lock held, so every `wtd_` call is allowed in it. The queue is bounded
//! ([`QUEUE`] records): when the callback falls behind, records are dropped, never
//! waited for, and the next delivery is preceded by a WARN record saying how many.
//!
//! Filtering is by callsite interest: a level change rebuilds tracing's interest cache,
//! so a disabled level costs a callsite check and nothing else (no formatting, no queue).

use std::ffi::{c_char, c_void, CString};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::Layer;

use super::error::*;
use super::types::wtd_userdata_free;
use wtd_result::*;

/// Log levels, most severe first. A callback registered at a level receives the records
/// of that level and of every more severe one.
#[repr(C)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum wtd_log_level {
    /// No records (registering with it removes the callback).
    WTD_LOG_OFF = 0,
    /// The library failed at something it was asked to do.
    WTD_LOG_ERROR = 1,
    /// Something went wrong locally that the library worked around (e.g. a key log file
    /// that cannot be opened, log records dropped).
    WTD_LOG_WARN = 2,
    /// What a peer did wrong: failed handshakes (peer address and TLS reason), refused
    /// and reset requests (and why), protocol errors (with their code), connections
    /// and sessions closed with an error.
    WTD_LOG_INFO = 3,
    /// Lifecycle: connections established and closed, sessions opened and closed,
    /// requests sent and refused, the peer's SETTINGS; quinn's and rustls' own
    /// debug records.
    WTD_LOG_DEBUG = 4,
    /// Everything, including quinn's per-packet records: very verbose.
    WTD_LOG_TRACE = 5,
}

c_enum!(wtd_log_level {
    WTD_LOG_OFF,
    WTD_LOG_ERROR,
    WTD_LOG_WARN,
    WTD_LOG_INFO,
    WTD_LOG_DEBUG,
    WTD_LOG_TRACE,
});

/// The C enum type as exported functions receive it (see [`CEnum`]).
pub mod c {
    /// cbindgen:ignore
    pub type wtd_log_level = crate::error::CEnum<super::wtd_log_level>;
}

/// One log record, borrowed for the duration of the callback (copy what you keep).
/// Fields may be added at the end in later versions: `size` says how many bytes of it
/// this library version filled.
#[repr(C)]
pub struct wtd_log_record {
    /// sizeof(wtd_log_record) as the library knows it.
    pub size: usize,
    pub level: wtd_log_level,
    /// Where the record comes from: a Rust module path, e.g.
    /// "wtdatagram::transport::server", "quinn_proto::connection", "rustls::...".
    /// NUL-terminated, never NULL.
    pub target: *const c_char,
    /// The message followed by its fields as ` key=value` (e.g. "handshake failed: the
    /// peer aborted the handshake with TLS alert BadCertificate (42)
    /// remote=127.0.0.1:50000"), preceded by the span context if any (`span{a=1}: `).
    /// One line, NUL-terminated, never NULL.
    pub message: *const c_char,
    /// When the record was emitted (not delivered): microseconds since the Unix epoch.
    pub timestamp_us: u64,
}

/// Receives log records on the library's log thread (see wtd_set_log_callback).
pub type wtd_log_callback =
    Option<unsafe extern "C" fn(record: *const wtd_log_record, userdata: *mut c_void)>;

/// Records waiting for the callback at most; more are dropped and counted.
pub(crate) const QUEUE: usize = 8192;

/// One formatted record on its way to the log thread.
struct Record {
    level: wtd_log_level,
    target: String,
    text: String,
    timestamp_us: u64,
}

/// The application's registration.
struct AppLog {
    func: unsafe extern "C" fn(*const wtd_log_record, *mut c_void),
    userdata: *mut c_void,
    free: wtd_userdata_free,
}

// SAFETY: the header tells the application that its callback and userdata are used on
// the library's log thread; we never touch `userdata` ourselves.
unsafe impl Send for AppLog {}
// SAFETY: as for Send: a function pointer and an opaque pointer, only passed back.
unsafe impl Sync for AppLog {}

impl Drop for AppLog {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the application's destructor for its userdata, run exactly once:
            // when the last reference to the registration goes (after its last call).
            unsafe { free(self.userdata) };
        }
    }
}

/// The process-wide log state of this copy of the library.
struct Logger {
    /// The most verbose level delivered (a `wtd_log_level` as u8; 0: off).
    level: AtomicU8,
    callback: Mutex<Option<Arc<AppLog>>>,
    /// Held by the log thread while it runs the callback: a registration change waits
    /// on it, so that once it returns the old callback is not running any more.
    calling: Mutex<()>,
    tx: SyncSender<Record>,
    dropped: AtomicU64,
}

static LOGGER: OnceLock<Result<Logger, String>> = OnceLock::new();

thread_local! {
    static ON_LOG_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn level_of(l: &Level) -> wtd_log_level {
    use wtd_log_level::*;
    match *l {
        Level::ERROR => WTD_LOG_ERROR,
        Level::WARN => WTD_LOG_WARN,
        Level::INFO => WTD_LOG_INFO,
        Level::DEBUG => WTD_LOG_DEBUG,
        Level::TRACE => WTD_LOG_TRACE,
    }
}

fn current_level() -> u8 {
    match LOGGER.get() {
        Some(Ok(l)) => l.level.load(Ordering::Acquire),
        _ => 0,
    }
}

/// Lets through the callsites at or above the registered level. A level change
/// rebuilds the interest cache, so "never" is a safe answer for the others.
struct LevelFilter;

impl<S> Filter<S> for LevelFilter {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        level_of(meta.level()) as u8 <= current_level()
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if level_of(meta.level()) as u8 <= current_level() {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing_subscriber::filter::LevelFilter> {
        use tracing_subscriber::filter::LevelFilter as L;
        Some(match current_level() {
            0 => L::OFF,
            1 => L::ERROR,
            2 => L::WARN,
            3 => L::INFO,
            4 => L::DEBUG,
            _ => L::TRACE,
        })
    }
}

/// Where the formatting layer writes: one writer per record, which queues the record
/// when the layer is done with it.
struct Sink;

struct RecordWriter {
    level: wtd_log_level,
    target: String,
    buf: Vec<u8>,
    timestamp_us: u64,
}

impl Write for RecordWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        let Some(Ok(logger)) = LOGGER.get() else {
            return;
        };
        let text = String::from_utf8_lossy(&self.buf).trim_end().to_string();
        let record = Record {
            level: self.level,
            target: std::mem::take(&mut self.target),
            text,
            timestamp_us: self.timestamp_us,
        };
        // Never wait: a slow callback costs records, not the library's progress.
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            logger.tx.try_send(record)
        {
            logger.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = RecordWriter;

    fn make_writer(&'a self) -> RecordWriter {
        RecordWriter {
            level: wtd_log_level::WTD_LOG_INFO,
            target: "wtdatagram".into(),
            buf: Vec::new(),
            timestamp_us: now_us(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> RecordWriter {
        RecordWriter {
            level: level_of(meta.level()),
            target: meta.target().to_string(),
            buf: Vec::new(),
            timestamp_us: now_us(),
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Install the subscriber, the `log` bridge and the log thread (once per process).
fn start() -> Result<Logger, String> {
    let (tx, rx) = sync_channel(QUEUE);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_writer(Sink)
        .with_filter(LevelFilter);
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).map_err(
        |_| "another tracing subscriber is already installed in this process".to_string(),
    )?;
    // rustls logs through `log`; failing here (a `log` logger set already) only loses
    // those records.
    let _ = tracing_log::LogTracer::init();
    ::log::set_max_level(::log::LevelFilter::Off);
    std::thread::Builder::new()
        .name("wtd-log".into())
        .spawn(move || deliver(rx))
        .map_err(|e| format!("starting the log thread: {e}"))?;
    Ok(Logger {
        level: AtomicU8::new(0),
        callback: Mutex::new(None),
        calling: Mutex::new(()),
        tx,
        dropped: AtomicU64::new(0),
    })
}

/// The log thread: every record to the callback registered when it is taken.
fn deliver(rx: Receiver<Record>) {
    ON_LOG_THREAD.with(|c| c.set(true));
    while let Ok(record) = rx.recv() {
        let Some(Ok(logger)) = LOGGER.get() else {
            continue;
        };
        let calling = logger.calling.lock();
        let Some(cb) = logger.callback.lock().clone() else {
            continue;
        };
        let dropped = logger.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 && wtd_log_level::WTD_LOG_WARN as u8 <= current_level() {
            call(
                &cb,
                &Record {
                    level: wtd_log_level::WTD_LOG_WARN,
                    target: "wtdatagram::log".into(),
                    text: format!(
                        "{dropped} log records dropped: the log callback fell {QUEUE} records behind"
                    ),
                    timestamp_us: now_us(),
                },
            );
        }
        // A record emitted before a level change may be past the new level.
        if record.level as u8 <= current_level() {
            call(&cb, &record);
        }
        drop(calling);
        // If the registration was replaced meanwhile, its userdata_free runs here,
        // after its last call.
        drop(cb);
    }
}

fn call(cb: &AppLog, r: &Record) {
    let target = CString::new(r.target.replace('\0', " ")).unwrap_or_default();
    let message = CString::new(r.text.replace('\0', " ")).unwrap_or_default();
    let record = wtd_log_record {
        size: std::mem::size_of::<wtd_log_record>(),
        level: r.level,
        target: target.as_ptr(),
        message: message.as_ptr(),
        timestamp_us: r.timestamp_us,
    };
    // A panic cannot come from C; this guards our own code around the call.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the application's callback, on the log thread as the header says, with
        // a record whose strings live until the call returns.
        unsafe { (cb.func)(&record, cb.userdata) }
    }));
}

/// Deliver the library's log records at `level` and more severe to
/// `callback(record, userdata)`.
///
/// Process-wide: one callback for the whole library, whatever runtime emits the
/// record. Registering again replaces the callback (and level); a NULL `callback`, or
/// `level` WTD_LOG_OFF, removes it (the given `userdata_free`, if any, then runs at once
/// on `userdata`). A `level` outside wtd_log_level is WTD_ERR_INVALID_ARGUMENT; on an
/// error nothing changes and `userdata_free` is not called.
///
/// Threading: the callback runs on a thread the library owns ("wtd-log"), one record at
/// a time, in the order they were emitted, never while the library holds a lock, so
/// any wtd_ call is allowed inside it (wtd_set_log_callback too). Records wait in a
/// queue of 8192; when the callback falls that far behind, further records are dropped
/// (the library never waits for the callback) and the next delivery is preceded by a
/// WARN record with the count. A record is delivered to whichever callback is
/// registered when the log thread takes it.
///
/// When this call returns, the previous callback is not running and will not be called
/// again (unless this is called from inside that callback, which returns at once);
/// its `userdata_free` has run, or runs after that last call.
///
/// The first registration installs the library's tracing subscriber for the process;
/// WTD_ERR_INVALID_STATE if another one was installed before in this copy of the
/// library (only possible when it is linked into a Rust program that set its own).
/// No callback registered (the default): the library formats nothing.
#[no_mangle]
pub unsafe extern "C" fn wtd_set_log_callback(
    level: c::wtd_log_level,
    callback: wtd_log_callback,
    userdata: *mut c_void,
    userdata_free: wtd_userdata_free,
) -> wtd_result {
    let free_now = |f: wtd_userdata_free| {
        if let Some(f) = f {
            // SAFETY: the application's destructor for userdata that no callback will
            // ever receive: freed once, now.
            unsafe { f(userdata) };
        }
    };
    guard(|| {
        let level = level.get("level")?;
        let func = match (callback, level) {
            (Some(f), l) if l != wtd_log_level::WTD_LOG_OFF => Some(f),
            _ => None,
        };
        let logger = match (LOGGER.get(), func) {
            (Some(Ok(l)), _) => l,
            (Some(Err(e)), _) => return Err(FfiError::new(WTD_ERR_INVALID_STATE, e.clone())),
            // Removing what was never set: nothing to start.
            (None, None) => {
                free_now(userdata_free);
                return Ok(());
            }
            (None, Some(_)) => match LOGGER.get_or_init(start) {
                Ok(l) => l,
                Err(e) => return Err(FfiError::new(WTD_ERR_INVALID_STATE, e.clone())),
            },
        };
        let new = func.map(|func| {
            Arc::new(AppLog {
                func,
                userdata,
                free: userdata_free,
            })
        });
        if new.is_none() {
            free_now(userdata_free);
        }
        let old = {
            let mut slot = logger.callback.lock();
            let level = if new.is_some() { level as u8 } else { 0 };
            logger.level.store(level, Ordering::Release);
            std::mem::replace(&mut *slot, new)
        };
        ::log::set_max_level(match level as u8 * u8::from(func.is_some()) {
            0 => ::log::LevelFilter::Off,
            1 => ::log::LevelFilter::Error,
            2 => ::log::LevelFilter::Warn,
            3 => ::log::LevelFilter::Info,
            4 => ::log::LevelFilter::Debug,
            _ => ::log::LevelFilter::Trace,
        });
        tracing::callsite::rebuild_interest_cache();
        // Wait for a call of the old callback in progress (not from inside it).
        if !ON_LOG_THREAD.with(|c| c.get()) {
            drop(logger.calling.lock());
        }
        drop(old);
        Ok(())
    })
}

/// The name of a log level ("ERROR", "WARN", "INFO", "DEBUG", "TRACE", "OFF"); static,
/// never NULL; "UNKNOWN" for a value outside wtd_log_level.
#[no_mangle]
pub extern "C" fn wtd_log_level_name(level: c::wtd_log_level) -> *const c_char {
    use wtd_log_level::*;
    let s: &'static std::ffi::CStr = match level.value() {
        Some(WTD_LOG_OFF) => c"OFF",
        Some(WTD_LOG_ERROR) => c"ERROR",
        Some(WTD_LOG_WARN) => c"WARN",
        Some(WTD_LOG_INFO) => c"INFO",
        Some(WTD_LOG_DEBUG) => c"DEBUG",
        Some(WTD_LOG_TRACE) => c"TRACE",
        None => c"UNKNOWN",
    };
    s.as_ptr()
}
