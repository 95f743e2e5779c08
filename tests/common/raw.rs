#![allow(dead_code)]
//! A raw HTTP/3 peer built directly on quinn, which sends exactly the bytes a test tells
//! it to: for the malformed-peer and hostile-peer tests.

use std::sync::Arc;

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, ReadError, RecvStream, SendStream};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use wtdatagram::wire::codes::*;
use wtdatagram::wire::frame::{self, stream_type, TlvDecoder};
use wtdatagram::wire::settings;
use wtdatagram::wire::{qpack, varint};
use wtdatagram::{Server, Session};

use super::{init_log, server, within};

// ---------------------------------------------------------------------------------------
// Byte builders
// ---------------------------------------------------------------------------------------

pub fn vi(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint::encode(v, &mut out);
    out
}

pub fn frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(ty, payload, &mut out);
    out
}

/// A SETTINGS frame with exactly these pairs (duplicates and reserved ids allowed).
pub fn settings_frame(pairs: &[(u64, u64)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (k, v) in pairs {
        varint::encode(*k, &mut payload);
        varint::encode(*v, &mut payload);
    }
    frame(frame::SETTINGS, &payload)
}

/// What a draft-02 WebTransport client (Chromium) announces.
pub fn wt_settings() -> Vec<u8> {
    settings_frame(&[
        (settings::QPACK_MAX_TABLE_CAPACITY, 0),
        (settings::ENABLE_CONNECT_PROTOCOL, 1),
        (settings::H3_DATAGRAM, 1),
        (settings::ENABLE_WEBTRANSPORT, 1),
    ])
}

/// A HEADERS frame whose field section is `fields`, QPACK-encoded (static table only;
/// the encoder does not validate, so uppercase names go out as they are).
pub fn headers_frame(fields: &[(&str, &str)]) -> Vec<u8> {
    frame(frame::HEADERS, &qpack::encode(fields))
}

pub fn connect_request(authority: &str, path: &str) -> Vec<u8> {
    headers_frame(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
        ("sec-webtransport-http3-draft02", "1"),
    ])
}

// ---------------------------------------------------------------------------------------
// TLS for the raw peers
// ---------------------------------------------------------------------------------------

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate (the handshake signature is still checked).
#[derive(Debug)]
pub struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn raw_client_config() -> quinn::ClientConfig {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls).expect("QUIC client config"),
    ))
}

pub fn raw_server_endpoint() -> quinn::Endpoint {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("certificate");
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let cfg = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(tls).expect("QUIC server config"),
    ));
    quinn::Endpoint::server(cfg, "127.0.0.1:0".parse().unwrap()).expect("raw server endpoint")
}

// ---------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------

/// An HTTP/3 client that sends exactly the bytes it is told to. Streams it opens are
/// kept here so that they stay open (quinn finishes a send stream when it is dropped).
pub struct RawClient {
    pub _endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    pub authority: String,
    pub kept: Vec<SendStream>,
}

impl RawClient {
    pub async fn connect(server: &Server) -> RawClient {
        Self::connect_addr(server.local_addr()).await
    }

    /// Connect to a server at `addr` (e.g. a `wtd serve` process).
    pub async fn connect_addr(addr: std::net::SocketAddr) -> RawClient {
        Self::try_connect_addr(addr).await.expect("QUIC handshake")
    }

    /// Like [`connect_addr`](Self::connect_addr), returning the handshake's failure.
    pub async fn try_connect_addr(
        addr: std::net::SocketAddr,
    ) -> Result<RawClient, ConnectionError> {
        init_log();
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("client endpoint");
        endpoint.set_default_client_config(raw_client_config());
        let conn = within(endpoint.connect(addr, "localhost").expect("connect")).await?;
        Ok(RawClient {
            _endpoint: endpoint,
            conn,
            authority: format!("127.0.0.1:{}", addr.port()),
            kept: Vec::new(),
        })
    }

    /// Open a unidirectional stream and write `bytes` (stream type included).
    pub async fn uni(&mut self, bytes: &[u8]) -> &mut SendStream {
        let mut s = within(self.conn.open_uni()).await.expect("open uni");
        within(s.write_all(bytes)).await.expect("write uni");
        self.kept.push(s);
        self.kept.last_mut().unwrap()
    }

    /// Open the control stream (type 0x00) and write `bytes` after the type.
    pub async fn control(&mut self, bytes: &[u8]) -> &mut SendStream {
        let mut all = vi(stream_type::CONTROL);
        all.extend_from_slice(bytes);
        self.uni(&all).await
    }

    /// Open the control stream with proper WebTransport SETTINGS.
    pub async fn control_ok(&mut self) {
        self.control(&wt_settings()).await;
    }

    /// Like [`bidi`](Self::bidi), for a request the server may answer (and stop
    /// reading with STOP_SENDING) before all of it was written.
    pub async fn bidi_stoppable(&self, bytes: &[u8]) -> (SendStream, RecvStream) {
        let (mut send, recv) = within(self.conn.open_bi()).await.expect("open bidi");
        match within(send.write_all(bytes)).await {
            Ok(()) | Err(quinn::WriteError::Stopped(_)) => {}
            Err(e) => panic!("write bidi: {e}"),
        }
        (send, recv)
    }

    /// Open a bidirectional stream and write `bytes` on it.
    pub async fn bidi(&self, bytes: &[u8]) -> (SendStream, RecvStream) {
        let (mut send, recv) = within(self.conn.open_bi()).await.expect("open bidi");
        within(send.write_all(bytes)).await.expect("write bidi");
        (send, recv)
    }

    pub fn datagram(&self, bytes: &[u8]) {
        self.conn
            .send_datagram(Bytes::copy_from_slice(bytes))
            .expect("send datagram");
    }

    /// Wait for the connection to end; the application error code our side closed it
    /// with (anything but an application close fails the test).
    pub async fn closed_code(&self) -> u64 {
        match within(self.conn.closed()).await {
            ConnectionError::ApplicationClosed(c) => {
                eprintln!(
                    "connection closed with {:#x} ({}): {}",
                    c.error_code.into_inner(),
                    name(c.error_code.into_inner()),
                    String::from_utf8_lossy(&c.reason)
                );
                c.error_code.into_inner()
            }
            other => panic!("expected an HTTP/3 application close, got {other:?}"),
        }
    }

    pub fn assert_open(&self) {
        assert!(
            self.conn.close_reason().is_none(),
            "connection must stay open, closed with {:?}",
            self.conn.close_reason()
        );
    }

    /// Send a valid extended CONNECT, have `server` accept it, and read the 200.
    pub async fn session(&self, server: &Server, path: &str) -> (Session, SendStream, RecvStream) {
        let (send, mut recv) = self.bidi(&connect_request(&self.authority, path)).await;
        let (ss, fields) = tokio::join!(
            async {
                within(server.accept())
                    .await
                    .expect("session request")
                    .accept()
                    .await
                    .expect("accept")
            },
            async { read_headers(&mut recv).await.expect("response HEADERS") }
        );
        assert_eq!(status(&fields), 200, "{fields:?}");
        assert_eq!(ss.request().path, path);
        (ss, send, recv)
    }
}

/// The SETTINGS the server sent on its control stream.
pub async fn read_peer_settings(raw: &RawClient) -> settings::Settings {
    loop {
        let mut recv = within(raw.conn.accept_uni())
            .await
            .expect("server uni stream");
        let mut buf = Vec::new();
        loop {
            match within(recv.read_chunk(1 << 16, true)).await.expect("read") {
                Some(c) => buf.extend_from_slice(&c.bytes),
                None => break,
            }
            let Some((ty, n)) = varint::decode(&buf) else {
                continue;
            };
            if ty != stream_type::CONTROL {
                break;
            }
            let mut dec = TlvDecoder::new(1 << 16, H3_EXCESSIVE_LOAD);
            dec.push(&buf[n..]);
            if let Some(f) = dec.next().expect("control frame") {
                assert_eq!(f.ty, frame::SETTINGS);
                return settings::Settings::decode(&f.payload).expect("SETTINGS");
            }
        }
    }
}

/// Read the next HEADERS frame on a request stream and decode it.
pub async fn read_headers(recv: &mut RecvStream) -> Result<Vec<qpack::Field>, ReadError> {
    let mut dec = TlvDecoder::new(1 << 16, H3_EXCESSIVE_LOAD);
    loop {
        while let Some(f) = dec.next().expect("peer frame") {
            if f.ty == frame::HEADERS {
                return Ok(qpack::decode(&f.payload).expect("peer field section"));
            }
        }
        match within(recv.read_chunk(1 << 16, true)).await? {
            Some(c) => dec.push(&c.bytes),
            None => panic!("stream finished before HEADERS"),
        }
    }
}

pub fn status(fields: &[qpack::Field]) -> u16 {
    fields
        .iter()
        .find(|(n, _)| n == ":status")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no :status in {fields:?}"))
}

/// Read until the peer resets the stream; its code.
pub async fn expect_reset(recv: &mut RecvStream) -> u64 {
    loop {
        match within(recv.read_chunk(1 << 16, true)).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream finished where a reset was expected"),
            Err(ReadError::Reset(code)) => return code.into_inner(),
            Err(e) => panic!("expected a stream reset, got {e}"),
        }
    }
}

/// Read until the peer finishes the stream cleanly.
pub async fn expect_fin(recv: &mut RecvStream) {
    loop {
        match within(recv.read_chunk(1 << 16, true)).await {
            Ok(Some(_)) => continue,
            Ok(None) => return,
            Err(e) => panic!("expected a clean end of stream, got {e}"),
        }
    }
}

/// How the peer ended the stream `recv` reads (reset with a code, or FIN); never returns
/// if the connection ends first (so a `select!` against the connection's close picks the
/// close).
pub async fn stream_end(recv: &mut RecvStream) -> String {
    loop {
        match recv.read_chunk(1 << 16, true).await {
            Ok(Some(_)) => continue,
            Ok(None) => return "finished with FIN".into(),
            Err(ReadError::Reset(code)) => {
                let code = code.into_inner();
                return format!("reset with {code:#x} ({})", name(code));
            }
            Err(_) => std::future::pending::<()>().await,
        }
    }
}

/// `want` is a connection error: the connection must close with it. Ending only the
/// stream `recv` reads is the wrong reaction, reported at once instead of timing out.
pub async fn expect_connection_error(raw: &RawClient, recv: &mut RecvStream, want: u64) {
    tokio::select! {
        biased;
        code = raw.closed_code() => assert_code(code, want),
        how = within(stream_end(recv)) => panic!(
            "our side ended only the stream ({how}) and left the connection open, but \
             {want:#x} ({}) is a connection error here",
            name(want)
        ),
    }
}

pub fn assert_code(got: u64, want: u64) {
    assert_eq!(
        got,
        want,
        "got {got:#x} ({}), want {want:#x} ({})",
        name(got),
        name(want)
    );
}

/// Open a raw client, put `control` on its control stream, expect the connection to be
/// closed with `code`.
pub async fn control_violation(control: &[u8], code: u64) {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control(control).await;
    assert_code(raw.closed_code().await, code);
}
