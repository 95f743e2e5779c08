//! The error type of the Rust API.

use wtdatagram_proto::close::CloseReason;

/// Errors of the transport API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid state: {0}")]
    InvalidState(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("TLS error: {0}")]
    Tls(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("session rejected by the server with HTTP status {0}")]
    Rejected(u16),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("not supported: {0}")]
    NotSupported(String),
    #[error("datagram of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("session closed: {0}")]
    Closed(CloseReason),
    #[error("timed out")]
    Timeout,
    #[error("send queue full")]
    QueueFull,
    #[error("invalid data: {0}")]
    InvalidData(String),
}
