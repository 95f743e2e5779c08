//! libwtdatagram: WebTransport datagrams over HTTP/3 and QUIC, for Rust and (through
//! [`ffi`]) for C, C++ and Go.
//!
//! Layers, bottom up: [`wire`] (sans-IO codec), [`transport`] (quinn endpoints,
//! connections, sessions), and `ffi` (the C ABI).

pub mod cluster;
pub mod datagram;
pub mod ffi;
pub mod transport;
pub mod wire;

pub use transport::{
    Client, ClientConfig, CloseReason, Connection, DatagramHandler, Dialect, Error, RequestInfo,
    Server, ServerConfig, ServerTls, Session, SessionRequest, SessionStats, TransportOptions,
    Verify,
};
