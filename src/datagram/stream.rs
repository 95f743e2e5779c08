//! The datagram duplex stream of a session: prioritised, TTL-aware sending through one
//! sender task; a bounded receive queue with metadata; JSON and structured messages;
//! statistics, queue statistics, a debug snapshot and diagnostics; heartbeats.
//!
//! A stream owns its session's datagrams: while it lives, every datagram of the session
//! goes to it, and a session has at most one stream.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::message;
use super::queue::{Overflow, PushError, RecvQueue, SendQueue, PRIORITIES};
use super::wait::wait_on;
use crate::transport::{CloseReason, DatagramHandler, Error, Session};

/// When `diagnose_issues` reports a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Report when the send success rate falls below this (default 0.9).
    pub min_send_success_rate: f64,
    /// Report when the share of dropped datagrams exceeds this (default 0.1).
    pub max_drop_rate: f64,
    /// Report when a queue is fuller than this share of its limit (default 0.9).
    pub max_queue_fill: f64,
    /// Report when the average queue-to-wire time exceeds this (default 100 ms).
    pub max_avg_send_time: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_send_success_rate: 0.9,
            max_drop_rate: 0.1,
            max_queue_fill: 0.9,
            max_avg_send_time: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamConfig {
    /// Datagrams the send queue holds (all priorities together). Default 100.
    pub send_queue: usize,
    /// Datagrams the receive queue holds. Default 100.
    pub recv_queue: usize,
    /// What a full receive queue drops. Default: the arriving datagram.
    pub recv_overflow: Overflow,
    pub thresholds: Thresholds,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            send_queue: 100,
            recv_queue: 100,
            recv_overflow: Overflow::DropNewest,
            thresholds: Thresholds::default(),
        }
    }
}

/// A received datagram with what the stream knows about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatagramMessage {
    pub data: Bytes,
    /// Wall-clock time of arrival at the stream.
    pub received_at: SystemTime,
    /// Per-stream arrival number, from 0.
    pub sequence: u64,
    /// Time between arrival and the application taking it.
    pub age: Duration,
}

impl DatagramMessage {
    pub fn size(&self) -> usize {
        self.data.len()
    }
}

/// Counters and timings of a stream. Sizes cover datagrams sent and received.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStats {
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Every datagram that arrived at the stream (including any the full receive queue
    /// then dropped, see `receive_drops`).
    pub datagrams_received: u64,
    pub bytes_received: u64,
    /// Datagrams taken from the queue that the session failed to send (e.g. closed).
    pub send_failures: u64,
    /// Queued datagrams evicted by a higher-priority one.
    pub send_drops_evicted: u64,
    /// Datagrams whose time-to-live passed before they reached the wire.
    pub send_drops_expired: u64,
    /// Sends refused for exceeding the maximum datagram size.
    pub send_drops_too_large: u64,
    /// Sends refused because the queue was full with nothing lower to evict.
    pub send_drops_queue_full: u64,
    /// Arrivals dropped by the full receive queue.
    pub receive_drops: u64,
    /// Received datagrams that failed to decode as JSON / structured.
    pub receive_errors: u64,
    pub min_datagram_size: u64,
    pub max_datagram_size: u64,
    pub avg_datagram_size: f64,
    /// Queue-to-wire time.
    pub avg_send_time: Duration,
    pub max_send_time: Duration,
    /// Arrival-to-application time.
    pub avg_receive_time: Duration,
    pub max_receive_time: Duration,
    /// sent / every send attempt (1.0 before any).
    pub send_success_rate: f64,
    /// Arrivals neither dropped nor undecodable:
    /// (received - receive_drops - receive_errors) / received (1.0 before any).
    pub receive_success_rate: f64,
}

impl StreamStats {
    /// Every datagram the application tried to send.
    pub fn send_attempts(&self) -> u64 {
        self.datagrams_sent + self.send_failures + self.send_drops()
    }
    pub fn send_drops(&self) -> u64 {
        self.send_drops_evicted
            + self.send_drops_expired
            + self.send_drops_too_large
            + self.send_drops_queue_full
    }
}

/// Datagrams waiting, per direction (and per priority for sending).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub send: [usize; PRIORITIES],
    pub send_total: usize,
    pub send_limit: usize,
    pub receive: usize,
    pub receive_limit: usize,
}

#[derive(Default)]
struct Counters {
    stats: StreamStats,
    size_total: u64,
    size_count: u64,
    send_time_total: Duration,
    receive_time_total: Duration,
    receive_time_count: u64,
}

impl Counters {
    fn size(&mut self, n: usize) {
        let n = n as u64;
        let s = &mut self.stats;
        s.min_datagram_size = if self.size_count == 0 {
            n
        } else {
            s.min_datagram_size.min(n)
        };
        s.max_datagram_size = s.max_datagram_size.max(n);
        self.size_total += n;
        self.size_count += 1;
    }
}

struct Arrival {
    data: Bytes,
    at: Instant,
    wall: SystemTime,
    seq: u64,
}

struct State {
    send: SendQueue<Bytes>,
    recv: RecvQueue<Arrival>,
    /// No more sending or arrivals: closed by the application, or its session ended.
    closed: bool,
    /// Closed by the application ([`DatagramStream::close`] or the last handle
    /// dropped): received datagrams are discarded too, not only the send queue.
    discarded: bool,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

struct Inner {
    session: Session,
    cfg: StreamConfig,
    state: Mutex<State>,
    counters: Mutex<Counters>,
    /// Wakes the sender task (new datagram or close).
    send_ready: Notify,
    /// Wakes `send_wait` callers (room in the queue, or close).
    room: Notify,
    /// Wakes receivers (arrival, or close).
    arrived: Notify,
    next_seq: AtomicU64,
    /// Datagrams taken from the queue whose send has not finished (0 or 1).
    in_flight: std::sync::atomic::AtomicUsize,
    rt: tokio::runtime::Handle,
}

impl Inner {
    fn is_closed(&self) -> bool {
        // Never hold the stream lock while taking the session's: the session calls into
        // the stream (Handler) under its own lock, so the order is session -> stream.
        let closed = self.state.lock().closed;
        closed || self.session.is_closed()
    }

    /// Closed by the application: both queues are discarded.
    fn close(&self) {
        self.shut(true);
    }

    /// The session ended (or refuses our datagrams): sending stops, the send queue is
    /// discarded, and what was received stays receivable until drained.
    fn stop(&self) {
        self.shut(false);
    }

    fn shut(&self, discard_received: bool) {
        let hb = {
            let mut st = self.state.lock();
            if discard_received {
                st.discarded = true;
                st.recv.clear();
            }
            if st.closed {
                return;
            }
            st.closed = true;
            st.send.clear();
            st.heartbeat.take()
        };
        if let Some(h) = hb {
            h.abort();
        }
        self.send_ready.notify_one();
        self.room.notify_waiters();
        self.arrived.notify_waiters();
    }

    fn closed_error(&self) -> Error {
        match self.session.close_reason() {
            Some(r) => Error::Closed(r),
            None => Error::Closed(CloseReason::Local {
                code: 0,
                reason: "datagram stream closed".into(),
            }),
        }
    }

    fn enqueue(
        &self,
        data: Bytes,
        priority: u8,
        ttl: Option<Duration>,
        full_is_drop: bool,
    ) -> Result<(), Error> {
        check_priority(priority)?;
        let i = self;
        if i.is_closed() {
            return Err(i.closed_error());
        }
        let max = i.session.max_datagram_size()?;
        if data.len() > max {
            i.counters.lock().stats.send_drops_too_large += 1;
            return Err(Error::TooLarge {
                size: data.len(),
                max,
            });
        }
        let pushed = i
            .state
            .lock()
            .send
            .push(data, priority, ttl, Instant::now());
        match pushed {
            Ok(evicted) => {
                if evicted.is_some() {
                    i.counters.lock().stats.send_drops_evicted += 1;
                }
                i.send_ready.notify_one();
                Ok(())
            }
            Err(PushError::Full) => {
                if full_is_drop {
                    i.counters.lock().stats.send_drops_queue_full += 1;
                }
                Err(Error::QueueFull)
            }
        }
    }

    async fn run_sender(self: Arc<Self>) {
        loop {
            let notified = self.send_ready.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let mut expired = 0u64;
            let next = {
                let mut st = self.state.lock();
                if st.closed {
                    return;
                }
                let next = st.send.pop(Instant::now(), |_| expired += 1);
                if next.is_some() {
                    self.in_flight.store(1, Relaxed);
                }
                next
            };
            if expired > 0 {
                self.counters.lock().stats.send_drops_expired += expired;
            }
            let Some(p) = next else {
                if expired > 0 {
                    self.room.notify_waiters();
                }
                tokio::select! {
                    _ = notified => continue,
                    _ = self.session.closed() => return self.stop(),
                }
            };
            self.room.notify_waiters();
            let len = p.item.len();
            let send = self.session.send_datagram(&p.item);
            // The time-to-live also bounds a wait for room in the connection's buffer:
            // dropping the send future before it completes puts nothing on the wire.
            let result = match p.deadline {
                Some(d) => tokio::time::timeout_at(d.into(), send).await.ok(),
                None => Some(send.await),
            };
            let mut c = self.counters.lock();
            match result {
                None => c.stats.send_drops_expired += 1,
                Some(Ok(())) => {
                    let t = p.enqueued.elapsed();
                    c.stats.datagrams_sent += 1;
                    c.stats.bytes_sent += len as u64;
                    c.send_time_total += t;
                    c.stats.max_send_time = c.stats.max_send_time.max(t);
                    c.size(len);
                }
                Some(Err(Error::TooLarge { .. })) => c.stats.send_drops_too_large += 1,
                Some(Err(Error::Closed(_))) => {
                    c.stats.send_failures += 1;
                    drop(c);
                    self.in_flight.store(0, Relaxed);
                    return self.stop();
                }
                Some(Err(_)) => c.stats.send_failures += 1,
            }
            drop(c);
            self.in_flight.store(0, Relaxed);
        }
    }
}

/// Receives the session's datagrams into the stream.
struct Handler(std::sync::Weak<Inner>);

impl Handler {
    fn on_datagram_inner(inner: &Inner, payload: Bytes) -> bool {
        let len = payload.len();
        let arrival = Arrival {
            data: payload,
            at: Instant::now(),
            wall: SystemTime::now(),
            seq: inner.next_seq.fetch_add(1, Relaxed),
        };
        let dropped = {
            let mut st = inner.state.lock();
            if st.closed {
                return false;
            }
            st.recv.push(arrival)
        };
        let mut c = inner.counters.lock();
        c.stats.datagrams_received += 1;
        c.stats.bytes_received += len as u64;
        c.size(len);
        if dropped.is_some() {
            c.stats.receive_drops += 1;
        }
        drop(c);
        inner.arrived.notify_one();
        true
    }
}

impl DatagramHandler for Handler {
    fn on_datagram(&self, payload: Bytes) -> bool {
        let Some(inner) = self.0.upgrade() else {
            return false;
        };
        let accepted = Self::on_datagram_inner(&inner, payload);
        let rt = inner.rt.clone();
        crate::transport::release_outside_lock(inner, &rt);
        accepted
    }

    fn on_closed(&self, _reason: &CloseReason) {
        if let Some(inner) = self.0.upgrade() {
            // Receivers see the close once the queue is empty; the sender stops.
            inner.state.lock().send.clear();
            inner.send_ready.notify_one();
            inner.room.notify_waiters();
            inner.arrived.notify_waiters();
            let rt = inner.rt.clone();
            crate::transport::release_outside_lock(inner, &rt);
        }
    }
}

/// Closes the stream when the last user handle goes away.
struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The datagram duplex stream of one session. Cheap to clone.
#[derive(Clone)]
pub struct DatagramStream {
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for DatagramStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramStream")
            .field("session", &self.inner.session.id())
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn check_priority(priority: u8) -> Result<(), Error> {
    if usize::from(priority) >= PRIORITIES {
        return Err(Error::InvalidArgument(format!(
            "priority {priority} is not 0, 1 or 2"
        )));
    }
    Ok(())
}

impl DatagramStream {
    /// Take over `session`'s datagrams. Fails with [`Error::InvalidState`] if the
    /// session's datagrams already have an owner (a stream, or a layer built on one),
    /// and with [`Error::Closed`] if the session is closed.
    pub fn new(session: &Session, cfg: StreamConfig) -> Result<DatagramStream, Error> {
        let rt = session.runtime_handle();
        let inner = Arc::new(Inner {
            session: session.clone(),
            state: Mutex::new(State {
                send: SendQueue::new(cfg.send_queue),
                recv: RecvQueue::new(cfg.recv_queue, cfg.recv_overflow),
                closed: false,
                discarded: false,
                heartbeat: None,
            }),
            cfg,
            counters: Mutex::new(Counters::default()),
            send_ready: Notify::new(),
            room: Notify::new(),
            arrived: Notify::new(),
            next_seq: AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            rt: rt.clone(),
        });
        session.claim_datagrams(Arc::new(Handler(Arc::downgrade(&inner))))?;
        rt.spawn(inner.clone().run_sender());
        Ok(DatagramStream {
            _guard: Arc::new(Guard(inner.clone())),
            inner,
        })
    }

    /// The session this stream belongs to.
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    pub fn config(&self) -> &StreamConfig {
        &self.inner.cfg
    }

    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stop the stream: queued datagrams (both ways) are discarded, waiting calls and
    /// every receive from now on return [`Error::Closed`]. The session stays open
    /// (close it separately); its datagrams are dropped.
    pub fn close(&self) {
        self.inner.close();
    }

    pub fn max_datagram_size(&self) -> Result<usize, Error> {
        self.inner.session.max_datagram_size()
    }

    /// Queue a datagram with `priority` (0 low, 1 normal-high, 2 highest) and an
    /// optional time-to-live. Errors: QueueFull (after the eviction rule), TooLarge,
    /// Closed, InvalidArgument for a bad priority.
    pub fn send(&self, data: &[u8], priority: u8, ttl: Option<Duration>) -> Result<(), Error> {
        self.send_bytes(Bytes::copy_from_slice(data), priority, ttl)
    }

    pub(crate) fn send_bytes(
        &self,
        data: Bytes,
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        self.inner.enqueue(data, priority, ttl, true)
    }

    /// Like [`send`](Self::send) but never fails loudly: whether it was queued.
    pub fn try_send(&self, data: &[u8], priority: u8, ttl: Option<Duration>) -> bool {
        self.send(data, priority, ttl).is_ok()
    }

    /// Queue each datagram in order; returns how many were queued (failures are
    /// counted in the stats as for `send`).
    pub fn send_multiple<B: AsRef<[u8]>>(
        &self,
        items: &[B],
        priority: u8,
        ttl: Option<Duration>,
    ) -> usize {
        items
            .iter()
            .filter(|d| self.send(d.as_ref(), priority, ttl).is_ok())
            .count()
    }

    /// Like [`send`](Self::send), but waits for room in the send queue instead of
    /// failing with QueueFull.
    pub async fn send_wait(
        &self,
        data: &[u8],
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let data = Bytes::copy_from_slice(data);
        loop {
            let notified = self.inner.room.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            // A full queue is not a drop here: this call waits for room.
            match self.inner.enqueue(data.clone(), priority, ttl, false) {
                Err(Error::QueueFull) => notified.await,
                other => return other,
            }
        }
    }

    /// Send `value` as JSON exactly as pywebtransport's `send_json` does, Python's
    /// `json.dumps(data, separators=(",", ":"))`: keys in order, non-ASCII escaped as
    /// `\uXXXX`, floats spelled like Python (`1e-05`, `1.0`), `NaN`/`Infinity` (see
    /// [`message::encode_json`]). `value` is anything `Serialize`: a
    /// `serde_json::Value` (its members in order), a [`Value`](super::value::Value),
    /// a struct. InvalidArgument if it cannot be written as JSON.
    pub fn send_json<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        self.send_bytes(message::encode_json(value)?.into(), priority, ttl)
    }

    /// Send `[u8 type_len][type][payload]` (pywebtransport's structured layout).
    pub fn send_structured(
        &self,
        ty: &str,
        payload: &[u8],
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let data = message::encode_structured(ty, payload).ok_or_else(|| {
            Error::InvalidArgument("structured type must be 1..=255 bytes".into())
        })?;
        self.send_bytes(data.into(), priority, ttl)
    }

    fn take(&self) -> Option<DatagramMessage> {
        let a = self.inner.state.lock().recv.pop()?;
        let age = a.at.elapsed();
        let mut c = self.inner.counters.lock();
        c.receive_time_total += age;
        c.receive_time_count += 1;
        c.stats.max_receive_time = c.stats.max_receive_time.max(age);
        Some(DatagramMessage {
            data: a.data,
            received_at: a.wall,
            sequence: a.seq,
            age,
        })
    }

    /// A datagram if one is queued, without waiting: `Ok(None)` when none is queued,
    /// [`Error::Closed`] when none is queued and the stream or its session is closed
    /// (so a polling loop learns of the close).
    pub fn try_receive(&self) -> Result<Option<Bytes>, Error> {
        Ok(self.receive_now()?.map(|m| m.data))
    }

    /// Like [`try_receive`](Self::try_receive), with metadata.
    pub fn receive_now(&self) -> Result<Option<DatagramMessage>, Error> {
        if let Some(m) = self.take() {
            return Ok(Some(m));
        }
        if !self.inner.is_closed() {
            return Ok(None);
        }
        // Closed: nothing arrives any more, but a datagram that arrived just before the
        // close (after the look above) is still handed out before Closed is.
        match self.take() {
            Some(m) => Ok(Some(m)),
            None => Err(self.inner.closed_error()),
        }
    }

    /// Next datagram with its metadata, waiting up to `timeout` (None: no limit).
    /// Timeout is [`Error::Timeout`]; once closed and drained, [`Error::Closed`].
    pub async fn receive_with_metadata(
        &self,
        timeout: Option<Duration>,
    ) -> Result<DatagramMessage, Error> {
        wait_on(&self.inner.arrived, timeout, || {
            self.receive_now().transpose()
        })
        .await
    }

    pub async fn receive(&self, timeout: Option<Duration>) -> Result<Bytes, Error> {
        self.receive_with_metadata(timeout).await.map(|m| m.data)
    }

    /// Wait (up to `timeout`) for at least one datagram, then take up to `max_count`.
    pub async fn receive_multiple(
        &self,
        max_count: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Bytes>, Error> {
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let first = self.receive(timeout).await?;
        let mut out = vec![first];
        while out.len() < max_count {
            // A close after the first one ends the batch; the next call reports it.
            match self.try_receive() {
                Ok(Some(d)) => out.push(d),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Next datagram decoded as JSON the way Python's `json.loads` reads it (members in
    /// order); an undecodable one is counted in `receive_errors` and returned as
    /// [`Error::InvalidData`] (the stream goes on). That includes JSON with `NaN` or
    /// `Infinity`, which Python writes but `serde_json::Value` cannot hold: to keep
    /// those, [`receive`](Self::receive) and [`message::decode_json`].
    pub async fn receive_json(
        &self,
        timeout: Option<Duration>,
    ) -> Result<serde_json::Value, Error> {
        let d = self.receive(timeout).await?;
        message::decode_json(&d)
            .and_then(|v| message::json_to_serde(&v))
            .map_err(|e| self.decode_failed(e))
    }

    /// Next datagram as (type, payload); malformed ones as for `receive_json`.
    pub async fn receive_structured(
        &self,
        timeout: Option<Duration>,
    ) -> Result<(String, Bytes), Error> {
        let d = self.receive(timeout).await?;
        message::decode_structured(&d).map_err(|e| self.decode_failed(e))
    }

    fn decode_failed(&self, e: message::DecodeError) -> Error {
        self.count_receive_error();
        Error::InvalidData(e.to_string())
    }

    /// Count a received datagram the application could not decode (in
    /// [`StreamStats::receive_errors`]), for decoders outside this type.
    pub fn count_receive_error(&self) {
        self.inner.counters.lock().stats.receive_errors += 1;
    }

    /// Put a received datagram back at the front of the receive queue, to be received
    /// again first (e.g. a caller's buffer was too small for it).
    pub fn unreceive(&self, m: DatagramMessage) {
        let at = Instant::now()
            .checked_sub(m.age)
            .unwrap_or_else(Instant::now);
        {
            let mut st = self.inner.state.lock();
            // Closed meanwhile by the application: it is discarded like the rest.
            if !st.discarded {
                st.recv.unpop(Arrival {
                    data: m.data,
                    at,
                    wall: m.received_at,
                    seq: m.sequence,
                });
            }
        }
        let mut c = self.inner.counters.lock();
        c.receive_time_count = c.receive_time_count.saturating_sub(1);
        c.receive_time_total = c.receive_time_total.saturating_sub(m.age);
        drop(c);
        self.inner.arrived.notify_one();
    }

    /// Size of the next queued datagram, if any.
    pub fn peek_size(&self) -> Option<usize> {
        self.inner.state.lock().recv.peek().map(|a| a.data.len())
    }

    pub fn stats(&self) -> StreamStats {
        let c = self.inner.counters.lock();
        let mut s = c.stats.clone();
        if c.size_count > 0 {
            s.avg_datagram_size = c.size_total as f64 / c.size_count as f64;
        }
        if s.datagrams_sent > 0 {
            s.avg_send_time = c.send_time_total / s.datagrams_sent as u32;
        }
        if c.receive_time_count > 0 {
            s.avg_receive_time = c.receive_time_total / c.receive_time_count as u32;
        }
        let attempts = s.send_attempts();
        s.send_success_rate = if attempts == 0 {
            1.0
        } else {
            s.datagrams_sent as f64 / attempts as f64
        };
        s.receive_success_rate = if s.datagrams_received == 0 {
            1.0
        } else {
            s.datagrams_received
                .saturating_sub(s.receive_drops + s.receive_errors) as f64
                / s.datagrams_received as f64
        };
        s
    }

    /// Datagrams waiting to be sent.
    pub fn send_buffer_size(&self) -> usize {
        self.inner.state.lock().send.len()
    }

    /// Datagrams accepted by `send` that have not reached the wire or failed yet:
    /// those queued plus the one the sender is handing to the connection.
    pub fn pending_sends(&self) -> usize {
        self.send_buffer_size() + self.inner.in_flight.load(Relaxed)
    }

    /// Datagrams waiting to be received.
    pub fn receive_buffer_size(&self) -> usize {
        self.inner.state.lock().recv.len()
    }

    pub fn queue_stats(&self) -> QueueStats {
        let st = self.inner.state.lock();
        QueueStats {
            send: st.send.class_lens(),
            send_total: st.send.len(),
            send_limit: st.send.limit(),
            receive: st.recv.len(),
            receive_limit: st.recv.limit(),
        }
    }

    /// Readable findings about the stream's health, per the configured thresholds.
    pub fn diagnose_issues(&self) -> Vec<String> {
        let s = self.stats();
        let q = self.queue_stats();
        let t = &self.inner.cfg.thresholds;
        let mut out = Vec::new();
        if s.send_attempts() > 0 && s.send_success_rate < t.min_send_success_rate {
            out.push(format!(
                "low send success rate: {:.1}% (threshold {:.1}%)",
                s.send_success_rate * 100.0,
                t.min_send_success_rate * 100.0
            ));
        }
        let attempts = s.send_attempts() + s.datagrams_received;
        let drops = s.send_drops() + s.receive_drops;
        if attempts > 0 {
            let rate = drops as f64 / attempts as f64;
            if rate > t.max_drop_rate {
                out.push(format!(
                    "high drop rate: {:.1}% of datagrams dropped ({drops} of {attempts}; threshold {:.1}%)",
                    rate * 100.0,
                    t.max_drop_rate * 100.0
                ));
            }
        }
        let fill = |n: usize, limit: usize| n as f64 / limit as f64;
        if fill(q.send_total, q.send_limit) > t.max_queue_fill {
            out.push(format!(
                "send queue nearly full: {}/{}",
                q.send_total, q.send_limit
            ));
        }
        if fill(q.receive, q.receive_limit) > t.max_queue_fill {
            out.push(format!(
                "receive queue nearly full: {}/{}",
                q.receive, q.receive_limit
            ));
        }
        if s.datagrams_sent > 0 && s.avg_send_time > t.max_avg_send_time {
            out.push(format!(
                "slow sending: average queue-to-wire time {:.1} ms (threshold {:.1} ms)",
                s.avg_send_time.as_secs_f64() * 1e3,
                t.max_avg_send_time.as_secs_f64() * 1e3
            ));
        }
        if self.is_closed() {
            out.push("stream is closed".into());
        }
        out
    }

    /// A JSON snapshot of the stream's internals.
    pub fn debug_state(&self) -> serde_json::Value {
        let s = self.stats();
        let q = self.queue_stats();
        let c = &self.inner.cfg;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let heartbeat_running = self
            .inner
            .state
            .lock()
            .heartbeat
            .as_ref()
            .is_some_and(|h| !h.is_finished());
        let diagnostics = self.diagnose_issues();
        serde_json::json!({
            "session_id": self.inner.session.id(),
            "path": self.inner.session.request().path,
            "closed": self.is_closed(),
            "max_datagram_size": self.max_datagram_size().ok(),
            "heartbeat_running": heartbeat_running,
            "config": {
                "send_queue": c.send_queue,
                "recv_queue": c.recv_queue,
                "recv_overflow": format!("{:?}", c.recv_overflow),
                "thresholds": {
                    "min_send_success_rate": c.thresholds.min_send_success_rate,
                    "max_drop_rate": c.thresholds.max_drop_rate,
                    "max_queue_fill": c.thresholds.max_queue_fill,
                    "max_avg_send_time_ms": ms(c.thresholds.max_avg_send_time),
                },
            },
            "queues": {
                "send": q.send,
                "send_total": q.send_total,
                "send_limit": q.send_limit,
                "receive": q.receive,
                "receive_limit": q.receive_limit,
            },
            "stats": {
                "datagrams_sent": s.datagrams_sent,
                "bytes_sent": s.bytes_sent,
                "datagrams_received": s.datagrams_received,
                "bytes_received": s.bytes_received,
                "send_failures": s.send_failures,
                "send_drops_evicted": s.send_drops_evicted,
                "send_drops_expired": s.send_drops_expired,
                "send_drops_too_large": s.send_drops_too_large,
                "send_drops_queue_full": s.send_drops_queue_full,
                "receive_drops": s.receive_drops,
                "receive_errors": s.receive_errors,
                "min_datagram_size": s.min_datagram_size,
                "max_datagram_size": s.max_datagram_size,
                "avg_datagram_size": s.avg_datagram_size,
                "avg_send_time_ms": ms(s.avg_send_time),
                "max_send_time_ms": ms(s.max_send_time),
                "avg_receive_time_ms": ms(s.avg_receive_time),
                "max_receive_time_ms": ms(s.max_receive_time),
                "send_success_rate": s.send_success_rate,
                "receive_success_rate": s.receive_success_rate,
            },
            "diagnostics": diagnostics,
        })
    }

    /// Send a heartbeat (`HEARTBEAT:<unix seconds>`) every `interval`, priority 0 with
    /// a time-to-live of one interval. Replaces a running heartbeat.
    pub fn start_heartbeat(&self, interval: Duration) -> Result<(), Error> {
        if interval.is_zero() {
            return Err(Error::InvalidArgument(
                "heartbeat interval must be > 0".into(),
            ));
        }
        if self.is_closed() {
            return Err(self.inner.closed_error());
        }
        let weak = Arc::downgrade(&self.inner);
        let task = self.inner.rt.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let r = inner.enqueue(
                    message::create_heartbeat_datagram().into(),
                    0,
                    Some(interval),
                    true,
                );
                if matches!(r, Err(Error::Closed(_))) {
                    return;
                }
            }
        });
        if let Some(old) = self.inner.state.lock().heartbeat.replace(task) {
            old.abort();
        }
        Ok(())
    }

    pub fn stop_heartbeat(&self) {
        if let Some(h) = self.inner.state.lock().heartbeat.take() {
            h.abort();
        }
    }
}
