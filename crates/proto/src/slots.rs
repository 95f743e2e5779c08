//! How many sessions a connection carries, and when a new one may join them: the
//! per-connection limit (requests still being answered count, so concurrent requests
//! cannot overshoot it) and draft-15's one-session-at-a-time rule without flow control.

/// Which sessions a new one must not share the connection with (draft-ietf-webtrans-
/// http3-15 §5.1: without flow control, a connection carries one session at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusive {
    /// The session may share the connection (flow control, or not draft-15).
    No,
    /// No other session may be open or pending (server: the sessions it counts are the
    /// ones the client may still use).
    OfOpen,
    /// Nor may one still be closing (client: a server counts a session until it has
    /// read its end, so a new CONNECT waits for the old one to be over on both sides).
    OfAll,
}

/// Why [`Slots::reserve`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Another session is open or being opened (exclusive use).
    Open,
    /// Only sessions that are closing (their CONNECT stream is still being read).
    Closing,
    /// The connection carries its maximum of sessions (open or being opened).
    Full,
}

/// The sessions of a connection that its map of open sessions does not show: the ones
/// still being opened (pending), and every one whose CONNECT stream is still read
/// (held: pending, open, or closed and waiting for the peer to end its side).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Slots {
    pending: usize,
    held: usize,
}

impl Slots {
    /// Reserve a place for a new session next to `open` open ones, unless `exclusive`
    /// forbids it or `limit` sessions (open or pending) are there already.
    pub fn reserve(
        &mut self,
        open: usize,
        exclusive: Exclusive,
        limit: Option<u64>,
    ) -> Result<(), Busy> {
        if let Some(limit) = limit {
            if (self.pending + open) as u64 >= limit {
                return Err(Busy::Full);
            }
        }
        if exclusive != Exclusive::No {
            if self.pending > 0 || open > 0 {
                return Err(Busy::Open);
            }
            if exclusive == Exclusive::OfAll && self.held > 0 {
                return Err(Busy::Closing);
            }
        }
        self.pending += 1;
        self.held += 1;
        Ok(())
    }

    /// A reserved session is now open (counted by the map of open sessions).
    pub fn established(&mut self) {
        self.pending -= 1;
    }

    /// A reservation ends: `pending` if it never became an open session.
    pub fn release(&mut self, pending: bool) {
        if pending {
            self.pending -= 1;
        }
        self.held -= 1;
    }

    /// Whether any session is still held (being opened, open, or closing).
    pub fn any_held(&self) -> bool {
        self.held > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_sessions_count_against_the_limit() {
        let mut s = Slots::default();
        assert_eq!(s.reserve(0, Exclusive::No, Some(2)), Ok(()));
        assert_eq!(s.reserve(0, Exclusive::No, Some(2)), Ok(()));
        // Two pending, none open yet: the limit holds.
        assert_eq!(s.reserve(0, Exclusive::No, Some(2)), Err(Busy::Full));
        s.established();
        assert_eq!(s.reserve(1, Exclusive::No, Some(2)), Err(Busy::Full));
        s.release(true);
        assert_eq!(s.reserve(1, Exclusive::No, Some(2)), Ok(()));
    }

    #[test]
    fn draft15_exclusivity() {
        let mut s = Slots::default();
        s.reserve(0, Exclusive::OfOpen, None).unwrap();
        assert_eq!(s.reserve(0, Exclusive::OfOpen, None), Err(Busy::Open));
        s.established();
        assert_eq!(s.reserve(1, Exclusive::OfOpen, None), Err(Busy::Open));
        // The open session closed (map says 0) but its stream is still being read.
        assert_eq!(s.reserve(0, Exclusive::OfAll, None), Err(Busy::Closing));
        assert_eq!(s.reserve(0, Exclusive::OfOpen, None), Ok(()));
        s.release(true);
        s.release(false);
        assert!(!s.any_held());
        assert_eq!(s.reserve(0, Exclusive::OfAll, None), Ok(()));
    }
}
