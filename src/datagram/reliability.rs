//! Reliable delivery over unreliable datagrams, byte-compatible with pywebtransport's
//! `DatagramReliabilityLayer`.
//!
//! # Wire format
//!
//! Both messages are structured datagrams (`[u8 type_len][type][payload]`, see
//! [`message`](super::message)):
//!
//! * DATA: type `"DATA"`, payload = 32-bit big-endian sequence number, then the data.
//!   Sequence 1 carrying `hi` is `04 44 41 54 41 00 00 00 01 68 69`.
//! * ACK: type `"ACK"`, payload = the acknowledged sequence number in ASCII decimal,
//!   without terminator. ACK 258 is `03 41 43 4b 32 35 38`.
//!
//! The receiver acknowledges every DATA it accepts (duplicates too, so a lost ACK is
//! repaired by the retransmission it causes) and hands each sequence to the application
//! at most once. A transmission not acknowledged within `ack_timeout` counts as lost and
//! its message is retransmitted, until it is acknowledged or `max_retries`
//! retransmissions have gone unanswered; then it gives up. Each message ends with one
//! [`DeliveryReport`].
//!
//! # Pacing
//!
//! The sender never hands the transport a whole window at once. A transmission budget
//! (a congestion window counted in DATA transmissions, Reno style) bounds the
//! transmissions awaiting an ACK: it starts at [`INITIAL_FLIGHT`] (4), grows by one per
//! ACK until the first loss and by about one per flight after it, halves once per flight
//! that lost a transmission and falls back to 4 when a retransmission is lost, never
//! below 4 nor above the window. Due messages go out oldest first as the budget allows:
//! new DATA when an ACK (or a loss) frees a place, retransmissions once their deadline
//! passed. A transmission also leaves the flight (its place is free, its message is
//! still only retransmitted at the deadline) when three transmissions made after it
//! were acknowledged. Why: a transport packs every datagram queued at once into as few
//! packets as it can, and a receiver may keep only part of a packet: Firefox keeps the
//! newest 10 datagrams of each packet and drops the rest. Sending a window (or a whole
//! retransmission round) as one burst made Firefox drop the oldest messages of each
//! round, every round, until they were given up. Nothing of this is on the wire.
//!
//! A transmission (an attempt) is counted when its DATA frame is handed to the session's
//! datagram stream. A copy that then waits, in the stream's queue (dropped there after
//! `ack_timeout`) or in QUIC's datagram buffer while the connection cannot send
//! (congestion, loss-recovery backoff), still counts: while a connection is stalled,
//! each deadline costs the oldest messages in flight one attempt each (at most the
//! budget's floor of 4 once a retransmission was lost), so a stall longer than
//! `(max_retries + 1) × ack_timeout` gives them up. Pacing keeps the copies that pile up
//! during a stall to those few, instead of a whole window per `ack_timeout`.
//!
//! Sequence numbers on the wire are 32 bits and wrap. Internally they are 64-bit
//! counters (the message ids returned by [`ReliabilityLayer::send`]); incoming 32-bit
//! values are mapped back with serial-number arithmetic (RFC 1982), so a layer keeps
//! working past 2^32 messages as long as fewer than 2^31 are outstanding at once.
//!
//! # One owner per session
//!
//! A reliability layer creates and owns its session's [`DatagramStream`]. Every datagram
//! of the session therefore goes to the layer, and a second layer, or any other
//! datagram stream, on the same session fails with [`Error::InvalidState`]. This is what
//! keeps framings apart: an application DATA frame `04 44 41 54 41 ...` would also parse
//! as a structured message of another protocol (for instance as type id `0x0444` of a
//! two-byte type-id framing), but since each session's datagrams have exactly one owner,
//! no two framings ever share a session. Use one session per protocol.
//!
//! Datagrams that are neither DATA nor ACK (or are malformed) are counted in
//! [`ReliabilityStats::invalid_received`] and ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::message;
use super::stream::{DatagramStream, StreamConfig};
use super::wait::wait_on;
use crate::transport::{CloseReason, Error, Session};

/// Structured type of data messages.
pub const DATA_TYPE: &str = "DATA";
/// Structured type of acknowledgements.
pub const ACK_TYPE: &str = "ACK";
/// Bytes a DATA frame adds to the application data (type length, "DATA", sequence).
pub const DATA_OVERHEAD: usize = 1 + 4 + 4;

const DATA_PRIORITY: u8 = 1;
const ACK_PRIORITY: u8 = 2;

// ------------------------------------------------------------------------------------
// Pure wire functions

/// Encode a DATA frame: `04 "DATA" [u32 BE sequence] [data]`.
pub fn encode_data(sequence: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DATA_OVERHEAD + data.len());
    out.push(DATA_TYPE.len() as u8);
    out.extend_from_slice(DATA_TYPE.as_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Encode an ACK frame: `03 "ACK" [sequence in ASCII decimal]`.
pub fn encode_ack(sequence: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 3 + 10);
    out.push(ACK_TYPE.len() as u8);
    out.extend_from_slice(ACK_TYPE.as_bytes());
    out.extend_from_slice(sequence.to_string().as_bytes());
    out
}

/// A decoded reliability frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A data message: wire sequence and the application data.
    Data { sequence: u32, data: Bytes },
    /// An acknowledgement of a wire sequence.
    Ack { sequence: u32 },
}

/// Decode a datagram as DATA or ACK. `None` for anything else: another structured type,
/// a DATA payload shorter than 4 bytes, an ACK that is not a decimal number in
/// 0..=u32::MAX (digits only, no sign or whitespace).
pub fn decode_frame(datagram: &Bytes) -> Option<Frame> {
    let (ty, payload) = message::decode_structured(datagram).ok()?;
    match ty.as_str() {
        DATA_TYPE => {
            if payload.len() < 4 {
                return None;
            }
            let sequence = u32::from_be_bytes(payload[..4].try_into().ok()?);
            Some(Frame::Data {
                sequence,
                data: payload.slice(4..),
            })
        }
        ACK_TYPE => {
            if payload.is_empty() || payload.len() > 10 || !payload.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let text = std::str::from_utf8(&payload).ok()?;
            let sequence: u32 = text.parse().ok()?;
            Some(Frame::Ack { sequence })
        }
        _ => None,
    }
}

/// Map a 32-bit wire sequence to the 64-bit counter nearest to `reference` (serial-number
/// arithmetic: within 2^31 either side). Returns None if that would be below 0.
pub fn unwrap_sequence(wire: u32, reference: u64) -> Option<u64> {
    let delta = wire.wrapping_sub(reference as u32) as i32;
    if delta >= 0 {
        reference.checked_add(delta as u64)
    } else {
        reference.checked_sub(delta.unsigned_abs() as u64)
    }
}

/// Remembers which sequences were delivered, for at-most-once delivery with bounded
/// memory. Sequences are 32-bit on the wire; they are unwrapped against the highest seen.
/// A sequence more than `capacity` behind the highest is treated as already delivered
/// (at most once wins over at least once; a sender whose window is at most `capacity`
/// never gets there).
#[derive(Debug)]
pub struct DedupWindow {
    capacity: usize,
    highest: Option<u64>,
    seen: BTreeSet<u64>,
}

/// Offset of the first unwrapped sequence, so that older ones stay non-negative.
const DEDUP_BASE: u64 = 1 << 40;

impl DedupWindow {
    pub fn new(capacity: usize) -> DedupWindow {
        DedupWindow {
            capacity: capacity.max(1),
            highest: None,
            seen: BTreeSet::new(),
        }
    }

    /// Whether `wire` is new (then it is remembered); false for a duplicate.
    pub fn check(&mut self, wire: u32) -> bool {
        let Some(highest) = self.highest else {
            let ext = DEDUP_BASE + u64::from(wire);
            self.highest = Some(ext);
            self.seen.insert(ext);
            return true;
        };
        let Some(ext) = unwrap_sequence(wire, highest) else {
            return false;
        };
        if ext + self.capacity as u64 <= highest {
            return false; // older than what we remember
        }
        if !self.seen.insert(ext) {
            return false;
        }
        if ext > highest {
            self.highest = Some(ext);
            let floor = ext + 1 - self.capacity as u64;
            if self.seen.first().is_some_and(|&f| f < floor) {
                self.seen = self.seen.split_off(&floor);
            }
        }
        true
    }

    /// Sequences remembered now (at most the capacity).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

// ------------------------------------------------------------------------------------
// Configuration, reports, statistics

/// Options of a [`ReliabilityLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReliabilityConfig {
    /// Time to wait for an ACK before retransmitting. Default 2 s.
    pub ack_timeout: Duration,
    /// Retransmissions before giving up (a message is sent at most `max_retries + 1`
    /// times). Default 5.
    pub max_retries: u32,
    /// Span of sequences in flight: a message is sent only while its sequence is less
    /// than `window` past the oldest unacknowledged one (so at most `window` messages are
    /// unacknowledged; fewer may be on the wire at once, see the module's Pacing);
    /// `send` waits for room. Bounding the span, not just the count,
    /// is what lets a receiver with `dedup_memory >= window` tell a late retransmission
    /// from an old duplicate: otherwise, while one message is lost, the sender could run
    /// more than `dedup_memory` sequences ahead and its retransmission would be
    /// acknowledged as "already delivered" and dropped. Default 256.
    pub window: usize,
    /// Received sequences remembered for duplicate detection. Default 4096; keep it at
    /// least the peer's window (a sequence further behind the highest seen is taken for
    /// an old duplicate: acknowledged, not delivered).
    pub dedup_memory: usize,
    /// Received messages waiting for `receive`. When full, new DATA is neither accepted
    /// nor acknowledged (the peer retransmits it later). Default 1000.
    pub recv_queue: usize,
    /// Delivery reports kept for `next_report`; the oldest is dropped beyond. Default 10000.
    pub report_queue: usize,
    /// Wire sequence (and message id) of the first message sent. Default 0.
    pub initial_sequence: u32,
}

impl Default for ReliabilityConfig {
    fn default() -> Self {
        ReliabilityConfig {
            ack_timeout: Duration::from_secs(2),
            max_retries: 5,
            window: 256,
            dedup_memory: 4096,
            recv_queue: 1000,
            report_queue: 10_000,
            initial_sequence: 0,
        }
    }
}

impl ReliabilityConfig {
    fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.into()));
        if self.ack_timeout.is_zero() {
            return bad("ack_timeout must be > 0");
        }
        if self.window == 0 || self.window > (1 << 30) {
            return bad("window must be within 1..=2^30");
        }
        if self.dedup_memory == 0 || self.dedup_memory > (1 << 30) {
            return bad("dedup_memory must be within 1..=2^30");
        }
        if self.recv_queue == 0 {
            return bad("recv_queue must be >= 1");
        }
        if self.report_queue == 0 {
            return bad("report_queue must be >= 1");
        }
        Ok(())
    }
}

/// How a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The peer acknowledged it.
    Delivered,
    /// No acknowledgement after `max_retries` retransmissions.
    GaveUp,
}

/// The end of one message sent with [`ReliabilityLayer::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The id `send` returned.
    pub id: u64,
    pub outcome: DeliveryOutcome,
    /// Transmissions made (1 = no retransmission).
    pub attempts: u32,
}

/// Counters of a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReliabilityStats {
    /// Messages accepted by `send` (first transmissions).
    pub messages_sent: u64,
    /// Messages acknowledged by the peer.
    pub messages_delivered: u64,
    /// Messages given up after `max_retries` retransmissions.
    pub messages_given_up: u64,
    pub retransmissions: u64,
    pub acks_sent: u64,
    /// Well-formed ACKs received (also for unknown or already acknowledged sequences).
    pub acks_received: u64,
    /// DATA received again (acknowledged again, not delivered again).
    pub duplicates_received: u64,
    /// New messages queued for `receive`.
    pub messages_received: u64,
    /// New DATA refused because the receive queue was full (not acknowledged).
    pub receive_drops: u64,
    /// Datagrams that were neither DATA nor ACK.
    pub invalid_received: u64,
    /// Reports dropped from the full report queue.
    pub reports_dropped: u64,
    /// Messages sent and not yet acknowledged or given up.
    pub in_flight: u64,
}

/// Called with every delivery report (on a library task: keep it short, do not block).
pub type ReportHook = Box<dyn Fn(&DeliveryReport) + Send + Sync>;

// ------------------------------------------------------------------------------------
// The layer

/// DATA transmissions that may await an ACK at once when a layer starts, and the least
/// its transmission budget ever allows (see [`ReliabilityLayer`]'s pacing).
pub const INITIAL_FLIGHT: usize = 4;

/// How many DATA transmissions may await an ACK at once (a congestion window counted in
/// transmissions, Reno style): it starts at [`INITIAL_FLIGHT`], grows by one per ACK
/// until the first loss and by one per flight after it, halves once per flight in which a
/// transmission was lost (never below [`INITIAL_FLIGHT`]), and never exceeds the window.
///
/// This is what keeps bursts small: each frame the layer hands the transport is either
/// clocked by an ACK or by a loss, so a retransmission round, a run of `send` calls or a
/// stall of the path never turns into one burst of window-many frames. Transports pack
/// every datagram queued at once into as few packets as they can (quinn fits ~70 DATA
/// frames of small messages into one packet), and a receiver may keep only part of such a
/// packet: Firefox (neqo) keeps the newest 10 datagrams of a packet and drops the older
/// ones, which, with oldest-first retransmissions, dropped the same message every round.
#[derive(Debug)]
struct Budget {
    cwnd: f64,
    ssthresh: f64,
    /// Losses of transmissions made before this instant do not halve the budget again.
    recovery_start: Option<Instant>,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            cwnd: INITIAL_FLIGHT as f64,
            ssthresh: f64::INFINITY,
            recovery_start: None,
        }
    }

    fn limit(&self) -> usize {
        self.cwnd as usize
    }

    /// An ACK arrived while the budget was in use.
    fn grow(&mut self, window: usize) {
        self.cwnd += if self.cwnd < self.ssthresh {
            1.0
        } else {
            1.0 / self.cwnd
        };
        self.cwnd = self.cwnd.min(window.max(INITIAL_FLIGHT) as f64);
    }

    /// A transmission made at `sent` was lost: the budget halves, or drops to its floor
    /// when the lost one was a retransmission (the same message lost again: flights of
    /// this size keep losing it).
    fn lost(&mut self, sent: Instant, retransmission: bool, now: Instant) {
        if self.recovery_start.is_some_and(|r| sent < r) {
            return; // a loss of the flight that already reduced it
        }
        self.ssthresh = (self.cwnd / 2.0).max(INITIAL_FLIGHT as f64);
        self.cwnd = if retransmission {
            INITIAL_FLIGHT as f64
        } else {
            self.ssthresh
        };
        self.recovery_start = Some(now);
    }
}

/// A transmission counts as lost (and leaves the flight) once this many transmissions
/// made after it were acknowledged, without waiting for its deadline (the packet
/// threshold of RFC 9002). Its message is still retransmitted only at the deadline.
const REORDER_THRESHOLD: u64 = 3;

/// The transmission of a pending message that awaits its ACK.
#[derive(Clone, Copy)]
struct Sent {
    at: Instant,
    /// When it counts as lost, and the message is due again.
    deadline: Instant,
    /// Transmission number (layer-wide, increasing).
    tx: u64,
}

struct Pending {
    frame: Bytes,
    /// Transmissions made (0 while it waits for its first).
    attempts: u32,
    sent: Option<Sent>,
}

struct State {
    closed: bool,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    /// Pending messages waiting for a transmission (their first, or the next after a
    /// deadline passed); they go out oldest first as the budget allows.
    due: BTreeSet<u64>,
    /// Deadlines of the transmissions awaiting an ACK.
    deadlines: BTreeSet<(Instant, u64)>,
    /// The transmissions counted against the budget (not yet acknowledged nor taken for
    /// lost): transmission number -> message id.
    flight: BTreeMap<u64, u64>,
    next_tx: u64,
    budget: Budget,
    recv: VecDeque<Bytes>,
    dedup: DedupWindow,
    reports: VecDeque<DeliveryReport>,
    stats: ReliabilityStats,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl State {
    /// Transmit due messages, oldest first, while the budget allows: (id, frame) to hand
    /// to the stream.
    fn transmit(&mut self, cfg: &ReliabilityConfig, now: Instant) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        while self.flight.len() < self.budget.limit() {
            let Some(id) = self.due.pop_first() else {
                break;
            };
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            p.attempts += 1;
            if p.attempts > 1 {
                self.stats.retransmissions += 1;
            }
            let sent = Sent {
                at: now,
                deadline: now + cfg.ack_timeout,
                tx: self.next_tx,
            };
            self.next_tx += 1;
            p.sent = Some(sent);
            self.deadlines.insert((sent.deadline, id));
            self.flight.insert(sent.tx, id);
            out.push((id, p.frame.clone()));
        }
        out
    }

    /// The peer acknowledged `id`: its report, if it was pending.
    fn acknowledge(&mut self, id: u64, window: usize, now: Instant) -> Option<DeliveryReport> {
        let busy = self.flight.len() >= self.budget.limit() || !self.due.is_empty();
        let p = self.forget(id)?;
        if busy {
            self.budget.grow(window);
        }
        // Transmissions made well before this one and still unacknowledged were lost
        // (datagrams are rarely reordered): their places in the flight are free. Their
        // messages wait for their deadlines as usual.
        if let Some(acked) = p.sent {
            while let Some((&tx, &lost)) = self.flight.first_key_value() {
                if tx + REORDER_THRESHOLD > acked.tx {
                    break;
                }
                self.flight.pop_first();
                if let Some(l) = self.pending.get(&lost) {
                    if let Some(sent) = l.sent {
                        self.budget.lost(sent.at, l.attempts > 1, now);
                    }
                }
            }
        }
        self.stats.messages_delivered += 1;
        Some(DeliveryReport {
            id,
            outcome: DeliveryOutcome::Delivered,
            attempts: p.attempts,
        })
    }

    /// Transmissions whose deadline passed count as lost: their messages are due again,
    /// or given up after `max_retries` retransmissions (their reports are returned).
    fn expire(&mut self, cfg: &ReliabilityConfig, now: Instant) -> Vec<DeliveryReport> {
        let mut gave_up = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            if let Some(sent) = p.sent.take() {
                if self.flight.remove(&sent.tx).is_some() {
                    self.budget.lost(sent.at, p.attempts > 1, now);
                }
            }
            if p.attempts > cfg.max_retries {
                let attempts = p.attempts;
                self.pending.remove(&id);
                self.stats.messages_given_up += 1;
                gave_up.push(DeliveryReport {
                    id,
                    outcome: DeliveryOutcome::GaveUp,
                    attempts,
                });
            } else {
                self.due.insert(id);
            }
        }
        gave_up
    }

    /// Drop a pending message (no report): out of the flight, the deadlines, the due set.
    fn forget(&mut self, id: u64) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        match p.sent {
            Some(sent) => {
                self.deadlines.remove(&(sent.deadline, id));
                self.flight.remove(&sent.tx);
            }
            None => {
                self.due.remove(&id);
            }
        }
        Some(p)
    }
}

struct Inner {
    stream: DatagramStream,
    cfg: ReliabilityConfig,
    state: Mutex<State>,
    hook: Mutex<Option<Arc<ReportHook>>>,
    /// Room in the window, or close.
    room: Notify,
    /// A message was received, or close.
    arrived: Notify,
    /// A report was queued, or close.
    reported: Notify,
    /// A transmission was made outside the timer task (the timer may need to wake
    /// earlier), or close.
    timer: Notify,
}

impl Inner {
    fn closed_error(&self) -> Error {
        match self.stream.session().close_reason() {
            Some(r) => Error::Closed(r),
            None => Error::Closed(CloseReason::Local {
                code: 0,
                reason: "reliability layer closed".into(),
            }),
        }
    }

    fn close(&self) {
        let tasks = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            st.pending.clear();
            st.due.clear();
            st.deadlines.clear();
            st.flight.clear();
            std::mem::take(&mut st.tasks)
        };
        self.stream.close();
        for t in tasks {
            t.abort();
        }
        self.room.notify_waiters();
        self.arrived.notify_waiters();
        self.reported.notify_waiters();
        self.timer.notify_one();
    }

    /// Queue reports and call the hook, outside the state lock.
    fn report(&self, reports: Vec<DeliveryReport>) {
        if reports.is_empty() {
            return;
        }
        {
            let mut st = self.state.lock();
            for r in &reports {
                if st.reports.len() >= self.cfg.report_queue {
                    st.reports.pop_front();
                    st.stats.reports_dropped += 1;
                }
                st.reports.push_back(*r);
            }
        }
        self.reported.notify_waiters();
        self.room.notify_waiters();
        let hook = self.hook.lock().clone();
        if let Some(h) = hook {
            for r in &reports {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(r)));
            }
        }
    }

    fn on_data(&self, sequence: u32, data: Bytes) {
        let accepted = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            // The queue check comes first: a refused message must not be remembered.
            if st.recv.len() >= self.cfg.recv_queue {
                st.stats.receive_drops += 1;
                return;
            }
            if st.dedup.check(sequence) {
                st.recv.push_back(data);
                st.stats.messages_received += 1;
                true
            } else {
                st.stats.duplicates_received += 1;
                false
            }
        };
        if accepted {
            self.arrived.notify_one();
        }
        // Counted before it can reach the peer, undone if it was not queued.
        self.state.lock().stats.acks_sent += 1;
        if self
            .stream
            .send(&encode_ack(sequence), ACK_PRIORITY, None)
            .is_err()
        {
            self.state.lock().stats.acks_sent -= 1;
        }
    }

    fn on_ack(&self, sequence: u32) {
        let (report, frames) = {
            let mut st = self.state.lock();
            st.stats.acks_received += 1;
            let report = unwrap_sequence(sequence, st.next_id)
                .and_then(|id| st.acknowledge(id, self.cfg.window, Instant::now()));
            // The ACK freed a place in the flight: the next due message may go.
            let frames = match report {
                Some(_) if !st.closed => st.transmit(&self.cfg, Instant::now()),
                _ => Vec::new(),
            };
            (report, frames)
        };
        if !frames.is_empty() {
            self.timer.notify_one();
        }
        self.hand_over(frames);
        if let Some(r) = report {
            self.report(vec![r]);
        }
    }

    /// Hand DATA frames to the stream. A full stream queue (or any failure) is like a
    /// lost datagram: the transmission's deadline brings the next attempt.
    fn hand_over(&self, frames: Vec<(u64, Bytes)>) {
        for (_, f) in frames {
            let _ = self
                .stream
                .send(&f, DATA_PRIORITY, Some(self.cfg.ack_timeout));
        }
    }

    async fn run_receiver(self: Arc<Self>) {
        loop {
            let d = match self.stream.receive(None).await {
                Ok(d) => d,
                Err(_) => break,
            };
            match decode_frame(&d) {
                Some(Frame::Data { sequence, data }) => self.on_data(sequence, data),
                Some(Frame::Ack { sequence }) => self.on_ack(sequence),
                None => self.state.lock().stats.invalid_received += 1,
            }
        }
        // The stream closed (session closed, or the layer was closed).
        self.close();
    }

    async fn run_timer(self: Arc<Self>) {
        loop {
            let notified = self.timer.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let (frames, gave_up, next) = {
                let mut st = self.state.lock();
                if st.closed {
                    return;
                }
                let gave_up = st.expire(&self.cfg, now);
                let frames = st.transmit(&self.cfg, now);
                let next = st.deadlines.first().map(|&(d, _)| d);
                (frames, gave_up, next)
            };
            self.hand_over(frames);
            self.report(gave_up);
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.into()) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// Closes the layer when the last user handle goes away.
struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Acknowledged, retransmitted, de-duplicated messages over a session's datagrams
/// (pywebtransport's `DatagramReliabilityLayer`), paced by a transmission budget.
/// Cheap to clone; closes when the last clone is dropped. See the module documentation
/// for the wire format and the pacing.
#[derive(Clone)]
pub struct ReliabilityLayer {
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
}

impl std::fmt::Debug for ReliabilityLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReliabilityLayer")
            .field("session", &self.inner.stream.session().id())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl ReliabilityLayer {
    /// Take over `session`'s datagrams (it gets a [`DatagramStream`] owned by the layer).
    /// [`Error::InvalidState`] if the session already has a stream or layer;
    /// [`Error::InvalidArgument`] for a bad configuration.
    pub fn new(session: &Session, cfg: ReliabilityConfig) -> Result<ReliabilityLayer, Error> {
        cfg.validate()?;
        let stream = DatagramStream::new(
            session,
            StreamConfig {
                send_queue: cfg.window.saturating_mul(2).saturating_add(256),
                recv_queue: 1024,
                ..Default::default()
            },
        )?;
        let rt = session.runtime_handle();
        let inner = Arc::new(Inner {
            stream,
            state: Mutex::new(State {
                closed: false,
                next_id: u64::from(cfg.initial_sequence),
                pending: BTreeMap::new(),
                due: BTreeSet::new(),
                deadlines: BTreeSet::new(),
                flight: BTreeMap::new(),
                next_tx: 0,
                budget: Budget::new(),
                recv: VecDeque::new(),
                dedup: DedupWindow::new(cfg.dedup_memory),
                reports: VecDeque::new(),
                stats: ReliabilityStats::default(),
                tasks: Vec::new(),
            }),
            cfg,
            hook: Mutex::new(None),
            room: Notify::new(),
            arrived: Notify::new(),
            reported: Notify::new(),
            timer: Notify::new(),
        });
        let t1 = rt.spawn(inner.clone().run_receiver());
        let t2 = rt.spawn(inner.clone().run_timer());
        {
            let mut st = inner.state.lock();
            st.tasks.push(t1);
            st.tasks.push(t2);
            if st.closed {
                // Closed meanwhile (session already gone): stop the tasks too.
                for t in st.tasks.drain(..) {
                    t.abort();
                }
            }
        }
        Ok(ReliabilityLayer {
            _guard: Arc::new(Guard(inner.clone())),
            inner,
        })
    }

    pub fn config(&self) -> &ReliabilityConfig {
        &self.inner.cfg
    }

    /// The session whose datagrams the layer owns.
    pub fn session(&self) -> &Session {
        self.inner.stream.session()
    }

    /// Whether the layer (or its session) is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.state.lock().closed || self.inner.stream.is_closed()
    }

    /// Largest `data` that `send` accepts now.
    pub fn max_message_size(&self) -> Result<usize, Error> {
        Ok(self
            .inner
            .stream
            .max_datagram_size()?
            .saturating_sub(DATA_OVERHEAD))
    }

    /// Send `data` reliably. Waits while the oldest unacknowledged message is `window`
    /// sequences behind (backpressure), then queues the DATA frame and returns the
    /// message id (its wire sequence is the id modulo 2^32). The frame goes out at once
    /// when the transmission budget allows (see the type's documentation), else as soon
    /// as an ACK or a loss makes room. Its outcome comes later as a [`DeliveryReport`].
    /// Errors: TooLarge (data + 9 bytes exceeds the datagram size), Closed.
    ///
    /// Cancellation-safe: dropping the future before it completes sends nothing; once
    /// it returns the id, the message is the layer's to deliver or give up.
    pub async fn send(&self, data: &[u8]) -> Result<u64, Error> {
        let i = &self.inner;
        let max = i.stream.max_datagram_size()?;
        if data.len() + DATA_OVERHEAD > max {
            return Err(Error::TooLarge {
                size: data.len() + DATA_OVERHEAD,
                max,
            });
        }
        let (id, frames) = loop {
            let notified = i.room.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            // The frame may leave later (from the ACK or timer path): refuse now what
            // the stream would refuse then.
            if i.stream.is_closed() {
                return Err(i.closed_error());
            }
            {
                let mut st = i.state.lock();
                if st.closed {
                    drop(st);
                    return Err(i.closed_error());
                }
                // Room: the new sequence stays within `window` of the oldest unacked.
                let oldest = st.pending.keys().next().copied().unwrap_or(st.next_id);
                if st.next_id - oldest < i.cfg.window as u64 {
                    let id = st.next_id;
                    st.next_id += 1;
                    st.pending.insert(
                        id,
                        Pending {
                            frame: Bytes::from(encode_data(id as u32, data)),
                            attempts: 0,
                            sent: None,
                        },
                    );
                    st.due.insert(id);
                    st.stats.messages_sent += 1;
                    let frames = st.transmit(&i.cfg, Instant::now());
                    break (id, frames);
                }
            }
            notified.await;
        };
        if frames.is_empty() {
            return Ok(id);
        }
        i.timer.notify_one();
        // Never waits: a full stream queue is like a lost datagram (the deadline brings
        // the next attempt), so the only wait above is cancellation-safe (nothing
        // reserved). Each copy lives at most one ack_timeout in the stream's queue: by
        // then the next copy is due, so stale copies never pile up behind a slow path.
        let mut failed = None;
        for (fid, f) in frames {
            match i.stream.send(&f, DATA_PRIORITY, Some(i.cfg.ack_timeout)) {
                Ok(()) | Err(Error::QueueFull) => {}
                Err(e) if fid == id => failed = Some(e),
                Err(_) => {}
            }
        }
        if let Some(e) = failed {
            let mut st = i.state.lock();
            if st.forget(id).is_some() {
                st.stats.messages_sent -= 1;
            }
            drop(st);
            i.room.notify_waiters();
            return Err(match e {
                Error::Closed(_) => i.closed_error(),
                e => e,
            });
        }
        Ok(id)
    }

    /// The next received message, waiting up to `timeout` (None: no limit).
    /// [`Error::Timeout`] if none came; [`Error::Closed`] once closed and drained.
    pub async fn receive(&self, timeout: Option<Duration>) -> Result<Bytes, Error> {
        let i = &self.inner;
        wait_on(&i.arrived, timeout, || {
            let mut st = i.state.lock();
            match st.recv.pop_front() {
                Some(x) => Some(Ok(x)),
                None if st.closed => {
                    drop(st);
                    Some(Err(i.closed_error()))
                }
                None => None,
            }
        })
        .await
    }

    /// A received message if one is queued, without waiting.
    pub fn try_receive(&self) -> Option<Bytes> {
        self.inner.state.lock().recv.pop_front()
    }

    /// Put a received message back at the front of the receive queue, to be received
    /// again first (e.g. a caller's buffer was too small for it).
    pub fn unreceive(&self, data: Bytes) {
        self.inner.state.lock().recv.push_front(data);
        self.inner.arrived.notify_one();
    }

    /// Messages waiting for `receive`.
    pub fn receive_buffer_size(&self) -> usize {
        self.inner.state.lock().recv.len()
    }

    /// The next delivery report, waiting up to `timeout` (None: no limit).
    /// [`Error::Timeout`] if none came; [`Error::Closed`] once closed and drained.
    pub async fn next_report(&self, timeout: Option<Duration>) -> Result<DeliveryReport, Error> {
        let i = &self.inner;
        wait_on(&i.reported, timeout, || {
            let mut st = i.state.lock();
            match st.reports.pop_front() {
                Some(x) => Some(Ok(x)),
                None if st.closed => {
                    drop(st);
                    Some(Err(i.closed_error()))
                }
                None => None,
            }
        })
        .await
    }

    /// A queued report, without waiting.
    pub fn try_next_report(&self) -> Option<DeliveryReport> {
        self.inner.state.lock().reports.pop_front()
    }

    /// Call `hook` with every report from now on, besides queueing it for `next_report`.
    /// It runs on a library task: keep it short and do not block. Replaces (and drops)
    /// a previous hook.
    pub fn on_report(&self, hook: ReportHook) {
        let old = self.inner.hook.lock().replace(Arc::new(hook));
        drop(old);
    }

    /// Remove the report hook (dropping it once no report is being delivered to it).
    pub fn clear_report_hook(&self) {
        let old = self.inner.hook.lock().take();
        drop(old);
    }

    pub fn stats(&self) -> ReliabilityStats {
        let st = self.inner.state.lock();
        let mut s = st.stats;
        s.in_flight = st.pending.len() as u64;
        s
    }

    /// Stop the layer: background tasks end, its datagram stream closes, unacknowledged
    /// messages are abandoned without a report, and waiting calls return Closed (queued
    /// messages and reports can still be taken). The session stays open.
    pub fn close(&self) {
        self.inner.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_bytes_match_pywebtransport() {
        // struct.pack("!B", 4) + b"DATA" + struct.pack("!I", 1) + b"hi"
        assert_eq!(
            encode_data(1, b"hi"),
            [0x04, 0x44, 0x41, 0x54, 0x41, 0x00, 0x00, 0x00, 0x01, 0x68, 0x69]
        );
        assert_eq!(
            encode_data(0xDEAD_BEEF, b""),
            [0x04, 0x44, 0x41, 0x54, 0x41, 0xDE, 0xAD, 0xBE, 0xEF]
        );
        assert_eq!(
            decode_frame(&Bytes::from_static(&[
                0x04, 0x44, 0x41, 0x54, 0x41, 0x00, 0x00, 0x00, 0x01, 0x68, 0x69
            ])),
            Some(Frame::Data {
                sequence: 1,
                data: Bytes::from_static(b"hi")
            })
        );
        assert_eq!(
            decode_frame(&Bytes::from_static(b"\x04DATA\xff\xff\xff\xff")),
            Some(Frame::Data {
                sequence: u32::MAX,
                data: Bytes::new()
            })
        );
    }

    #[test]
    fn ack_bytes_match_pywebtransport() {
        // struct.pack("!B", 3) + b"ACK" + str(258).encode()
        assert_eq!(encode_ack(258), [0x03, 0x41, 0x43, 0x4b, 0x32, 0x35, 0x38]);
        assert_eq!(encode_ack(0), b"\x03ACK0");
        assert_eq!(encode_ack(u32::MAX), b"\x03ACK4294967295");
        assert_eq!(
            decode_frame(&Bytes::from_static(&[
                0x03, 0x41, 0x43, 0x4b, 0x32, 0x35, 0x38
            ])),
            Some(Frame::Ack { sequence: 258 })
        );
        assert_eq!(
            decode_frame(&Bytes::from_static(b"\x03ACK4294967295")),
            Some(Frame::Ack { sequence: u32::MAX })
        );
    }

    #[test]
    fn malformed_frames() {
        for bad in [
            &b""[..],
            b"\x04DATA",
            b"\x04DATA\x00\x00\x01",
            b"\x03ACK",
            b"\x03ACK-1",
            b"\x03ACK 1",
            b"\x03ACK1x",
            b"\x03ACK4294967296",
            b"\x03ACK99999999999",
            b"\x04chat{}",
            b"\x05DATA",
            b"\x00",
        ] {
            assert_eq!(decode_frame(&Bytes::copy_from_slice(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn unwrap_is_serial_arithmetic() {
        assert_eq!(unwrap_sequence(5, 10), Some(5));
        assert_eq!(unwrap_sequence(15, 10), Some(15));
        let r = (1u64 << 32) + 3; // just past a wrap
        assert_eq!(unwrap_sequence(u32::MAX, r), Some((1 << 32) - 1));
        assert_eq!(unwrap_sequence(2, r), Some((1 << 32) + 2));
        assert_eq!(unwrap_sequence(7, r), Some((1 << 32) + 7));
        let r = (1u64 << 32) - 2; // just before
        assert_eq!(unwrap_sequence(1, r), Some((1 << 32) + 1));
        assert_eq!(unwrap_sequence(u32::MAX - 5, r), Some((1 << 32) - 6));
        assert_eq!(unwrap_sequence(u32::MAX, 0), None);
        assert_eq!(unwrap_sequence(0, 1 << 40), Some(1 << 40));
    }

    #[test]
    fn dedup_at_most_once_across_the_wrap() {
        let mut d = DedupWindow::new(64);
        let start = u32::MAX - 100;
        let mut delivered = 0;
        // 300 sequences across the wrap, each sent twice, the second copy late.
        for k in 0..300u32 {
            let s = start.wrapping_add(k);
            assert!(d.check(s), "new {s}");
            delivered += 1;
            if k >= 3 {
                assert!(!d.check(s.wrapping_sub(3)), "dup {}", s.wrapping_sub(3));
            }
            assert!(!d.check(s));
        }
        assert_eq!(delivered, 300);
        assert!(d.len() <= 64);
        // Out of order within the window is fine.
        let mut d = DedupWindow::new(64);
        assert!(d.check(u32::MAX));
        assert!(d.check(2));
        assert!(d.check(0));
        assert!(d.check(u32::MAX - 1));
        assert!(d.check(1));
        assert!(!d.check(0));
        assert!(!d.check(u32::MAX));
        // Older than the memory counts as seen.
        let mut d = DedupWindow::new(4);
        for s in 10..20 {
            assert!(d.check(s));
        }
        assert!(!d.check(15)); // forgotten but too old: never delivered twice
        assert!(d.check(20));
        assert_eq!(d.len(), 4);
    }

    #[test]
    fn defaults() {
        let c = ReliabilityConfig::default();
        assert_eq!(c.ack_timeout, Duration::from_secs(2));
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.window, 256);
        assert_eq!(c.dedup_memory, 4096);
        assert_eq!(c.recv_queue, 1000);
        assert_eq!(c.initial_sequence, 0);
        assert!(c.validate().is_ok());
        for bad in [
            ReliabilityConfig {
                window: 0,
                ..Default::default()
            },
            ReliabilityConfig {
                ack_timeout: Duration::ZERO,
                ..Default::default()
            },
            ReliabilityConfig {
                recv_queue: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(bad.validate(), Err(Error::InvalidArgument(_))));
        }
    }

    // The transmission budget, without a network: `State` on its own.

    fn state_with(n: u64) -> State {
        let mut st = State {
            closed: false,
            next_id: n,
            pending: BTreeMap::new(),
            due: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            flight: BTreeMap::new(),
            next_tx: 0,
            budget: Budget::new(),
            recv: VecDeque::new(),
            dedup: DedupWindow::new(16),
            reports: VecDeque::new(),
            stats: ReliabilityStats::default(),
            tasks: Vec::new(),
        };
        for id in 0..n {
            st.pending.insert(
                id,
                Pending {
                    frame: Bytes::from(encode_data(id as u32, b"m")),
                    attempts: 0,
                    sent: None,
                },
            );
            st.due.insert(id);
        }
        st
    }

    fn ids(frames: &[(u64, Bytes)]) -> Vec<u64> {
        frames.iter().map(|f| f.0).collect()
    }

    fn cfg(ack_ms: u64, max_retries: u32) -> ReliabilityConfig {
        ReliabilityConfig {
            ack_timeout: Duration::from_millis(ack_ms),
            max_retries,
            ..Default::default()
        }
    }

    #[test]
    fn a_burst_goes_out_in_flights_clocked_by_acks() {
        let cfg = cfg(1000, 5);
        let t0 = Instant::now();
        let mut st = state_with(20);
        assert_eq!(ids(&st.transmit(&cfg, t0)), [0, 1, 2, 3], "INITIAL_FLIGHT");
        assert!(
            st.transmit(&cfg, t0).is_empty(),
            "nothing more before an ACK"
        );
        // An ACK frees a place and (slow start) adds one: two more, oldest first.
        let r = st.acknowledge(0, cfg.window, t0).unwrap();
        assert_eq!((r.id, r.attempts), (0, 1));
        assert_eq!(ids(&st.transmit(&cfg, t0)), [4, 5]);
        assert_eq!(st.flight.len(), 5);
        // The budget never passes the window.
        let mut st = state_with(40);
        let small = ReliabilityConfig { window: 6, ..cfg };
        st.transmit(&small, t0);
        for id in 0..30 {
            st.acknowledge(id, small.window, t0);
            st.transmit(&small, t0);
        }
        assert_eq!(st.budget.limit(), 6);
    }

    #[test]
    fn retransmission_rounds_stay_within_the_budget_oldest_first() {
        let cfg = cfg(100, 1);
        let t0 = Instant::now();
        let mut st = state_with(8);
        let mut seen = ids(&st.transmit(&cfg, t0));
        let mut gave_up = Vec::new();
        // A silent peer: each deadline makes the messages due again (or gives them up).
        for round in 1..=4u32 {
            let now = t0 + Duration::from_millis(100) * round;
            gave_up.extend(st.expire(&cfg, now));
            let sent = st.transmit(&cfg, now);
            assert!(sent.len() <= INITIAL_FLIGHT, "round {round}: {sent:?}");
            seen.extend(ids(&sent));
        }
        assert_eq!(seen, [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7]);
        assert_eq!(
            gave_up
                .iter()
                .map(|r| (r.id, r.attempts))
                .collect::<Vec<_>>(),
            (0..8).map(|id| (id, 2)).collect::<Vec<_>>()
        );
        assert!(gave_up.iter().all(|r| r.outcome == DeliveryOutcome::GaveUp));
        assert_eq!(st.stats.retransmissions, 8);
        assert_eq!(st.stats.messages_given_up, 8);
        assert!(st.pending.is_empty() && st.deadlines.is_empty() && st.flight.is_empty());
    }

    #[test]
    fn later_acks_free_the_place_of_a_lost_transmission_not_its_deadline() {
        let cfg = cfg(1000, 5);
        let t0 = Instant::now();
        let mut st = state_with(10);
        st.transmit(&cfg, t0); // 0 1 2 3
                               // 1, 2, 3 acknowledged, 0 not: three later transmissions were, so 0 is lost.
        for id in 1..=3 {
            st.acknowledge(id, cfg.window, t0);
        }
        assert!(!st.flight.values().any(|&id| id == 0), "0 left the flight");
        assert!(
            st.deadlines.iter().any(|&(_, id)| id == 0),
            "0 keeps its deadline"
        );
        assert!(!st.due.contains(&0), "0 is not retransmitted before it");
        // The loss halved the budget (slow start had taken it to 7): 4 places.
        assert_eq!(st.budget.limit(), INITIAL_FLIGHT);
        let t1 = t0 + Duration::from_millis(1);
        assert_eq!(ids(&st.transmit(&cfg, t1)), [4, 5, 6, 7]);
        // At the deadline, 0 goes again: first, as soon as there is a place.
        let later = t0 + Duration::from_millis(1000);
        assert!(st.expire(&cfg, later).is_empty());
        assert!(st.due.contains(&0));
        st.acknowledge(4, cfg.window, later);
        assert_eq!(ids(&st.transmit(&cfg, later)), [0]);
        assert_eq!(st.pending[&0].attempts, 2);
        // A late ACK of the first copy still delivers it once.
        let r = st.acknowledge(0, cfg.window, later).unwrap();
        assert_eq!(
            (r.id, r.outcome, r.attempts),
            (0, DeliveryOutcome::Delivered, 2)
        );
        assert!(st.acknowledge(0, cfg.window, later).is_none());
    }

    #[test]
    fn budget_halves_once_per_flight_and_drops_to_its_floor_when_a_retransmission_is_lost() {
        let t0 = Instant::now();
        let mut b = Budget::new();
        for _ in 0..12 {
            b.grow(256); // slow start: 4 -> 16
        }
        assert_eq!(b.limit(), 16);
        let sent = t0;
        let now = t0 + Duration::from_millis(10);
        b.lost(sent, false, now);
        assert_eq!(b.limit(), 8);
        b.lost(sent, false, now); // the same flight: no second halving
        assert_eq!(b.limit(), 8);
        // Congestion avoidance: about one more per flight.
        for _ in 0..8 {
            b.grow(256);
        }
        assert_eq!(b.limit(), 8);
        b.grow(256);
        assert_eq!(b.limit(), 9);
        // A retransmission made after that reduction, lost again: the floor.
        b.lost(now, true, now + Duration::from_millis(10));
        assert_eq!(b.limit(), INITIAL_FLIGHT);
        // Never below the floor, never above the window.
        b.lost(
            now + Duration::from_millis(10),
            false,
            now + Duration::from_millis(20),
        );
        assert_eq!(b.limit(), INITIAL_FLIGHT);
        for _ in 0..1000 {
            b.grow(10);
        }
        assert_eq!(b.limit(), 10);
    }
}
