//! The WebTransport client: QUIC + HTTP/3 connections to servers, and sessions on them.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use quinn::VarInt;

use super::close::{self, CloseReason};
use super::config::ClientConfig;
use super::connect_stream;
use super::driver::{CloseOnDrop, ConnInner, SessionSlot};
use super::endpoint::{self, SocketBuffers};
use super::error::Error;
use super::http::{self, ReadError};
use super::session::{RequestInfo, Session, SessionShared};
use super::tls;
use wtdatagram_proto::codes::*;
use wtdatagram_proto::request::{self, HeadersError, HeadersReader, Response, Start};
use wtdatagram_proto::settings::Dialect;
use wtdatagram_proto::slots::{Busy, Exclusive};
use wtdatagram_proto::streams::Role;

pub(crate) struct ClientShared {
    endpoint: quinn::Endpoint,
    quic_config: quinn::ClientConfig,
    cfg: ClientConfig,
    buffers: SocketBuffers,
}

/// A WebTransport client endpoint (one UDP socket; any number of connections).
#[derive(Clone)]
pub struct Client {
    shared: Arc<ClientShared>,
}

/// Where a URL points: address to resolve, TLS server name, `:authority` and `:path`.
struct Target {
    host: String,
    port: u16,
    authority: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, Error> {
    let u =
        url::Url::parse(url).map_err(|e| Error::InvalidArgument(format!("URL {url:?}: {e}")))?;
    if u.scheme() != "https" {
        return Err(Error::InvalidArgument(format!(
            "URL {url:?}: scheme must be https"
        )));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(Error::InvalidArgument(format!("URL {url:?} has no host"))),
    };
    let port = u.port().unwrap_or(443);
    let authority = match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
        None => u.host_str().unwrap_or_default().to_string(),
    };
    let mut path = u.path().to_string();
    if let Some(q) = u.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok(Target {
        host,
        port,
        authority,
        path,
    })
}

impl Client {
    /// Create the client endpoint. Must be called from within a tokio runtime.
    pub fn new(cfg: ClientConfig) -> Result<Client, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidState(
                "Client::new needs a tokio runtime".into(),
            ));
        }
        let crypto = tls::client_crypto(&cfg.verify)?;
        let mut quic_config = quinn::ClientConfig::new(Arc::new(crypto));
        quic_config.transport_config(endpoint::transport_config(&cfg.transport, false)?);
        let (socket, buffers) = match cfg.bind {
            Some(addr) => endpoint::bind_socket(addr, &cfg.transport)?,
            None => endpoint::bind_socket("[::]:0".parse().expect("literal"), &cfg.transport)
                .or_else(|_| {
                    endpoint::bind_socket("0.0.0.0:0".parse().expect("literal"), &cfg.transport)
                })?,
        };
        let endpoint = endpoint::endpoint(socket, None)?;
        Ok(Client {
            shared: Arc::new(ClientShared {
                endpoint,
                quic_config,
                cfg,
                buffers,
            }),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.shared
            .endpoint
            .local_addr()
            .map_err(|e| Error::Io(e.to_string()))
    }

    pub fn socket_buffers(&self) -> SocketBuffers {
        self.shared.buffers
    }

    /// Establish QUIC and HTTP/3 with the server of `url` (waits for its SETTINGS and
    /// checks it supports WebTransport).
    pub async fn connect(&self, url: &str) -> Result<Connection, Error> {
        let t = parse_url(url)?;
        let local_v6 = self.local_addr()?.is_ipv6();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
            .await
            .map_err(|e| Error::Connect(format!("resolving {}: {e}", t.host)))?
            .collect();
        let addr = addrs
            .iter()
            .find(|a| local_v6 || a.is_ipv4())
            .copied()
            .ok_or_else(|| Error::Connect(format!("no usable address for {}", t.host)))?;
        let connecting = self
            .shared
            .endpoint
            .connect_with(self.shared.quic_config.clone(), addr, &t.host)
            .map_err(|e| match e {
                // `Client::close` stopped the endpoint: the client is closed.
                quinn::ConnectError::EndpointStopping => {
                    Error::Closed(CloseReason::ConnectionLost {
                        code: 0,
                        reason: "client closed".into(),
                    })
                }
                e => Error::Connect(e.to_string()),
            })?;
        let quic = connecting.await.map_err(|e| match e {
            // QUIC carries TLS alerts as transport error codes 0x100..=0x1ff (RFC 9001 §4.8).
            quinn::ConnectionError::TransportError(te)
                if (0x100..=0x1ff).contains(&u64::from(te.code)) =>
            {
                Error::Tls(te.to_string())
            }
            quinn::ConnectionError::ConnectionClosed(c)
                if (0x100..=0x1ff).contains(&u64::from(c.error_code)) =>
            {
                Error::Tls(format!("server refused the handshake: {c}"))
            }
            other => Error::Connect(other.to_string()),
        })?;
        let guard = Arc::new(CloseOnDrop { quic: quic.clone() });
        let inner = ConnInner::start(
            quic,
            Role::Client,
            self.shared.cfg.transport.clone(),
            None,
            None,
        );
        let settings = inner.peer_settings().await?;
        inner.local_settings_sent().await;
        if settings.dialect().is_none() || !settings.datagrams() {
            return Err(Error::NotSupported(format!(
                "server at {url} does not announce WebTransport with datagrams"
            )));
        }
        Ok(Connection {
            inner,
            guard,
            client: self.shared.clone(),
            authority: t.authority,
        })
    }

    /// Connect and open one session at `url` on a new connection.
    pub async fn open_session(&self, url: &str) -> Result<Session, Error> {
        let conn = self.connect(url).await?;
        conn.open_session(url, &[]).await
    }

    /// Close every connection of this client. Later connects and session opens fail
    /// with [`Error::Closed`].
    pub fn close(&self) {
        self.shared.endpoint.close(
            quinn::VarInt::from_u64(H3_NO_ERROR).unwrap_or_default(),
            b"client closed",
        );
    }
}

/// Closes a session whose opening did not complete (error or cancelled future).
struct Pending(Option<Arc<SessionShared>>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            s.set_closed(CloseReason::Local {
                code: 0,
                reason: "session opening abandoned".into(),
            });
        }
    }
}

/// How long a new session waits for the sessions that are still closing on a
/// connection that carries one at a time (each is bounded itself, by the reader's wait
/// for the peer's answer to the close; this is the safety net).
const CLOSING_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reserve the new session's place on the connection. draft-ietf-webtrans-http3-15
/// §5.1: without flow control (enabled when both sides' SETTINGS declare it; ours always
/// do), a client must not establish more than one draft-15 session at a time on a
/// connection: another one open or being opened fails at once with
/// [`Error::InvalidState`], before anything is sent; sessions that are closed but whose
/// CONNECT stream the server has not ended yet are waited for, so the server has seen
/// the old session end before the new CONNECT arrives. Draft-02/07 servers keep sharing
/// the connection up to the session limit they announce.
async fn reserve(inner: &Arc<ConnInner>, dialect: Dialect) -> Result<SessionSlot, Error> {
    let exclusive = if dialect == Dialect::Draft15 && !inner.flow_control() {
        Exclusive::OfAll
    } else {
        Exclusive::No
    };
    let waited = tokio::time::timeout(CLOSING_WAIT, async {
        loop {
            match inner.reserve_session(exclusive, None) {
                Ok(slot) => return Ok(slot),
                Err(Busy::Open) => {
                    return Err(Error::InvalidState(
                        "the server does not enable draft-15 flow control (its SETTINGS \
                         declare no WT_INITIAL_MAX_DATA/_STREAMS), so this connection \
                         carries one session at a time and one is open: close it first, \
                         or open the session on another connection"
                            .into(),
                    ))
                }
                Err(Busy::Closing) => inner.slots_released().await,
                Err(Busy::Full) => {
                    return Err(Error::InvalidState("the connection is full".into()))
                }
            }
            if let Some(e) = inner.quic.close_reason() {
                return Err(Error::Closed(close::from_connection(&e)));
            }
        }
    })
    .await;
    waited.unwrap_or_else(|_| {
        Err(Error::InvalidState(
            "the previous session on this connection (which carries one at a time: no \
             draft-15 flow control) did not end in time"
                .into(),
        ))
    })
}

pub(crate) async fn open_session(
    conn: &Connection,
    target: &str,
    extra: &[(String, String)],
) -> Result<Session, Error> {
    let inner = &conn.inner;
    let settings = inner.peer_settings().await?;
    let (authority, path) = if target.starts_with('/') {
        (conn.authority.clone(), target.to_string())
    } else {
        let t = parse_url(target)?;
        (t.authority, t.path)
    };
    let headers: Vec<(String, String)> = conn
        .client
        .cfg
        .headers
        .iter()
        .chain(extra)
        .cloned()
        .collect();
    let (dialect, req) = request::client_request(&settings, &authority, &path, &headers).map_err(
        |e| match settings.dialect() {
            None => Error::NotSupported(e),
            Some(_) => Error::InvalidArgument(e),
        },
    )?;

    let mut slot = reserve(inner, dialect).await?;
    let (send, mut recv) = inner
        .quic
        .open_bi()
        .await
        .map_err(|e| Error::Closed(close::from_connection(&e)))?;
    let info = RequestInfo {
        path: req.path.clone(),
        authority: req.authority.clone(),
        protocol: req.protocol.clone(),
        headers: req.headers.clone(),
        dialect,
    };
    let shared = SessionShared::new(inner.clone(), send, info);
    // Registered now, so datagrams the server sends right after its 200 are kept.
    inner.register(shared.clone());
    slot.established();
    let mut pending = Pending(Some(shared.clone()));
    match shared.send.lock().await.as_mut() {
        Some(s) => http::write_headers(s, &req.fields()).await?,
        None => return Err(Error::InvalidState("CONNECT stream gone".into())),
    }
    tracing::debug!(stream = shared.stream_id, "request sent");
    let mut reader = HeadersReader::response(inner.opts.field_limits());
    loop {
        let fields = match http::read_headers(&mut recv, &mut reader).await {
            Ok(Start::Headers(f)) => f,
            Ok(Start::WebTransportStream) => {
                return Err(Error::Protocol(
                    "WebTransport stream signal on a CONNECT stream".into(),
                ))
            }
            Err(ReadError::Peer(HeadersError::Malformed(e))) => {
                if request::is_stream_error(e.code) {
                    if let Some(s) = shared.send.lock().await.as_mut() {
                        http::abort(s, &mut recv, e.code);
                    }
                } else {
                    inner.fail(&e);
                }
                return Err(Error::Protocol(e.to_string()));
            }
            Err(ReadError::Peer(HeadersError::TooLarge)) => {
                if let Some(s) = shared.send.lock().await.as_mut() {
                    http::abort(s, &mut recv, H3_EXCESSIVE_LOAD);
                }
                return Err(Error::Protocol(
                    "the response's field section exceeds our limits".into(),
                ));
            }
            Err(ReadError::Gone(e)) => return Err(e),
        };
        match request::classify_response(&fields) {
            Ok(Response::Informational) => continue,
            Ok(Response::Established) => break,
            Ok(Response::Refused(status)) => return Err(Error::Rejected(status)),
            Err(e) => {
                if let Some(s) = shared.send.lock().await.as_mut() {
                    http::abort(s, &mut recv, e.code);
                }
                return Err(Error::Protocol(e.to_string()));
            }
        }
    }
    pending.0 = None;
    inner.rt.spawn(connect_stream::run(
        shared.clone(),
        recv,
        reader.into_remaining().freeze(),
        Some(slot),
    ));
    Ok(Session::new(shared, Some(conn.guard.clone())))
}

/// A client's HTTP/3 connection: open sessions on it with
/// [`open_session`](Self::open_session). Cheap to clone; the connection closes when the
/// last clone and the last of its sessions are dropped.
#[derive(Clone)]
pub struct Connection {
    pub(crate) inner: Arc<ConnInner>,
    pub(crate) guard: Arc<CloseOnDrop>,
    pub(crate) client: Arc<ClientShared>,
    /// `:authority` of the URL the connection was made for (used for path-only targets).
    pub(crate) authority: String,
}

impl Connection {
    pub fn remote_addr(&self) -> std::net::SocketAddr {
        self.inner.quic.remote_address()
    }

    /// The WebTransport dialect the server announced.
    pub fn peer_dialect(&self) -> Option<Dialect> {
        self.inner.peer_dialect()
    }

    /// Sessions currently open on this connection.
    pub fn session_count(&self) -> usize {
        self.inner.session_count()
    }

    /// Datagrams received for no open session (dropped, as RFC 9297 allows).
    pub fn unknown_session_datagrams(&self) -> u64 {
        self.inner.unknown_datagrams.load(Relaxed)
    }

    /// Close the whole connection (every session on it) with an HTTP/3 code and reason.
    pub fn close(&self, code: u64, reason: &str) {
        let code = VarInt::from_u64(code).unwrap_or_default();
        self.inner.quic.close(code, reason.as_bytes());
    }

    pub fn is_closed(&self) -> bool {
        self.inner.quic.close_reason().is_some()
    }

    /// Wait until the connection ends.
    pub async fn closed(&self) -> CloseReason {
        close::from_connection(&self.inner.quic.closed().await)
    }

    /// Open a WebTransport session. `target` is a full `https://` URL or a path; `headers`
    /// are sent in addition to the client configuration's headers.
    ///
    /// Sessions share the connection when the server allows it, with one exception
    /// (draft-ietf-webtrans-http3-15 §5.1): a draft-15 server (see
    /// [`peer_dialect`](Self::peer_dialect)) whose SETTINGS do not declare flow control
    /// (SETTINGS_WT_INITIAL_MAX_DATA/_STREAMS_UNI/_STREAMS_BIDI all absent or 0, e.g.
    /// webtransport-go 0.13 with its default config) takes one session at a time per
    /// connection. Opening a second one while another is open, or being opened, then
    /// fails at once with [`Error::InvalidState`] and sends nothing; open it on another
    /// connection, or close the first one before (a session that is closing is waited
    /// for until the server has ended it too, so that the server never sees two).
    ///
    /// Other errors: [`Error::Rejected`] with the status if the server answers other
    /// than 2xx, [`Error::Closed`] if the connection is gone, [`Error::Protocol`] for a
    /// malformed response.
    pub async fn open_session(
        &self,
        target: &str,
        headers: &[(String, String)],
    ) -> Result<Session, Error> {
        open_session(self, target, headers).await
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("remote_addr", &self.remote_addr())
            .field("dialect", &self.peer_dialect())
            .finish()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://example.com:4433/chat?room=1").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path.as_str()
            ),
            ("example.com", 4433, "example.com:4433", "/chat?room=1")
        );
        let t = parse_url("https://[::1]:9/").unwrap();
        assert_eq!((t.host.as_str(), t.authority.as_str()), ("::1", "[::1]:9"));
        assert_eq!(parse_url("https://h").unwrap().port, 443);
        assert!(matches!(
            parse_url("http://h/"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(Error::InvalidArgument(_))
        ));
    }
}
