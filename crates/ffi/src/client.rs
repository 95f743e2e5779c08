//! Client and connection handles.

use std::ffi::c_char;
use std::sync::Arc;

use super::error::*;
use super::handle::{self, Boxed, Castable};
use super::runtime::RuntimeInner;
use super::session::make_session;
use super::types::{
    wtd_client, wtd_client_config, wtd_connection, wtd_dialect, wtd_runtime, wtd_session,
};
use wtdatagram::transport::{Client, Connection, TransportOptions};

/// A request header for wtd_connection_open_session / wtd_client_open_session.
#[repr(C)]
pub struct wtd_header {
    pub name: *const c_char,
    pub value: *const c_char,
}

/// What `wtd_client` holds.
pub(crate) struct ClientHandle {
    client: Client,
    runtime: Arc<RuntimeInner>,
    events_mode: bool,
    cap: usize,
}

// SAFETY: wtd_client pointers are made only by into_c_box from a ClientHandle.
unsafe impl Castable for wtd_client {
    type Rust = ClientHandle;
    type Own = Boxed;
}

/// What `wtd_connection` holds.
pub(crate) struct ConnectionHandle {
    conn: Connection,
    runtime: Arc<RuntimeInner>,
    events_mode: bool,
    cap: usize,
}

// SAFETY: wtd_connection pointers are made only by into_c_box from a ConnectionHandle.
unsafe impl Castable for wtd_connection {
    type Rust = ConnectionHandle;
    type Own = Boxed;
}

/// Create a client with `config` (copied; NULL means defaults).
#[no_mangle]
pub unsafe extern "C" fn wtd_client_new(
    runtime: *const wtd_runtime,
    config: *const wtd_client_config,
    out_client: *mut *mut wtd_client,
) -> wtd_result {
    guard(|| {
        // SAFETY: `runtime` is NULL or a live handle (the header's contract).
        let rt = unsafe { handle::borrow(runtime, "runtime") }?;
        // SAFETY: `out_client` is NULL or writable (the header's contract).
        let out = unsafe { out(out_client, "out_client") }?;
        // SAFETY: `config` is NULL or a live handle (the header's contract).
        let (cfg, events_mode, cap) = match unsafe { handle::get(config) } {
            Some(c) => (
                c.to_rust(),
                c.transport.datagram_events,
                c.transport.opts.recv_queue,
            ),
            None => (
                Default::default(),
                true,
                TransportOptions::default().recv_queue,
            ),
        };
        let _enter = rt.inner.enter()?;
        let client = Client::new(cfg)?;
        *out = handle::into_c_box(ClientHandle {
            client,
            runtime: rt.inner.clone(),
            events_mode,
            cap,
        });
        Ok(())
    })
}

/// Release the client. Its connections stay up while their sessions or connection
/// handles are alive, and then close gracefully (close capsules are delivered first).
/// NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_free(client: *mut wtd_client) {
    // SAFETY: NULL or a live client the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(client) }));
}

/// Close every connection of the client at once (sessions see
/// WTD_CLOSE_CONNECTION_LOST); later connects and session opens return WTD_ERR_CLOSED.
/// The handle stays valid until wtd_client_free.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_close(client: *const wtd_client) -> wtd_result {
    guard(|| {
        // SAFETY: `client` is NULL or a live handle (the header's contract).
        unsafe { handle::borrow(client, "client") }?.client.close();
        Ok(())
    })
}

/// Read `count` request headers.
///
/// # Safety
/// `h` must be NULL or valid for reads of `count` `wtd_header`s whose strings are NULL
/// or NUL-terminated.
unsafe fn headers(h: *const wtd_header, count: usize) -> FfiResult<Vec<(String, String)>> {
    if h.is_null() {
        if count > 0 {
            return Err(FfiError::arg("headers is NULL but count is not 0"));
        }
        return Ok(Vec::new());
    }
    // SAFETY: non-NULL and valid for `count` headers (this function's contract).
    let h = unsafe { std::slice::from_raw_parts(h, count) };
    h.iter()
        .map(|e| {
            // SAFETY: each string is NULL or NUL-terminated (this function's contract).
            let (n, v) = unsafe { (cstr(e.name, "header name")?, cstr(e.value, "header value")?) };
            Ok((n.to_string(), v.to_string()))
        })
        .collect()
}

/// Connect to the server of an `https://host:port/...` URL: QUIC handshake, HTTP/3
/// SETTINGS, and a check that it supports WebTransport datagrams. Waits up to
/// `timeout_ms` (negative: forever). The connection is owned by the caller.
#[no_mangle]
pub unsafe extern "C" fn wtd_client_connect(
    client: *const wtd_client,
    url: *const c_char,
    timeout_ms: i32,
    out_connection: *mut *mut wtd_connection,
) -> wtd_result {
    guard(|| {
        // SAFETY: `client` is NULL or a live handle (the header's contract).
        let c = unsafe { handle::borrow(client, "client") }?;
        // SAFETY: `url` is NULL or NUL-terminated (the header's contract).
        let url = unsafe { cstr(url, "url") }?;
        // SAFETY: `out_connection` is NULL or writable (the header's contract).
        let out = unsafe { out(out_connection, "out_connection") }?;
        let conn = c.runtime.block_on(timeout_ms, c.client.connect(url))??;
        *out = handle::into_c_box(ConnectionHandle {
            conn,
            runtime: c.runtime.clone(),
            events_mode: c.events_mode,
            cap: c.cap,
        });
        Ok(())
    })
}

/// Open a session on the connection. `target` is a path ("/chat") or a full URL;
/// `headers` (may be NULL when `count` is 0) are sent besides the configured ones.
/// WTD_ERR_REJECTED if the server refused (the status is in wtd_last_error).
/// WTD_ERR_INVALID_STATE, at once and with nothing sent, if the server speaks draft-15
/// without declaring flow control (draft-ietf-webtrans-http3-15 §5.1: one session at a
/// time per connection) and another session on this connection is open or being
/// opened; a session that is closing is waited for instead.
#[no_mangle]
pub unsafe extern "C" fn wtd_connection_open_session(
    connection: *const wtd_connection,
    target: *const c_char,
    headers_: *const wtd_header,
    count: usize,
    timeout_ms: i32,
    out_session: *mut *mut wtd_session,
) -> wtd_result {
    guard(|| {
        // SAFETY: `connection` is NULL or a live handle (the header's contract).
        let c = unsafe { handle::borrow(connection, "connection") }?;
        // SAFETY: `target` is NULL or NUL-terminated (the header's contract).
        let target = unsafe { cstr(target, "target") }?;
        // SAFETY: `headers_` is NULL or `count` readable headers (the header's contract).
        let h = unsafe { headers(headers_, count) }?;
        // SAFETY: `out_session` is NULL or writable (the header's contract).
        let out = unsafe { out(out_session, "out_session") }?;
        let s = c
            .runtime
            .block_on(timeout_ms, c.conn.open_session(target, &h))??;
        *out = make_session(s, c.runtime.clone(), c.events_mode, c.cap);
        Ok(())
    })
}

/// Connect and open one session at `url` on a new connection (closed with the session).
#[no_mangle]
pub unsafe extern "C" fn wtd_client_open_session(
    client: *const wtd_client,
    url: *const c_char,
    headers_: *const wtd_header,
    count: usize,
    timeout_ms: i32,
    out_session: *mut *mut wtd_session,
) -> wtd_result {
    guard(|| {
        // SAFETY: `client` is NULL or a live handle (the header's contract).
        let c = unsafe { handle::borrow(client, "client") }?;
        // SAFETY: `url` is NULL or NUL-terminated (the header's contract).
        let url = unsafe { cstr(url, "url") }?;
        // SAFETY: `headers_` is NULL or `count` readable headers (the header's contract).
        let h = unsafe { headers(headers_, count) }?;
        // SAFETY: `out_session` is NULL or writable (the header's contract).
        let out = unsafe { out(out_session, "out_session") }?;
        let s = c.runtime.block_on(timeout_ms, async {
            let conn = c.client.connect(url).await?;
            conn.open_session(url, &h).await
        })??;
        *out = make_session(s, c.runtime.clone(), c.events_mode, c.cap);
        Ok(())
    })
}

/// The dialect the server announced (WTD_DIALECT_DRAFT02 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_connection_dialect(connection: *const wtd_connection) -> wtd_dialect {
    guard_value(wtd_dialect::WTD_DIALECT_DRAFT02, || {
        // SAFETY: `connection` is NULL or a live handle (the header's contract).
        unsafe { handle::get(connection) }
            .and_then(|c| c.conn.peer_dialect())
            .map_or(wtd_dialect::WTD_DIALECT_DRAFT02, Into::into)
    })
}

/// Whether the connection has closed (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_connection_is_closed(connection: *const wtd_connection) -> bool {
    guard_value(false, || {
        // SAFETY: `connection` is NULL or a live handle (the header's contract).
        unsafe { handle::get(connection) }.is_some_and(|c| c.conn.is_closed())
    })
}

/// Close the connection and all its sessions with an HTTP/3 error code (0x100 =
/// H3_NO_ERROR) and a UTF-8 reason.
#[no_mangle]
pub unsafe extern "C" fn wtd_connection_close(
    connection: *const wtd_connection,
    code: u64,
    reason: *const u8,
    reason_len: usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `connection` is NULL or a live handle (the header's contract).
        let c = unsafe { handle::borrow(connection, "connection") }?;
        // SAFETY: the pointer arguments are NULL or valid as the header requires of callers.
        c.conn
            .close(code, unsafe { utf8(reason, reason_len, "reason") }?);
        Ok(())
    })
}

/// Release the connection handle; the connection closes once its sessions are freed
/// too. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_connection_free(connection: *mut wtd_connection) {
    // SAFETY: NULL or a live connection the caller gives up (the header's contract).
    guard_value((), || drop(unsafe { handle::take_box(connection) }));
}
