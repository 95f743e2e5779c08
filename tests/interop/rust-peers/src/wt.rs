//! wtransport 0.7: client and server. It announces draft-02 and draft-07 SETTINGS
//! (0x2b603742 and 0xc671706a), carries one session per QUIC connection, closes a
//! session by closing the QUIC connection with the application code (no capsule), and
//! reports a peer's CLOSE_WEBTRANSPORT_SESSION capsule (which it reads only inside a
//! DATA frame) as `ConnectionError::ApplicationClosed`.

use std::time::Duration;

use bytes::Bytes;
use wtransport::error::ConnectionError;
use wtransport::tls::{Certificate, CertificateChain, PrivateKey, Sha256Digest};
use wtransport::{ClientConfig, Connection, Endpoint, Identity, ServerConfig, VarInt};

use crate::{
    join_all, log, out, read_file, run_session, Args, End, PeerSession, Role, SessionControl,
};

struct WtSession {
    conn: Connection,
}

fn end_of(e: ConnectionError) -> End {
    match e {
        ConnectionError::ApplicationClosed(c) => End::remote(c.code().into_inner(), c.reason()),
        other => End::lost(other),
    }
}

impl PeerSession for WtSession {
    fn max(&self) -> usize {
        self.conn.max_datagram_size().unwrap_or(0)
    }
    async fn send(&self, data: Bytes) -> Result<(), String> {
        self.conn.send_datagram(&data).map_err(|e| e.to_string())
    }
    async fn recv(&self) -> Result<Bytes, End> {
        match self.conn.receive_datagram().await {
            Ok(d) => Ok(d.payload()),
            Err(e) => Err(end_of(e)),
        }
    }
    fn close(&self, code: u32, reason: &str) {
        self.conn.close(VarInt::from_u32(code), reason.as_bytes());
    }
    async fn flush(&self) {
        let _ = self.conn.closed().await;
    }
}

pub async fn server(a: &Args, ctls: Vec<SessionControl>) -> Result<(), String> {
    let cert = Certificate::from_der(read_file(a.cert.as_deref().unwrap_or_default()))
        .map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKey::from_der_pkcs8(read_file(a.key.as_deref().unwrap_or_default()));
    let identity = Identity::new(CertificateChain::single(cert), key);
    let cfg = ServerConfig::builder()
        .with_bind_address("127.0.0.1:0".parse().expect("literal"))
        .with_identity(identity)
        .keep_alive_interval(Some(Duration::from_secs(3)))
        .build();
    let ep = Endpoint::server(cfg).map_err(|e| format!("bind: {e}"))?;
    let port = ep.local_addr().map_err(|e| e.to_string())?.port();
    out(&format!("READY {port}"));
    let mut tasks = Vec::new();
    for (i, ctl) in ctls.into_iter().enumerate() {
        let req = ep
            .accept()
            .await
            .await
            .map_err(|e| format!("incoming session {i}: {e}"))?;
        log(&format!(
            "server: request {i}: authority {:?} path {:?} headers {:?}",
            req.authority(),
            req.path(),
            req.headers()
        ));
        let path = req.path().to_string();
        let conn = req.accept().await.map_err(|e| format!("accept {i}: {e}"))?;
        let (count, window) = (a.count, a.window);
        tasks.push(tokio::spawn(async move {
            run_session(
                i,
                &path,
                WtSession { conn },
                Role::Server,
                ctl,
                count,
                window,
            )
            .await
        }));
    }
    let r = join_all(tasks).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    r
}

pub async fn client(a: &Args, ctls: Vec<SessionControl>) -> Result<(), String> {
    let hash = a.cert_hash.expect("checked by parse_args");
    let cfg = ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([Sha256Digest::new(hash)])
        .keep_alive_interval(Some(Duration::from_secs(3)))
        .build();
    let ep = Endpoint::client(cfg).map_err(|e| format!("client endpoint: {e}"))?;
    let base = a.url.clone().unwrap_or_default();
    let mut tasks = Vec::new();
    for (i, ctl) in ctls.into_iter().enumerate() {
        let url = format!("{base}/{i}");
        let conn = ep
            .connect(url.as_str())
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let path = url
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .unwrap_or_default();
        let (count, window) = (a.count, a.window);
        tasks.push(tokio::spawn(async move {
            run_session(
                i,
                &path,
                WtSession { conn },
                Role::Client,
                ctl,
                count,
                window,
            )
            .await
        }));
    }
    let r = join_all(tasks).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    r
}
