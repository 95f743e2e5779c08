//! WebTransport over HTTP/3 on quinn: endpoints, connections, sessions and datagrams.

mod client;
mod config;
mod connection;
mod endpoint;
mod http;
mod limits;
mod server;
pub(crate) mod session;
pub mod tls;

pub use client::Client;
pub use config::{ClientConfig, ServerConfig, ServerTls, TransportOptions, Verify};
pub use connection::Connection;
pub use endpoint::SocketBuffers;
pub use limits::ServerStats;
pub use server::{Server, SessionRequest};
pub use session::{
    finish_closing, finish_closing_on, release_outside_lock, CloseReason, DatagramHandler,
    RequestInfo, Session, SessionStats,
};

pub use crate::wire::settings::Dialect;

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
