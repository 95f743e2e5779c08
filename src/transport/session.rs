//! A WebTransport session: the state its connection, its CONNECT stream reader and its
//! owner share ([`SessionShared`]), and the handle the application holds ([`Session`]):
//! sending and receiving datagrams, the one owner of its datagrams, and closing.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use quinn::VarInt;
use tokio::sync::Notify;

use super::close::{self, CloseReason};
use super::closing::ClosingGuard;
use super::config::TransportOptions;
use super::driver::{CloseOnDrop, ConnInner, SessionSink};
use super::error::Error;
use super::handler::DatagramHandler;
use super::inbox::Inbox;
use super::stats::{ConnectionStats, Counters, SessionStats};
use super::util::poll_once;
use wtdatagram_proto::datagram::Prefix;
use wtdatagram_proto::session as proto_session;
use wtdatagram_proto::settings::Dialect;

/// What the peer asked for when the session was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub path: String,
    pub authority: String,
    pub protocol: String,
    pub headers: Vec<(String, String)>,
    pub dialect: Dialect,
}

impl RequestInfo {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn origin(&self) -> Option<&str> {
        self.header("origin")
    }
}

struct State {
    queue: Inbox,
    close: Option<CloseReason>,
    handler: Option<Arc<dyn DatagramHandler>>,
    close_hooks: Vec<CloseHook>,
    /// A single owner (a datagram stream) claimed this session's datagrams with
    /// [`Session::claim_datagrams`]: `handler` is its, and stays its.
    claimed: bool,
    draining: bool,
    /// Registered with [`Session::notify_readable`]: runs once the queue holds a
    /// datagram.
    readable: Option<ReadableHook>,
}

type CloseHook = Box<dyn FnOnce(&CloseReason) + Send>;
type ReadableHook = Box<dyn FnOnce() + Send>;

pub(crate) struct SessionShared {
    pub(crate) conn: Arc<ConnInner>,
    pub(crate) stream_id: u64,
    prefix: Prefix,
    pub(crate) info: RequestInfo,
    state: Mutex<State>,
    /// Wakes async receivers: one per delivered burst (a receiver that takes a datagram
    /// and leaves more behind wakes the next one), all on close.
    notify: Notify,
    /// `close` is set: the send path checks this instead of taking the lock.
    closed: std::sync::atomic::AtomicBool,
    /// Wakes everyone waiting for the close.
    closed_notify: Notify,
    pub(crate) stop_reader: Notify,
    /// The CONNECT stream reader is running: it, not the connection watcher, records
    /// how the session ended, after reading what already arrived (a close capsule that
    /// preceded the connection's close must win over "connection lost").
    pub(crate) reader_active: std::sync::atomic::AtomicBool,
    /// Wakes a local close waiting for the reader to end (see `close_session`).
    pub(crate) reader_done: Notify,
    recv_capacity: usize,
    /// Payload bytes the receive queue may hold.
    recv_capacity_bytes: usize,
    pub(crate) counters: Counters,
    pub(crate) send: tokio::sync::Mutex<Option<quinn::SendStream>>,
}

impl SessionShared {
    pub(crate) fn new(
        conn: Arc<ConnInner>,
        send: quinn::SendStream,
        info: RequestInfo,
    ) -> Arc<SessionShared> {
        let stream_id = VarInt::from(send.id()).into_inner();
        Arc::new(SessionShared {
            recv_capacity: conn.opts.recv_queue.max(1),
            recv_capacity_bytes: conn.opts.recv_queue_bytes.max(1),
            conn,
            stream_id,
            prefix: Prefix::for_stream(stream_id),
            info,
            state: Mutex::new(State {
                queue: Inbox::default(),
                close: None,
                handler: None,
                close_hooks: Vec::new(),
                claimed: false,
                draining: false,
                readable: None,
            }),
            notify: Notify::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            closed_notify: Notify::new(),
            stop_reader: Notify::new(),
            // Until a reader runs, every path that never starts one (rejection, failed
            // accept, abandoned open) closes the session itself.
            reader_active: std::sync::atomic::AtomicBool::new(true),
            reader_done: Notify::new(),
            counters: Counters::default(),
            send: tokio::sync::Mutex::new(Some(send)),
        })
    }

    /// Route a burst of received datagram payloads (in arrival order) to the
    /// application, under one lock, with one wake-up; `batch` is left empty.
    pub(crate) fn deliver(&self, batch: &mut Vec<Bytes>) {
        if batch.is_empty() {
            return;
        }
        let c = &self.counters;
        let mut st = self.state.lock();
        if st.close.is_some() {
            batch.clear();
            return;
        }
        let mut queued = false;
        let (mut dropped, mut dropped_bytes) = (0u64, 0u64);
        // Counted before the hand-over, so whoever receives them sees them in the stats.
        let bytes: u64 = batch.iter().map(|p| p.len() as u64).sum();
        c.datagrams_received.fetch_add(batch.len() as u64, Relaxed);
        c.bytes_received.fetch_add(bytes, Relaxed);
        if let Some(h) = &st.handler {
            (dropped, dropped_bytes) = h.on_datagrams(batch);
            batch.clear();
        } else {
            let (items, max_bytes) = (self.recv_capacity, self.recv_capacity_bytes);
            for payload in batch.drain(..) {
                let len = payload.len() as u64;
                if st.queue.push_back(payload, items, max_bytes).is_ok() {
                    queued = true;
                } else {
                    dropped += 1;
                    dropped_bytes += len;
                }
            }
        }
        let mut readable = None;
        if queued {
            self.notify.notify_one();
            readable = st.readable.take();
        }
        drop(st);
        // Outside the lock: the hook may hand the news on (e.g. to an event queue).
        if let Some(hook) = readable {
            hook();
        }
        if dropped > 0 {
            c.datagrams_received.fetch_sub(dropped, Relaxed);
            c.bytes_received.fetch_sub(dropped_bytes, Relaxed);
            c.recv_dropped.fetch_add(dropped, Relaxed);
        }
    }

    /// Pop the next queued datagram; if more are left, pass the wake-up on to the next
    /// waiting receiver (a burst is announced with a single wake-up).
    fn pop_queued(&self, st: &mut State) -> Option<Bytes> {
        let d = st.queue.pop_front()?;
        if !st.queue.is_empty() {
            self.notify.notify_one();
        }
        Some(d)
    }

    /// Record the end of the session; false if it had already ended.
    pub(crate) fn set_closed(&self, reason: CloseReason) -> bool {
        let readable;
        {
            let mut st = self.state.lock();
            if st.close.is_some() {
                return false;
            }
            st.close = Some(reason.clone());
            self.closed
                .store(true, std::sync::atomic::Ordering::Release);
            if let Some(h) = &st.handler {
                h.on_closed(&reason);
            }
            for hook in st.close_hooks.drain(..) {
                hook(&reason);
            }
            // Nothing will arrive any more: the readable hook is dropped uncalled.
            readable = st.readable.take();
        }
        drop(readable);
        tracing::debug!(
            remote = %self.conn.quic.remote_address(),
            session = self.stream_id,
            path = %self.info.path,
            "session closed: {reason}"
        );
        self.conn
            .unregister(self.stream_id, self as *const Self as *const ());
        self.notify.notify_waiters();
        self.closed_notify.notify_waiters();
        self.stop_reader.notify_one();
        true
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().close.clone()
    }

    /// The peer asked to wind the session down (DRAIN_WEBTRANSPORT_SESSION).
    pub(crate) fn set_draining(&self) {
        self.state.lock().draining = true;
    }

    fn check_open(&self) -> Result<(), Error> {
        if !self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        match self.close_reason() {
            Some(r) => Err(Error::Closed(r)),
            None => Ok(()),
        }
    }

    /// The peer broke a rule outside the CONNECT stream (e.g. a flow-control limit):
    /// close the session by resetting the CONNECT stream with `code` in both directions
    /// (the reader stops its side with it), as an HTTP/3 error code cannot travel in a
    /// CLOSE_WEBTRANSPORT_SESSION capsule.
    pub(crate) fn abort(self: &Arc<Self>, code: u64, reason: String) {
        tracing::info!(
            remote = %self.conn.quic.remote_address(),
            session = self.stream_id,
            code = format_args!("{code:#x}"),
            "closing the session for a protocol error: {reason}"
        );
        if !self.set_closed(CloseReason::Protocol { code, reason }) {
            return;
        }
        let s = self.clone();
        self.conn.rt.spawn(async move {
            if let Some(mut send) = s.send.lock().await.take() {
                let _ = send.reset(VarInt::from_u64(code).unwrap_or_default());
            }
        });
    }

    /// Wait until the CONNECT stream reader has ended.
    pub(crate) async fn reader_finished(&self) {
        loop {
            let notified = self.reader_done.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if !self
                .reader_active
                .load(std::sync::atomic::Ordering::Acquire)
            {
                return;
            }
            notified.await;
        }
    }
}

impl SessionSink for SessionShared {
    fn stream_id(&self) -> u64 {
        self.stream_id
    }

    fn deliver(&self, burst: &mut Vec<Bytes>) {
        SessionShared::deliver(self, burst)
    }

    fn connection_ended(&self, reason: CloseReason, failed: bool) {
        // A running reader drains what already arrived, then records the loss itself
        // (a close capsule that preceded the connection's close wins).
        if failed
            || !self
                .reader_active
                .load(std::sync::atomic::Ordering::Acquire)
        {
            self.set_closed(reason);
        }
    }

    fn abort(self: Arc<Self>, code: u64, reason: String) {
        SessionShared::abort(&self, code, reason)
    }
}

/// Keeps a session open while the application holds it: dropping the last handle
/// closes the session with code 0.
pub(crate) struct SessionGuard {
    shared: Arc<SessionShared>,
    conn_guard: Option<Arc<CloseOnDrop>>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        close_session(&self.shared, &self.conn_guard, 0, "");
    }
}

/// How long a local close waits for the peer to end its side of the CONNECT stream
/// before the connection may close under it (see `connect_stream`).
pub(crate) const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);

fn close_session(
    shared: &Arc<SessionShared>,
    conn_guard: &Option<Arc<CloseOnDrop>>,
    code: u32,
    reason: &str,
) {
    let (reason, capsule) = proto_session::local_close(code, reason);
    if !shared.set_closed(reason) {
        return;
    }
    let s = shared.clone();
    let keep_connection = conn_guard.clone();
    let closing = ClosingGuard::new(&shared.conn.rt, Some(shared.conn.clone()));
    // Spawning fails only when the runtime is shutting down; the connection dies anyway.
    s.conn.rt.clone().spawn(async move {
        if let Some(mut send) = s.send.lock().await.take() {
            if send.write_all(&capsule).await.is_ok() {
                let _ = send.finish();
                // Keep the connection up until the peer has the capsule (bounded)...
                let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
            }
        }
        // ...and has answered it by ending its side of the CONNECT stream, which the
        // reader waits for (itself bounded by PEER_CLOSE_WAIT).
        let _ = tokio::time::timeout(
            PEER_CLOSE_WAIT + Duration::from_secs(1),
            s.reader_finished(),
        )
        .await;
        drop(keep_connection);
        drop(closing);
    });
}

/// An established WebTransport session. Cheap to clone; the session closes (code 0)
/// when the last clone is dropped, unless it was closed before.
#[derive(Clone)]
pub struct Session {
    pub(crate) shared: Arc<SessionShared>,
    guard: Arc<SessionGuard>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.shared.stream_id)
            .field("path", &self.shared.info.path)
            .finish()
    }
}

impl Session {
    pub(crate) fn new(shared: Arc<SessionShared>, conn_guard: Option<Arc<CloseOnDrop>>) -> Session {
        Session {
            guard: Arc::new(SessionGuard {
                shared: shared.clone(),
                conn_guard,
            }),
            shared,
        }
    }

    /// The session id: the QUIC stream id of its CONNECT stream.
    pub fn id(&self) -> u64 {
        self.shared.stream_id
    }

    /// The request that opened the session (path, authority, headers, dialect).
    pub fn request(&self) -> &RequestInfo {
        &self.shared.info
    }

    pub fn remote_addr(&self) -> std::net::SocketAddr {
        self.shared.conn.quic.remote_address()
    }

    /// Largest payload [`send_datagram`](Self::send_datagram) accepts right now: quinn's
    /// current limit (it moves with path MTU discovery, and is capped by the configured
    /// datagram send buffer) minus this session's prefix.
    pub fn max_datagram_size(&self) -> Result<usize, Error> {
        let path =
            self.shared.conn.quic.max_datagram_size().ok_or_else(|| {
                Error::NotSupported("the peer does not accept QUIC datagrams".into())
            })?;
        // quinn also refuses a datagram larger than its send buffer minus the buffer's
        // per-datagram bookkeeping (one `Bytes`), so a tiny configured buffer caps it.
        let buffer = self
            .shared
            .conn
            .opts
            .datagram_send_buffer
            .saturating_sub(std::mem::size_of::<Bytes>());
        Ok(path.min(buffer).saturating_sub(self.shared.prefix.len()))
    }

    /// The datagram as it goes to QUIC. The size is checked by quinn itself, against
    /// the same limits `max_datagram_size` reports (one lock of the connection less per
    /// datagram); its TooLarge is mapped to ours by `map_send_error`.
    fn frame(&self, data: &[u8]) -> Result<Bytes, Error> {
        self.shared.check_open()?;
        Ok(self.shared.prefix.frame(data))
    }

    fn sent(&self, len: usize) {
        self.shared.counters.datagrams_sent.fetch_add(1, Relaxed);
        self.shared
            .counters
            .bytes_sent
            .fetch_add(len as u64, Relaxed);
    }

    fn map_send_error(&self, e: quinn::SendDatagramError, len: usize) -> Error {
        match e {
            quinn::SendDatagramError::ConnectionLost(e) => {
                Error::Closed(close::from_connection(&e))
            }
            quinn::SendDatagramError::TooLarge => {
                self.shared.counters.send_too_large.fetch_add(1, Relaxed);
                Error::TooLarge {
                    size: len,
                    max: self.max_datagram_size().unwrap_or(0),
                }
            }
            other => Error::NotSupported(other.to_string()),
        }
    }

    /// Queue a datagram without waiting: `Ok(true)` if it was queued, `Ok(false)` if the
    /// connection's send buffer is full (nothing is queued and no older datagram is
    /// dropped). Too large or closed is an error.
    pub fn try_send_datagram(&self, data: &[u8]) -> Result<bool, Error> {
        let frame = self.frame(data)?;
        match poll_once(self.shared.conn.quic.send_datagram_wait(frame)) {
            Some(Ok(())) => {
                self.sent(data.len());
                Ok(true)
            }
            Some(Err(e)) => Err(self.map_send_error(e, data.len())),
            None => {
                self.shared.counters.send_would_block.fetch_add(1, Relaxed);
                Ok(false)
            }
        }
    }

    /// Queue a datagram, waiting for room in the send buffer (backpressure).
    pub async fn send_datagram(&self, data: &[u8]) -> Result<(), Error> {
        let frame = self.frame(data)?;
        let mut wait = std::pin::pin!(self.shared.conn.quic.send_datagram_wait(frame));
        // There is room almost always: queue it without setting up the close watch.
        let r = match poll_once(wait.as_mut()) {
            Some(r) => r,
            None => tokio::select! {
                r = wait => r,
                r = self.closed() => return Err(Error::Closed(r)),
            },
        };
        r.map_err(|e| self.map_send_error(e, data.len()))?;
        self.sent(data.len());
        Ok(())
    }

    /// Next received datagram, waiting for one. Datagrams already queued are still
    /// returned after the session closed; then the close reason is the error.
    pub async fn recv_datagram(&self) -> Result<Bytes, Error> {
        loop {
            let notified = self.shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(d) = self.try_recv_datagram()? {
                return Ok(d);
            }
            notified.await;
        }
    }

    /// A queued datagram if there is one, without waiting.
    pub fn try_recv_datagram(&self) -> Result<Option<Bytes>, Error> {
        let mut st = self.shared.state.lock();
        if st.handler.is_some() {
            return Err(Error::InvalidState(
                "datagrams go to the session's handler".into(),
            ));
        }
        if let Some(d) = self.shared.pop_queued(&mut st) {
            return Ok(Some(d));
        }
        match &st.close {
            Some(r) => Err(Error::Closed(r.clone())),
            None => Ok(None),
        }
    }

    /// Take queued datagrams without waiting, in order, at most `max`, while `take`
    /// accepts the next one's size (it returns false to leave it queued); they are
    /// appended to `out`. One lock for the whole batch. Nothing is taken when a handler
    /// receives the datagrams.
    pub fn recv_queued(
        &self,
        max: usize,
        out: &mut Vec<Bytes>,
        mut take: impl FnMut(usize) -> bool,
    ) {
        let mut st = self.shared.state.lock();
        if st.handler.is_some() {
            return;
        }
        for _ in 0..max {
            match st.queue.front() {
                Some(d) if take(d.len()) => out.extend(st.queue.pop_front()),
                _ => break,
            }
        }
        if !st.queue.is_empty() {
            self.shared.notify.notify_one();
        }
    }

    /// Send datagrams to `handler` from now on, instead of the session's queue (it
    /// replaces a handler set before with this method). Datagrams already queued are
    /// handed to it first, in order; if the session already closed, `on_closed` follows
    /// at once.
    ///
    /// The handler is the session's default route, not an owner: a later
    /// [`claim_datagrams`](Self::claim_datagrams) (a datagram stream, or a layer built on
    /// one) takes the datagrams over from it. Once they are claimed, this fails with
    /// [`Error::InvalidState`] and changes nothing: a session's datagrams have one owner,
    /// and a handler never silently takes them from it.
    pub fn set_datagram_handler(&self, handler: Arc<dyn DatagramHandler>) -> Result<(), Error> {
        let mut st = self.shared.state.lock();
        if st.claimed {
            return Err(Error::InvalidState(
                "this session's datagrams belong to a datagram stream".into(),
            ));
        }
        Self::install_handler(&self.shared, &mut st, handler);
        Ok(())
    }

    /// Make `handler` the single exclusive owner of the session's datagrams (a datagram
    /// stream): like [`set_datagram_handler`](Self::set_datagram_handler), replacing a
    /// handler set with it, but for good. Fails with [`Error::Closed`] if the session
    /// is closed (nothing would ever arrive) and with [`Error::InvalidState`] if the
    /// datagrams were claimed before; either way nothing changes.
    pub fn claim_datagrams(&self, handler: Arc<dyn DatagramHandler>) -> Result<(), Error> {
        let mut st = self.shared.state.lock();
        if let Some(r) = &st.close {
            return Err(Error::Closed(r.clone()));
        }
        if st.claimed {
            return Err(Error::InvalidState(
                "this session's datagrams already belong to a datagram stream".into(),
            ));
        }
        st.claimed = true;
        Self::install_handler(&self.shared, &mut st, handler);
        Ok(())
    }

    /// The runtime the session's connection runs on.
    pub fn runtime_handle(&self) -> tokio::runtime::Handle {
        self.shared.conn.rt.clone()
    }

    fn install_handler(shared: &SessionShared, st: &mut State, handler: Arc<dyn DatagramHandler>) {
        // The queue will stay empty: a readable hook would never run.
        st.readable = None;
        while let Some(d) = st.queue.pop_front() {
            if !handler.on_datagram(d) {
                shared.counters.recv_dropped.fetch_add(1, Relaxed);
            }
        }
        if let Some(r) = &st.close {
            handler.on_closed(r);
        }
        st.handler = Some(handler);
    }

    /// Run `hook` once when the session closes (at once if it already has). Like the
    /// handler, it runs under the session's lock: keep it short, do not call back in.
    pub fn on_close(&self, hook: impl FnOnce(&CloseReason) + Send + 'static) {
        let mut st = self.shared.state.lock();
        match &st.close {
            Some(r) => hook(r),
            None => st.close_hooks.push(Box::new(hook)),
        }
    }

    /// Put a received datagram back at the front of the queue, to be received again
    /// first (e.g. a caller's buffer was too small for it).
    pub fn unreceive_datagram(&self, d: Bytes) {
        let mut st = self.shared.state.lock();
        st.queue.push_front(d);
        self.shared.notify.notify_one();
        let readable = st.readable.take();
        drop(st);
        if let Some(hook) = readable {
            hook();
        }
    }

    /// Run `hook` once a datagram waits in the session's queue: at once (on this
    /// thread) if one does, else on the runtime thread that queues the next one. It is
    /// the readiness half of [`try_recv_datagram`](Self::try_recv_datagram) for hosts
    /// that wait elsewhere than in [`recv_datagram`](Self::recv_datagram) (an event
    /// loop): receive until the queue is empty, then register again. One hook at a
    /// time: registering replaces one not run yet. It runs without the session's lock
    /// held, so it may call back into the session; it should be short.
    ///
    /// Fails, and drops `hook`, with [`Error::Closed`] once the session closed and its
    /// queue is empty (nothing will arrive; a hook registered before the close is
    /// dropped uncalled then), and with [`Error::InvalidState`] while datagrams go to a
    /// handler or a datagram stream instead of the queue.
    pub fn notify_readable(&self, hook: Box<dyn FnOnce() + Send>) -> Result<(), Error> {
        let mut st = self.shared.state.lock();
        if st.handler.is_some() {
            return Err(Error::InvalidState(
                "datagrams go to the session's handler".into(),
            ));
        }
        if !st.queue.is_empty() {
            drop(st);
            hook();
            return Ok(());
        }
        if let Some(r) = &st.close {
            return Err(Error::Closed(r.clone()));
        }
        let old = st.readable.replace(hook);
        drop(st);
        drop(old);
        Ok(())
    }

    /// Close the session with an application error code and reason (at most 1024 bytes
    /// of UTF-8; longer is truncated). The peer sees both. No-op if already closed.
    pub fn close(&self, code: u32, reason: &str) {
        close_session(&self.shared, &self.guard.conn_guard, code, reason);
    }

    pub fn is_closed(&self) -> bool {
        self.shared.close_reason().is_some()
    }

    /// Why the session ended, or None while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.close_reason()
    }

    /// Whether the peer asked to wind the session down (DRAIN_WEBTRANSPORT_SESSION).
    pub fn is_draining(&self) -> bool {
        self.shared.state.lock().draining
    }

    /// Wait until the session ends.
    pub async fn closed(&self) -> CloseReason {
        loop {
            let notified = self.shared.closed_notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.shared.close_reason() {
                return r;
            }
            notified.await;
        }
    }

    pub fn stats(&self) -> SessionStats {
        self.shared.counters.snapshot()
    }

    /// Transport statistics of the session's QUIC connection (RTT, congestion window,
    /// loss, path MTU), shared by every session on that connection. Readable after the
    /// session closed too (the figures of the connection then, or at its end).
    pub fn connection_stats(&self) -> ConnectionStats {
        self.shared.conn.stats()
    }

    /// The transport options of the session's connection.
    pub fn transport_options(&self) -> &TransportOptions {
        &self.shared.conn.opts
    }

    /// Datagrams received on this session's connection for no open session (dropped,
    /// as RFC 9297 allows).
    pub fn connection_unknown_session_datagrams(&self) -> u64 {
        self.shared.conn.unknown_datagrams.load(Relaxed)
    }
}
