//! h3-webtransport 0.1.2 on h3 0.0.8 + h3-quinn 0.0.10: server only (the h3 client
//! cannot announce WebTransport). SETTINGS 0x2b603742 and 0x2b603743 (draft-02 only);
//! refuses a client whose SETTINGS lack 0x2b603742 or 0x33; answers `sec-webtransport-
//! http3-draft: draft02`. Quirks that bound what can be tested:
//! - h3-datagram 0.0.2 writes quarter stream id 0 on every datagram, whatever the
//!   session, so only a session on stream 0 (the first request of a connection) works;
//! - `WebTransportSession::accept` takes the whole h3 connection: one session each;
//! - nothing reads the CONNECT stream after the response, so a peer's
//!   CLOSE_WEBTRANSPORT_SESSION is never seen, and there is no session close: closing
//!   means closing the QUIC connection with an application code.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h3::ext::Protocol;
use h3_datagram::datagram_handler::{DatagramReader, DatagramSender};
use h3_datagram::quic_traits::DatagramConnectionExt;
use h3_webtransport::server::{AcceptedBi, WebTransportSession};

use crate::{
    join_all, log, out, read_file, run_session, Args, End, PeerSession, Role, SessionControl,
};

type Conn = h3_quinn::Connection;
type Reader = DatagramReader<<Conn as DatagramConnectionExt<Bytes>>::RecvDatagramHandler>;
type Sender = DatagramSender<<Conn as DatagramConnectionExt<Bytes>>::SendDatagramHandler, Bytes>;

struct H3Session {
    quic: quinn::Connection,
    _session: Arc<WebTransportSession<Conn, Bytes>>,
    reader: tokio::sync::Mutex<Reader>,
    sender: std::sync::Mutex<Sender>,
}

impl H3Session {
    fn end(&self, what: impl std::fmt::Display) -> End {
        match self.quic.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c)) => {
                End::remote(c.error_code.into_inner(), &c.reason)
            }
            Some(other) => End::lost(other),
            None => End::lost(what),
        }
    }
}

impl PeerSession for H3Session {
    fn max(&self) -> usize {
        // Quarter stream id 0 takes one byte.
        self.quic.max_datagram_size().unwrap_or(1).saturating_sub(1)
    }
    async fn send(&self, data: Bytes) -> Result<(), String> {
        self.sender
            .lock()
            .expect("sender lock")
            .send_datagram(data)
            .map_err(|e| e.to_string())
    }
    async fn recv(&self) -> Result<Bytes, End> {
        let mut reader = self.reader.lock().await;
        match reader.read_datagram().await {
            Ok(d) => Ok(d.into_payload()),
            Err(e) => Err(self.end(e)),
        }
    }
    fn close(&self, code: u32, reason: &str) {
        self.quic
            .close(quinn::VarInt::from_u32(code), reason.as_bytes());
    }
    async fn flush(&self) {
        self.quic.closed().await;
    }
}

fn server_config(cert: Vec<u8>, key: Vec<u8>) -> Result<quinn::ServerConfig, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .map_err(|e| format!("certificate: {e}"))?;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| e.to_string())?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(3)));
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}

async fn accept_one(i: usize, conn: quinn::Connection) -> Result<(String, H3Session), String> {
    let mut h3c = h3::server::builder()
        .enable_webtransport(true)
        .enable_extended_connect(true)
        .enable_datagram(true)
        .max_webtransport_sessions(1)
        .send_grease(true)
        .build(h3_quinn::Connection::new(conn.clone()))
        .await
        .map_err(|e| format!("h3 connection {i}: {e}"))?;
    let resolver = h3c
        .accept()
        .await
        .map_err(|e| format!("h3 accept {i}: {e}"))?
        .ok_or_else(|| format!("connection {i} ended without a request"))?;
    let (req, stream) = resolver
        .resolve_request()
        .await
        .map_err(|e| format!("request {i}: {e}"))?;
    log(&format!(
        "server: request {i}: {} {} protocol {:?} headers {:?}",
        req.method(),
        req.uri(),
        req.extensions().get::<Protocol>(),
        req.headers()
    ));
    if req.method() != http::Method::CONNECT
        || req.extensions().get::<Protocol>() != Some(&Protocol::WEB_TRANSPORT)
    {
        return Err(format!("request {i} is not a WebTransport CONNECT"));
    }
    let path = req.uri().path().to_string();
    let session = WebTransportSession::accept(req, stream, h3c)
        .await
        .map_err(|e| format!("WebTransport accept {i}: {e}"))?;
    let session = Arc::new(session);
    let reader = session.datagram_reader();
    let sender = session.datagram_sender();
    // Keep the h3 connection driven (control stream, further requests).
    let drive = session.clone();
    tokio::spawn(async move {
        loop {
            match drive.accept_bi().await {
                Ok(Some(AcceptedBi::Request(req, _))) => log(&format!(
                    "server: session {i}: ignoring request {}",
                    req.uri()
                )),
                Ok(Some(AcceptedBi::BidiStream(..))) => {
                    log(&format!("server: session {i}: ignoring bidi stream"))
                }
                Ok(None) | Err(_) => break,
            }
        }
    });
    Ok((
        path,
        H3Session {
            quic: conn,
            _session: session,
            reader: tokio::sync::Mutex::new(reader),
            sender: std::sync::Mutex::new(sender),
        },
    ))
}

pub async fn server(a: &Args, ctls: Vec<SessionControl>) -> Result<(), String> {
    let cfg = server_config(
        read_file(a.cert.as_deref().unwrap_or_default()),
        read_file(a.key.as_deref().unwrap_or_default()),
    )?;
    let ep = quinn::Endpoint::server(cfg, "127.0.0.1:0".parse().expect("literal"))
        .map_err(|e| format!("bind: {e}"))?;
    let port = ep.local_addr().map_err(|e| e.to_string())?.port();
    out(&format!("READY {port}"));
    let mut tasks = Vec::new();
    for (i, ctl) in ctls.into_iter().enumerate() {
        let incoming = ep
            .accept()
            .await
            .ok_or_else(|| format!("endpoint closed before session {i}"))?;
        let conn = incoming.await.map_err(|e| format!("handshake {i}: {e}"))?;
        let (path, s) = accept_one(i, conn).await?;
        let (count, window) = (a.count, a.window);
        tasks.push(tokio::spawn(async move {
            run_session(i, &path, s, Role::Server, ctl, count, window).await
        }));
    }
    let r = join_all(tasks).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    r
}
