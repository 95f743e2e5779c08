//! Cluster handles (`wtd_cluster_config`, `wtd_cluster`, `wtd_cluster_broadcaster`):
//! broadcasters on several nodes joined through a NATS bus. See `wtdatagram::cluster`
//! and the README's "Scaling".

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::error::*;
use super::handle::{self, Boxed, Castable};
use super::runtime::RuntimeInner;
use super::types::{
    wtd_broadcaster, wtd_cluster, wtd_cluster_broadcaster, wtd_cluster_config, wtd_runtime,
};
use super::versioned::{self, versioned};
use wtdatagram::cluster::{
    ChannelStats, Cluster, ClusterAuth, ClusterBroadcaster, ClusterConfig, ClusterStats,
};

/// What `wtd_cluster_config` holds.
pub(crate) struct ClusterConfigHandle {
    c: ClusterConfig,
}

// SAFETY: wtd_cluster_config pointers are made only by into_c_box from a
// ClusterConfigHandle.
unsafe impl Castable for wtd_cluster_config {
    type Rust = ClusterConfigHandle;
    type Own = Boxed;
}

/// What `wtd_cluster` holds.
pub(crate) struct ClusterHandle {
    cluster: Cluster,
    runtime: Arc<RuntimeInner>,
}

// SAFETY: wtd_cluster pointers are made only by into_c_box from a ClusterHandle.
unsafe impl Castable for wtd_cluster {
    type Rust = ClusterHandle;
    type Own = Boxed;

    /// A handle whose runtime was freed can do no I/O.
    fn check_live(h: &ClusterHandle) -> FfiResult<()> {
        h.runtime.check_open("cluster")
    }
}

/// What `wtd_cluster_broadcaster` holds.
pub(crate) struct ClusterBroadcasterHandle {
    b: ClusterBroadcaster,
    runtime: Arc<RuntimeInner>,
}

// SAFETY: wtd_cluster_broadcaster pointers are made only by into_c_box from a
// ClusterBroadcasterHandle.
unsafe impl Castable for wtd_cluster_broadcaster {
    type Rust = ClusterBroadcasterHandle;
    type Own = Boxed;

    /// A handle whose runtime was freed can do no I/O.
    fn check_live(h: &ClusterBroadcasterHandle) -> FfiResult<()> {
        h.runtime.check_open("broadcaster")
    }
}

/// Counters of a cluster's connection (wtd_cluster_get_stats). Versioned by its size,
/// as wtd_server_stats: set `size` to sizeof(wtd_cluster_stats) before the call; the
/// library fills only the fields that fit, so the struct can grow at the end.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_cluster_stats {
    /// Set by the caller: sizeof(wtd_cluster_stats).
    pub size: usize,
    /// Successful connections, the first included.
    pub connects: u64,
    /// Connections after the first (each followed a disconnection).
    pub reconnects: u64,
    /// Times the connection was lost.
    pub disconnects: u64,
    /// The server's max_payload (1 MiB by default); 0 before the first connection.
    pub max_payload: u64,
    /// Whether the connection is up now.
    pub connected: bool,
}
versioned!(
    wtd_cluster_stats,
    first_version = std::mem::size_of::<wtd_cluster_stats>()
);

/// Counters of a joined channel (wtd_cluster_broadcaster_get_stats). Versioned by its
/// size, as wtd_server_stats: set `size` to sizeof(wtd_cluster_broadcaster_stats) first.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct wtd_cluster_broadcaster_stats {
    /// Set by the caller: sizeof(wtd_cluster_broadcaster_stats).
    pub size: usize,
    /// Broadcast calls carried out.
    pub broadcasts: u64,
    /// Broadcasts handed to the NATS client for sending.
    pub published: u64,
    /// Broadcasts not published (bus down or not yet up, send queue full, over the
    /// server's max_payload); each was still delivered locally.
    pub bus_failures: u64,
    /// Other broadcasters' messages received from the bus.
    pub received: u64,
    /// Messages on the channel's subject not in this library's format (dropped).
    pub received_invalid: u64,
    /// Other broadcasters' messages known to be missed (gaps in their sequence).
    pub received_gaps: u64,
    /// Deliveries to local members (accepted datagrams), local and from the bus.
    pub delivered_local: u64,
    /// The part of delivered_local that came from the bus.
    pub delivered_from_bus: u64,
    /// Reconnections of the cluster's connection since this broadcaster joined.
    pub reconnects: u64,
    /// Bus round trips measured (own messages that came back).
    pub rtt_samples: u64,
    /// Bus round trip in microseconds: last, smoothed (1/8 weight), minimum, maximum.
    pub rtt_last_us: u64,
    pub rtt_avg_us: u64,
    pub rtt_min_us: u64,
    pub rtt_max_us: u64,
    /// One-way bus latency of other broadcasters' messages (their publish to this
    /// node's receipt, by the two nodes' wall clocks: exact on one machine, as good as
    /// NTP across machines): samples, then last, smoothed, minimum, maximum in
    /// microseconds.
    pub latency_samples: u64,
    pub latency_last_us: u64,
    pub latency_avg_us: u64,
    pub latency_min_us: u64,
    pub latency_max_us: u64,
    /// Whether the connection is up now.
    pub bus_connected: bool,
    /// Whether an own message came back since the connection was last made (the
    /// subscription is live on the server).
    pub bus_ready: bool,
}
versioned!(
    wtd_cluster_broadcaster_stats,
    first_version = std::mem::size_of::<wtd_cluster_broadcaster_stats>()
);

/// The options behind a builder handle, for the setters.
///
/// # Safety
/// `config` must be NULL or a live `wtd_cluster_config` used by this thread only (the
/// header's contract: builders are not thread-safe).
unsafe fn config_arg<'a>(config: *mut wtd_cluster_config) -> FfiResult<&'a mut ClusterConfig> {
    // SAFETY: this function's contract is `borrow_mut`'s.
    Ok(&mut unsafe { handle::borrow_mut(config, "config") }?.c)
}

fn ms_in(name: &str, ms: u32) -> FfiResult<Duration> {
    let ms = in_range(ms, 1..=600_000, name, " ms")?;
    Ok(Duration::from_millis(u64::from(ms)))
}

/// Create cluster options with defaults: no URL yet (add at least one), subject prefix
/// "wtd.bcast", no credentials, TLS only for tls:// URLs, connect timeout 2000 ms,
/// reconnect delay backing off up to 2000 ms (attempts never stop), wait for the first
/// connection, ping every 10000 ms, publish queue 2048, receive queue 65536 per channel.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_new(
    out_config: *mut *mut wtd_cluster_config,
) -> wtd_result {
    guard(|| {
        // SAFETY: `out_config` is NULL or writable (the header's contract).
        let o = unsafe { out(out_config, "out_config") }?;
        *o = handle::into_c_box(ClusterConfigHandle {
            c: ClusterConfig::default(),
        });
        Ok(())
    })
}

/// Free cluster options; NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_free(config: *mut wtd_cluster_config) {
    guard_value((), || {
        // SAFETY: NULL or a live handle the caller gives up (the header's contract).
        drop(unsafe { handle::take_box(config) });
    });
}

/// Add a NATS server URL ("nats://host:port", "tls://host:port" or "host:port"). Call
/// once per server; the client moves to another when one fails (servers the NATS
/// cluster advertises are used too). The URL is checked by wtd_cluster_new.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_add_url(
    config: *mut wtd_cluster_config,
    url: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `url` is NULL or a NUL-terminated string (the header's contract).
        let u = unsafe { cstr(url, "url") }?;
        if u.trim().is_empty() {
            return Err(FfiError::arg("url is empty"));
        }
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?
            .urls
            .push(u.trim().to_string());
        Ok(())
    })
}

/// The connection's name, shown by the server's monitoring.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_name(
    config: *mut wtd_cluster_config,
    name: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `name` is NULL or a NUL-terminated string (the header's contract).
        let n = unsafe { cstr(name, "name") }?.to_string();
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.name = Some(n);
        Ok(())
    })
}

/// Subjects are "<prefix>.<channel>"; prefix: dot-separated tokens of A-Z a-z 0-9 _ -
/// (checked by wtd_cluster_new). Default "wtd.bcast". Nodes of one cluster must agree.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_subject_prefix(
    config: *mut wtd_cluster_config,
    prefix: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `prefix` is NULL or a NUL-terminated string (the header's contract).
        let p = unsafe { cstr(prefix, "prefix") }?.to_string();
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.subject_prefix = p;
        Ok(())
    })
}

/// Authenticate with a user name and password (replaces other credentials).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_user_password(
    config: *mut wtd_cluster_config,
    user: *const c_char,
    password: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `user` is NULL or a NUL-terminated string (the header's contract).
        let user = unsafe { cstr(user, "user") }?.to_string();
        // SAFETY: `password` is NULL or a NUL-terminated string (the header's contract).
        let password = unsafe { cstr(password, "password") }?.to_string();
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.auth = ClusterAuth::UserPassword { user, password };
        Ok(())
    })
}

/// Authenticate with a token (replaces other credentials).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_token(
    config: *mut wtd_cluster_config,
    token: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `token` is NULL or a NUL-terminated string (the header's contract).
        let t = unsafe { cstr(token, "token") }?.to_string();
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.auth = ClusterAuth::Token(t);
        Ok(())
    })
}

/// Authenticate with an NKey seed ("SU...") (replaces other credentials).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_nkey_seed(
    config: *mut wtd_cluster_config,
    seed: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `seed` is NULL or a NUL-terminated string (the header's contract).
        let s = unsafe { cstr(seed, "seed") }?.to_string();
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.auth = ClusterAuth::NKey(s);
        Ok(())
    })
}

/// Authenticate with a .creds file (user JWT and NKey seed), read by wtd_cluster_new
/// (replaces other credentials).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_credentials_file(
    config: *mut wtd_cluster_config,
    path: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `path` is NULL or a NUL-terminated string (the header's contract).
        let p = PathBuf::from(unsafe { cstr(path, "path") }?);
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.auth = ClusterAuth::CredentialsFile(p);
        Ok(())
    })
}

/// Refuse servers that do not offer TLS (tls:// URLs require it anyway). Default false.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_tls_required(
    config: *mut wtd_cluster_config,
    required: bool,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.tls.required = required;
        Ok(())
    })
}

/// Start TLS before the server's INFO (servers with handshake_first); implies TLS
/// required. Default false.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_tls_first(
    config: *mut wtd_cluster_config,
    first: bool,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.tls.first = first;
        Ok(())
    })
}

/// Trust the CA certificates of this PEM file (default: the system's roots).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_tls_root_certificates(
    config: *mut wtd_cluster_config,
    pem_path: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `pem_path` is NULL or a NUL-terminated string (the header's contract).
        let p = PathBuf::from(unsafe { cstr(pem_path, "pem_path") }?);
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.tls.root_certificates = Some(p);
        Ok(())
    })
}

/// Present this client certificate chain and key (PEM files) to servers that verify
/// clients.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_tls_client_certificate(
    config: *mut wtd_cluster_config,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> wtd_result {
    guard(|| {
        // SAFETY: `cert_path` is NULL or a NUL-terminated string (the header's contract).
        let cert = PathBuf::from(unsafe { cstr(cert_path, "cert_path") }?);
        // SAFETY: `key_path` is NULL or a NUL-terminated string (the header's contract).
        let key = PathBuf::from(unsafe { cstr(key_path, "key_path") }?);
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.tls.client_certificate = Some((cert, key));
        Ok(())
    })
}

/// Bound on one connection attempt to one server (1..=600000). Default 2000.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_connect_timeout_ms(
    config: *mut wtd_cluster_config,
    ms: u32,
) -> wtd_result {
    guard(|| {
        let d = ms_in("connect timeout", ms)?;
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.connect_timeout = d;
        Ok(())
    })
}

/// Longest pause between reconnection attempts (1..=600000); they back off from 0 to
/// this and never stop. Default 2000.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_reconnect_delay_max_ms(
    config: *mut wtd_cluster_config,
    ms: u32,
) -> wtd_result {
    guard(|| {
        let d = ms_in("reconnect delay", ms)?;
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.reconnect_delay_max = d;
        Ok(())
    })
}

/// How often the client pings the server (1..=600000); two unanswered pings end the
/// connection. Default 10000.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_ping_interval_ms(
    config: *mut wtd_cluster_config,
    ms: u32,
) -> wtd_result {
    guard(|| {
        let d = ms_in("ping interval", ms)?;
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.ping_interval = d;
        Ok(())
    })
}

/// true (default): wtd_cluster_new fails unless a server answers now. false: it returns
/// at once and connects in the background (broadcasts stay local, counted as bus
/// failures, until then).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_wait_for_connection(
    config: *mut wtd_cluster_config,
    wait: bool,
) -> wtd_result {
    guard(|| {
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.wait_for_connection = wait;
        Ok(())
    })
}

/// Messages waiting to be written to the server (1..=1048576); when full, a publish is
/// counted as a bus failure instead of waited for. Default 2048.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_publish_capacity(
    config: *mut wtd_cluster_config,
    capacity: usize,
) -> wtd_result {
    guard(|| {
        let capacity = in_range(capacity, 1..=1 << 20, "publish capacity", "")?;
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.publish_capacity = capacity;
        Ok(())
    })
}

/// Received messages waiting per channel (1..=1048576); beyond it NATS drops (slow
/// consumer). Default 65536.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_config_set_receive_capacity(
    config: *mut wtd_cluster_config,
    capacity: usize,
) -> wtd_result {
    guard(|| {
        let capacity = in_range(capacity, 1..=1 << 20, "receive capacity", "")?;
        // SAFETY: `config` is NULL or a live builder used by this thread only (the
        // header's contract).
        unsafe { config_arg(config) }?.receive_capacity = capacity;
        Ok(())
    })
}

/// Connect to NATS on `runtime` with `config` (copied; free it when you like). With
/// wait-for-connection on (the default) this blocks until a server answered, at most
/// the connect timeout per URL. Errors: WTD_ERR_INVALID_ARGUMENT (no URL, a bad URL or
/// prefix), WTD_ERR_IO (unreadable credentials file), WTD_ERR_TLS, WTD_ERR_CONNECT (no
/// server answered, authorization refused), WTD_ERR_CLOSED (runtime freed),
/// WTD_ERR_WOULD_DEADLOCK (called on a runtime worker thread).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_new(
    runtime: *const wtd_runtime,
    config: *const wtd_cluster_config,
    out_cluster: *mut *mut wtd_cluster,
) -> wtd_result {
    guard(|| {
        // SAFETY: `runtime` is NULL or a live handle (the header's contract).
        let rt = unsafe { handle::borrow(runtime, "runtime") }?;
        // SAFETY: `config` is NULL or a live handle (the header's contract).
        let cfg = unsafe { handle::borrow(config, "config") }?.c.clone();
        // SAFETY: `out_cluster` is NULL or writable (the header's contract).
        let o = unsafe { out(out_cluster, "out_cluster") }?;
        let cluster = rt.inner.block_on(-1, Cluster::connect(cfg))??;
        *o = handle::into_c_box(ClusterHandle {
            cluster,
            runtime: rt.inner.clone(),
        });
        Ok(())
    })
}

/// Release the cluster handle; NULL is a no-op. The connection closes once its joined
/// broadcasters are freed too.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_free(cluster: *mut wtd_cluster) {
    guard_value((), || {
        // SAFETY: NULL or a live handle the caller gives up (the header's contract).
        drop(unsafe { handle::take_box(cluster) });
    });
}

/// Whether the connection to NATS is up now (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_is_connected(cluster: *const wtd_cluster) -> bool {
    guard_value(false, || {
        // SAFETY: `cluster` is NULL or a live handle (the header's contract).
        unsafe { handle::get(cluster) }
            .is_some_and(|c| !c.runtime.is_closed() && c.cluster.is_connected())
    })
}

/// Read the connection's counters into `out_stats`, whose `size` the caller set to
/// sizeof(wtd_cluster_stats). WTD_ERR_INVALID_ARGUMENT for a NULL `out_stats` or a
/// smaller `size`.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_get_stats(
    cluster: *const wtd_cluster,
    out_stats: *mut wtd_cluster_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `cluster` is NULL or a live handle (the header's contract).
        let c = unsafe { handle::borrow(cluster, "cluster") }?;
        let s: ClusterStats = c.cluster.stats();
        let v = wtd_cluster_stats {
            size: 0,
            connects: s.connects,
            reconnects: s.reconnects,
            disconnects: s.disconnects,
            max_payload: s.max_payload,
            connected: s.connected && !c.runtime.is_closed(),
        };
        // SAFETY: `out_stats` is NULL or a caller-owned struct of this version, writable
        // for the size it holds (the header's contract).
        unsafe { versioned::write(out_stats, v) }
    })
}

/// Join `broadcaster` to `channel` (dot-separated tokens of A-Z a-z 0-9 _ -, at most
/// 256 bytes): its subject is "<prefix>.<channel>". The broadcaster keeps its members;
/// add and remove them with the wtd_broadcaster_ calls as before. Works while the bus
/// is down (the subscription is made when it comes up). Free the result with
/// wtd_cluster_broadcaster_free to leave. Errors: WTD_ERR_INVALID_ARGUMENT (bad
/// channel), WTD_ERR_INVALID_STATE (broadcaster shut down), WTD_ERR_CLOSED (runtime
/// freed), WTD_ERR_TIMEOUT (the NATS client did not take the subscription in 5 s).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_join(
    cluster: *const wtd_cluster,
    channel: *const c_char,
    broadcaster: *const wtd_broadcaster,
    out_broadcaster: *mut *mut wtd_cluster_broadcaster,
) -> wtd_result {
    guard(|| {
        // SAFETY: `cluster` is NULL or a live handle (the header's contract).
        let c = unsafe { handle::live(cluster, "cluster") }?;
        // SAFETY: `channel` is NULL or a NUL-terminated string (the header's contract).
        let ch = unsafe { cstr(channel, "channel") }?;
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let local = unsafe { handle::borrow(broadcaster, "broadcaster") }?
            .b
            .clone();
        // SAFETY: `out_broadcaster` is NULL or writable (the header's contract).
        let o = unsafe { out(out_broadcaster, "out_broadcaster") }?;
        let joined = c.runtime.block_on(5_000, c.cluster.join(ch, local))??;
        *o = handle::into_c_box(ClusterBroadcasterHandle {
            b: joined,
            runtime: c.runtime.clone(),
        });
        Ok(())
    })
}

/// Leave the channel and release the handle; NULL is a no-op. The local broadcaster and
/// its members stay as they are.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_broadcaster_free(broadcaster: *mut wtd_cluster_broadcaster) {
    guard_value((), || {
        // SAFETY: NULL or a live handle the caller gives up (the header's contract).
        drop(unsafe { handle::take_box(broadcaster) });
    });
}

/// Deliver a datagram to the local members at once (as wtd_broadcaster_broadcast:
/// `priority` 0..=2 and `ttl_ms` (<= 0: none) apply to streams) and publish it once on
/// the channel for every other node's members. `*out_accepted` (may be NULL) gets how
/// many local members accepted it. Never waits for the bus: when it is down or its
/// queue is full the publish is counted in bus_failures and the call still returns
/// WTD_OK. WTD_ERR_INVALID_ARGUMENT for a bad priority (nothing is sent).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_broadcaster_broadcast(
    broadcaster: *const wtd_cluster_broadcaster,
    data: *const u8,
    len: usize,
    priority: u8,
    ttl_ms: i32,
    out_accepted: *mut usize,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let b = unsafe { handle::live(broadcaster, "broadcaster") }?;
        // SAFETY: `data` is NULL or readable for its length (the header's contract).
        let d = unsafe { bytes(data, len, "data") }?;
        let ttl = (ttl_ms > 0).then(|| Duration::from_millis(ttl_ms as u64));
        let n = b.b.broadcast(d, priority, ttl)?;
        // SAFETY: `out_accepted` is NULL or writable (the header's contract).
        if let Some(o) = unsafe { out_accepted.as_mut() } {
            *o = n;
        }
        Ok(())
    })
}

/// Read the channel's counters into `out_stats`, whose `size` the caller set to
/// sizeof(wtd_cluster_broadcaster_stats). WTD_ERR_INVALID_ARGUMENT for a NULL
/// `out_stats` or a smaller `size`.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_broadcaster_get_stats(
    broadcaster: *const wtd_cluster_broadcaster,
    out_stats: *mut wtd_cluster_broadcaster_stats,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let b = unsafe { handle::borrow(broadcaster, "broadcaster") }?;
        let s: ChannelStats = b.b.stats();
        let closed = b.runtime.is_closed();
        let v = wtd_cluster_broadcaster_stats {
            size: 0,
            broadcasts: s.broadcasts,
            published: s.published,
            bus_failures: s.bus_failures,
            received: s.received,
            received_invalid: s.received_invalid,
            received_gaps: s.received_gaps,
            delivered_local: s.delivered_local,
            delivered_from_bus: s.delivered_from_bus,
            reconnects: s.reconnects,
            rtt_samples: s.rtt_samples,
            rtt_last_us: s.rtt_last_us,
            rtt_avg_us: s.rtt_avg_us,
            rtt_min_us: s.rtt_min_us,
            rtt_max_us: s.rtt_max_us,
            latency_samples: s.latency_samples,
            latency_last_us: s.latency_last_us,
            latency_avg_us: s.latency_avg_us,
            latency_min_us: s.latency_min_us,
            latency_max_us: s.latency_max_us,
            bus_connected: s.bus_connected && !closed,
            bus_ready: s.bus_ready && !closed,
        };
        // SAFETY: `out_stats` is NULL or a caller-owned struct of this version, writable
        // for the size it holds (the header's contract).
        unsafe { versioned::write(out_stats, v) }
    })
}

/// Whether an own message came back since the connection was last made: the
/// subscription is live on the server (false for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_broadcaster_is_bus_ready(
    broadcaster: *const wtd_cluster_broadcaster,
) -> bool {
    guard_value(false, || {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        unsafe { handle::get(broadcaster) }
            .is_some_and(|b| !b.runtime.is_closed() && b.b.is_bus_ready())
    })
}

/// Wait up to `timeout_ms` (negative: forever) until the subscription is live on the
/// server (see wtd_cluster_broadcaster_is_bus_ready). WTD_ERR_TIMEOUT if it was not;
/// WTD_ERR_WOULD_DEADLOCK on a runtime worker thread.
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_broadcaster_wait_bus_ready(
    broadcaster: *const wtd_cluster_broadcaster,
    timeout_ms: i32,
) -> wtd_result {
    guard(|| {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        let b = unsafe { handle::live(broadcaster, "broadcaster") }?;
        b.runtime.block_on(timeout_ms, b.b.wait_bus_ready(None))??;
        Ok(())
    })
}

/// The random id this broadcaster puts in its bus messages (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn wtd_cluster_broadcaster_origin(
    broadcaster: *const wtd_cluster_broadcaster,
) -> u64 {
    guard_value(0, || {
        // SAFETY: `broadcaster` is NULL or a live handle (the header's contract).
        unsafe { handle::get(broadcaster) }.map_or(0, |b| b.b.origin())
    })
}
