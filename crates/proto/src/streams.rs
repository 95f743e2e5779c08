//! Which streams a peer may open, and what becomes of them: the endpoint's role, the
//! unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2, WebTransport), each
//! critical stream at most once, and the refusal of WebTransport streams, which a
//! datagram-only endpoint never accepts.

use crate::codes::*;
use crate::error::WireError;
use crate::frame::stream_type;

/// Which side of the connection this endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// What to do with a unidirectional stream the peer opened, once its type is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UniStream {
    /// The peer's control stream: read it with [`crate::control::ControlStreamReader`].
    Control,
    /// The peer's QPACK encoder (`true`) or decoder (`false`) stream: check it with
    /// [`crate::qpack::check_encoder_stream`] / [`crate::qpack::DecoderStreamChecker`].
    Qpack { encoder: bool },
    /// A WebTransport unidirectional stream: read its session id, then refuse it with
    /// [`refuse_webtransport_stream`].
    WebTransport,
    /// Abort reading it with STOP_SENDING and this code (unknown or reserved types, RFC
    /// 9114 §6.2).
    Stop(u64),
    /// A connection error.
    Fail(WireError),
}

/// The critical streams a peer opened so far: each at most once (RFC 9114 §6.2.1, RFC
/// 9204 §4.2), a second one is H3_STREAM_CREATION_ERROR.
#[derive(Debug, Default)]
pub struct PeerStreams {
    control: bool,
    qpack_encoder: bool,
    qpack_decoder: bool,
}

impl PeerStreams {
    /// Classify a unidirectional stream of type `ty` opened by the peer of `role` (our
    /// role), recording the critical ones.
    pub fn open_uni(&mut self, ty: u64, role: Role) -> UniStream {
        let once = |seen: &mut bool, what: &str, then: UniStream| {
            if std::mem::replace(seen, true) {
                UniStream::Fail(WireError::new(
                    H3_STREAM_CREATION_ERROR,
                    format!("second {what} stream"),
                ))
            } else {
                then
            }
        };
        match ty {
            stream_type::CONTROL => once(&mut self.control, "control", UniStream::Control),
            stream_type::QPACK_ENCODER => once(
                &mut self.qpack_encoder,
                "QPACK encoder",
                UniStream::Qpack { encoder: true },
            ),
            stream_type::QPACK_DECODER => once(
                &mut self.qpack_decoder,
                "QPACK decoder",
                UniStream::Qpack { encoder: false },
            ),
            // We never send MAX_PUSH_ID, so no push id can be valid; a client may not
            // open push streams at all.
            stream_type::PUSH => UniStream::Fail(WireError::new(
                match role {
                    Role::Server => H3_STREAM_CREATION_ERROR,
                    Role::Client => H3_ID_ERROR,
                },
                "push stream without MAX_PUSH_ID",
            )),
            stream_type::WEBTRANSPORT => UniStream::WebTransport,
            _ => UniStream::Stop(H3_STREAM_CREATION_ERROR),
        }
    }
}

/// The error for the end of a critical stream (it must stay open for the connection's
/// life, RFC 9114 §6.2.1).
pub fn critical_stream_ended(what: &str, reset: bool) -> WireError {
    let how = if reset { "reset" } else { "closed" };
    WireError::new(H3_CLOSED_CRITICAL_STREAM, format!("{what} stream {how}"))
}

/// How to refuse a WebTransport stream the peer opened for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Close the session it names with this code and reason first (it broke a limit).
    pub close_session: Option<(u64, String)>,
    /// The code to stop reading (and, bidirectional, to reset) the stream with.
    pub stream_code: u64,
}

/// Refuse a WebTransport stream (`bidi` or unidirectional) opened for a session.
///
/// We announce stream limits of 0 (SETTINGS_WT_INITIAL_MAX_STREAMS_UNI/_BIDI) and never
/// raise them, so with flow control enabled (`flow_control`) any stream of an
/// established session (`session_open`) exceeds its limit: the session is closed with
/// WT_FLOW_CONTROL_ERROR (draft-ietf-webtrans-http3-15 §5.3) and the stream, now one of
/// a terminated session, refused with WT_SESSION_GONE (§6). Without flow control there
/// is no limit to break, and a stream of no (or no longer an) established session is
/// refused with WT_BUFFERED_STREAM_REJECTED.
pub fn refuse_webtransport_stream(flow_control: bool, session_open: bool, bidi: bool) -> Refusal {
    if flow_control && session_open {
        let kind = if bidi {
            "bidirectional"
        } else {
            "unidirectional"
        };
        return Refusal {
            close_session: Some((
                WT_FLOW_CONTROL_ERROR,
                format!("peer opened a {kind} stream beyond our limit of 0"),
            )),
            stream_code: WT_SESSION_GONE,
        };
    }
    Refusal {
        close_session: None,
        stream_code: WT_BUFFERED_STREAM_REJECTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_streams_once_each() {
        let mut p = PeerStreams::default();
        assert_eq!(
            p.open_uni(stream_type::CONTROL, Role::Server),
            UniStream::Control
        );
        assert_eq!(
            p.open_uni(stream_type::QPACK_ENCODER, Role::Server),
            UniStream::Qpack { encoder: true }
        );
        assert_eq!(
            p.open_uni(stream_type::QPACK_DECODER, Role::Server),
            UniStream::Qpack { encoder: false }
        );
        for ty in [
            stream_type::CONTROL,
            stream_type::QPACK_ENCODER,
            stream_type::QPACK_DECODER,
        ] {
            match p.open_uni(ty, Role::Server) {
                UniStream::Fail(e) => assert_eq!(e.code, H3_STREAM_CREATION_ERROR),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            p.open_uni(stream_type::WEBTRANSPORT, Role::Server),
            UniStream::WebTransport
        );
        assert_eq!(
            p.open_uni(0x21, Role::Server),
            UniStream::Stop(H3_STREAM_CREATION_ERROR)
        );
    }

    #[test]
    fn push_streams_depend_on_the_role() {
        let mut p = PeerStreams::default();
        for (role, code) in [
            (Role::Server, H3_STREAM_CREATION_ERROR),
            (Role::Client, H3_ID_ERROR),
        ] {
            match p.open_uni(stream_type::PUSH, role) {
                UniStream::Fail(e) => assert_eq!(e.code, code),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn webtransport_streams_are_refused() {
        let r = refuse_webtransport_stream(true, true, true);
        assert_eq!(r.stream_code, WT_SESSION_GONE);
        assert_eq!(r.close_session.unwrap().0, WT_FLOW_CONTROL_ERROR);
        for (fc, open) in [(true, false), (false, true), (false, false)] {
            let r = refuse_webtransport_stream(fc, open, false);
            assert_eq!(r.stream_code, WT_BUFFERED_STREAM_REJECTED);
            assert!(r.close_session.is_none());
        }
    }
}
