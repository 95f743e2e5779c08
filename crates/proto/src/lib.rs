//! The sans-IO protocol layer of libwtdatagram: WebTransport over HTTP/3 as bytes in,
//! values and decisions out. Nothing here performs I/O, spawns a task or reads a clock
//! (deadlines are the driver's); every decoder takes bytes and returns values or a
//! [`WireError`] carrying the HTTP/3 error code to close the stream or connection with.
//!
//! - Codec: [`varint`], [`frame`] (HTTP/3 frames and the streaming TLV reader),
//!   [`settings`], [`qpack`] (static table) with [`huffman`], [`capsule`], [`datagram`]
//!   (the RFC 9297 prefix), [`headers`] (extended CONNECT semantics).
//! - Session rules as state machines: [`control`] (the control stream: SETTINGS first and
//!   once, frames allowed there), [`streams`] (unidirectional stream types, critical
//!   streams, refusing WebTransport streams), [`request`] (reading a request's HEADERS
//!   within limits, admitting a CONNECT: dialect choice and support),
//!   [`slots`] (sessions per connection, draft-15 exclusivity), [`session`] (a
//!   session's CONNECT stream: capsules and the close handshake), [`close`] (why a session
//!   ended).

pub mod capsule;
pub mod close;
pub mod codes;
pub mod control;
pub mod datagram;
pub mod error;
pub mod frame;
pub mod headers;
pub mod huffman;
pub mod qpack;
pub mod reader;
pub mod request;
pub mod session;
pub mod settings;
pub mod slots;
pub mod streams;
pub mod varint;

pub use error::WireError;
pub use reader::Reader;
