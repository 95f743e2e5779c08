//! The HTTP/3 connection driver: one QUIC connection carrying WebTransport sessions. It
//! runs the control streams (ours out, the peer's in), checks the peer's other
//! unidirectional streams, routes every received datagram to its session by quarter
//! stream id (one reader per connection), refuses WebTransport streams, and notices
//! the connection's end. The protocol decisions are the protocol crate's state machines
//! (`control`, `streams`, `slots`); this module does their I/O.
//!
//! The driver knows neither the client nor the server, nor what a session does with
//! its datagrams: whoever creates a connection hands it a [`RequestHandler`] (servers)
//! and registers each session as a [`SessionSink`].

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use quinn::VarInt;
use tokio::sync::Notify;

use super::close::{self, CloseReason};
use super::config::TransportOptions;
use super::error::Error;
use super::util::poll_once;
use wtdatagram_proto::codes::*;
use wtdatagram_proto::control::{ControlEvent, ControlStreamReader};
use wtdatagram_proto::error::WireError;
use wtdatagram_proto::frame::{self, stream_type};
use wtdatagram_proto::settings::{self, Dialect, Settings};
use wtdatagram_proto::slots::{Busy, Exclusive, Slots};
use wtdatagram_proto::streams::{self, PeerStreams, Role, UniStream};
use wtdatagram_proto::{datagram, qpack, varint};

/// Datagrams the reader takes from quinn before handing them on (bounds the delay of
/// the first one of a burst).
const DATAGRAM_BURST: usize = 64;

/// A session as the driver sees it.
pub(crate) trait SessionSink: Send + Sync + 'static {
    /// The session id: its CONNECT stream's id.
    fn stream_id(&self) -> u64;
    /// A run of datagrams for this session arrived, in order; take them all.
    fn deliver(&self, burst: &mut Vec<Bytes>);
    /// The connection ended with `reason`. `failed`: we closed it for a protocol
    /// violation, which ends the session whatever its CONNECT stream still holds.
    fn connection_ended(&self, reason: CloseReason, failed: bool);
    /// Close the session for a rule it broke outside its CONNECT stream (`code` is an
    /// HTTP/3 error code: the CONNECT stream is reset with it).
    fn abort(self: Arc<Self>, code: u64, reason: String);
}

/// Takes the request streams a server-side connection accepts. The connection does not
/// know the server: whoever creates it decides what a request is.
pub(crate) trait RequestHandler: Send + Sync + 'static {
    fn on_request(&self, conn: Arc<ConnInner>, send: quinn::SendStream, recv: quinn::RecvStream);
}

pub(crate) struct ConnInner {
    pub(crate) quic: quinn::Connection,
    pub(crate) role: Role,
    pub(crate) opts: TransportOptions,
    pub(crate) rt: tokio::runtime::Handle,
    sessions: Mutex<HashMap<u64, Arc<dyn SessionSink>>>,
    /// Sessions being opened or ended (see [`SessionSlot`]).
    slots: Mutex<Slots>,
    /// Wakes a client waiting for the sessions that are still closing (a slot ended).
    slot_released: Notify,
    peer_settings: OnceLock<Arc<Settings>>,
    settings_notify: Notify,
    peer_streams: Mutex<PeerStreams>,
    pub(crate) goaway: AtomicBool,
    pub(crate) unknown_datagrams: AtomicU64,
    /// The protocol error we closed the connection with, if we did.
    failure: OnceLock<WireError>,
    /// Our SETTINGS are queued on the control stream.
    settings_sent: AtomicBool,
    settings_sent_notify: Notify,
    /// Local session closes on this connection whose capsule is still on its way (see
    /// `closing::ClosingGuard`): a closing server waits for them before it closes us.
    pub(crate) closes_in_flight: AtomicUsize,
    /// Whoever created a server connection: takes its request streams.
    requests: Option<Arc<dyn RequestHandler>>,
    /// Held for the creator while the connection lives (a server's connection count),
    /// released when the connection closes.
    held: Mutex<Option<Box<dyn Any + Send>>>,
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

/// One session's place on its connection, from its reservation (request received,
/// open started) until its CONNECT stream reader ends; dropping it gives the place up.
pub(crate) struct SessionSlot {
    conn: Arc<ConnInner>,
    pending: bool,
    /// A place the session also holds for its creator (a server's session count).
    also: Option<Box<dyn Any + Send>>,
}

impl SessionSlot {
    /// The session is registered (the session map counts it from now on).
    pub(crate) fn established(&mut self) {
        if std::mem::take(&mut self.pending) {
            self.conn.slots.lock().established();
        }
    }

    /// Hold `place` for as long as this slot.
    pub(crate) fn hold_also(&mut self, place: impl Any + Send) {
        self.also = Some(Box::new(place));
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.conn.slots.lock().release(self.pending);
        self.also = None;
        self.conn.slot_released.notify_waiters();
    }
}

impl ConnInner {
    /// Start the HTTP/3 machinery on an established QUIC connection. `requests` takes
    /// the request streams of a server connection; `held` is kept until it closes.
    pub(crate) fn start(
        quic: quinn::Connection,
        role: Role,
        opts: TransportOptions,
        requests: Option<Arc<dyn RequestHandler>>,
        held: Option<Box<dyn Any + Send>>,
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
            peer_streams: Mutex::new(PeerStreams::default()),
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
        tracing::info!(
            remote = %self.quic.remote_address(),
            code = format_args!("{:#x}", err.code),
            "closing the connection: {err}"
        );
        let _ = self.failure.set(err.clone());
        let sessions: Vec<_> = self.sessions.lock().values().cloned().collect();
        for s in sessions {
            s.connection_ended(
                CloseReason::Protocol {
                    code: err.code,
                    reason: err.msg.clone(),
                },
                true,
            );
        }
        let code = VarInt::from_u64(err.code).unwrap_or(VarInt::from_u32(0x101));
        self.quic.close(code, err.msg.as_bytes());
    }

    pub(crate) fn register(&self, s: Arc<dyn SessionSink>) {
        self.sessions.lock().insert(s.stream_id() / 4, s);
    }

    /// Forget the session `who` (if it is the one registered under `stream_id`).
    pub(crate) fn unregister(&self, stream_id: u64, who: *const ()) {
        let mut map = self.sessions.lock();
        if map
            .get(&(stream_id / 4))
            .is_some_and(|x| std::ptr::addr_eq(Arc::as_ptr(x), who))
        {
            map.remove(&(stream_id / 4));
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
    /// opened) are there (see [`Slots::reserve`]).
    pub(crate) fn reserve_session(
        self: &Arc<Self>,
        exclusive: Exclusive,
        limit: Option<u64>,
    ) -> Result<SessionSlot, Busy> {
        let mut slots = self.slots.lock();
        let open = self.sessions.lock().len();
        slots.reserve(open, exclusive, limit)?;
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
            if !self.slots.lock().any_held() || self.quic.close_reason().is_some() {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = self.quic.closed() => return,
            }
        }
    }

    /// A peer opened a WebTransport stream for `session_id`; close the session if that
    /// broke its limit, and return the code to refuse the stream with.
    fn refuse_wt_stream(&self, session_id: u64, bidi: bool) -> u64 {
        let session = self
            .sessions
            .lock()
            .get(&(session_id / 4))
            .filter(|s| s.stream_id() == session_id)
            .cloned();
        let r = streams::refuse_webtransport_stream(self.flow_control(), session.is_some(), bidi);
        if let (Some((code, reason)), Some(s)) = (r.close_session, session) {
            s.abort(code, reason);
        }
        r.stream_code
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
    pub(crate) fn closed_error(&self, e: &quinn::ConnectionError) -> Error {
        match self.failure.get() {
            Some(w) => Error::Protocol(w.to_string()),
            None => Error::Closed(close::from_connection(e)),
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
                settings::MAX_FIELD_SECTION_SIZE,
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
        let kind = self.peer_streams.lock().open_uni(ty, self.role);
        let result = match kind {
            UniStream::Control => self.run_control_recv(&mut recv, buf).await,
            UniStream::Qpack { encoder } => self.run_qpack_stream(&mut recv, buf, encoder).await,
            UniStream::Fail(e) => Err(e),
            UniStream::WebTransport => {
                let Some(session_id) = read_varint(&mut recv, &mut buf).await else {
                    return;
                };
                let code = self.refuse_wt_stream(session_id, false);
                let _ = recv.stop(VarInt::from_u64(code).unwrap_or_default());
                Ok(())
            }
            UniStream::Stop(code) => {
                let _ = recv.stop(VarInt::from_u64(code).unwrap_or_default());
                Ok(())
            }
        };
        if let Err(e) = result {
            self.fail(&e);
        }
    }

    /// Read the peer's QPACK encoder or decoder stream (RFC 9204 §4.2): a critical
    /// stream, whose instructions are checked against our dynamic table capacity of 0
    /// (see [`qpack::check_encoder_stream`] and [`qpack::DecoderStreamChecker`]).
    /// Nothing is kept.
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
                Ok(None) => return Err(streams::critical_stream_ended("QPACK", false)),
                Err(quinn::ReadError::Reset(_)) => {
                    return Err(streams::critical_stream_ended("QPACK", true))
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
        let mut control = ControlStreamReader::new(self.role);
        control.push(&first);
        loop {
            while let Some(event) = control.next()? {
                match event {
                    ControlEvent::Settings(s) => {
                        tracing::debug!(?s, "peer settings");
                        let _ = self.peer_settings.set(Arc::new(s));
                        self.settings_notify.notify_waiters();
                    }
                    ControlEvent::Goaway(_) => self.goaway.store(true, Relaxed),
                }
            }
            match recv.read_chunk(64 * 1024, true).await {
                Ok(Some(c)) => control.push(&c.bytes),
                Ok(None) => return Err(control.end(false)),
                Err(quinn::ReadError::Reset(_)) => return Err(control.end(true)),
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
                (Some(handler), Role::Server) => handler.on_request(self.clone(), send, recv),
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
            let mut target: Option<(u64, Option<Arc<dyn SessionSink>>)> = None;
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
                    if let Some(Ok(d)) = poll_once(self.quic.read_datagram()) {
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
        let reason = close::from_connection(&e);
        let sessions: Vec<_> = self.sessions.lock().drain().map(|(_, s)| s).collect();
        for s in sessions {
            s.connection_ended(reason.clone(), false);
        }
        self.settings_notify.notify_waiters();
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
