//! The datagram stream's queues, without I/O: a send queue with three priority classes,
//! time-to-live and an eviction rule, and a bounded receive queue.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Number of priority classes: 0 (low), 1 (normal-high), 2 (highest).
pub const PRIORITIES: usize = 3;

/// A datagram waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<T> {
    pub item: T,
    pub priority: u8,
    pub enqueued: Instant,
    /// Not to be put on the wire at or after this instant.
    pub deadline: Option<Instant>,
}

impl<T> Pending<T> {
    pub fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }
}

/// Why a datagram could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue is full and holds nothing of lower priority to evict.
    Full,
}

/// Send queue. Higher classes leave first; FIFO within a class. When full, a new
/// datagram evicts the oldest datagram of the lowest non-empty class below its own;
/// if there is none, it is rejected.
#[derive(Debug)]
pub struct SendQueue<T> {
    classes: [VecDeque<Pending<T>>; PRIORITIES],
    limit: usize,
}

impl<T> SendQueue<T> {
    pub fn new(limit: usize) -> Self {
        SendQueue {
            classes: Default::default(),
            limit: limit.max(1),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn len(&self) -> usize {
        self.classes.iter().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.classes.iter().all(VecDeque::is_empty)
    }

    /// Datagrams waiting in each class.
    pub fn class_lens(&self) -> [usize; PRIORITIES] {
        [
            self.classes[0].len(),
            self.classes[1].len(),
            self.classes[2].len(),
        ]
    }

    /// Queue `item`; on success, returns the datagram evicted to make room, if any.
    /// `priority` must be below [`PRIORITIES`].
    pub fn push(
        &mut self,
        item: T,
        priority: u8,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<Option<Pending<T>>, PushError> {
        let p = usize::from(priority).min(PRIORITIES - 1);
        let mut evicted = None;
        if self.len() >= self.limit {
            let victim = (0..p).find(|&c| !self.classes[c].is_empty());
            match victim {
                Some(c) => evicted = self.classes[c].pop_front(),
                None => return Err(PushError::Full),
            }
        }
        self.classes[p].push_back(Pending {
            item,
            priority: p as u8,
            enqueued: now,
            deadline: ttl.map(|t| now + t),
        });
        Ok(evicted)
    }

    /// The next datagram to send, highest class first. Datagrams whose time-to-live has
    /// passed are removed and handed to `expired` instead of being returned.
    pub fn pop(&mut self, now: Instant, mut expired: impl FnMut(Pending<T>)) -> Option<Pending<T>> {
        for class in self.classes.iter_mut().rev() {
            while let Some(p) = class.pop_front() {
                if p.expired(now) {
                    expired(p);
                    continue;
                }
                return Some(p);
            }
        }
        None
    }

    /// Remove everything (on close).
    pub fn clear(&mut self) -> usize {
        let n = self.len();
        for c in &mut self.classes {
            c.clear();
        }
        n
    }
}

/// What a full receive queue gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Refuse the arriving datagram (default: what was queued first is read first).
    #[default]
    DropNewest,
    /// Discard the oldest queued datagram to make room (freshest data wins).
    DropOldest,
}

/// Bounded receive queue. Returns what it dropped so the caller can count it.
#[derive(Debug)]
pub struct RecvQueue<T> {
    q: VecDeque<T>,
    limit: usize,
    overflow: Overflow,
}

impl<T> RecvQueue<T> {
    pub fn new(limit: usize, overflow: Overflow) -> Self {
        RecvQueue {
            q: VecDeque::new(),
            limit: limit.max(1),
            overflow,
        }
    }
    pub fn limit(&self) -> usize {
        self.limit
    }
    pub fn len(&self) -> usize {
        self.q.len()
    }
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
    /// Add `item`; returns the datagram dropped to respect the limit, if any.
    pub fn push(&mut self, item: T) -> Option<T> {
        if self.q.len() < self.limit {
            self.q.push_back(item);
            return None;
        }
        match self.overflow {
            Overflow::DropNewest => Some(item),
            Overflow::DropOldest => {
                let old = self.q.pop_front();
                self.q.push_back(item);
                old
            }
        }
    }
    pub fn pop(&mut self) -> Option<T> {
        self.q.pop_front()
    }
    /// Put an item back at the front (a reader's buffer was too small).
    pub fn unpop(&mut self, item: T) {
        self.q.push_front(item);
    }
    pub fn peek(&self) -> Option<&T> {
        self.q.front()
    }
    /// Remove everything (on close); returns how many were removed.
    pub fn clear(&mut self) -> usize {
        let n = self.q.len();
        self.q = VecDeque::new();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(
        q: &mut SendQueue<&'static str>,
        now: Instant,
    ) -> (Vec<&'static str>, Vec<&'static str>) {
        let mut expired = Vec::new();
        let mut out = Vec::new();
        while let Some(p) = q.pop(now, |e| expired.push(e.item)) {
            out.push(p.item);
        }
        (out, expired)
    }

    #[test]
    fn higher_classes_leave_first_fifo_within_a_class() {
        let now = Instant::now();
        let mut q = SendQueue::new(10);
        for (item, prio) in [
            ("l1", 0),
            ("h1", 1),
            ("x1", 2),
            ("l2", 0),
            ("x2", 2),
            ("h2", 1),
        ] {
            q.push(item, prio, None, now).unwrap();
        }
        assert_eq!(q.class_lens(), [2, 2, 2]);
        assert_eq!(drain(&mut q, now).0, ["x1", "x2", "h1", "h2", "l1", "l2"]);
    }

    #[test]
    fn eviction_takes_the_oldest_of_the_lowest_class_below() {
        let now = Instant::now();
        let mut q = SendQueue::new(3);
        q.push("h-old", 1, None, now).unwrap();
        q.push("l-old", 0, None, now).unwrap();
        q.push("l-new", 0, None, now).unwrap();
        // A highest-priority datagram evicts the OLDEST of the LOWEST non-empty class.
        let ev = q.push("x", 2, None, now).unwrap().unwrap();
        assert_eq!(ev.item, "l-old");
        let ev = q.push("x2", 2, None, now).unwrap().unwrap();
        assert_eq!(ev.item, "l-new");
        // Class 0 empty now: the next victim is class 1.
        let ev = q.push("x3", 2, None, now).unwrap().unwrap();
        assert_eq!(ev.item, "h-old");
        // Only class 2 left, and a class-2 datagram has nothing below it: rejected.
        assert_eq!(q.push("x4", 2, None, now), Err(PushError::Full));
        assert_eq!(q.len(), 3);
        // A low datagram into a full queue is rejected too (nothing below class 0).
        assert_eq!(q.push("l", 0, None, now), Err(PushError::Full));
        assert_eq!(drain(&mut q, now).0, ["x", "x2", "x3"]);
    }

    #[test]
    fn same_class_does_not_evict() {
        let now = Instant::now();
        let mut q = SendQueue::new(2);
        q.push("a", 1, None, now).unwrap();
        q.push("b", 1, None, now).unwrap();
        assert_eq!(q.push("c", 1, None, now), Err(PushError::Full));
    }

    #[test]
    fn ttl_is_checked_at_dequeue() {
        let t0 = Instant::now();
        let mut q = SendQueue::new(10);
        q.push("short", 2, Some(Duration::from_millis(10)), t0)
            .unwrap();
        q.push("long", 2, Some(Duration::from_secs(10)), t0)
            .unwrap();
        q.push("none", 0, None, t0).unwrap();
        // Queued before expiry, dequeued after: never returned, reported as expired.
        let (out, expired) = drain(&mut q, t0 + Duration::from_millis(10));
        assert_eq!(out, ["long", "none"]);
        assert_eq!(expired, ["short"]);
    }

    #[test]
    fn recv_queue_overflow_policies() {
        let mut q = RecvQueue::new(2, Overflow::DropNewest);
        assert_eq!(q.push(1), None);
        assert_eq!(q.push(2), None);
        assert_eq!(q.push(3), Some(3));
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(1), Some(2), None));
        let mut q = RecvQueue::new(2, Overflow::DropOldest);
        q.push(1);
        q.push(2);
        assert_eq!(q.push(3), Some(1));
        assert_eq!((q.pop(), q.pop()), (Some(2), Some(3)));
        q.push(9);
        let x = q.pop().unwrap();
        q.unpop(x);
        assert_eq!(q.peek(), Some(&9));
    }
}
