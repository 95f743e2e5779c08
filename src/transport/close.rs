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

/// Why a QUIC handshake failed, for logs and [`HandshakeFailure`](super::server::HandshakeFailure):
/// the TLS alert (QUIC carries them as error codes 0x100..=0x1ff, RFC 9001 §4.8) by
/// name, who sent it, and the detail. Returns the text and the alert number.
pub(crate) fn describe_handshake_error(e: &quinn::ConnectionError) -> (String, Option<u8>) {
    use quinn::ConnectionError as E;
    let alert = |code: u64| {
        (0x100..=0x1ff)
            .contains(&code)
            .then(|| (code - 0x100) as u8)
    };
    let name = |a: u8| format!("{:?}", rustls::AlertDescription::from(a));
    match e {
        E::ConnectionClosed(c) => {
            let code = u64::from(c.error_code);
            let detail = String::from_utf8_lossy(&c.reason);
            match alert(code) {
                Some(a) => (
                    format!(
                        "the peer aborted the handshake with TLS alert {} ({a}){}",
                        name(a),
                        if detail.is_empty() {
                            String::new()
                        } else {
                            format!(": {detail}")
                        }
                    ),
                    Some(a),
                ),
                None => (
                    format!("the peer closed the connection during the handshake: {c}"),
                    None,
                ),
            }
        }
        E::TransportError(t) => match alert(u64::from(t.code)) {
            Some(a) => (
                format!("TLS alert {} ({a}) sent to the peer: {}", name(a), t.reason),
                Some(a),
            ),
            None => (format!("transport error: {t}"), None),
        },
        E::TimedOut => ("the handshake timed out".into(), None),
        other => (other.to_string(), None),
    }
}
