//! The bounded queue of a session's received datagrams.

use std::collections::VecDeque;

use bytes::Bytes;

/// A session's received datagrams waiting for the application, bounded by count and by
/// payload bytes.
#[derive(Default)]
pub(crate) struct Inbox {
    items: VecDeque<Bytes>,
    bytes: usize,
}

impl Inbox {
    /// Capacity kept after the queue drains; a larger one (left by a burst) is freed.
    const KEEP_CAPACITY: usize = 1024;

    /// Queue `d` unless that would exceed `max_items` datagrams or `max_bytes` bytes (an
    /// empty queue takes any one datagram).
    pub(crate) fn push_back(
        &mut self,
        d: Bytes,
        max_items: usize,
        max_bytes: usize,
    ) -> Result<(), Bytes> {
        if self.items.len() >= max_items
            || (!self.items.is_empty() && self.bytes + d.len() > max_bytes)
        {
            return Err(d);
        }
        self.bytes += d.len();
        self.items.push_back(d);
        Ok(())
    }
    pub(crate) fn push_front(&mut self, d: Bytes) {
        self.bytes += d.len();
        self.items.push_front(d);
    }
    pub(crate) fn pop_front(&mut self) -> Option<Bytes> {
        let d = self.items.pop_front()?;
        self.bytes -= d.len();
        if self.items.is_empty() && self.items.capacity() > Self::KEEP_CAPACITY {
            self.items = VecDeque::new();
        }
        Some(d)
    }
    pub(crate) fn front(&self) -> Option<&Bytes> {
        self.items.front()
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
