//! libwtdatagram: WebTransport datagrams over HTTP/3 and QUIC, the Rust API.
//!
//! Layers, bottom up: [`wire`] (the sans-IO protocol crate `wtdatagram-proto`),
//! [`transport`] (quinn endpoints, the connection driver, sessions, client, server) and
//! [`datagram`] (the datagram features: stream, reliability, broadcaster, monitor,
//! structured transport) and [`cluster`] (broadcasters on several nodes joined through
//! NATS). The C ABI is a crate of its own, `wtdatagram-ffi`, built on this one.

pub mod cluster;
pub mod datagram;
pub mod transport;
/// The sans-IO protocol layer (the `wtdatagram-proto` crate).
pub use wtdatagram_proto as wire;

pub use transport::{
    Client, ClientConfig, CloseReason, Connection, DatagramHandler, Dialect, Error, RequestInfo,
    Server, ServerConfig, ServerTls, Session, SessionRequest, SessionStats, TransportOptions,
    Verify,
};
