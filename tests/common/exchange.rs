//! Datagram exchanges of the interop tests: payload patterns the peers rebuild, window
//! sizes, the settled maximum, echo loops and the oversize checks.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;
use wtdatagram::{Error, Session};

use super::peer::LIMIT;

/// A datagram of `size` bytes: `head` (big-endian, cut to the size) then the pattern
/// `(i * 31 + j + salt) % 251` for byte `j` after the head. The peers build and check the
/// same bytes; `salt` differs per session, so a datagram delivered to the wrong session
/// does not match.
pub fn payload(head: u32, i: usize, size: usize, salt: usize) -> Vec<u8> {
    let head = head.to_be_bytes();
    if size <= 4 {
        return head[4 - size..].to_vec();
    }
    let mut p = head.to_vec();
    p.extend((0..size - 4).map(|j| ((i * 31 + j + salt) % 251) as u8));
    p
}

/// Size of datagram `i` when the maximum is `max`: every window of `window` opens with
/// one of exactly `max` (which grows while path-MTU discovery runs) and one of 1 byte.
pub fn size_of(i: usize, max: usize, window: usize) -> usize {
    match i % window {
        0 => max,
        1 => 1,
        _ => 1 + (i * 97) % max,
    }
}

/// quinn's limit grows with path-MTU discovery after the handshake (1161 -> 1381 -> 1413
/// on loopback). Wait (bounded) until it has stayed the same for 10 polls, so that the
/// sizes used are the settled maximum.
pub async fn settled_max(session: &Session) -> usize {
    let mut last = 0;
    let mut same = 0;
    let deadline = tokio::time::Instant::now() + LIMIT;
    while same < 10 && tokio::time::Instant::now() < deadline {
        let m = session.max_datagram_size().expect("datagrams negotiated");
        if m == last {
            same += 1;
        } else {
            (last, same) = (m, 0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// Echo every datagram of `session` back until it ends: (datagrams echoed, the send
/// error that stopped it, if any).
pub fn spawn_counting_echo(session: &Session) -> JoinHandle<(usize, Option<Error>)> {
    let s = session.clone();
    tokio::spawn(async move {
        let mut echoed = 0usize;
        loop {
            match s.recv_datagram().await {
                Ok(d) => match s.send_datagram(&d).await {
                    Ok(()) => echoed += 1,
                    Err(e) => return (echoed, Some(e)),
                },
                Err(_) => return (echoed, None),
            }
        }
    })
}

/// After the sessions ended: each echo task echoed exactly `count` datagrams without a
/// send error, and each session counted `count` each way, none dropped.
pub async fn assert_echoed(
    echoes: Vec<JoinHandle<(usize, Option<Error>)>>,
    sessions: &[Session],
    count: usize,
) {
    for (k, echo) in echoes.into_iter().enumerate() {
        let (echoed, err) = tokio::time::timeout(LIMIT, echo)
            .await
            .expect("echo task ends with the session")
            .expect("echo task");
        assert_eq!(err, None, "echo send failed on session {k}");
        assert_eq!(echoed, count, "session {k}");
    }
    assert_counts(sessions, count);
}

/// Each of `sessions` sent and received exactly `count` datagrams, dropped none, and its
/// connection saw no datagram for an unknown session.
pub fn assert_counts(sessions: &[Session], count: usize) {
    for (k, session) in sessions.iter().enumerate() {
        let st = session.stats();
        assert_eq!(
            (st.datagrams_sent, st.datagrams_received, st.recv_dropped),
            (count as u64, count as u64, 0),
            "counters of our session {k} (id {})",
            session.id()
        );
        assert_eq!(session.connection_unknown_session_datagrams(), 0);
    }
}

/// Send `count` datagrams on session `k` in windows of `window` and check every echo (any
/// order within a window, exact bytes, no duplicates). Each window opens with one of
/// min(our live maximum, `peer_max()`); `payload(i, size)` builds datagram `i`. Returns
/// the sizes sent (min, max).
pub async fn echoed_exchange(
    session: &Session,
    k: usize,
    count: usize,
    window: usize,
    peer_max: impl Fn() -> usize,
    payload: impl Fn(usize, usize) -> Vec<u8>,
) -> Result<(usize, usize), String> {
    let (mut smallest, mut largest) = (usize::MAX, 0);
    for start in (0..count).step_by(window) {
        // quinn's limit moves with path-MTU discovery: ask again for every window.
        let ours = session.max_datagram_size().map_err(|e| e.to_string())?;
        let max = ours.min(peer_max());
        if max < 1100 {
            return Err(format!("max datagram size {max} (ours {ours})"));
        }
        let mut outstanding: HashMap<Vec<u8>, usize> = HashMap::new();
        for i in start..(start + window).min(count) {
            let p = payload(i, size_of(i, max, window));
            smallest = smallest.min(p.len());
            largest = largest.max(p.len());
            session
                .send_datagram(&p)
                .await
                .map_err(|e| format!("session {k}: send datagram {i}: {e}"))?;
            *outstanding.entry(p).or_default() += 1;
        }
        let mut left: usize = outstanding.values().sum();
        while left > 0 {
            let d =
                match tokio::time::timeout(Duration::from_secs(5), session.recv_datagram()).await {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => return Err(format!("session {k}: receive at {start}: {e}")),
                    Err(_) => {
                        return Err(format!(
                            "session {k} window at {start}: {left} echoes missing after 5 s \
                             (stats {:?})",
                            session.stats()
                        ))
                    }
                };
            match outstanding.get_mut(&d[..]) {
                Some(n) if *n > 0 => *n -= 1,
                _ => {
                    return Err(format!(
                        "session {k} window at {start}: unexpected echo of {} bytes \
                         starting {:02x?}",
                        d.len(),
                        &d[..d.len().min(8)]
                    ))
                }
            }
            left -= 1;
        }
    }
    Ok((smallest, largest))
}

/// The oversize checks on our side: refused before anything is sent, and counted.
pub async fn assert_oversize_refused(session: &Session) {
    let max = session.max_datagram_size().expect("datagrams negotiated");
    // No loopback path allows 2,000 B (quinn's path MTU stops at 1452); 65,536 is beyond
    // any QUIC datagram.
    for size in [2_000usize, 65_536] {
        let big = vec![0u8; size];
        match session.try_send_datagram(&big) {
            Err(Error::TooLarge { size: s, max: m }) if s == size && m >= max => {}
            other => panic!("oversize try_send of {size} B (max {max}): {other:?}"),
        }
        match session.send_datagram(&big).await {
            Err(Error::TooLarge { size: s, .. }) if s == size => {}
            other => panic!("oversize send of {size} B (max {max}): {other:?}"),
        }
    }
    assert_eq!(session.stats().send_too_large, 4);
}
