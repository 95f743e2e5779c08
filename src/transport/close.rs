//! Why a session ended: the protocol crate's [`CloseReason`], and how a QUIC connection
//! error becomes one.

pub use wtdatagram_proto::close::CloseReason;

/// The close reason of every session of a connection that ended with `e`.
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
