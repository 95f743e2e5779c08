//! The datagram feature layer on top of sessions (pywebtransport's datagram package):
//! the duplex stream with priority/TTL queues, message formats, and utilities.

pub mod message;
pub mod queue;
pub mod stream;
pub mod throughput;

pub use message::{create_heartbeat_datagram, is_heartbeat};
pub use queue::Overflow;
pub use stream::{
    DatagramMessage, DatagramStream, QueueStats, StreamConfig, StreamStats, Thresholds,
};
pub use throughput::{datagram_throughput_test, ThroughputResult};
