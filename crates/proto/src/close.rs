//! Why a session ended.

use std::fmt;

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// This side closed it (`Session::close`, or the last handle was dropped).
    Local { code: u32, reason: String },
    /// The peer closed it: CLOSE_WEBTRANSPORT_SESSION, or a clean FIN (code 0).
    Remote { code: u32, reason: String },
    /// The peer reset the CONNECT stream with this HTTP/3 error code.
    Reset { code: u64 },
    /// The QUIC connection ended: closed by either side (with its code), or reset.
    ConnectionLost { code: u64, reason: String },
    /// No packet from the peer within the idle timeout.
    TimedOut,
    /// The peer broke the protocol; the session (or connection) was closed with `code`.
    Protocol { code: u64, reason: String },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local { code, reason } => {
                write!(f, "closed locally (code {code}: {reason:?})")
            }
            CloseReason::Remote { code, reason } => {
                write!(f, "closed by peer (code {code}: {reason:?})")
            }
            CloseReason::Reset { code } => {
                write!(f, "CONNECT stream reset by peer (code {code:#x})")
            }
            CloseReason::ConnectionLost { code, reason } => {
                write!(f, "connection lost (code {code:#x}: {reason})")
            }
            CloseReason::TimedOut => write!(f, "connection timed out"),
            CloseReason::Protocol { code, reason } => {
                write!(
                    f,
                    "protocol error {} ({code:#x}): {reason}",
                    crate::codes::name(*code)
                )
            }
        }
    }
}
