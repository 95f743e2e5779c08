//! A session's CONNECT stream reader: it feeds what arrives to the protocol crate's
//! [`ConnectStream`] and carries out what it decides (record the end, answer with FIN,
//! reset, fail the connection), until the session is over on both sides.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quinn::VarInt;

use super::close::{self, CloseReason};
use super::driver::SessionSlot;
use super::session::{SessionShared, PEER_CLOSE_WAIT};
use wtdatagram_proto::session::{self as proto_session, ConnectStream, Input, Step, Then};

/// Read the CONNECT stream until the session ends. `leftover` is what arrived after
/// the response (client) or request (server) HEADERS; `slot` (the session's place on the
/// connection) is given up when the reader ends.
pub(crate) async fn run(
    shared: Arc<SessionShared>,
    recv: quinn::RecvStream,
    leftover: Bytes,
    slot: Option<SessionSlot>,
) {
    read(&shared, recv, leftover).await;
    shared
        .reader_active
        .store(false, std::sync::atomic::Ordering::Release);
    drop(slot);
    shared.reader_done.notify_waiters();
}

async fn read(s: &Arc<SessionShared>, mut recv: quinn::RecvStream, leftover: Bytes) {
    let mut cs = ConnectStream::default();
    cs.push(Input::Data(&leftover));
    loop {
        loop {
            match cs.step() {
                Step::Read => break,
                Step::Drain => s.set_draining(),
                Step::End { reason, then } => return end(s, &mut recv, reason, then).await,
            }
        }
        tokio::select! {
            r = recv.read_chunk(64 * 1024, true) => match r {
                Ok(Some(chunk)) => cs.push(Input::Data(&chunk.bytes)),
                Ok(None) => cs.push(Input::Fin),
                Err(quinn::ReadError::Reset(code)) => cs.push(Input::Reset(code.into_inner())),
                Err(quinn::ReadError::ConnectionLost(e)) => {
                    s.set_closed(close::from_connection(&e));
                    return;
                }
                Err(e) => {
                    s.set_closed(CloseReason::ConnectionLost { code: 0, reason: e.to_string() });
                    return;
                }
            },
            _ = s.stop_reader.notified() => {
                // The session ended elsewhere: closed locally, aborted, or its
                // connection failed.
                let reason = s.close_reason();
                if reason.as_ref().is_some_and(proto_session::reads_until_peer_ends) {
                    // We closed (capsule + FIN). The peer closes or resets its side in
                    // response, and only then is our capsule known to be read: a peer
                    // that sees the QUIC connection close first drops what it had not
                    // read yet. Read on, discarding, until it does (bounded:
                    // h3-webtransport never answers); the close holds the connection
                    // until then.
                    let _ = tokio::time::timeout(PEER_CLOSE_WAIT, async {
                        while let Ok(Some(_)) = recv.read_chunk(64 * 1024, true).await {}
                    })
                    .await;
                }
                let code = reason.as_ref().map_or(
                    wtdatagram_proto::codes::WT_SESSION_GONE,
                    proto_session::stop_code,
                );
                let _ = recv.stop(VarInt::from_u64(code).unwrap_or_default());
                return;
            }
        }
    }
}

/// Carry out the end of a session decided from its CONNECT stream.
async fn end(
    s: &Arc<SessionShared>,
    recv: &mut quinn::RecvStream,
    reason: CloseReason,
    then: Then,
) {
    match then {
        Then::Finish => {
            // The peer closed: record it and end our side of the stream with FIN.
            if s.set_closed(reason) {
                if let Some(mut send) = s.send.lock().await.take() {
                    let _ = send.finish();
                    let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
                }
            }
        }
        Then::ResetBoth(code) => {
            tracing::debug!(stream = s.stream_id, "session protocol error: {reason}");
            let code = VarInt::from_u64(code).unwrap_or(VarInt::from_u32(0x101));
            let _ = recv.stop(code);
            if let Some(mut send) = s.send.lock().await.take() {
                let _ = send.reset(code);
            }
            s.set_closed(reason);
        }
        // Frame-layer violations are connection errors (RFC 9114 §7.1, §7.2.4, §7.2.8);
        // the session sees the error first.
        Then::FailConnection(e) => s.conn.fail(&e),
        Then::Nothing => {
            s.set_closed(reason);
        }
    }
}
