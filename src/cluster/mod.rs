//! Fan-out beyond one machine: broadcasters on several nodes joined through a NATS bus.
//!
//! A [`Cluster`] is one connection to NATS (one or more server URLs; credentials and TLS
//! as `async-nats` offers them) that reconnects by itself. [`Cluster::join`] joins a
//! local [`DatagramBroadcaster`] to a named channel and gives a [`ClusterBroadcaster`]:
//! its [`broadcast`](ClusterBroadcaster::broadcast) delivers to the local members at once
//! (through the broadcaster, never waiting for a member) and publishes the datagram once
//! on the channel's NATS subject; every other broadcaster joined to that channel, on any
//! node, delivers it to its own members. A broadcaster recognises its own messages on the
//! bus (by a random origin id in every message) and never delivers them a second time.
//!
//! Guarantees are those of NATS core, which fit datagrams: at most once (a message
//! published while a node is disconnected is lost for that node, never replayed), in
//! publish order per publisher, no order between publishers. A bus that is down never
//! blocks a caller: local delivery goes on and the publish is counted as failed
//! ([`ChannelStats::bus_failures`]); when NATS is back the client reconnects and
//! resubscribes, and cross-node delivery resumes with no action by the application.
//!
//! Subjects: `<subject_prefix>.<channel>` (prefix `wtd.bcast` by default); the message
//! format is in [`wire`]. The README's "Scaling" section has the whole picture.

mod broadcaster;
mod connection;
pub mod wire;

pub use broadcaster::{ChannelStats, ClusterBroadcaster};
pub use connection::{Cluster, ClusterAuth, ClusterConfig, ClusterStats, ClusterTls};
