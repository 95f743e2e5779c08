//! Events as the application sees them (`wtd_event`) and as they wait in the queue.
//!
//! An event names the handle it is about through [`EventSource`], not its type, so the
//! modules that produce events (sessions, servers) import this one and not the other
//! way round.

use std::ffi::c_void;
use std::sync::Arc;

use bytes::Bytes;

use super::error::guard_value;
use super::types::{close_parts, wtd_close_kind, wtd_server, wtd_session, wtd_session_request};
use wtdatagram::transport::CloseReason;

/// What happened. Applications must ignore kinds they do not know (new ones may come).
#[repr(C)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wtd_event_kind {
    /// Not an event (a released or zeroed `wtd_event`).
    WTD_EVENT_NONE = 0,
    /// A client asks to open a session on `server`. The application now owns `request`
    /// and must pass it to exactly one of wtd_session_request_accept / _reject / _free.
    WTD_EVENT_SESSION_REQUEST = 1,
    /// A datagram arrived on `session`: `data`/`len` is its payload.
    WTD_EVENT_DATAGRAM = 2,
    /// `session` closed: `close_kind`, `close_code`, and the reason text in `data`/`len`
    /// (UTF-8, not NUL-terminated). The last event of a session.
    WTD_EVENT_SESSION_CLOSED = 3,
    /// Datagrams wait in `session`'s queue (datagram events off): receive them with
    /// wtd_session_recv / wtd_session_recv_multiple. Comes once per
    /// wtd_session_notify_readable call.
    WTD_EVENT_DATAGRAMS_READY = 4,
}

/// One event. Pointers are borrowed: for the duration of the callback, or until
/// `wtd_event_release` in pull mode. Fields that do not apply to a kind are NULL/0.
/// In pull mode it is a plain value: it may be copied or moved before it is released,
/// and exactly one copy is released, once.
#[repr(C)]
pub struct wtd_event {
    pub kind: wtd_event_kind,
    /// SESSION_REQUEST: the server that received it.
    pub server: *mut wtd_server,
    /// SESSION_REQUEST: the request, owned by the application from now on.
    pub request: *mut wtd_session_request,
    /// DATAGRAM, SESSION_CLOSED: the session (borrowed; the application's handle).
    pub session: *mut wtd_session,
    /// The session's or server's userdata (see wtd_session_set_userdata).
    pub userdata: *mut c_void,
    /// DATAGRAM: payload; SESSION_CLOSED: reason text.
    pub data: *const u8,
    pub len: usize,
    /// SESSION_CLOSED: how it ended.
    pub close_kind: wtd_close_kind,
    /// SESSION_CLOSED: application or protocol code (see wtd_close_kind).
    pub close_code: u64,
    /// Library-private; do not touch.
    pub internal: *mut c_void,
}

impl wtd_event {
    /// An event of `kind` about `session` (its handle and userdata), None once the
    /// application freed the handle.
    fn about_session(kind: wtd_event_kind, session: &dyn EventSource) -> Option<wtd_event> {
        if session.is_freed() {
            return None;
        }
        let mut ev = wtd_event::empty(kind);
        ev.session = session.handle_ptr().cast::<wtd_session>();
        ev.userdata = session.userdata();
        Some(ev)
    }

    fn empty(kind: wtd_event_kind) -> wtd_event {
        wtd_event {
            kind,
            server: std::ptr::null_mut(),
            request: std::ptr::null_mut(),
            session: std::ptr::null_mut(),
            userdata: std::ptr::null_mut(),
            data: std::ptr::null(),
            len: 0,
            close_kind: wtd_close_kind::WTD_CLOSE_NONE,
            close_code: 0,
            internal: std::ptr::null_mut(),
        }
    }
}

/// A handle an event can be about (a server, a session).
pub(crate) trait EventSource: Send + Sync + 'static {
    /// The pointer the application holds for the handle.
    fn handle_ptr(&self) -> *mut c_void;
    /// The application freed the handle: its queued events are dropped.
    fn is_freed(&self) -> bool;
    /// The application's userdata for the handle.
    fn userdata(&self) -> *mut c_void;
    /// A DATAGRAM event of `len` bytes about this handle is gone (delivered and
    /// released, or dropped): it no longer counts against the handle's event budget.
    fn datagram_done(&self, _len: usize) {}
}

/// A session request waiting to be handed to the application: called, it gives up its
/// request handle to C; dropped unused, the request is refused (503).
pub(crate) type PendingRequest = Box<dyn FnOnce() -> *mut wtd_session_request + Send>;

/// An event waiting in the queue.
pub(crate) enum Event {
    SessionRequest {
        server: Arc<dyn EventSource>,
        request: PendingRequest,
    },
    Datagram {
        session: Arc<dyn EventSource>,
        data: Bytes,
    },
    SessionClosed {
        session: Arc<dyn EventSource>,
        reason: CloseReason,
    },
    DatagramsReady {
        session: Arc<dyn EventSource>,
    },
    /// Run a component's callback (reliability reports, monitor alerts, ...) where
    /// events are delivered: on the dispatcher thread in callback mode, or inside
    /// wtd_runtime_next_event in pull mode. Never on a runtime worker, and in queue order.
    Invoke(Box<dyn FnOnce() + Send>),
}

/// Keeps alive what a delivered `wtd_event` points to.
enum Keep {
    /// The server or session the event names.
    Handle(#[allow(dead_code)] Arc<dyn EventSource>),
    Datagram(Arc<dyn EventSource>, Bytes),
    Closed(
        #[allow(dead_code)] Arc<dyn EventSource>,
        #[allow(dead_code)] String,
    ),
}

impl Drop for Keep {
    fn drop(&mut self) {
        if let Keep::Datagram(s, d) = self {
            s.datagram_done(d.len());
        }
    }
}

pub(crate) struct CEvent {
    pub event: wtd_event,
    _keep: Keep,
}

impl CEvent {
    /// Box it for pull mode: the box's address goes into `internal`, which
    /// [`wtd_event_release`] frees.
    pub(crate) fn into_owned_event(self) -> wtd_event {
        let boxed = Box::into_raw(Box::new(self));
        // SAFETY: `boxed` was just allocated and is valid; the event is copied out
        // (`wtd_event` holds only plain data and pointers), the box stays owned by
        // `internal` until wtd_event_release.
        unsafe {
            (*boxed).event.internal = boxed.cast::<c_void>();
            std::ptr::read(&(*boxed).event)
        }
    }
}

impl Event {
    /// The C view, or None when the event's handle was freed meanwhile (then it is
    /// dropped: an unanswered request is refused, a datagram is discarded). An Invoke
    /// runs here and yields None.
    pub(crate) fn into_c(self) -> Option<CEvent> {
        use wtd_event_kind::*;
        match self {
            Event::Invoke(f) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                None
            }
            Event::SessionRequest { server, request } => {
                if server.is_freed() {
                    return None;
                }
                let mut ev = wtd_event::empty(WTD_EVENT_SESSION_REQUEST);
                ev.server = server.handle_ptr().cast::<wtd_server>();
                ev.userdata = server.userdata();
                ev.request = request();
                Some(CEvent {
                    event: ev,
                    _keep: Keep::Handle(server),
                })
            }
            Event::Datagram { session, data } => {
                let keep = Keep::Datagram(session, data);
                let Keep::Datagram(session, data) = &keep else {
                    return None;
                };
                let mut ev = wtd_event::about_session(WTD_EVENT_DATAGRAM, &**session)?;
                ev.data = data.as_ptr();
                ev.len = data.len();
                Some(CEvent {
                    event: ev,
                    _keep: keep,
                })
            }
            Event::SessionClosed { session, reason } => {
                let mut ev = wtd_event::about_session(WTD_EVENT_SESSION_CLOSED, &*session)?;
                let (kind, code, text) = close_parts(&reason);
                ev.data = text.as_ptr();
                ev.len = text.len();
                ev.close_kind = kind;
                ev.close_code = code;
                Some(CEvent {
                    event: ev,
                    _keep: Keep::Closed(session, text),
                })
            }
            Event::DatagramsReady { session } => Some(CEvent {
                event: wtd_event::about_session(WTD_EVENT_DATAGRAMS_READY, &*session)?,
                _keep: Keep::Handle(session),
            }),
        }
    }
}

/// Release an event received from `wtd_runtime_next_event` (or one of those written by
/// `wtd_runtime_next_events`) and zero it (kind becomes WTD_EVENT_NONE). NULL, or an
/// event already released, is a no-op. Never call it on the event passed to a callback.
/// Does not free `request` (the application owns it).
#[no_mangle]
pub unsafe extern "C" fn wtd_event_release(event: *mut wtd_event) {
    if event.is_null() {
        return;
    }
    guard_value((), || {
        // The application owns this memory and may have written anything into it (its
        // enum fields need not hold valid values), so no `&wtd_event` is formed: only
        // `internal` is read, through the raw pointer.
        // SAFETY: `event` is non-NULL and, per the contract, points to a `wtd_event`
        // written by wtd_runtime_next_event(s) (or a copy of one, or zeroed); `internal`
        // is a pointer field, valid for any bit pattern.
        let internal = unsafe { std::ptr::addr_of!((*event).internal).read() };
        if !internal.is_null() {
            // SAFETY: a non-NULL `internal` is the box wtd_runtime_next_event(s) leaked
            // for this event, released through exactly one copy (the contract); it is
            // reset below, so a second release of that copy is a no-op.
            drop(unsafe { Box::from_raw(internal.cast::<CEvent>()) });
        }
        // SAFETY: valid for writes of a `wtd_event`; `write` neither reads nor drops
        // the old contents.
        unsafe { event.write(wtd_event::empty(wtd_event_kind::WTD_EVENT_NONE)) };
    })
}
