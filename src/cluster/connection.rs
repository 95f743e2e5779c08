//! The cluster's connection to NATS: options, credentials, TLS, reconnection and its
//! counters (see the module docs of `crate::cluster`). Knows nothing of broadcasters:
//! `broadcaster` builds on it (and adds [`Cluster::join`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event, ServerAddr};
use tokio::sync::watch;

use crate::transport::Error;

/// How the cluster authenticates to NATS (what `async-nats` offers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClusterAuth {
    /// No credentials (default).
    #[default]
    None,
    /// `user` and `pass` of the server's authorization block.
    UserPassword { user: String, password: String },
    /// An authorization token.
    Token(String),
    /// An NKey seed (`SU...`).
    NKey(String),
    /// A `.creds` file (user JWT + NKey seed), as written by `nsc`.
    CredentialsFile(PathBuf),
}

/// TLS towards NATS. `tls://` URLs turn TLS on as well.
#[derive(Debug, Clone, Default)]
pub struct ClusterTls {
    /// Refuse to talk to a server without TLS.
    pub required: bool,
    /// A PEM file of CA certificates to trust (default: the system's roots).
    pub root_certificates: Option<PathBuf>,
    /// Client certificate chain and key (PEM files), for servers that verify clients.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    /// TLS before the server's INFO (the server's `handshake_first`); implies required.
    pub first: bool,
}

/// Options of [`Cluster::connect`].
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:port`, `tls://host:port`, `host:port`); at least
    /// one. The client picks among them (and among servers the cluster advertises) and
    /// moves to another when one fails.
    pub urls: Vec<String>,
    /// The connection's name, shown by the server's monitoring (default: none).
    pub name: Option<String>,
    /// Subjects are `<subject_prefix>.<channel>`. Default `wtd.bcast`. Tokens of
    /// `A-Z a-z 0-9 _ -` separated by single dots.
    pub subject_prefix: String,
    pub auth: ClusterAuth,
    pub tls: ClusterTls,
    /// Bound on one connection attempt to one server. Default 2 s.
    pub connect_timeout: Duration,
    /// Longest pause between reconnection attempts (they back off exponentially from
    /// 0 to this). Default 2 s. Attempts never stop.
    pub reconnect_delay_max: Duration,
    /// `true` (default): [`Cluster::connect`] fails unless a server answers now.
    /// `false`: it returns at once and the connection is made in the background
    /// (broadcasts are local-only, counted as bus failures, until it is).
    pub wait_for_connection: bool,
    /// How often the client pings the server; two unanswered pings end the connection
    /// (a dead peer is noticed after about three intervals). Default 10 s.
    pub ping_interval: Duration,
    /// Messages waiting to be written to the server. When full, a publish is counted
    /// as a bus failure rather than waited for. Default 2048.
    pub publish_capacity: usize,
    /// Messages received per channel waiting for their broadcaster (beyond it NATS
    /// reports a slow consumer and drops). Default 65,536.
    pub receive_capacity: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            urls: Vec::new(),
            name: None,
            subject_prefix: "wtd.bcast".into(),
            auth: ClusterAuth::None,
            tls: ClusterTls::default(),
            connect_timeout: Duration::from_secs(2),
            reconnect_delay_max: Duration::from_secs(2),
            wait_for_connection: true,
            ping_interval: Duration::from_secs(10),
            publish_capacity: 2048,
            receive_capacity: 65_536,
        }
    }
}

/// Counters of a cluster's connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Whether the connection is up now.
    pub connected: bool,
    /// Successful connections, the first included.
    pub connects: u64,
    /// Connections after the first (each one followed a disconnection).
    pub reconnects: u64,
    /// Times the connection was lost.
    pub disconnects: u64,
    /// The server's largest message payload (its `max_payload`, 1 MiB by default);
    /// 0 before the first connection.
    pub max_payload: u64,
}

/// Connection state as broadcasters watch it: (connections so far, connected now).
pub(crate) type LinkState = (u64, bool);

struct Counters {
    connects: AtomicU64,
    disconnects: AtomicU64,
    link: watch::Sender<LinkState>,
}

pub(crate) struct ClusterInner {
    pub(crate) client: async_nats::Client,
    counters: Arc<Counters>,
    prefix: String,
}

/// A connection to a NATS bus that reconnects by itself. Cheap to clone (clones share
/// the connection); it closes when the last clone and the last broadcaster joined
/// through it are gone. Must be created inside a tokio runtime (its tasks run there).
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<ClusterInner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("prefix", &self.inner.prefix)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Whether `s` is dot-separated tokens of `A-Z a-z 0-9 _ -` (a NATS subject without
/// wildcards or whitespace), at most 256 bytes.
fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

fn connect_error(e: async_nats::ConnectError) -> Error {
    let msg = format!("NATS: {e}");
    match e.kind() {
        ConnectErrorKind::ServerParse | ConnectErrorKind::Dns => Error::InvalidArgument(msg),
        ConnectErrorKind::Tls => Error::Tls(msg),
        _ => Error::Connect(msg),
    }
}

impl Cluster {
    /// Connect to NATS (see [`ClusterConfig::wait_for_connection`]).
    /// Errors: InvalidArgument (no or bad URL, bad prefix, bad option), Io (unreadable
    /// credentials file), Tls, Connect (no server answered, authorization refused).
    pub async fn connect(config: ClusterConfig) -> Result<Cluster, Error> {
        if config.urls.is_empty() {
            return Err(Error::InvalidArgument("no NATS server URL given".into()));
        }
        let mut addrs = Vec::with_capacity(config.urls.len());
        for u in &config.urls {
            let a: ServerAddr = u
                .trim()
                .parse()
                .map_err(|e| Error::InvalidArgument(format!("NATS server URL {u:?}: {e}")))?;
            addrs.push(a);
        }
        if !valid_subject(&config.subject_prefix) {
            return Err(Error::InvalidArgument(format!(
                "subject prefix {:?}: expected dot-separated tokens of A-Z a-z 0-9 _ -",
                config.subject_prefix
            )));
        }
        if config.publish_capacity == 0 || config.receive_capacity == 0 {
            return Err(Error::InvalidArgument(
                "publish and receive capacities must be at least 1".into(),
            ));
        }
        if config.ping_interval.is_zero() || config.connect_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "ping interval and connect timeout must be more than 0".into(),
            ));
        }
        let mut opts = match &config.auth {
            ClusterAuth::None => ConnectOptions::new(),
            ClusterAuth::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            ClusterAuth::Token(t) => ConnectOptions::with_token(t.clone()),
            ClusterAuth::NKey(seed) => ConnectOptions::with_nkey(seed.clone()),
            ClusterAuth::CredentialsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| Error::Io(format!("NATS credentials file {path:?}: {e}")))?,
        };
        if config.tls.required {
            opts = opts.require_tls(true);
        }
        if config.tls.first {
            opts = opts.tls_first();
        }
        if let Some(ca) = &config.tls.root_certificates {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &config.tls.client_certificate {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        if let Some(name) = &config.name {
            opts = opts.name(name);
        }
        let counters = Arc::new(Counters {
            connects: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            link: watch::channel((0, false)).0,
        });
        let c = counters.clone();
        let max_delay = config.reconnect_delay_max;
        opts = opts
            .connection_timeout(config.connect_timeout)
            .ping_interval(config.ping_interval)
            .client_capacity(config.publish_capacity)
            .subscription_capacity(config.receive_capacity)
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempts| {
                // 0 for the first attempt, then 10 ms doubling up to the maximum.
                if attempts <= 1 {
                    Duration::ZERO
                } else {
                    let exp = (attempts - 2).min(16) as u32;
                    Duration::from_millis(10u64 << exp).min(max_delay)
                }
            })
            .event_callback(move |ev| {
                let c = c.clone();
                async move {
                    match ev {
                        Event::Connected => {
                            let n = c.connects.fetch_add(1, Relaxed) + 1;
                            c.link.send_replace((n, true));
                        }
                        Event::Disconnected => {
                            c.disconnects.fetch_add(1, Relaxed);
                            c.link.send_modify(|s| s.1 = false);
                        }
                        other => tracing::debug!("NATS event: {other}"),
                    }
                }
            });
        if !config.wait_for_connection {
            opts = opts.retry_on_initial_connect();
        }
        let client = opts.connect(addrs).await.map_err(connect_error)?;
        Ok(Cluster {
            inner: Arc::new(ClusterInner {
                client,
                counters,
                prefix: config.subject_prefix,
            }),
        })
    }

    /// Whether the connection to NATS is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The connection's counters.
    pub fn stats(&self) -> ClusterStats {
        let connects = self.inner.counters.connects.load(Relaxed);
        ClusterStats {
            connected: self.is_connected(),
            connects,
            reconnects: connects.saturating_sub(1),
            disconnects: self.inner.counters.disconnects.load(Relaxed),
            max_payload: if connects > 0 {
                self.inner.client.server_info().max_payload as u64
            } else {
                0
            },
        }
    }

    /// The subject of `channel`: `<subject_prefix>.<channel>`. InvalidArgument unless
    /// the channel is dot-separated tokens of `A-Z a-z 0-9 _ -`.
    pub fn subject(&self, channel: &str) -> Result<String, Error> {
        if !valid_subject(channel) {
            return Err(Error::InvalidArgument(format!(
                "channel {channel:?}: expected dot-separated tokens of A-Z a-z 0-9 _ - \
                 (at most 256 bytes)"
            )));
        }
        Ok(format!("{}.{channel}", self.inner.prefix))
    }

    pub(crate) fn link(&self) -> watch::Receiver<LinkState> {
        self.inner.counters.link.subscribe()
    }

    pub(crate) fn reconnects(&self) -> u64 {
        self.inner.counters.connects.load(Relaxed).saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens() {
        for ok in ["a", "room-1", "game.room_7", "A.b.C"] {
            assert!(valid_subject(ok), "{ok}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "é", "a\tb",
        ] {
            assert!(!valid_subject(bad), "{bad:?}");
        }
        assert!(valid_subject(&"a".repeat(256)));
        assert!(!valid_subject(&"a".repeat(257)));
    }
}
