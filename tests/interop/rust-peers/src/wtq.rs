//! web-transport-quinn 0.13: client and server. SETTINGS 0xc671706a (draft-07) plus the
//! deprecated 0x2b603742/0x2b603743; refuses a peer whose SETTINGS signal no WebTransport;
//! one session per QUIC connection; its datagram prefix is the CONNECT stream id itself
//! (not the quarter id), which agrees with RFC 9297 only for stream 0 — the only stream
//! it ever uses. It closes with CLOSE_WEBTRANSPORT_SESSION inside a DATA frame, then FIN,
//! then (after max(3 RTT, 100 ms)) closes the QUIC connection; it reads capsules only
//! from DATA frames (a raw capsule is skipped as an unknown frame).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use web_transport_quinn::{ClientBuilder, ServerBuilder, Session, SessionError, WebTransportError};

use crate::{
    join_all, log, out, read_file, run_session, Args, End, PeerSession, Role, SessionControl,
};

struct WtqSession {
    s: Session,
}

fn end_of(e: SessionError) -> End {
    match e {
        SessionError::WebTransportError(WebTransportError::Closed(code, reason)) => {
            End::remote(code.into(), reason.as_bytes())
        }
        SessionError::ConnectionError(
            web_transport_quinn::quinn::ConnectionError::ApplicationClosed(c),
        ) => End::remote(c.error_code.into_inner(), &c.reason),
        other => End::lost(other),
    }
}

impl PeerSession for WtqSession {
    fn max(&self) -> usize {
        self.s.max_datagram_size()
    }
    async fn send(&self, data: Bytes) -> Result<(), String> {
        self.s
            .send_datagram_wait(data)
            .await
            .map_err(|e| e.to_string())
    }
    async fn recv(&self) -> Result<Bytes, End> {
        loop {
            match self.s.read_datagram().await {
                Ok(d) => return Ok(d),
                // A datagram for another session id: dropped, as the stack does.
                Err(SessionError::WebTransportError(WebTransportError::UnknownSession)) => {
                    log("datagram for an unknown session id dropped");
                }
                Err(e) => return Err(end_of(e)),
            }
        }
    }
    fn close(&self, code: u32, reason: &str) {
        self.s.close(code, reason.as_bytes());
    }
    async fn flush(&self) {
        let _ = self.s.closed().await;
    }
}

pub async fn server(a: &Args, ctls: Vec<SessionControl>) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let chain = vec![CertificateDer::from(read_file(
        a.cert.as_deref().unwrap_or_default(),
    ))];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(read_file(
        a.key.as_deref().unwrap_or_default(),
    )));
    let mut server = ServerBuilder::new()
        .with_addr("127.0.0.1:0".parse().expect("literal"))
        .with_certificate(chain, key)
        .map_err(|e| format!("server: {e}"))?;
    let port = server.local_addr().map_err(|e| e.to_string())?.port();
    out(&format!("READY {port}"));
    let mut tasks = Vec::new();
    for (i, ctl) in ctls.into_iter().enumerate() {
        let req = server
            .accept()
            .await
            .ok_or_else(|| format!("server closed before session {i}"))?;
        log(&format!(
            "server: request {i}: url {} protocols {:?} headers {:?}",
            req.url, req.protocols, req.headers
        ));
        let path = req.url.path().to_string();
        let s = req.ok().await.map_err(|e| format!("accept {i}: {e}"))?;
        let (count, window) = (a.count, a.window);
        tasks.push(tokio::spawn(async move {
            run_session(i, &path, WtqSession { s }, Role::Server, ctl, count, window).await
        }));
    }
    let r = join_all(tasks).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), server.wait_idle()).await;
    r
}

pub async fn client(a: &Args, ctls: Vec<SessionControl>) -> Result<(), String> {
    let hash = a.cert_hash.expect("checked by parse_args");
    let client = Arc::new(
        ClientBuilder::new()
            .with_server_certificate_hashes(vec![hash.to_vec()])
            .map_err(|e| format!("client: {e}"))?,
    );
    let base = a.url.clone().unwrap_or_default();
    let mut tasks = Vec::new();
    for (i, ctl) in ctls.into_iter().enumerate() {
        let url = url::Url::parse(&format!("{base}/{i}")).map_err(|e| format!("url: {e}"))?;
        let path = url.path().to_string();
        let s = client
            .connect(url.clone())
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let (count, window) = (a.count, a.window);
        tasks.push(tokio::spawn(async move {
            run_session(i, &path, WtqSession { s }, Role::Client, ctl, count, window).await
        }));
    }
    join_all(tasks).await
}
