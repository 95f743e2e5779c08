//! A local broadcaster joined to a channel of the bus (see the module docs of
//! `crate::cluster`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::connection::{Cluster, LinkState};
use super::wire::{self, Kind};
use crate::datagram::broadcast::DatagramBroadcaster;
use crate::transport::{poll_once, Error};

/// Counters of one joined channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Calls of [`ClusterBroadcaster::broadcast`] that were carried out.
    pub broadcasts: u64,
    /// Broadcasts handed to the NATS client for sending (at most once: a message
    /// handed over just before the connection drops may still be lost).
    pub published: u64,
    /// Broadcasts not published: the bus was down or not yet up, the client's send
    /// queue was full, or the message exceeded the server's `max_payload`. Each of
    /// those was still delivered locally.
    pub bus_failures: u64,
    /// Broadcasts of other broadcasters received from the bus (and delivered here).
    pub received: u64,
    /// Bus messages on the channel's subject that are not in this library's format
    /// (dropped).
    pub received_invalid: u64,
    /// Broadcasts of other broadcasters this one never received, as told by gaps in
    /// their sequence numbers (lost while a node was disconnected, or dropped by NATS
    /// for a slow consumer). Counted when the next message from that publisher arrives.
    pub received_gaps: u64,
    /// Deliveries to local members (accepted datagrams), from local broadcasts and from
    /// the bus together.
    pub delivered_local: u64,
    /// The part of `delivered_local` that came from the bus.
    pub delivered_from_bus: u64,
    /// Reconnections of the cluster's connection since this broadcaster joined.
    pub reconnects: u64,
    /// Whether the connection is up now.
    pub bus_connected: bool,
    /// Whether this broadcaster has seen one of its own messages come back since the
    /// connection was last (re)made: its subscription is live on the server.
    pub bus_ready: bool,
    /// Bus round trip (publish to this node's own subscription receiving it, through the
    /// server), measured on every own message that comes back: samples, last, smoothed
    /// (1/8 weight per sample, as TCP's SRTT), minimum and maximum, in microseconds.
    pub rtt_samples: u64,
    pub rtt_last_us: u64,
    pub rtt_avg_us: u64,
    pub rtt_min_us: u64,
    pub rtt_max_us: u64,
    /// One-way bus latency of other broadcasters' messages: from the publisher's wall
    /// clock when it published to this node's when its receiver took the message (before
    /// the local fan-out), in microseconds: samples, last, smoothed (1/8 weight),
    /// minimum, maximum. Exact between nodes on one machine; across machines only as
    /// good as their clocks' agreement (NTP), and 0 when this clock is behind.
    pub latency_samples: u64,
    pub latency_last_us: u64,
    pub latency_avg_us: u64,
    pub latency_min_us: u64,
    pub latency_max_us: u64,
}

#[derive(Default)]
struct Counters {
    broadcasts: AtomicU64,
    published: AtomicU64,
    bus_failures: AtomicU64,
    received: AtomicU64,
    received_invalid: AtomicU64,
    received_gaps: AtomicU64,
    delivered_local: AtomicU64,
    delivered_from_bus: AtomicU64,
}

#[derive(Default)]
struct Rtt {
    samples: u64,
    last: u64,
    avg: u64,
    min: u64,
    max: u64,
}

impl Rtt {
    fn add(&mut self, us: u64) {
        self.avg = if self.samples == 0 {
            us
        } else {
            (self.avg * 7 + us) / 8
        };
        self.min = if self.samples == 0 {
            us
        } else {
            self.min.min(us)
        };
        self.max = self.max.max(us);
        self.last = us;
        self.samples += 1;
    }
}

/// Publishers remembered for gap counting; beyond this the memory starts over.
const MAX_ORIGINS: usize = 4096;
/// While the connection is up but no own probe came back yet, probe again this often.
const PROBE_RETRY: Duration = Duration::from_millis(500);

struct Shared {
    cluster: Cluster,
    channel: String,
    subject: async_nats::Subject,
    local: DatagramBroadcaster,
    origin: u64,
    seq: AtomicU64,
    probe_seq: AtomicU64,
    /// The first probe sequence number sent since the connection was last made: an own
    /// probe at or above it proves the subscription is live on this connection.
    probe_floor: AtomicU64,
    ready: watch::Sender<bool>,
    reconnects_at_join: u64,
    c: Counters,
    rtt: Mutex<Rtt>,
    latency: Mutex<Rtt>,
    closed: AtomicBool,
}

struct Handle {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.store(true, Relaxed);
        // Ends the subscription (its drop unsubscribes).
        self.task.abort();
    }
}

/// A [`DatagramBroadcaster`] joined to a channel of a [`Cluster`]. Cheap to clone;
/// thread-safe. Dropping the last clone leaves the channel (the local broadcaster and
/// its members stay as they are).
#[derive(Clone)]
pub struct ClusterBroadcaster {
    h: Arc<Handle>,
}

impl std::fmt::Debug for ClusterBroadcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBroadcaster")
            .field("channel", &self.h.shared.channel)
            .field("origin", &format_args!("{:016x}", self.h.shared.origin))
            .finish()
    }
}

fn random_origin() -> Result<u64, Error> {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::Io("no random numbers for the broadcaster's origin id".into()))?;
    Ok(u64::from_be_bytes(b))
}

fn ttl_ms(ttl: Option<Duration>) -> u32 {
    match ttl {
        None => 0,
        // At least 1 ms: 0 would read as "no time-to-live".
        Some(t) => t.as_millis().clamp(1, u32::MAX as u128) as u32,
    }
}

impl Cluster {
    /// Join `local` to `channel`: subscribe to the channel's subject and return the
    /// handle whose `broadcast` reaches the local members and every other node's. The
    /// broadcaster keeps its members (add and remove them on `local` as before); one
    /// broadcaster may join several channels, and several broadcasters one channel.
    /// Works while the bus is down too (the subscription is made when it comes up).
    pub async fn join(
        &self,
        channel: &str,
        local: DatagramBroadcaster,
    ) -> Result<ClusterBroadcaster, Error> {
        let subject = self.subject(channel)?;
        ClusterBroadcaster::join(self.clone(), channel.to_string(), subject, local).await
    }
}

impl ClusterBroadcaster {
    async fn join(
        cluster: Cluster,
        channel: String,
        subject: String,
        local: DatagramBroadcaster,
    ) -> Result<ClusterBroadcaster, Error> {
        if local.is_shut_down() {
            return Err(Error::InvalidState(
                "the broadcaster has been shut down".into(),
            ));
        }
        let sub = cluster
            .inner
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| Error::Connect(format!("NATS subscribe to {subject}: {e}")))?;
        let link = cluster.link();
        let shared = Arc::new(Shared {
            reconnects_at_join: cluster.reconnects(),
            cluster,
            channel,
            subject: subject.into(),
            local,
            origin: random_origin()?,
            seq: AtomicU64::new(0),
            probe_seq: AtomicU64::new(0),
            probe_floor: AtomicU64::new(1),
            ready: watch::channel(false).0,
            c: Counters::default(),
            rtt: Mutex::new(Rtt::default()),
            latency: Mutex::new(Rtt::default()),
            closed: AtomicBool::new(false),
        });
        let task = tokio::spawn(run(shared.clone(), sub, link));
        Ok(ClusterBroadcaster {
            h: Arc::new(Handle { shared, task }),
        })
    }

    /// Publish `data` once on the channel, for every other node's members, and deliver
    /// it to the local members at once (as [`DatagramBroadcaster::broadcast`]:
    /// `priority` 0..=2 and `ttl` apply to datagram streams). The publish comes first,
    /// so the other nodes' fan-out overlaps this one's. Returns how many local members
    /// accepted it. Never waits: when the bus is down or
    /// its queue is full the publish is counted in [`ChannelStats::bus_failures`] and
    /// the call still succeeds. InvalidArgument for a bad priority (nothing is sent);
    /// after the local broadcaster's shutdown it reaches no local member but is still
    /// published.
    pub fn broadcast(
        &self,
        data: &[u8],
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<usize, Error> {
        let s = &self.h.shared;
        if priority > 2 {
            return Err(Error::InvalidArgument(format!(
                "priority {priority} is not 0, 1 or 2"
            )));
        }
        // The bus first: the other nodes' fan-out then runs while this one's does.
        let seq = s.seq.fetch_add(1, Relaxed) + 1;
        let msg = wire::encode(
            Kind::Broadcast,
            priority,
            ttl_ms(ttl),
            s.origin,
            seq,
            wire::now_us(),
            data,
        );
        if s.publish(msg) {
            s.c.published.fetch_add(1, Relaxed);
        } else {
            s.c.bus_failures.fetch_add(1, Relaxed);
        }
        // The priority was checked above, so this cannot fail.
        let accepted = s.local.broadcast(data, priority, ttl).unwrap_or(0);
        s.c.broadcasts.fetch_add(1, Relaxed);
        s.c.delivered_local.fetch_add(accepted as u64, Relaxed);
        Ok(accepted)
    }

    /// The local broadcaster (add and remove members on it).
    pub fn local(&self) -> &DatagramBroadcaster {
        &self.h.shared.local
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.h.shared.channel
    }

    /// The channel's NATS subject.
    pub fn subject(&self) -> &str {
        self.h.shared.subject.as_str()
    }

    /// The random id this broadcaster puts in its messages.
    pub fn origin(&self) -> u64 {
        self.h.shared.origin
    }

    /// The channel's counters.
    pub fn stats(&self) -> ChannelStats {
        let s = &self.h.shared;
        let rtt = s.rtt.lock();
        let lat = s.latency.lock();
        ChannelStats {
            broadcasts: s.c.broadcasts.load(Relaxed),
            published: s.c.published.load(Relaxed),
            bus_failures: s.c.bus_failures.load(Relaxed),
            received: s.c.received.load(Relaxed),
            received_invalid: s.c.received_invalid.load(Relaxed),
            received_gaps: s.c.received_gaps.load(Relaxed),
            delivered_local: s.c.delivered_local.load(Relaxed),
            delivered_from_bus: s.c.delivered_from_bus.load(Relaxed),
            reconnects: s.cluster.reconnects().saturating_sub(s.reconnects_at_join),
            bus_connected: s.cluster.is_connected(),
            bus_ready: *s.ready.borrow(),
            rtt_samples: rtt.samples,
            rtt_last_us: rtt.last,
            rtt_avg_us: rtt.avg,
            rtt_min_us: rtt.min,
            rtt_max_us: rtt.max,
            latency_samples: lat.samples,
            latency_last_us: lat.last,
            latency_avg_us: lat.avg,
            latency_min_us: lat.min,
            latency_max_us: lat.max,
        }
    }

    /// Whether this broadcaster's subscription is known to be live on the current
    /// connection (see [`ChannelStats::bus_ready`]).
    pub fn is_bus_ready(&self) -> bool {
        *self.h.shared.ready.borrow()
    }

    /// A receiver that sees [`is_bus_ready`](Self::is_bus_ready) change (to print
    /// or act on the bus going down and coming back).
    pub fn watch_bus_ready(&self) -> watch::Receiver<bool> {
        self.h.shared.ready.subscribe()
    }

    /// Wait until [`is_bus_ready`](Self::is_bus_ready), at most `timeout` (None: no
    /// limit). Timeout if it did not happen in time. Broadcasts published before every
    /// node of a channel is ready may miss the nodes that are not.
    pub async fn wait_bus_ready(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let mut rx = self.h.shared.ready.subscribe();
        let wait = async {
            // The sender lives as long as `self`.
            let _ = rx.wait_for(|r| *r).await;
        };
        match timeout {
            None => {
                wait.await;
                Ok(())
            }
            Some(t) => tokio::time::timeout(t, wait)
                .await
                .map_err(|_| Error::Timeout),
        }
    }
}

impl Shared {
    /// Hand `msg` to the NATS client without waiting; whether it took it.
    fn publish(&self, msg: Bytes) -> bool {
        if self.closed.load(Relaxed) || !self.cluster.is_connected() {
            return false;
        }
        let client = &self.cluster.inner.client;
        // One poll: the client's queue either has room now or the publish is not made
        // (dropping the pending send withdraws it). `unconstrained`: a caller on a
        // runtime thread that used up its cooperative budget would otherwise be told
        // "not ready" with room in the queue.
        let publish = tokio::task::unconstrained(client.publish(self.subject.clone(), msg));
        matches!(poll_once(publish), Some(Ok(())))
    }

    fn probe(&self) {
        let seq = self.probe_seq.fetch_add(1, Relaxed) + 1;
        let msg = wire::encode(Kind::Probe, 0, 0, self.origin, seq, wire::now_us(), &[]);
        self.publish(msg);
    }

    /// The connection was (re)made: the subscription is live again only once an own
    /// probe sent from now on has come back.
    fn relink(&self) {
        self.ready.send_replace(false);
        self.probe_floor
            .store(self.probe_seq.load(Relaxed) + 1, Relaxed);
        self.probe();
    }

    fn on_message(&self, payload: &Bytes, last_seq: &mut HashMap<u64, u64>) {
        let Some(m) = wire::decode(payload) else {
            self.c.received_invalid.fetch_add(1, Relaxed);
            return;
        };
        if m.origin == self.origin {
            let rtt = wire::now_us().saturating_sub(m.sent_us);
            self.rtt.lock().add(rtt);
            if m.kind == Kind::Probe && m.seq >= self.probe_floor.load(Relaxed) {
                self.ready.send_if_modified(|r| !std::mem::replace(r, true));
            }
            return;
        }
        if m.kind != Kind::Broadcast {
            return;
        }
        let latency = wire::now_us().saturating_sub(m.sent_us);
        self.latency.lock().add(latency);
        if last_seq.len() >= MAX_ORIGINS && !last_seq.contains_key(&m.origin) {
            last_seq.clear();
        }
        let last = last_seq.insert(m.origin, m.seq);
        if let Some(last) = last {
            if m.seq > last + 1 {
                self.c.received_gaps.fetch_add(m.seq - last - 1, Relaxed);
            }
        }
        self.c.received.fetch_add(1, Relaxed);
        let ttl = (m.ttl_ms > 0).then(|| Duration::from_millis(m.ttl_ms.into()));
        // The priority was checked when the message was read.
        if let Ok(n) = self.local.broadcast(&m.payload, m.priority, ttl) {
            self.c.delivered_local.fetch_add(n as u64, Relaxed);
            self.c.delivered_from_bus.fetch_add(n as u64, Relaxed);
        }
    }
}

/// The channel's receiver: delivers other nodes' broadcasts, watches own messages come
/// back, and probes after every (re)connection.
async fn run(
    shared: Arc<Shared>,
    mut sub: async_nats::Subscriber,
    mut link: watch::Receiver<LinkState>,
) {
    let mut last_seq = HashMap::new();
    let mut seen_connects = link.borrow_and_update().0;
    shared.relink();
    let mut retry = tokio::time::interval(PROBE_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = sub.next() => match m {
                Some(m) => shared.on_message(&m.payload, &mut last_seq),
                None => return, // the client is gone
            },
            changed = link.changed() => {
                if changed.is_err() {
                    return;
                }
                let (connects, up) = *link.borrow_and_update();
                if !up {
                    shared.ready.send_replace(false);
                } else if connects != seen_connects {
                    seen_connects = connects;
                    shared.relink();
                }
            }
            _ = retry.tick() => {
                if !*shared.ready.borrow() && shared.cluster.is_connected() {
                    shared.probe();
                }
            }
        }
    }
}
