//! Send one datagram to many sessions and datagram streams at once
//! (pywebtransport's `DatagramBroadcaster`).
//!
//! A broadcast encodes the payload once (one shared [`Bytes`]) and hands it to every
//! target without ever waiting for one of them:
//!
//! * raw sessions get it through [`Session::try_send_datagram`], which never blocks: a
//!   session whose connection's datagram send buffer is full (a peer that stopped
//!   acknowledging, a congested path) simply does not accept it. Priority and
//!   time-to-live do **not** apply to raw sessions (they have no queue): they are
//!   ignored for them.
//! * datagram streams get it through [`DatagramStream::send`]: it is queued with the
//!   given priority and time-to-live, and the stream's own sender task puts it on the
//!   wire. A full queue (after the eviction rule), too large or closed is "not accepted".
//!
//! Targets are identified by the session they belong to (session ids are only unique
//! per connection, so the broadcaster compares sessions, not ids). Closed targets leave
//! the set by themselves: sessions as soon as they close (a close hook), streams when a
//! broadcast finds them closed. The broadcaster holds a clone of every member, which
//! keeps it open until it is removed, leaves, or the broadcaster shuts down or drops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;

use super::stream::DatagramStream;
use crate::transport::{Error, Session};

/// Identity of a session (stable while any clone of it lives).
fn key(session: &Session) -> usize {
    Arc::as_ptr(&session.shared) as usize
}

struct Member<T> {
    /// Distinguishes this membership from an earlier one of the same session, so the
    /// close hook of a removed-and-re-added session does not remove the new entry.
    token: u64,
    target: T,
}

#[derive(Default)]
struct Members {
    shut_down: bool,
    sessions: HashMap<usize, Member<Session>>,
    streams: HashMap<usize, Member<DatagramStream>>,
}

#[derive(Default)]
struct Inner {
    members: Mutex<Members>,
    next_token: AtomicU64,
}

/// Sends datagrams to a set of sessions and datagram streams. Cheap to clone (clones
/// share the set); thread-safe.
#[derive(Clone, Default)]
pub struct DatagramBroadcaster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DatagramBroadcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.inner.members.lock();
        f.debug_struct("DatagramBroadcaster")
            .field("sessions", &m.sessions.len())
            .field("streams", &m.streams.len())
            .field("shut_down", &m.shut_down)
            .finish()
    }
}

fn shut_down_error() -> Error {
    Error::InvalidState("the broadcaster has been shut down".into())
}

impl DatagramBroadcaster {
    pub fn new() -> DatagramBroadcaster {
        DatagramBroadcaster::default()
    }

    /// Add a session (raw datagrams). Adding a member twice is a no-op (`Ok(false)`);
    /// `Ok(true)` when it was added. Errors: Closed for a closed session, InvalidState
    /// after [`shutdown`](Self::shutdown).
    pub fn add_session(&self, session: Session) -> Result<bool, Error> {
        if let Some(r) = session.close_reason() {
            return Err(Error::Closed(r));
        }
        let k = key(&session);
        let token = self.inner.next_token.fetch_add(1, Relaxed);
        {
            let mut m = self.inner.members.lock();
            if m.shut_down {
                return Err(shut_down_error());
            }
            if m.sessions.contains_key(&k) {
                return Ok(false);
            }
            m.sessions.insert(
                k,
                Member {
                    token,
                    target: session.clone(),
                },
            );
        }
        // Registered outside our lock: the hook runs under the session's lock and takes
        // ours (order session -> broadcaster; a broadcast never holds ours while sending).
        // If the session closed meanwhile, the hook runs right here and removes it.
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let rt = session.runtime_handle();
        session.on_close(move |_| {
            let Some(inner) = weak.upgrade() else { return };
            let removed = {
                let mut m = inner.members.lock();
                match m.sessions.get(&k) {
                    Some(e) if e.token == token => m.sessions.remove(&k),
                    _ => None,
                }
            };
            // Never drop a Session clone under the session's own lock (the last clone's
            // destructor closes it, which takes that lock): drop it on the runtime.
            if let Some(e) = removed {
                rt.spawn(async move { drop(e) });
            }
            crate::transport::release_outside_lock(inner, &rt);
        });
        Ok(true)
    }

    /// Remove a session; whether it was a member.
    pub fn remove_session(&self, session: &Session) -> bool {
        let removed = self.inner.members.lock().sessions.remove(&key(session));
        removed.is_some()
    }

    /// Add a datagram stream (queued sending with priority and time-to-live). Adding a
    /// stream twice is a no-op (`Ok(false)`). Errors: Closed for a closed stream,
    /// InvalidState after [`shutdown`](Self::shutdown).
    pub fn add_stream(&self, stream: DatagramStream) -> Result<bool, Error> {
        if stream.is_closed() {
            return Err(Error::Closed(stream.session().close_reason().unwrap_or(
                crate::transport::CloseReason::Local {
                    code: 0,
                    reason: "datagram stream closed".into(),
                },
            )));
        }
        let k = key(stream.session());
        let token = self.inner.next_token.fetch_add(1, Relaxed);
        let mut m = self.inner.members.lock();
        if m.shut_down {
            return Err(shut_down_error());
        }
        if m.streams.contains_key(&k) {
            return Ok(false);
        }
        m.streams.insert(
            k,
            Member {
                token,
                target: stream,
            },
        );
        Ok(true)
    }

    /// Remove a stream; whether it was a member.
    pub fn remove_stream(&self, stream: &DatagramStream) -> bool {
        let removed = self
            .inner
            .members
            .lock()
            .streams
            .remove(&key(stream.session()));
        removed.is_some()
    }

    /// Sessions in the set.
    pub fn session_count(&self) -> usize {
        self.inner.members.lock().sessions.len()
    }

    /// Streams in the set (closed ones leave at the next broadcast).
    pub fn stream_count(&self) -> usize {
        self.inner.members.lock().streams.len()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.members.lock().shut_down
    }

    /// Send `data` to every member; returns how many accepted it (see the module
    /// documentation). `priority` (0..=2) and `ttl` apply to streams only; raw sessions
    /// ignore them. Never waits for any member. InvalidArgument for a bad priority;
    /// 0 after shutdown.
    pub fn broadcast(
        &self,
        data: &[u8],
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<usize, Error> {
        if priority > 2 {
            return Err(Error::InvalidArgument(format!(
                "priority {priority} is not 0, 1 or 2"
            )));
        }
        let data = Bytes::copy_from_slice(data);
        // Snapshot the members: no lock of ours is held while a session's is taken.
        type StreamEntry = (usize, u64, DatagramStream);
        let (sessions, streams): (Vec<Session>, Vec<StreamEntry>) = {
            let m = self.inner.members.lock();
            (
                m.sessions.values().map(|e| e.target.clone()).collect(),
                m.streams
                    .iter()
                    .map(|(k, e)| (*k, e.token, e.target.clone()))
                    .collect(),
            )
        };
        let mut accepted = 0;
        for s in &sessions {
            // Closed sessions leave through their close hook.
            if let Ok(true) = s.try_send_datagram(&data) {
                accepted += 1;
            }
        }
        let mut closed = Vec::new();
        for (k, token, st) in &streams {
            if st.is_closed() {
                closed.push((*k, *token));
                continue;
            }
            match st.send_bytes(data.clone(), priority, ttl) {
                Ok(()) => accepted += 1,
                Err(Error::Closed(_)) => closed.push((*k, *token)),
                Err(_) => {}
            }
        }
        if !closed.is_empty() {
            let mut m = self.inner.members.lock();
            for (k, token) in closed {
                if m.streams.get(&k).is_some_and(|e| e.token == token) {
                    m.streams.remove(&k);
                }
            }
        }
        Ok(accepted)
    }

    /// Empty the set and refuse new members from now on; broadcasts then reach nobody.
    pub fn shutdown(&self) {
        let (sessions, streams) = {
            let mut m = self.inner.members.lock();
            m.shut_down = true;
            (
                std::mem::take(&mut m.sessions),
                std::mem::take(&mut m.streams),
            )
        };
        // Dropped outside the lock (a last Session clone closes its session).
        drop(sessions);
        drop(streams);
    }
}
