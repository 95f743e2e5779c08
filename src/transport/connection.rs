//! One HTTP/3 connection carrying WebTransport sessions: the control streams, SETTINGS,
//! the single datagram reader that routes by quarter stream id, and loss detection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use quinn::VarInt;
use tokio::sync::Notify;

use super::config::TransportOptions;
use super::session::{CloseReason, SessionShared};
use super::Error;
use crate::wire::codes::*;
use crate::wire::frame::{self, stream_type, Piece, Take, TlvReader};
use crate::wire::settings::{Dialect, Settings};
use crate::wire::{datagram, qpack, varint, WireError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// Largest SETTINGS frame we hold (the only control frame of any size we buffer; every
/// known setting fits in a few dozen bytes).
const MAX_SETTINGS_FRAME: u64 = 16 * 1024;

/// Datagrams the reader takes from quinn before handing them on (bounds the delay of
/// the first one of a burst).
const DATAGRAM_BURST: usize = 64;

pub(crate) struct ConnInner {
    pub(crate) quic: quinn::Connection,
    pub(crate) role: Role,
    pub(crate) opts: TransportOptions,
    pub(crate) rt: tokio::runtime::Handle,
    sessions: Mutex<HashMap<u64, Arc<SessionShared>>>,
    /// Sessions being opened or ended (see [`SessionSlot`]).
    slots: Mutex<Slots>,
    /// Wakes a client waiting for the sessions that are still closing (a slot ended).
    slot_released: Notify,
    peer_settings: OnceLock<Arc<Settings>>,
    settings_notify: Notify,
    peer_control_seen: AtomicBool,
    peer_qpack_encoder_seen: AtomicBool,
    peer_qpack_decoder_seen: AtomicBool,
    pub(crate) goaway: AtomicBool,
    pub(crate) unknown_datagrams: AtomicU64,
    /// The protocol error we closed the connection with, if we did.
    failure: OnceLock<WireError>,
    /// Our SETTINGS are queued on the control stream.
    settings_sent: AtomicBool,
    settings_sent_notify: Notify,
    /// Local session closes on this connection whose capsule is still on its way (see
    /// `session::ClosingGuard`): a closing server waits for them before it closes us.
    pub(crate) closes_in_flight: AtomicUsize,
    /// Whoever created a server connection: takes its request streams.
    requests: Option<Arc<dyn RequestHandler>>,
    /// Held for the creator while the connection lives (a server's connection count),
    /// released when the connection closes.
    held: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

/// Takes the request streams a server-side connection accepts. The connection does not
/// know the server: whoever creates it decides what a request is.
pub(crate) trait RequestHandler: Send + Sync + 'static {
    fn on_request(&self, conn: Arc<ConnInner>, send: quinn::SendStream, recv: quinn::RecvStream);
}

/// Closes the QUIC connection when the last user handle (client side) goes away.
pub(crate) struct CloseOnDrop {
    pub(crate) quic: quinn::Connection,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.quic
            .close(VarInt::from_u64(H3_NO_ERROR).unwrap_or_default(), b"");
    }
}

/// The sessions of a connection that the session map does not show: the ones still
/// being opened, and the ones closed whose CONNECT stream is still being read.
#[derive(Default)]
struct Slots {
    /// Reserved and not yet registered: a client's session being opened, a server's
    /// request not yet answered.
    pending: usize,
    /// Every slot: pending, plus every session whose CONNECT stream reader still runs
    /// (open, or closed and waiting for the peer to end its side).
    held: usize,
}

/// Which sessions a new one must not share the connection with (draft-ietf-webtrans-
/// http3-15 §5.1: without flow control, a connection carries one session at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exclusive {
    /// The session may share the connection (flow control, or not draft-15).
    No,
    /// No other session may be open or pending (server: the sessions it counts are the
    /// ones the client may still use).
    OfOpen,
    /// Nor may one still be closing (client: a server counts a session until it has
    /// read its end, so a new CONNECT waits for the old one to be over on both sides).
    OfAll,
}

/// Why [`ConnInner::reserve_session`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Another session is open or being opened.
    Open,
    /// Only sessions that are closing (their CONNECT stream is still being read).
    Closing,
    /// The connection carries its maximum of sessions (open or being opened).
    Full,
}

/// One session's place on its connection, from its reservation (request received,
/// open started) until its CONNECT stream reader ends; dropping it gives the place up.
pub(crate) struct SessionSlot {
    conn: Arc<ConnInner>,
    pending: bool,
    /// A place the session also holds for its creator (a server's session count).
    also: Option<super::limits::Held>,
}

impl SessionSlot {
    /// Hold `place` for as long as this slot.
    pub(crate) fn hold_also(&mut self, place: super::limits::Held) {
        self.also = Some(place);
    }

    /// The session is registered (the session map counts it from now on).
    pub(crate) fn established(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.conn.slots.lock().pending -= 1;
        }
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        {
            let mut s = self.conn.slots.lock();
            if self.pending {
                s.pending -= 1;
            }
            s.held -= 1;
        }
        self.conn.slot_released.notify_waiters();
    }
}

impl ConnInner {
    /// Start the HTTP/3 machinery on an established QUIC connection.
    pub(crate) fn start(
        quic: quinn::Connection,
        role: Role,
        opts: TransportOptions,
        requests: Option<Arc<dyn RequestHandler>>,
        held: Option<Box<dyn std::any::Any + Send>>,
    ) -> Arc<ConnInner> {
        let rt = tokio::runtime::Handle::current();
        let conn = Arc::new(ConnInner {
            quic,
            role,
            opts,
            rt: rt.clone(),
            sessions: Mutex::new(HashMap::new()),
            slots: Mutex::new(Slots::default()),
            slot_released: Notify::new(),
            peer_settings: OnceLock::new(),
            settings_notify: Notify::new(),
            peer_control_seen: AtomicBool::new(false),
            peer_qpack_encoder_seen: AtomicBool::new(false),
            peer_qpack_decoder_seen: AtomicBool::new(false),
            goaway: AtomicBool::new(false),
            unknown_datagrams: AtomicU64::new(0),
            failure: OnceLock::new(),
            settings_sent: AtomicBool::new(false),
            settings_sent_notify: Notify::new(),
            closes_in_flight: AtomicUsize::new(0),
            requests,
            held: Mutex::new(held),
        });
        rt.spawn(conn.clone().run_control_send());
        rt.spawn(conn.clone().run_accept_uni());
        rt.spawn(conn.clone().run_accept_bi());
        rt.spawn(conn.clone().run_datagrams());
        rt.spawn(conn.clone().run_closed());
        conn
    }

    /// Close the connection for a protocol violation: sessions see the error first.
    pub(crate) fn fail(&self, err: &WireError) {
        tracing::debug!("closing connection: {err}");
        let _ = self.failure.set(err.clone());
        let sessions: Vec<_> = self.sessions.lock().values().cloned().collect();
        for s in sessions {
            s.set_closed(CloseReason::Protocol {
                code: err.code,
                reason: err.msg.clone(),
            });
        }
        let code = VarInt::from_u64(err.code).unwrap_or(VarInt::from_u32(0x101));
        self.quic.close(code, err.msg.as_bytes());
    }

    pub(crate) fn register(&self, s: &Arc<SessionShared>) {
        self.sessions.lock().insert(s.quarter_id(), s.clone());
    }

    pub(crate) fn unregister(&self, s: &SessionShared) {
        let mut map = self.sessions.lock();
        if map
            .get(&s.quarter_id())
            .is_some_and(|x| std::ptr::eq(&**x, s))
        {
            map.remove(&s.quarter_id());
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Whether draft-15 flow control is enabled on this connection: both sides' SETTINGS
    /// declare it (draft-ietf-webtrans-http3-15 §5.1). Ours always do
    /// ([`Settings::webtransport`]); false until the peer's SETTINGS arrived.
    pub(crate) fn flow_control(&self) -> bool {
        self.peer_settings.get().is_some_and(|s| s.flow_control())
            && Settings::webtransport(self.opts.max_sessions_per_connection).flow_control()
    }

    /// Reserve a place for a new session, unless `exclusive` forbids it next to the
    /// sessions the connection already carries, or `limit` sessions (open or being
    /// opened: pending ones count, so concurrent requests cannot overshoot) are there.
    pub(crate) fn reserve_session(
        self: &Arc<Self>,
        exclusive: Exclusive,
        limit: Option<u64>,
    ) -> Result<SessionSlot, Busy> {
        let mut s = self.slots.lock();
        if let Some(limit) = limit {
            let carried = s.pending + self.sessions.lock().len();
            if carried as u64 >= limit {
                return Err(Busy::Full);
            }
        }
        if exclusive != Exclusive::No {
            if s.pending > 0 || !self.sessions.lock().is_empty() {
                return Err(Busy::Open);
            }
            if exclusive == Exclusive::OfAll && s.held > 0 {
                return Err(Busy::Closing);
            }
        }
        s.pending += 1;
        s.held += 1;
        Ok(SessionSlot {
            conn: self.clone(),
            pending: true,
            also: None,
        })
    }

    /// Wait until no session slot is held (the closing sessions are over), or the
    /// connection is gone.
    pub(crate) async fn slots_released(&self) {
        loop {
            let notified = self.slot_released.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.slots.lock().held == 0 || self.quic.close_reason().is_some() {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = self.quic.closed() => return,
            }
        }
    }

    /// A peer opened a WebTransport stream for `session_id`; the code to refuse it with.
    ///
    /// We announce stream limits of 0 (SETTINGS_WT_INITIAL_MAX_STREAMS_UNI/_BIDI) and
    /// never raise them, so with flow control enabled any stream of an established
    /// session exceeds its limit: the session is closed with WT_FLOW_CONTROL_ERROR
    /// (draft-ietf-webtrans-http3-15 §5.3) and the stream, now one of a terminated
    /// session, refused with WT_SESSION_GONE (§6). Without flow control there is no
    /// limit to break, and a stream of no (or no longer an) established session is
    /// refused as before, with WT_BUFFERED_STREAM_REJECTED.
    fn refuse_wt_stream(&self, session_id: u64, bidi: bool) -> u64 {
        if self.flow_control() {
            let s = self.sessions.lock().get(&(session_id / 4)).cloned();
            if let Some(s) = s.filter(|s| s.stream_id == session_id) {
                let kind = if bidi {
                    "bidirectional"
                } else {
                    "unidirectional"
                };
                s.abort(
                    WT_FLOW_CONTROL_ERROR,
                    format!("peer opened a {kind} stream beyond our limit of 0"),
                );
                return WT_SESSION_GONE;
            }
        }
        WT_BUFFERED_STREAM_REJECTED
    }

    /// The peer's SETTINGS, waiting for them if they have not arrived yet.
    pub(crate) async fn peer_settings(&self) -> Result<Arc<Settings>, Error> {
        loop {
            let notified = self.settings_notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(s) = self.peer_settings.get() {
                return Ok(s.clone());
            }
            if let Some(e) = self.quic.close_reason() {
                return Err(self.closed_error(&e));
            }
            tokio::select! {
                _ = notified => {}
                e = self.quic.closed() => return Err(self.closed_error(&e)),
            }
        }
    }

    /// Why the connection is unusable: our own protocol failure if we closed it for one.
    fn closed_error(&self, e: &quinn::ConnectionError) -> Error {
        match self.failure.get() {
            Some(w) => Error::Protocol(w.to_string()),
            None => Error::Closed(CloseReason::from_connection(e)),
        }
    }

    pub(crate) fn peer_dialect(&self) -> Option<Dialect> {
        self.peer_settings.get().and_then(|s| s.dialect())
    }

    /// Wait until our SETTINGS are queued (so no request can overtake them), or the
    /// connection is gone.
    pub(crate) async fn local_settings_sent(&self) {
        loop {
            let notified = self.settings_sent_notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.settings_sent.load(Relaxed) || self.quic.close_reason().is_some() {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = self.quic.closed() => return,
            }
        }
    }

    async fn run_control_send(self: Arc<Self>) {
        let Ok(mut send) = self.quic.open_uni().await else {
            self.settings_sent_notify.notify_waiters();
            return;
        };
        // Control data leaves before any request data queued at the same time: peers
        // that judge a request by our SETTINGS must have them first.
        let _ = send.set_priority(i32::MAX);
        let mut buf = Vec::new();
        varint::encode(stream_type::CONTROL, &mut buf);
        Settings::webtransport(self.opts.max_sessions_per_connection)
            .with(
                crate::wire::settings::MAX_FIELD_SECTION_SIZE,
                self.opts.max_field_section_size,
            )
            .encode_frame(&mut buf);
        let written = send.write_all(&buf).await.is_ok();
        self.settings_sent.store(true, Relaxed);
        self.settings_sent_notify.notify_waiters();
        if !written {
            return;
        }
        // The control stream must stay open for the life of the connection.
        let _ = self.quic.closed().await;
        drop(send);
    }

    async fn run_accept_uni(self: Arc<Self>) {
        while let Ok(recv) = self.quic.accept_uni().await {
            self.rt.spawn(self.clone().handle_uni(recv));
        }
    }

    async fn handle_uni(self: Arc<Self>, mut recv: quinn::RecvStream) {
        let mut buf = BytesMut::new();
        let Some(ty) = read_varint(&mut recv, &mut buf).await else {
            return;
        };
        match ty {
            stream_type::CONTROL => {
                if self.peer_control_seen.swap(true, Relaxed) {
                    return self.fail(&WireError::new(
                        H3_STREAM_CREATION_ERROR,
                        "second control stream",
                    ));
                }
                if let Err(e) = self.run_control_recv(&mut recv, buf).await {
                    self.fail(&e);
                }
            }
            stream_type::PUSH => {
                // We never send MAX_PUSH_ID, so no push id can be valid.
                let code = if self.role == Role::Server {
                    H3_STREAM_CREATION_ERROR
                } else {
                    H3_ID_ERROR
                };
                self.fail(&WireError::new(code, "push stream without MAX_PUSH_ID"));
            }
            stream_type::QPACK_ENCODER | stream_type::QPACK_DECODER => {
                let encoder = ty == stream_type::QPACK_ENCODER;
                let seen = if encoder {
                    &self.peer_qpack_encoder_seen
                } else {
                    &self.peer_qpack_decoder_seen
                };
                if seen.swap(true, Relaxed) {
                    let which = if encoder { "encoder" } else { "decoder" };
                    return self.fail(&WireError::new(
                        H3_STREAM_CREATION_ERROR,
                        format!("second QPACK {which} stream"),
                    ));
                }
                if let Err(e) = self.run_qpack_stream(&mut recv, buf, encoder).await {
                    self.fail(&e);
                }
            }
            stream_type::WEBTRANSPORT => {
                let Some(session_id) = read_varint(&mut recv, &mut buf).await else {
                    return;
                };
                let code = self.refuse_wt_stream(session_id, false);
                let _ = recv.stop(VarInt::from_u64(code).unwrap_or_default());
            }
            _ => {
                let _ = recv.stop(VarInt::from_u64(H3_STREAM_CREATION_ERROR).unwrap_or_default());
            }
        }
    }

    /// Read the peer's QPACK encoder or decoder stream (RFC 9204 §4.2): they are
    /// critical streams, so their end is a connection error, and their instructions are
    /// checked against our dynamic table capacity of 0 (see [`qpack::check_encoder_stream`]
    /// and [`qpack::DecoderStreamChecker`]). Nothing is kept.
    async fn run_qpack_stream(
        &self,
        recv: &mut quinn::RecvStream,
        first: BytesMut,
        encoder: bool,
    ) -> Result<(), WireError> {
        let mut decoder = qpack::DecoderStreamChecker::default();
        let mut check = |data: &[u8]| {
            if encoder {
                qpack::check_encoder_stream(data)
            } else {
                decoder.push(data)
            }
        };
        check(&first)?;
        loop {
            match recv.read_chunk(4096, true).await {
                Ok(Some(c)) => check(&c.bytes)?,
                Ok(None) => {
                    return Err(WireError::new(
                        H3_CLOSED_CRITICAL_STREAM,
                        "QPACK stream closed",
                    ))
                }
                Err(quinn::ReadError::Reset(_)) => {
                    return Err(WireError::new(
                        H3_CLOSED_CRITICAL_STREAM,
                        "QPACK stream reset",
                    ))
                }
                Err(_) => return Ok(()), // connection gone
            }
        }
    }

    async fn run_control_recv(
        &self,
        recv: &mut quinn::RecvStream,
        first: BytesMut,
    ) -> Result<(), WireError> {
        let mut reader = TlvReader::new();
        reader.push(&first);
        let mut got_settings = false;
        let role = self.role;
        loop {
            while let Some(piece) =
                reader.next(|ty, len| control_take(ty, len, got_settings, role))?
            {
                let Piece::Unit(f) = piece else {
                    continue; // an unknown frame, skipped
                };
                match f.ty {
                    frame::SETTINGS => {
                        got_settings = true;
                        let s = Settings::decode(&f.payload)?;
                        tracing::debug!(?s, "peer settings");
                        let _ = self.peer_settings.set(Arc::new(s));
                        self.settings_notify.notify_waiters();
                    }
                    frame::GOAWAY => {
                        frame::decode_goaway(&f.payload)?;
                        self.goaway.store(true, Relaxed);
                    }
                    _ => {} // MAX_PUSH_ID, CANCEL_PUSH: we never push
                }
            }
            match recv.read_chunk(64 * 1024, true).await {
                Ok(Some(c)) => reader.push(&c.bytes),
                Ok(None) => {
                    return Err(WireError::new(
                        H3_CLOSED_CRITICAL_STREAM,
                        "control stream closed",
                    ))
                }
                Err(quinn::ReadError::Reset(_)) => {
                    return Err(WireError::new(
                        H3_CLOSED_CRITICAL_STREAM,
                        "control stream reset",
                    ))
                }
                Err(_) => return Ok(()), // connection gone
            }
        }
    }

    async fn run_accept_bi(self: Arc<Self>) {
        // Raise the peer's stream limit ahead of need (never lowered; one MAX_STREAMS each).
        let (mut limit, most) = super::endpoint::bidi_stream_limits(&self.opts);
        let mut accepted = 0u64;
        while let Ok((send, recv)) = self.quic.accept_bi().await {
            accepted += 1;
            if self.role == Role::Server && limit < most && accepted + 8 > limit {
                limit = limit.saturating_mul(2).min(most);
                if let Ok(v) = VarInt::from_u64(limit) {
                    self.quic.set_max_concurrent_bi_streams(v);
                }
            }
            match (&self.requests, self.role) {
                (Some(handler), Role::Server) => {
                    handler.on_request(self.clone(), send, recv);
                }
                _ => {
                    // WebTransport bidirectional streams are not part of the datagram API.
                    self.rt
                        .spawn(self.clone().refuse_bidi(send, recv, BytesMut::new()));
                }
            }
        }
    }

    /// Refuse a bidirectional stream that is not a request: read its signal (0x41, a
    /// WebTransport stream) and session id from `buf` and the stream, then end both
    /// directions with the code of [`Self::refuse_wt_stream`] (another signal:
    /// WT_BUFFERED_STREAM_REJECTED).
    pub(crate) async fn refuse_bidi(
        self: Arc<Self>,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        mut buf: BytesMut,
    ) {
        let Some(signal) = read_varint(&mut recv, &mut buf).await else {
            return;
        };
        let code = if signal == frame::WEBTRANSPORT_STREAM {
            let Some(session_id) = read_varint(&mut recv, &mut buf).await else {
                return;
            };
            self.refuse_wt_stream(session_id, true)
        } else {
            WT_BUFFERED_STREAM_REJECTED
        };
        let code = VarInt::from_u64(code).unwrap_or_default();
        let _ = recv.stop(code);
        let _ = send.reset(code);
    }

    /// The connection's only datagram reader. It takes what quinn has buffered in bursts
    /// (at most [`DATAGRAM_BURST`]) and hands each session its run of consecutive
    /// datagrams at once: one session lookup, one lock and one wake-up per run instead
    /// of per datagram.
    async fn run_datagrams(self: Arc<Self>) {
        let mut run: Vec<Bytes> = Vec::new();
        while let Ok(first) = self.quic.read_datagram().await {
            // The session of the current run (None: no such session) and its quarter id.
            let mut target: Option<(u64, Option<Arc<SessionShared>>)> = None;
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(d) = next.take() {
                let (qid, payload) = match datagram::split(d) {
                    Ok(x) => x,
                    Err(e) => {
                        if let Some((_, Some(s))) = &target {
                            s.deliver(&mut run);
                        }
                        return self.fail(&e);
                    }
                };
                if target.as_ref().map(|t| t.0) != Some(qid) {
                    if let Some((_, Some(s))) = &target {
                        s.deliver(&mut run);
                    }
                    target = Some((qid, self.sessions.lock().get(&qid).cloned()));
                }
                match &target {
                    Some((_, Some(_))) => run.push(payload),
                    _ => {
                        self.unknown_datagrams.fetch_add(1, Relaxed);
                    }
                }
                taken += 1;
                if taken < DATAGRAM_BURST {
                    if let Some(Ok(d)) = super::session::poll_once(self.quic.read_datagram()) {
                        next = Some(d);
                    }
                }
            }
            if let Some((_, Some(s))) = &target {
                s.deliver(&mut run);
            }
        }
    }

    async fn run_closed(self: Arc<Self>) {
        let e = self.quic.closed().await;
        drop(self.held.lock().take());
        let reason = CloseReason::from_connection(&e);
        let sessions: Vec<_> = self.sessions.lock().drain().map(|(_, s)| s).collect();
        for s in sessions {
            // A running reader drains what already arrived, then records the loss itself.
            if !s.reader_active.load(std::sync::atomic::Ordering::Acquire) {
                s.set_closed(reason.clone());
            }
        }
        self.settings_notify.notify_waiters();
    }
}

/// How a control-stream frame is read: SETTINGS (first, and only once) and the
/// one-varint frames whole and bounded; unknown frames skipped whatever their size (RFC
/// 9114 §9); frames that do not belong on a control stream refused from their header.
fn control_take(ty: u64, len: u64, got_settings: bool, role: Role) -> Result<Take, WireError> {
    let unexpected = |msg: String| Err(WireError::new(H3_FRAME_UNEXPECTED, msg));
    match ty {
        frame::SETTINGS if got_settings => unexpected("second SETTINGS frame".into()),
        frame::SETTINGS if len > MAX_SETTINGS_FRAME => Err(WireError::new(
            H3_EXCESSIVE_LOAD,
            format!("SETTINGS frame of {len} bytes, limit {MAX_SETTINGS_FRAME}"),
        )),
        frame::SETTINGS => Ok(Take::Buffer),
        _ if !got_settings => Err(WireError::new(
            H3_MISSING_SETTINGS,
            "first control frame is not SETTINGS",
        )),
        frame::MAX_PUSH_ID if role == Role::Client => {
            unexpected("MAX_PUSH_ID from a server".into())
        }
        frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH if len > 8 => Err(WireError::new(
            H3_FRAME_ERROR,
            format!("frame {ty:#x} of {len} bytes holds more than one varint"),
        )),
        frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH => Ok(Take::Buffer),
        frame::DATA | frame::HEADERS | frame::PUSH_PROMISE | frame::WEBTRANSPORT_STREAM => {
            unexpected(format!("frame {ty:#x} on the control stream"))
        }
        ty if frame::is_reserved_h2(ty) => unexpected(format!("HTTP/2 frame type {ty:#x}")),
        _ => Ok(Take::Skip),
    }
}

/// Take one varint from the front of `buf`, reading from `recv` as needed; `None` if
/// the stream ends (or is reset, or the connection goes) first.
async fn read_varint(recv: &mut quinn::RecvStream, buf: &mut BytesMut) -> Option<u64> {
    loop {
        if let Some((v, n)) = varint::decode(buf) {
            buf.advance(n);
            return Some(v);
        }
        match recv.read_chunk(4096, true).await {
            Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
            _ => return None,
        }
    }
}

/// A client's HTTP/3 connection: open sessions on it with
/// [`open_session`](Self::open_session). Cheap to clone; the connection closes when the
/// last clone and the last of its sessions are dropped.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<ConnInner>,
    pub(crate) guard: Arc<CloseOnDrop>,
    pub(crate) client: Arc<super::client::ClientShared>,
    /// `:authority` of the URL the connection was made for (used for path-only targets).
    pub(crate) authority: String,
}

impl Connection {
    pub fn remote_addr(&self) -> std::net::SocketAddr {
        self.inner.quic.remote_address()
    }

    /// The WebTransport dialect the server announced.
    pub fn peer_dialect(&self) -> Option<Dialect> {
        self.inner.peer_dialect()
    }

    /// Sessions currently open on this connection.
    pub fn session_count(&self) -> usize {
        self.inner.session_count()
    }

    /// Datagrams received for no open session (dropped, as RFC 9297 allows).
    pub fn unknown_session_datagrams(&self) -> u64 {
        self.inner.unknown_datagrams.load(Relaxed)
    }

    /// Close the whole connection (every session on it) with an HTTP/3 code and reason.
    pub fn close(&self, code: u64, reason: &str) {
        let code = VarInt::from_u64(code).unwrap_or_default();
        self.inner.quic.close(code, reason.as_bytes());
    }

    pub fn is_closed(&self) -> bool {
        self.inner.quic.close_reason().is_some()
    }

    /// Wait until the connection ends.
    pub async fn closed(&self) -> CloseReason {
        CloseReason::from_connection(&self.inner.quic.closed().await)
    }

    /// Open a WebTransport session. `target` is a full `https://` URL or a path; `headers`
    /// are sent in addition to the client configuration's headers.
    ///
    /// Sessions share the connection when the server allows it, with one exception
    /// (draft-ietf-webtrans-http3-15 §5.1): a draft-15 server (see
    /// [`peer_dialect`](Self::peer_dialect)) whose SETTINGS do not declare flow control
    /// (SETTINGS_WT_INITIAL_MAX_DATA/_STREAMS_UNI/_STREAMS_BIDI all absent or 0, e.g.
    /// webtransport-go 0.13 with its default config) takes one session at a time per
    /// connection. Opening a second one while another is open, or being opened, then
    /// fails at once with [`Error::InvalidState`] and sends nothing; open it on another
    /// connection, or close the first one before (a session that is closing is waited
    /// for until the server has ended it too, so that the server never sees two).
    ///
    /// Other errors: [`Error::Rejected`] with the status if the server answers other
    /// than 2xx, [`Error::Closed`] if the connection is gone, [`Error::Protocol`] for a
    /// malformed response.
    pub async fn open_session(
        &self,
        target: &str,
        headers: &[(String, String)],
    ) -> Result<super::Session, Error> {
        super::client::open_session(self, target, headers).await
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote_addr", &self.remote_addr())
            .field("dialect", &self.peer_dialect())
            .finish()
    }
}
