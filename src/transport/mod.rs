//! WebTransport over HTTP/3 on quinn: endpoints, the connection driver, sessions,
//! client and server. A facade: every type lives in the module of its concept.
//!
//! Imports run one way: `util`, `error`, `close`, `config` ← `endpoint`, `tls`,
//! `limits`, `inbox`, `stats`, `handler` ← `driver` ← `closing` ← `session` ←
//! `connect_stream`, `http` ← `client`, `server`. The driver knows neither sessions
//! (it sees [`driver::SessionSink`]s) nor the server (it hands request streams to a
//! [`driver::RequestHandler`]).

mod client;
mod close;
mod closing;
mod config;
mod connect_stream;
mod driver;
mod endpoint;
mod error;
mod handler;
mod http;
mod inbox;
mod limits;
mod server;
mod session;
mod stats;
pub mod tls;
mod util;

pub use client::{Client, Connection};
pub use close::CloseReason;
pub use closing::{finish_closing, finish_closing_on};
pub use config::{ClientConfig, ServerConfig, ServerTls, TransportOptions, Verify};
pub use endpoint::SocketBuffers;
pub use error::Error;
pub use handler::{release_outside_lock, DatagramHandler};
pub use limits::ServerStats;
pub use server::{Server, SessionRequest};
pub use session::{RequestInfo, Session};
pub use stats::SessionStats;
pub use util::poll_once;
pub use wtdatagram_proto::settings::Dialect;
