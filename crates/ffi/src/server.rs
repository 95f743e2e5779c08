//! Server handles and session requests.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Arc;

use super::error::*;
use super::events::{Event, EventSource};
use super::handle::{self, Boxed, Castable, Shared};
use super::runtime::RuntimeInner;
use super::session::make_session;
use super::types::{
    wtd_dialect, wtd_runtime, wtd_server, wtd_server_config, wtd_session, wtd_session_request,
};
use wtd_result::*;
use wtdatagram::transport::{Server, SessionRequest};

/// What `wtd_server` holds.
pub(crate) struct ServerHandle {
    server: Arc<Server>,
    freed: AtomicBool,
    userdata: AtomicPtr<c_void>,
    accept_task: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

// SAFETY: wtd_server pointers are made only by into_c_arc from an Arc<ServerHandle>.
unsafe impl Castable for wtd_server {
    type Rust = ServerHandle;
    type Own = Shared;
}

impl EventSource for ServerHandle {
    fn handle_ptr(&self) -> *mut c_void {
        handle::c_ptr_of::<wtd_server>(self).cast()
    }
    fn is_freed(&self) -> bool {
        self.freed.load(Ordering::Acquire)
    }
    fn userdata(&self) -> *mut c_void {
        self.userdata.load(Ordering::Acquire)
    }
}

/// What `wtd_session_request` holds.
pub(crate) struct RequestHandle {
    req: Option<SessionRequest>,
    runtime: Arc<RuntimeInner>,
    events_mode: bool,
    cap: usize,
    path: CString,
    authority: CString,
    protocol: CString,
    origin: Option<CString>,
    headers: Vec<(CString, CString)>,
}

// SAFETY: wtd_session_request pointers are made only by into_c_box from a
// RequestHandle (when its SESSION_REQUEST event is handed to the application).
unsafe impl Castable for wtd_session_request {
    type Rust = RequestHandle;
    type Own = Boxed;
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// Start a server with `config` (copied; NULL means defaults) on `runtime`. It listens
/// at once; read the bound address with wtd_server_port / wtd_server_local_addr.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_new(
    runtime: *const wtd_runtime,
    config: *const wtd_server_config,
    out_server: *mut *mut wtd_server,
) -> wtd_result {
    guard(|| {
        // SAFETY: `runtime` is NULL or a live handle (the header's contract).
        let rt = unsafe { handle::borrow(runtime, "runtime") }?;
        // SAFETY: `out_server` is NULL or writable (the header's contract).
        let out = unsafe { out(out_server, "out_server") }?;
        // SAFETY: `config` is NULL or a live handle (the header's contract).
        let (cfg, transport) = match unsafe { handle::get(config) } {
            Some(c) => (c.cfg.clone(), c.transport.clone()),
            None => Default::default(),
        };
        let mut cfg = cfg;
        cfg.transport = transport.opts.clone();
        let inner = rt.inner.clone();
        let _enter = inner.enter()?;
        let server = Arc::new(Server::bind(cfg)?);
        let handle = Arc::new(ServerHandle {
            server: server.clone(),
            freed: AtomicBool::new(false),
            userdata: AtomicPtr::new(std::ptr::null_mut()),
            accept_task: parking_lot::Mutex::new(None),
        });
        let weak = Arc::downgrade(&handle);
        let events_mode = transport.datagram_events;
        let cap = transport.opts.recv_queue;
        let rt2 = inner.clone();
        let task = inner.handle.spawn(async move {
            while let Some(req) = server.accept().await {
                let Some(h) = weak.upgrade() else { break };
                let info = req.info();
                let request = RequestHandle {
                    path: c(&info.path),
                    authority: c(&info.authority),
                    protocol: c(&info.protocol),
                    origin: info.origin().map(c),
                    headers: info.headers.iter().map(|(n, v)| (c(n), c(v))).collect(),
                    req: Some(req),
                    runtime: rt2.clone(),
                    events_mode,
                    cap,
                };
                rt2.events.push(Event::SessionRequest {
                    server: h,
                    request: Box::new(move || handle::into_c_box(request)),
                });
            }
        });
        *handle.accept_task.lock() = Some(task);
        *out = handle::into_c_arc(handle);
        Ok(())
    })
}

/// The bound UDP port (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_server_port(server: *const wtd_server) -> u16 {
    guard_value(0, || {
        // SAFETY: `server` is NULL or a live handle (the header's contract).
        unsafe { handle::get(server) }.map_or(0, |s| s.server.local_addr().port())
    })
}

/// Write the bound address (e.g. "127.0.0.1:4433", NUL-terminated) into `buf`.
/// WTD_ERR_BUFFER_TOO_SMALL if it does not fit with its NUL (64 bytes always do).
#[no_mangle]
pub unsafe extern "C" fn wtd_server_local_addr(
    server: *const wtd_server,
    buf: *mut c_char,
    cap: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `server` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(server, "server") }?;
        // SAFETY: `buf as *mut u8` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(buf as *mut u8, cap, "buf") }?;
        let text = s.server.local_addr().to_string();
        if buf.len() < text.len() + 1 {
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                format!("address needs {} bytes", text.len() + 1),
            ));
        }
        put(buf, 0, text.as_bytes());
        buf[text.len()].write(0);
        Ok(())
    })
}

/// Write the SHA-256 of the server certificate (32 bytes; `out_len` must be >= 32),
/// what browsers pass in serverCertificateHashes.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_cert_hash(
    server: *const wtd_server,
    out_hash: *mut u8,
    out_len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `server` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(server, "server") }?;
        // SAFETY: `out_hash` is NULL or writable for its capacity (the header's contract).
        let buf = unsafe { out_buf(out_hash, out_len, "out_hash") }?;
        if buf.len() < 32 {
            return Err(FfiError::arg("out_hash must hold 32 bytes"));
        }
        put(buf, 0, &s.server.cert_sha256());
        Ok(())
    })
}

/// Attach an application pointer, returned in this server's SESSION_REQUEST events.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_set_userdata(
    server: *const wtd_server,
    userdata: *mut c_void,
) -> wtd_result {
    guard(|| {
        // SAFETY: `server` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(server, "server") }?
            .userdata
            .store(userdata, Ordering::Release);
        Ok(())
    })
}

/// Stop accepting and close every connection of the server, in the background: returns
/// at once and never blocks, so it may be called from inside a callback. Sessions closed
/// before (wtd_session_close, or wtd_session_free of an open session) or while the server
/// closes keep their connection until their close capsule reached the peer and the peer
/// answered it (at most 1.5 s), so the peer sees their code and reason; then every
/// connection closes (sessions still open see WTD_CLOSE_CONNECTION_LOST, the peer too:
/// code 0x100, "server closed"), all within 2 s. New connections are refused at once.
/// wtd_runtime_free waits (within its own 2 s) for a close still under way; sessions
/// closed after the connections closed are not delivered. A second call does nothing.
/// The handle stays valid until wtd_server_free.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_close(server: *const wtd_server) -> wtd_result {
    guard(|| {
        // SAFETY: `server` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(server, "server") }?.server.close();
        Ok(())
    })
}

/// Close the server as wtd_server_close does (without blocking: safe inside a callback;
/// close capsules of sessions closed before are still delivered, within 2 s, in the
/// background) and release the handle; queued requests for it are refused. Its sessions
/// remain valid handles, freed separately. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_server_free(server: *mut wtd_server) {
    if server.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: a live server the caller gives up (the header's contract).
        if let Some(s) = unsafe { handle::take_arc(server) } {
            s.freed.store(true, Ordering::Release);
            s.server.close();
            let task = s.accept_task.lock().take();
            if let Some(t) = task {
                t.abort();
            }
        }
    })
}

/// Apply a string getter to a request handle (NULL for NULL).
///
/// # Safety
/// `req` must be NULL or a live request handle from this library.
unsafe fn req_str(
    req: *const wtd_session_request,
    f: impl FnOnce(&RequestHandle) -> *const c_char,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: NULL or a live request (this function's contract).
        unsafe { handle::get(req) }.map_or(std::ptr::null(), f)
    })
}

/// The requested path with query, e.g. "/chat?room=1". Strings returned by the
/// wtd_session_request_* getters are NUL-terminated and valid until the request is
/// accepted, rejected or freed. NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_path(
    request: *const wtd_session_request,
) -> *const c_char {
    // SAFETY: `request` is NULL or a live request (the header's contract).
    unsafe { req_str(request, |r| r.path.as_ptr()) }
}

/// The `:authority` (host:port) the client asked for.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_authority(
    request: *const wtd_session_request,
) -> *const c_char {
    // SAFETY: `request` is NULL or a live request (the header's contract).
    unsafe { req_str(request, |r| r.authority.as_ptr()) }
}

/// The `origin` header, or NULL if the client sent none (browsers always do).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_origin(
    request: *const wtd_session_request,
) -> *const c_char {
    // SAFETY: `request` is NULL or a live request (the header's contract).
    unsafe {
        req_str(request, |r| {
            r.origin.as_ref().map_or(std::ptr::null(), |o| o.as_ptr())
        })
    }
}

/// The `:protocol`: "webtransport" or "webtransport-h3".
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_protocol(
    request: *const wtd_session_request,
) -> *const c_char {
    // SAFETY: `request` is NULL or a live request (the header's contract).
    unsafe { req_str(request, |r| r.protocol.as_ptr()) }
}

/// The dialect the client speaks (WTD_DIALECT_DRAFT02 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_dialect(
    request: *const wtd_session_request,
) -> wtd_dialect {
    guard_value(wtd_dialect::WTD_DIALECT_DRAFT02, || {
        // SAFETY: `request` is NULL or a live handle (the header's contract).
        unsafe { handle::get(request) }
            .and_then(|r| r.req.as_ref())
            .map_or(wtd_dialect::WTD_DIALECT_DRAFT02, |r| {
                r.info().dialect.into()
            })
    })
}

/// The value of the first header named `name` (case-insensitive), or NULL.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_header(
    request: *const wtd_session_request,
    name: *const c_char,
) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: `request` is NULL or a live request, `name` NULL or NUL-terminated
        // (the header's contract).
        let (Some(r), Ok(n)) = (unsafe { handle::get(request) }, unsafe {
            cstr(name, "name")
        }) else {
            return std::ptr::null();
        };
        let n = n.to_ascii_lowercase();
        r.headers
            .iter()
            .find(|(k, _)| k.as_bytes() == n.as_bytes())
            .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
    })
}

/// Number of regular (non-pseudo) request headers (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_header_count(
    request: *const wtd_session_request,
) -> usize {
    guard_value(0, || {
        // SAFETY: `request` is NULL or a live handle (the header's contract).
        unsafe { handle::get(request) }.map_or(0, |r| r.headers.len())
    })
}

/// The `index`-th header's name and value. WTD_ERR_NOT_FOUND past the end.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_header_at(
    request: *const wtd_session_request,
    index: usize,
    out_name: *mut *const c_char,
    out_value: *mut *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `request` is NULL or a live handle (the header's contract).
        let r = unsafe { handle::borrow(request, "request") }?;
        // SAFETY: both are NULL or writable (the header's contract).
        let (n, v) = unsafe { (out(out_name, "out_name")?, out(out_value, "out_value")?) };
        let (name, value) = r
            .headers
            .get(index)
            .ok_or_else(|| FfiError::new(WTD_ERR_NOT_FOUND, format!("no header {index}")))?;
        *n = name.as_ptr();
        *v = value.as_ptr();
        Ok(())
    })
}

/// Accept: answer 200 and write the new session to `out_session` (owned by the caller).
/// Consumes `request` whatever the result, except when an argument is NULL.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_accept(
    request: *mut wtd_session_request,
    out_session: *mut *mut wtd_session,
) -> wtd_result {
    guard(|| {
        // SAFETY: `request` is NULL or a live request (the header's contract).
        unsafe { handle::borrow(request, "request") }?;
        // SAFETY: `out_session` is NULL or writable (the header's contract).
        let out = unsafe { out(out_session, "out_session") }?;
        // SAFETY: non-NULL (checked above) and the caller gives it up: accept consumes
        // the request (the header's contract).
        let Some(mut r) = (unsafe { handle::take_box(request) }) else {
            return Err(FfiError::arg("request is NULL"));
        };
        let req = r
            .req
            .take()
            .ok_or_else(|| FfiError::new(WTD_ERR_INVALID_STATE, "request already answered"))?;
        let session = r.runtime.block_on(10_000, req.accept())??;
        *out = make_session(session, r.runtime.clone(), r.events_mode, r.cap);
        Ok(())
    })
}

/// Reject with an HTTP status (100..=599, not 2xx; e.g. 403, 404, 429). Consumes
/// `request`, except when it returns WTD_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_reject(
    request: *mut wtd_session_request,
    status: u16,
) -> wtd_result {
    guard(|| {
        // SAFETY: `request` is NULL or a live request (the header's contract).
        unsafe { handle::borrow(request, "request") }?;
        if !(100..=599).contains(&status) || (200..300).contains(&status) {
            return Err(FfiError::arg(format!("{status} is not a rejection status")));
        }
        // SAFETY: non-NULL (checked above) and the caller gives it up: reject consumes
        // the request (the header's contract).
        let Some(mut r) = (unsafe { handle::take_box(request) }) else {
            return Err(FfiError::arg("request is NULL"));
        };
        if let Some(req) = r.req.take() {
            r.runtime.block_on(10_000, req.reject(status))??;
        }
        Ok(())
    })
}

/// Release a request without answering it explicitly: it is refused with 503. NULL is
/// a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_session_request_free(request: *mut wtd_session_request) {
    // SAFETY: NULL or a live request the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(request) }));
}

/// What a server holds and what it refused (see the limits in wtd_server_config_* and
/// wtd_transport_config_*). Versioned by its size: set `size` to
/// sizeof(wtd_server_stats) before wtd_server_get_stats; the library fills only the
/// fields that fit in `size` bytes, so programs built against an older, shorter version
/// keep working when fields are added at the end.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_server_stats {
    /// Set by the caller: sizeof(wtd_server_stats).
    pub size: usize,
    /// Connections held now (handshakes in progress included).
    pub connections: u64,
    /// Sessions held now over all connections: open, being answered, or closing.
    pub sessions: u64,
    /// Session requests received and not yet answered (in the event queue included).
    pub pending_requests: u64,
    /// Connections whose handshake completed, since the start.
    pub connections_accepted: u64,
    /// Connection attempts refused: the server held its maximum of connections.
    pub connections_refused: u64,
    /// Handshakes that failed (TLS alert, unsupported version, timeout).
    pub handshakes_failed: u64,
    /// Session requests handed to the application, since the start.
    pub requests_received: u64,
    /// Requests answered 503: the server held its maximum of sessions.
    pub requests_refused_server_full: u64,
    /// Requests answered 429: their connection carried its maximum of sessions.
    pub requests_refused_connection_full: u64,
    /// Requests answered 503: the request backlog was full.
    pub requests_refused_backlog: u64,
    /// Requests answered 431: their headers exceeded the field section limits.
    pub requests_too_large: u64,
    /// Request streams reset with H3_REQUEST_REJECTED: no complete request within the
    /// request timeout.
    pub requests_timed_out: u64,
}

/// Read the server's counts and counters into `out_stats`, whose `size` the caller set
/// (see wtd_server_stats). WTD_ERR_INVALID_ARGUMENT if `size` is smaller than the first
/// version of the struct (`size` plus `connections`).
#[no_mangle]
pub unsafe extern "C" fn wtd_server_get_stats(
    server: *const wtd_server,
    out_stats: *mut wtd_server_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `server` is NULL or a live handle (the header's contract).
        let s = unsafe { handle::borrow(server, "server") }?;
        if out_stats.is_null() {
            return Err(FfiError::arg("out_stats is NULL"));
        }
        // SAFETY: out_stats is non-NULL and, per the documented contract, points to a
        // caller-owned wtd_server_stats (of this or an older, shorter version), which
        // always begins with its aligned `size` field.
        let size = unsafe { std::ptr::addr_of!((*out_stats).size).read() };
        let min = std::mem::offset_of!(wtd_server_stats, connections) + 8;
        if size < min {
            return Err(FfiError::arg(format!(
                "out_stats->size is {size}: set it to sizeof(wtd_server_stats)"
            )));
        }
        let st = s.server.stats();
        let full = wtd_server_stats {
            size,
            connections: st.connections,
            sessions: st.sessions,
            pending_requests: st.pending_requests,
            connections_accepted: st.connections_accepted,
            connections_refused: st.connections_refused,
            handshakes_failed: st.handshakes_failed,
            requests_received: st.requests_received,
            requests_refused_server_full: st.requests_refused_server_full,
            requests_refused_connection_full: st.requests_refused_connection_full,
            requests_refused_backlog: st.requests_refused_backlog,
            requests_too_large: st.requests_too_large,
            requests_timed_out: st.requests_timed_out,
        };
        let n = size.min(std::mem::size_of::<wtd_server_stats>());
        // SAFETY: `full` is a live value of n <= its size bytes, and the caller promised
        // `size` >= n writable bytes at out_stats; the regions cannot overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&full as *const wtd_server_stats).cast::<u8>(),
                out_stats.cast::<u8>(),
                n,
            )
        };
        Ok(())
    })
}
