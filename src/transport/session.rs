//! A WebTransport session: its CONNECT stream, its datagrams and its lifecycle.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use quinn::VarInt;
use tokio::sync::Notify;

use super::connection::{CloseOnDrop, ConnInner};
use super::Error;
use crate::wire::capsule::{Capsule, ConnectStreamDecoder, StreamItem};
use crate::wire::datagram::Prefix;
use crate::wire::settings::Dialect;
use crate::wire::WireError;

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// This side closed it (`Session::close`, or the last handle was dropped).
    Local { code: u32, reason: String },
    /// The peer closed it: CLOSE_WEBTRANSPORT_SESSION, or a clean FIN (code 0).
    Remote { code: u32, reason: String },
    /// The peer reset the CONNECT stream with this HTTP/3 error code.
    Reset { code: u64 },
    /// The QUIC connection ended: closed by either side (with its code), or reset.
    ConnectionLost { code: u64, reason: String },
    /// No packet from the peer within the idle timeout.
    TimedOut,
    /// The peer broke the protocol; the session (or connection) was closed with `code`.
    Protocol { code: u64, reason: String },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local { code, reason } => {
                write!(f, "closed locally (code {code}: {reason:?})")
            }
            CloseReason::Remote { code, reason } => {
                write!(f, "closed by peer (code {code}: {reason:?})")
            }
            CloseReason::Reset { code } => {
                write!(f, "CONNECT stream reset by peer (code {code:#x})")
            }
            CloseReason::ConnectionLost { code, reason } => {
                write!(f, "connection lost (code {code:#x}: {reason})")
            }
            CloseReason::TimedOut => write!(f, "connection timed out"),
            CloseReason::Protocol { code, reason } => {
                write!(
                    f,
                    "protocol error {} ({code:#x}): {reason}",
                    crate::wire::codes::name(*code)
                )
            }
        }
    }
}

impl CloseReason {
    pub(crate) fn from_connection(e: &quinn::ConnectionError) -> CloseReason {
        use quinn::ConnectionError as E;
        match e {
            E::TimedOut => CloseReason::TimedOut,
            E::ApplicationClosed(c) => CloseReason::ConnectionLost {
                code: c.error_code.into_inner(),
                reason: format!("closed by peer: {}", String::from_utf8_lossy(&c.reason)),
            },
            E::ConnectionClosed(c) => CloseReason::ConnectionLost {
                code: u64::from(c.error_code),
                reason: format!("closed by peer: {}", String::from_utf8_lossy(&c.reason)),
            },
            other => CloseReason::ConnectionLost {
                code: 0,
                reason: other.to_string(),
            },
        }
    }
}

/// Counters of one session, read with [`Session::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    pub datagrams_received: u64,
    pub bytes_received: u64,
    /// Received datagrams dropped because the receive queue was full.
    pub recv_dropped: u64,
    /// Non-blocking sends that found no room and queued nothing.
    pub send_would_block: u64,
    /// Sends rejected for exceeding the maximum datagram size.
    pub send_too_large: u64,
}

#[derive(Default)]
struct Counters {
    datagrams_sent: AtomicU64,
    bytes_sent: AtomicU64,
    datagrams_received: AtomicU64,
    bytes_received: AtomicU64,
    recv_dropped: AtomicU64,
    send_would_block: AtomicU64,
    send_too_large: AtomicU64,
}

/// Drop `arc` without running its destructor here if this is the last reference. For
/// handlers, which run under the session's lock: a last reference upgraded from a
/// `Weak` may own the session, and closing the session from its destructor would take
/// that lock again. The destructor then runs on a short-lived thread (not the runtime:
/// a runtime that is shutting down drops spawned futures on the spot, under our lock).
/// This path is rare: only when the application drops its last handle mid-delivery.
pub fn release_outside_lock<T: Send + Sync + 'static>(arc: Arc<T>, _rt: &tokio::runtime::Handle) {
    if let Some(last) = Arc::into_inner(arc) {
        // ManuallyDrop: if the thread cannot start, the closure is dropped right here,
        // and `last` must then leak rather than be destroyed under the lock.
        let last = std::mem::ManuallyDrop::new(last);
        let reaper = std::thread::Builder::new().name("wtd-release".into());
        if let Err(e) = reaper.spawn(move || drop(std::mem::ManuallyDrop::into_inner(last))) {
            // No thread to be had: leaking is better than deadlocking the connection.
            tracing::warn!("could not start a release thread ({e}); leaking one handle");
        }
    }
}

/// Receives a session's datagrams as they arrive, instead of the session's queue.
///
/// Both methods run while the session's internal lock is held, which is what keeps
/// `on_closed` after the last `on_datagram`: they must return quickly and must not call
/// back into the same session (forward to a channel or queue instead).
pub trait DatagramHandler: Send + Sync + 'static {
    /// A datagram arrived. Return false if it was dropped (it is counted).
    fn on_datagram(&self, payload: Bytes) -> bool;
    /// A burst of datagrams arrived, in order; take them all out of `burst`. Returns
    /// how many were dropped and their payload bytes (they are counted). The default
    /// hands each one to [`on_datagram`](Self::on_datagram); a handler that forwards
    /// to a queue can take the whole burst under one lock with one wake-up.
    fn on_datagrams(&self, burst: &mut Vec<Bytes>) -> (u64, u64) {
        let mut dropped = (0, 0);
        for payload in burst.drain(..) {
            let len = payload.len() as u64;
            if !self.on_datagram(payload) {
                dropped.0 += 1;
                dropped.1 += len;
            }
        }
        dropped
    }
    /// The session closed; called exactly once, after the last `on_datagram`.
    fn on_closed(&self, reason: &CloseReason);
}

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

/// A session's received datagrams waiting for the application, bounded by count and by
/// payload bytes.
#[derive(Default)]
struct Inbox {
    items: VecDeque<Bytes>,
    bytes: usize,
}

impl Inbox {
    /// Capacity kept after the queue drains; a larger one (left by a burst) is freed.
    const KEEP_CAPACITY: usize = 1024;

    /// Queue `d` unless that would exceed `max_items` datagrams or `max_bytes` bytes (an
    /// empty queue takes any one datagram).
    fn push_back(&mut self, d: Bytes, max_items: usize, max_bytes: usize) -> Result<(), Bytes> {
        if self.items.len() >= max_items
            || (!self.items.is_empty() && self.bytes + d.len() > max_bytes)
        {
            return Err(d);
        }
        self.bytes += d.len();
        self.items.push_back(d);
        Ok(())
    }
    fn push_front(&mut self, d: Bytes) {
        self.bytes += d.len();
        self.items.push_front(d);
    }
    fn pop_front(&mut self) -> Option<Bytes> {
        let d = self.items.pop_front()?;
        self.bytes -= d.len();
        if self.items.is_empty() && self.items.capacity() > Self::KEEP_CAPACITY {
            self.items = VecDeque::new();
        }
        Some(d)
    }
    fn front(&self) -> Option<&Bytes> {
        self.items.front()
    }
    fn is_empty(&self) -> bool {
        self.items.is_empty()
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
    /// Threads outside the runtime waiting in [`Session::recv_blocking`].
    blocked_receivers: usize,
    /// Whether `recv_blocking` watches the queue before it sleeps: the last wait was
    /// short enough for that to pay (a busy session), see [`RECV_SPIN`].
    spin: bool,
}

type CloseHook = Box<dyn FnOnce(&CloseReason) + Send>;

pub(crate) struct SessionShared {
    pub(crate) conn: Arc<ConnInner>,
    pub(crate) stream_id: u64,
    prefix: Prefix,
    pub(crate) info: RequestInfo,
    state: Mutex<State>,
    /// Wakes async receivers: one per delivered burst (a receiver that takes a datagram
    /// and leaves more behind wakes the next one), all on close.
    notify: Notify,
    /// Wakes receivers on threads outside the runtime (see `blocked_receivers`).
    blocking: parking_lot::Condvar,
    /// `close` is set: the send path checks this instead of taking the lock.
    closed: std::sync::atomic::AtomicBool,
    /// Wakes everyone waiting for the close.
    closed_notify: Notify,
    stop_reader: Notify,
    /// The CONNECT stream reader is running: it, not the connection watcher, records
    /// how the session ended, after reading what already arrived (a close capsule that
    /// preceded the connection's close must win over "connection lost").
    pub(crate) reader_active: std::sync::atomic::AtomicBool,
    /// Wakes a local close waiting for the reader to end (see [`close_session`]).
    reader_done: Notify,
    recv_capacity: usize,
    /// Payload bytes the receive queue may hold.
    recv_capacity_bytes: usize,
    counters: Counters,
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
                blocked_receivers: 0,
                spin: true,
            }),
            notify: Notify::new(),
            blocking: parking_lot::Condvar::new(),
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

    pub(crate) fn quarter_id(&self) -> u64 {
        self.stream_id / 4
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
        if queued {
            self.notify.notify_one();
            if st.blocked_receivers > 0 {
                self.blocking.notify_one();
            }
        }
        drop(st);
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
            if st.blocked_receivers > 0 {
                self.blocking.notify_one();
            }
        }
        Some(d)
    }

    /// Record the end of the session; false if it had already ended.
    pub(crate) fn set_closed(&self, reason: CloseReason) -> bool {
        {
            let mut st = self.state.lock();
            if st.close.is_some() {
                return false;
            }
            st.close = Some(reason.clone());
            self.closed
                .store(true, std::sync::atomic::Ordering::Release);
            self.blocking.notify_all();
            if let Some(h) = &st.handler {
                h.on_closed(&reason);
            }
            for hook in st.close_hooks.drain(..) {
                hook(&reason);
            }
        }
        self.conn.unregister(self);
        self.notify.notify_waiters();
        self.closed_notify.notify_waiters();
        self.stop_reader.notify_one();
        true
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().close.clone()
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

    /// The peer closed the session: record it and end our side of the stream with FIN.
    async fn on_peer_close(self: &Arc<Self>, code: u32, reason: String) {
        if self.set_closed(CloseReason::Remote { code, reason }) {
            if let Some(mut send) = self.send.lock().await.take() {
                let _ = send.finish();
                let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
            }
        }
    }

    /// The peer broke the protocol on the CONNECT stream: reset it with the error code.
    async fn on_protocol_error(self: &Arc<Self>, err: WireError, recv: &mut quinn::RecvStream) {
        tracing::debug!(stream = self.stream_id, "session protocol error: {err}");
        if matches!(
            err.code,
            crate::wire::codes::H3_FRAME_UNEXPECTED | crate::wire::codes::H3_FRAME_ERROR
        ) {
            // Frame-layer violations are connection errors (RFC 9114 §7.1, §7.2.4, §7.2.8).
            return self.conn.fail(&err);
        }
        let code = VarInt::from_u64(err.code).unwrap_or(VarInt::from_u32(0x101));
        let _ = recv.stop(code);
        if let Some(mut send) = self.send.lock().await.take() {
            let _ = send.reset(code);
        }
        self.set_closed(CloseReason::Protocol {
            code: err.code,
            reason: err.msg,
        });
    }

    /// The peer broke a rule outside the CONNECT stream (e.g. a flow-control limit):
    /// close the session by resetting the CONNECT stream with `code` in both directions
    /// (the reader stops its side with it), as an HTTP/3 error code cannot travel in a
    /// CLOSE_WEBTRANSPORT_SESSION capsule.
    pub(crate) fn abort(self: &Arc<Self>, code: u64, reason: String) {
        tracing::debug!(stream = self.stream_id, "closing session: {reason}");
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

    /// Read the CONNECT stream until the session ends. `slot` (the session's place on
    /// the connection) is given up when the reader ends.
    pub(crate) async fn run_connect_stream(
        self: Arc<Self>,
        recv: quinn::RecvStream,
        leftover: Bytes,
        slot: Option<super::connection::SessionSlot>,
    ) {
        let this = self.clone();
        self.read_connect_stream(recv, leftover).await;
        this.reader_active
            .store(false, std::sync::atomic::Ordering::Release);
        drop(slot);
        this.reader_done.notify_waiters();
    }

    /// Wait until the CONNECT stream reader has ended.
    async fn reader_finished(&self) {
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

    async fn read_connect_stream(self: Arc<Self>, mut recv: quinn::RecvStream, leftover: Bytes) {
        let mut dec = ConnectStreamDecoder::default();
        dec.push(&leftover);
        loop {
            loop {
                match dec.next() {
                    Ok(Some(StreamItem::Capsule(Capsule::Close { code, reason }))) => {
                        self.on_peer_close(code, reason).await;
                        return;
                    }
                    Ok(Some(StreamItem::Capsule(Capsule::Drain))) => {
                        self.state.lock().draining = true
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return self.on_protocol_error(e, &mut recv).await,
                }
            }
            tokio::select! {
                r = recv.read_chunk(64 * 1024, true) => match r {
                    Ok(Some(chunk)) => dec.push(&chunk.bytes),
                    Ok(None) => match dec.end_of_stream_error() {
                        Some(e) => return self.on_protocol_error(e, &mut recv).await,
                        None => return self.on_peer_close(0, String::new()).await,
                    },
                    Err(quinn::ReadError::Reset(code)) => {
                        self.set_closed(CloseReason::Reset { code: code.into_inner() });
                        return;
                    }
                    Err(quinn::ReadError::ConnectionLost(e)) => {
                        self.set_closed(CloseReason::from_connection(&e));
                        return;
                    }
                    Err(e) => {
                        self.set_closed(CloseReason::ConnectionLost { code: 0, reason: e.to_string() });
                        return;
                    }
                },
                _ = self.stop_reader.notified() => {
                    if matches!(self.close_reason(), Some(CloseReason::Local { .. })) {
                        // We closed (capsule + FIN). The peer closes or resets its side in
                        // response (draft-ietf-webtrans-http3 §5), and only then is our
                        // capsule known to be read: a peer that sees the QUIC connection
                        // close first drops what it had not read yet (web-transport-quinn
                        // 0.13 and wtransport 0.7 then report the connection's code, not
                        // ours). Read on, discarding, until it does (bounded: h3-webtransport
                        // never answers); the close holds the connection until then.
                        let _ = tokio::time::timeout(PEER_CLOSE_WAIT, async {
                            while let Ok(Some(_)) = recv.read_chunk(64 * 1024, true).await {}
                        })
                        .await;
                    }
                    // Tell the peer we will read no more, with the code the draft
                    // prescribes (quinn's implicit STOP_SENDING would say 0), or the
                    // error we closed the session for.
                    let code = match self.close_reason() {
                        Some(CloseReason::Protocol { code, .. }) => code,
                        _ => crate::wire::codes::WT_SESSION_GONE,
                    };
                    let _ = recv.stop(VarInt::from_u64(code).unwrap_or_default());
                    return;
                }
            }
        }
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
/// before the connection may close under it (see `read_connect_stream`).
const PEER_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Session closes whose capsule is still on its way, and closing servers still waiting
/// for theirs, per tokio runtime (the one their tasks run on; see [`finish_closing`]):
/// a runtime that shuts down waits for its own closes only, never for another
/// runtime's. Entries are removed when their count drops to 0, so this holds at most
/// one entry per runtime with a close in flight.
static CLOSING: parking_lot::Mutex<Vec<(tokio::runtime::Id, usize)>> =
    parking_lot::Mutex::new(Vec::new());

/// Closes in flight on the runtime `rt`.
pub(crate) fn closes_in_flight_on(rt: &tokio::runtime::Handle) -> usize {
    let id = rt.id();
    CLOSING
        .lock()
        .iter()
        .find(|(r, _)| *r == id)
        .map_or(0, |(_, n)| *n)
}

/// Counts one in-flight close on its runtime (for [`finish_closing`]) and on its
/// connection, if any (for a closing server, which waits for the closes on its
/// connections); dropping it (the task finished, or was dropped unrun because the
/// runtime is gone) uncounts it.
pub(crate) struct ClosingGuard {
    rt: tokio::runtime::Id,
    conn: Option<Arc<ConnInner>>,
}

impl ClosingGuard {
    /// Count a close whose task runs on `rt`.
    pub(crate) fn new(rt: &tokio::runtime::Handle, conn: Option<Arc<ConnInner>>) -> ClosingGuard {
        let id = rt.id();
        {
            let mut closing = CLOSING.lock();
            match closing.iter_mut().find(|(r, _)| *r == id) {
                Some((_, n)) => *n += 1,
                None => closing.push((id, 1)),
            }
        }
        if let Some(c) = &conn {
            c.closes_in_flight.fetch_add(1, Relaxed);
        }
        ClosingGuard { rt: id, conn }
    }
}

impl Drop for ClosingGuard {
    fn drop(&mut self) {
        if let Some(c) = &self.conn {
            c.closes_in_flight.fetch_sub(1, Relaxed);
        }
        let mut closing = CLOSING.lock();
        if let Some(i) = closing.iter().position(|(r, _)| *r == self.rt) {
            closing[i].1 -= 1;
            if closing[i].1 == 0 {
                closing.swap_remove(i);
            }
        }
    }
}

/// Wait, at most `limit`, until every session closed on the runtime this is awaited on
/// has delivered its CLOSE_WEBTRANSPORT_SESSION capsule (or given up), and every server
/// of that runtime that is closing has closed its connections (see
/// [`Server::close`](super::Server::close)). Call before shutting the runtime down so
/// peers see the close code and reason instead of a dead connection. Closes on other
/// runtimes are not waited for (see [`finish_closing_on`]).
///
/// # Panics
/// Outside a tokio runtime (like `tokio::time::sleep`).
pub async fn finish_closing(limit: Duration) {
    finish_closing_on(&tokio::runtime::Handle::current(), limit).await
}

/// Like [`finish_closing`], for the closes of the runtime `rt` (sessions whose
/// connection runs on it, servers bound on it), wherever this is awaited.
pub async fn finish_closing_on(rt: &tokio::runtime::Handle, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while closes_in_flight_on(rt) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn close_session(
    shared: &Arc<SessionShared>,
    conn_guard: &Option<Arc<CloseOnDrop>>,
    code: u32,
    reason: &str,
) {
    let reason =
        crate::wire::capsule::truncate_utf8(reason, crate::wire::capsule::MAX_CLOSE_REASON)
            .to_string();
    if !shared.set_closed(CloseReason::Local {
        code,
        reason: reason.clone(),
    }) {
        return;
    }
    let s = shared.clone();
    let keep_connection = conn_guard.clone();
    let capsule = Capsule::Close { code, reason }.encode_in_data_frame();
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

/// How long a thread blocked in [`Session::recv_blocking`] keeps looking at the queue
/// (yielding the CPU in between) before it sleeps, when the session's previous wait
/// ended within this time: a thread that sleeps is woken tens of microseconds after
/// the datagram arrived, which doubled the echo round trip through the C ABI. A session
/// whose waits are longer (idle, or timing out) does not spin until a wait is short
/// again, so an idle receiver costs no CPU.
const RECV_SPIN: Duration = Duration::from_micros(250);

/// Poll a future once without a waker that matters: `Some(output)` if it completed.
pub(crate) fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
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
                Error::Closed(CloseReason::from_connection(&e))
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

    /// For threads outside the runtime (the C ABI): the next queued datagram, blocking
    /// the thread until one arrives, the session closes (then the close reason, once
    /// the queue is empty), `deadline` passes or `abort()` turns true (both: `Ok(None)`;
    /// `abort` is checked at least every 100 ms). No runtime task or timer is involved.
    pub(crate) fn recv_blocking(
        &self,
        deadline: Option<std::time::Instant>,
        abort: &dyn Fn() -> bool,
    ) -> Result<Option<Bytes>, Error> {
        let sh = &self.shared;
        let mut st = sh.state.lock();
        // Waiting starts now (if the queue is empty): how long it takes decides whether
        // the next wait starts by watching the queue.
        let mut waited_since: Option<std::time::Instant> = None;
        let mut spun = !st.spin;
        loop {
            if st.handler.is_some() {
                return Err(Error::InvalidState(
                    "datagrams go to the session's handler".into(),
                ));
            }
            if let Some(d) = sh.pop_queued(&mut st) {
                if let Some(t) = waited_since {
                    st.spin = t.elapsed() < RECV_SPIN;
                }
                return Ok(Some(d));
            }
            if let Some(r) = &st.close {
                return Err(Error::Closed(r.clone()));
            }
            let now = std::time::Instant::now();
            if abort() || deadline.is_some_and(|d| d <= now) {
                if waited_since.is_some_and(|t| now - t >= RECV_SPIN) {
                    st.spin = false;
                }
                return Ok(None);
            }
            waited_since.get_or_insert(now);
            if !spun {
                // Before sleeping, watch the queue for a moment, giving the CPU away
                // between looks: a datagram that arrives now is taken without a
                // sleep and wake-up of this thread (tens of microseconds each).
                spun = true;
                let until = deadline.map_or(now + RECV_SPIN, |d| d.min(now + RECV_SPIN));
                parking_lot::MutexGuard::unlocked(&mut st, || {
                    while std::time::Instant::now() < until {
                        std::thread::yield_now();
                        if let Some(st) = sh.state.try_lock() {
                            if !st.queue.is_empty() || st.close.is_some() {
                                break;
                            }
                        }
                    }
                });
                continue;
            }
            let slice = now + Duration::from_millis(100);
            let until = deadline.map_or(slice, |d| d.min(slice));
            st.blocked_receivers += 1;
            sh.blocking.wait_until(&mut st, until);
            st.blocked_receivers -= 1;
        }
    }

    /// Take queued datagrams without waiting, in order, at most `max`, while `take`
    /// accepts the next one's size (it returns false to leave it queued); they are
    /// appended to `out`. One lock for the whole batch.
    pub(crate) fn recv_queued(
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
            if st.blocked_receivers > 0 {
                self.shared.blocking.notify_one();
            }
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

    /// Put a datagram back at the front of the queue (a caller's buffer was too small).
    pub(crate) fn unread(&self, d: Bytes) {
        let mut st = self.shared.state.lock();
        st.queue.push_front(d);
        self.shared.notify.notify_one();
        if st.blocked_receivers > 0 {
            self.shared.blocking.notify_one();
        }
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
        let c = &self.shared.counters;
        SessionStats {
            datagrams_sent: c.datagrams_sent.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            datagrams_received: c.datagrams_received.load(Relaxed),
            bytes_received: c.bytes_received.load(Relaxed),
            recv_dropped: c.recv_dropped.load(Relaxed),
            send_would_block: c.send_would_block.load(Relaxed),
            send_too_large: c.send_too_large.load(Relaxed),
        }
    }

    /// Datagrams received on this session's connection for no open session (dropped,
    /// as RFC 9297 allows).
    pub fn connection_unknown_session_datagrams(&self) -> u64 {
        self.shared.conn.unknown_datagrams.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{Client, ClientConfig, Server, ServerConfig, Verify};

    /// Every wait is bounded by this safety net (never a timing assertion).
    const LIMIT: Duration = Duration::from_secs(20);

    fn multi_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// Runtime B has a session close in flight, held open by a peer that does not answer
    /// (its runtime is not driven). Waiting for runtime A's closes returns at once,
    /// with B's close still counted; B's own wait ends once the peer answers.
    #[test]
    fn finish_closing_waits_only_for_its_own_runtime() {
        let peer_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (rt_a, rt_b) = (multi_thread(), multi_thread());
        let server = {
            let _in = peer_rt.enter();
            Server::bind(ServerConfig::default()).expect("bind")
        };
        let client = {
            let _in = rt_b.enter();
            Client::new(ClientConfig {
                verify: Verify::Hashes(vec![server.cert_sha256()]),
                ..Default::default()
            })
            .expect("client")
        };
        let url = format!("https://127.0.0.1:{}/held", server.local_addr().port());
        let open = rt_b.spawn({
            let client = client.clone();
            async move { client.open_session(&url).await }
        });
        // The peer runs only inside this block_on: it accepts, then falls silent.
        let (peer, session) = peer_rt.block_on(async {
            tokio::time::timeout(LIMIT, async {
                let req = server.accept().await.expect("request");
                let peer = req.accept().await.expect("accept");
                let session = open.await.expect("task").expect("open");
                (peer, session)
            })
            .await
            .expect("safety limit")
        });

        session.close(9, "held");
        assert_eq!(closes_in_flight_on(rt_b.handle()), 1);
        assert_eq!(closes_in_flight_on(rt_a.handle()), 0);

        // A waits for A's closes only: there are none, so this returns while B's
        // close is still held open by the silent peer. (With one count for the whole
        // process it would only return once B's close had given up: count 0.)
        rt_a.block_on(finish_closing_on(rt_a.handle(), LIMIT));
        rt_a.block_on(async { finish_closing(LIMIT).await });
        assert_eq!(
            closes_in_flight_on(rt_b.handle()),
            1,
            "runtime A waited for runtime B's close"
        );

        // B's wait ends when its close does: let the peer run until then.
        peer_rt.block_on(async {
            tokio::time::timeout(LIMIT, finish_closing_on(rt_b.handle(), LIMIT))
                .await
                .expect("safety limit")
        });
        assert_eq!(closes_in_flight_on(rt_b.handle()), 0);
        assert_eq!(
            peer.close_reason(),
            Some(CloseReason::Remote {
                code: 9,
                reason: "held".into()
            }),
            "the peer got the close capsule"
        );
        drop((peer, session, client));
        let _in = peer_rt.enter();
        drop(server);
    }
}
