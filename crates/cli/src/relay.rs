//! `wtd serve --nats URL --relay CHANNEL`: every datagram a client sends reaches every
//! client of the channel on every node (the sender included), through a
//! `wtdatagram::cluster` broadcaster joined to CHANNEL on the NATS bus.
//!
//! Output lines (stdout), after `listening`, `cert-sha256` (and `web`, with `--web`):
//! * `relay channel=CH subject=SUBJ origin=HEX` once joined;
//! * `bus ready reconnects=N` whenever this node's subscription is (again) live on the
//!   server, `bus down` when the connection is lost;
//! * `session N ...` / `closed N REASON` per session, as in echo mode;
//! * `stats broadcasts=.. published=.. bus_failures=.. received=.. delivered_local=..
//!   reconnects=.. rtt_avg_us=..` after every `closed` line and every bus change.

use std::sync::Arc;

use wtdatagram::cluster::{Cluster, ClusterAuth, ClusterBroadcaster, ClusterConfig};
use wtdatagram::datagram::broadcast::DatagramBroadcaster;
use wtdatagram::{Error, Server, Session};

use super::args::RelayArgs;
use super::output::{runtime, say, warn, Fail};
use super::serve::serve_sessions;
use super::web::Sessions;

fn stats_line(cb: &ClusterBroadcaster) -> String {
    let s = cb.stats();
    format!(
        "stats broadcasts={} published={} bus_failures={} received={} delivered_local={} \
         reconnects={} rtt_avg_us={}",
        s.broadcasts,
        s.published,
        s.bus_failures,
        s.received,
        s.delivered_local,
        s.reconnects,
        s.rtt_avg_us
    )
}

/// Serve sessions on `server`, relaying their datagrams through the channel; exit after
/// `max` sessions have closed (if given). Each open session is in `sessions` (what
/// `--web`'s `/stats.json` shows).
pub async fn relay(
    server: Arc<Server>,
    opts: RelayArgs,
    max: Option<u64>,
    sessions: Sessions,
) -> Result<i32, Fail> {
    let urls = opts.urls.join(",");
    let cluster = Cluster::connect(ClusterConfig {
        urls: opts.urls,
        name: Some(format!("wtd-relay {}", server.local_addr())),
        auth: match opts.creds {
            Some(path) => ClusterAuth::CredentialsFile(path),
            None => ClusterAuth::None,
        },
        ..Default::default()
    })
    .await
    .map_err(|e| match e {
        Error::InvalidArgument(m) => Fail::Usage(m),
        e => runtime(format!("connecting to NATS at {urls}: {e}")),
    })?;
    let local = DatagramBroadcaster::new();
    let cb = cluster
        .join(&opts.channel, local.clone())
        .await
        .map_err(|e| match e {
            Error::InvalidArgument(m) => Fail::Usage(format!("--relay: {m}")),
            e => runtime(format!("joining channel {:?}: {e}", opts.channel)),
        })?;
    say(format!(
        "relay channel={} subject={} origin={:016x}",
        cb.channel(),
        cb.subject(),
        cb.origin()
    ));

    // Bus changes, as they happen.
    let watcher = cb.clone();
    tokio::spawn(async move {
        let mut ready = watcher.watch_bus_ready();
        let mut was = false;
        loop {
            let now = *ready.borrow_and_update();
            if now != was {
                if now {
                    say(format!(
                        "bus ready reconnects={}",
                        watcher.stats().reconnects
                    ));
                } else {
                    say("bus down");
                }
                say(stats_line(&watcher));
                was = now;
            }
            if ready.changed().await.is_err() {
                return;
            }
        }
    });

    serve_sessions(server, max, sessions, move |id, session, line| {
        let cb = cb.clone();
        async move {
            if let Err(e) = cb.local().add_session(session.clone()) {
                warn(format!("session {id} could not join the relay: {e}"));
            }
            say(line);
            let reason = forward(&session, &cb).await;
            say(format!("closed {id} {reason}"));
            say(stats_line(&cb));
        }
    })
    .await
}

/// Broadcast every datagram of `session` on the channel until the session ends.
async fn forward(session: &Session, cb: &ClusterBroadcaster) -> wtdatagram::CloseReason {
    loop {
        match session.recv_datagram().await {
            Ok(d) => {
                // Priority 1 (normal); bus trouble is counted, never waited for.
                let _ = cb.broadcast(&d, 1, None);
            }
            Err(Error::Closed(r)) => return r,
            Err(e) => {
                session.close(1, &format!("receive failed: {e}"));
                return session.closed().await;
            }
        }
    }
}
