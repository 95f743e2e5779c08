//! The WebTransport server: accepts QUIC connections and hands session requests to the
//! application, which accepts or rejects each one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::closing::ClosingGuard;
use super::config::{ServerConfig, ServerTls};
use super::connect_stream;
use super::driver::{ConnInner, RequestHandler, SessionSlot};
use super::endpoint::{self, SocketBuffers};
use super::error::Error;
use super::http::{self, ReadError};
use super::limits::{Held, ServerLimits, ServerStats};
use super::session::{RequestInfo, Session, SessionShared};
use super::tls;
use wtdatagram_proto::codes::*;
use wtdatagram_proto::headers::{self, RequestError};
use wtdatagram_proto::request::{self, Admission, HeadersError, HeadersReader, Start};
use wtdatagram_proto::slots::Busy;
use wtdatagram_proto::streams::Role;

/// A listening WebTransport server.
pub struct Server {
    endpoint: quinn::Endpoint,
    requests: tokio::sync::Mutex<mpsc::Receiver<SessionRequest>>,
    cert_sha256: [u8; 32],
    local_addr: SocketAddr,
    buffers: SocketBuffers,
    rt: tokio::runtime::Handle,
    conns: Arc<Conns>,
    limits: Arc<ServerLimits>,
}

/// How long a closing server keeps its connections open for the close capsules of its
/// sessions (and the peers' answers); the CONNECTION_CLOSE then gets the rest of
/// [`CLOSE_LIMIT`] to go out.
const CLOSE_CAPSULES_WAIT: Duration = Duration::from_millis(1500);
/// The longest a server's close takes in the background.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// The server's connections (for a close that waits for their sessions' closes).
#[derive(Default)]
struct Conns {
    list: parking_lot::Mutex<Vec<Weak<ConnInner>>>,
    /// `Server::close` ran: incoming connections are refused.
    closing: AtomicBool,
}

impl Conns {
    fn add(&self, conn: &Arc<ConnInner>) {
        let mut list = self.list.lock();
        if list.len() == list.capacity() {
            // Before the list grows, forget the connections that are gone.
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(conn));
    }

    /// Session closes still delivering their capsule, over every connection.
    fn closes_in_flight(&self) -> usize {
        self.list
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .map(|c| c.closes_in_flight.load(Ordering::Relaxed))
            .sum()
    }
}

/// Closes the endpoint when dropped: at the end of a server's close, or at once if the
/// runtime drops the close task unrun (it is shutting down).
struct CloseEndpoint(quinn::Endpoint);

impl Drop for CloseEndpoint {
    fn drop(&mut self) {
        self.0.close(
            quinn::VarInt::from_u64(H3_NO_ERROR).unwrap_or_default(),
            b"server closed",
        );
    }
}

impl Server {
    /// Bind and start accepting. Must be called from within a tokio runtime.
    pub fn bind(cfg: ServerConfig) -> Result<Server, Error> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Err(Error::InvalidState(
                "Server::bind needs a tokio runtime".into(),
            ));
        };
        let identity = match &cfg.tls {
            ServerTls::SelfSigned { names } => tls::self_signed(names)?,
            ServerTls::Pem { cert_chain, key } => tls::from_pem(cert_chain, key)?,
        };
        let crypto = tls::server_crypto(&identity)?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(endpoint::transport_config(&cfg.transport, true)?);
        let (socket, buffers) = endpoint::bind_socket(cfg.bind, &cfg.transport)?;
        let endpoint = endpoint::endpoint(socket, Some(server_config))?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|e| Error::Io(e.to_string()))?;
        // The backlog gauge bounds the requests in the channel (and beyond).
        let (tx, rx) = mpsc::channel(cfg.request_backlog.max(1));
        let conns = Arc::new(Conns::default());
        let limits = ServerLimits::new(&cfg);
        let router = Arc::new(RequestRouter {
            tx,
            limits: limits.clone(),
            timeout: cfg.request_timeout,
        });
        tokio::spawn(accept_loop(
            endpoint.clone(),
            cfg.transport.clone(),
            router,
            conns.clone(),
        ));
        Ok(Server {
            endpoint,
            requests: tokio::sync::Mutex::new(rx),
            cert_sha256: identity.sha256,
            local_addr,
            buffers,
            rt,
            conns,
            limits,
        })
    }

    /// What the server holds now and what it refused so far.
    pub fn stats(&self) -> ServerStats {
        self.limits.stats()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// SHA-256 of the server certificate's DER, for `serverCertificateHashes`.
    pub fn cert_sha256(&self) -> [u8; 32] {
        self.cert_sha256
    }

    /// The UDP socket buffer sizes the kernel granted.
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.buffers
    }

    /// The next session request; `None` once the server is closed.
    pub async fn accept(&self) -> Option<SessionRequest> {
        self.requests.lock().await.recv().await
    }

    /// Stop accepting and close every connection, in the background: returns at once,
    /// never blocks (callable from any thread, in or outside the runtime). Dropping the
    /// server does the same; a second call does nothing.
    ///
    /// Sessions closed before (with [`Session::close`], or by dropping their last
    /// handle) or while the server closes get their CLOSE_WEBTRANSPORT_SESSION
    /// capsule delivered, and the peer's answer waited for, before their connection
    /// goes: the connections stay open until no close on them is in flight, at most
    /// 1.5 s. Then every connection closes with H3_NO_ERROR and reason "server
    /// closed" (sessions still open see [`CloseReason::ConnectionLost`]), and the
    /// CONNECTION_CLOSE gets the rest of 2 s to go out. New connections are refused
    /// from the start. [`finish_closing`](super::closing::finish_closing) also waits for this:
    /// call it before shutting the runtime down (a runtime shut down earlier cuts the
    /// wait short, and the connections close at once).
    ///
    /// [`CloseReason::ConnectionLost`]: super::close::CloseReason::ConnectionLost
    pub fn close(&self) {
        if self.conns.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        // Initial packets of new connections are answered with a stateless reset.
        self.endpoint.set_server_config(None);
        if let Ok(mut rx) = self.requests.try_lock() {
            rx.close();
        }
        let endpoint = CloseEndpoint(self.endpoint.clone());
        let conns = self.conns.clone();
        // Counted like a session close, so `finish_closing` waits for the connections
        // to be closed (a runtime shut down with them open would just go silent).
        let closing = ClosingGuard::new(&self.rt, None);
        self.rt.spawn(async move {
            let start = tokio::time::Instant::now();
            let capsules_by = start + CLOSE_CAPSULES_WAIT;
            while conns.closes_in_flight() > 0 && tokio::time::Instant::now() < capsules_by {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let quinn = endpoint.0.clone();
            drop(endpoint);
            // Until every connection sent its CONNECTION_CLOSE and drained.
            let _ = tokio::time::timeout_at(start + CLOSE_LIMIT, quinn.wait_idle()).await;
            drop(closing);
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    opts: super::config::TransportOptions,
    router: Arc<RequestRouter>,
    conns: Arc<Conns>,
) {
    while let Some(incoming) = endpoint.accept().await {
        if conns.closing.load(Ordering::Acquire) {
            incoming.refuse();
            continue;
        }
        let limits = &router.limits;
        // Handshakes count: a flood of them is bounded like established connections.
        let Some(place) = limits.connections.try_hold() else {
            ServerLimits::count(&limits.connections_refused);
            tracing::info!(
                remote = %incoming.remote_address(),
                "connection refused: the server holds its maximum of connections"
            );
            incoming.refuse();
            continue;
        };
        let opts = opts.clone();
        let router = router.clone();
        let conns = conns.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(quic) => {
                    ServerLimits::count(&router.limits.connections_accepted);
                    let handler: Arc<dyn RequestHandler> = router;
                    let conn = ConnInner::start(
                        quic,
                        Role::Server,
                        opts,
                        Some(handler),
                        Some(Box::new(place)),
                    );
                    conns.add(&conn);
                }
                Err(e) => {
                    ServerLimits::count(&router.limits.handshakes_failed);
                    tracing::info!(%remote, "handshake failed: {e}");
                }
            }
        });
    }
}

/// Hands a server connection's request streams to [`handle_request`], with what it
/// needs of the server.
struct RequestRouter {
    tx: mpsc::Sender<SessionRequest>,
    limits: Arc<ServerLimits>,
    timeout: Duration,
}

impl RequestHandler for RequestRouter {
    fn on_request(&self, conn: Arc<ConnInner>, send: quinn::SendStream, recv: quinn::RecvStream) {
        let rt = conn.rt.clone();
        rt.spawn(handle_request(
            conn,
            send,
            recv,
            self.tx.clone(),
            self.limits.clone(),
            self.timeout,
        ));
    }
}

/// Serve one request stream: a WebTransport CONNECT becomes a [`SessionRequest`],
/// anything else is answered or refused here. The stream has `timeout` to deliver its
/// HEADERS (and the connection its SETTINGS); what it sends is held within the field
/// section limits.
async fn handle_request(
    conn: Arc<ConnInner>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    tx: mpsc::Sender<SessionRequest>,
    limits: Arc<ServerLimits>,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let late = |send: &mut quinn::SendStream, recv: &mut quinn::RecvStream| {
        ServerLimits::count(&limits.timed_out);
        tracing::info!(
            remote = %conn.quic.remote_address(),
            "request stream reset: no complete request within {timeout:?}"
        );
        http::abort(send, recv, H3_REQUEST_REJECTED)
    };
    let field_limits = conn.opts.field_limits();
    let mut reader = HeadersReader::request(field_limits);
    let started =
        tokio::time::timeout_at(deadline, http::read_headers(&mut recv, &mut reader)).await;
    let fields = match started {
        Err(_) => return late(&mut send, &mut recv),
        Ok(Ok(Start::Headers(f))) => f,
        Ok(Ok(Start::WebTransportStream)) => {
            let refused = conn
                .clone()
                .refuse_bidi(send, recv, reader.into_remaining());
            let _ = tokio::time::timeout_at(deadline, refused).await;
            return;
        }
        Ok(Err(ReadError::Peer(HeadersError::Malformed(e)))) => {
            if request::is_stream_error(e.code) {
                return http::abort(&mut send, &mut recv, e.code);
            }
            return conn.fail(&e);
        }
        Ok(Err(ReadError::Peer(HeadersError::TooLarge))) => {
            ServerLimits::count(&limits.too_large);
            tracing::info!(
                remote = %conn.quic.remote_address(),
                "request answered 431: its field section exceeds {} bytes or {} fields",
                field_limits.max_section_size,
                field_limits.max_fields
            );
            return respond_and_finish(send, Some(&mut recv), 431).await;
        }
        Ok(Err(ReadError::Gone(_))) => return,
    };
    let req = headers::parse_request(&fields);
    drop(fields);
    let req = match req {
        Ok(r) => r,
        Err(RequestError::Malformed(e)) => return http::abort(&mut send, &mut recv, e.code),
        Err(RequestError::Respond(status, why)) => {
            tracing::debug!("answering {status}: {why}");
            return respond_and_finish(send, Some(&mut recv), status).await;
        }
    };
    // RFC 9220 / WebTransport: do not process the request before the peer's SETTINGS.
    let settings = match tokio::time::timeout_at(deadline, conn.peer_settings()).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return http::abort(&mut send, &mut recv, H3_REQUEST_REJECTED),
        Err(_) => return late(&mut send, &mut recv),
    };
    let (dialect, draft02_response, exclusive) =
        match request::admit(&req, &settings, conn.flow_control()) {
            Admission::Session {
                dialect,
                draft02_response,
                exclusive,
            } => (dialect, draft02_response, exclusive),
            Admission::Respond(status, why) => {
                tracing::debug!("answering {status}: {why}");
                return respond_and_finish(send, Some(&mut recv), status).await;
            }
        };
    let limit = Some(conn.opts.max_sessions_per_connection);
    let mut slot = match conn.reserve_session(exclusive, limit) {
        Ok(slot) => slot,
        Err(Busy::Full) => {
            ServerLimits::count(&limits.refused_connection_full);
            tracing::info!(
                remote = %conn.quic.remote_address(),
                "request answered 429: the connection carries its maximum of {} sessions",
                conn.opts.max_sessions_per_connection
            );
            return respond_and_finish(send, Some(&mut recv), 429).await;
        }
        Err(Busy::Open | Busy::Closing) => {
            tracing::debug!("second draft-15 session without flow control: rejected");
            return http::abort(&mut send, &mut recv, H3_REQUEST_REJECTED);
        }
    };
    let Some(session_place) = limits.sessions.try_hold() else {
        ServerLimits::count(&limits.refused_server_full);
        tracing::info!(
            remote = %conn.quic.remote_address(),
            "request answered 503: the server holds its maximum of sessions"
        );
        return respond_and_finish(send, Some(&mut recv), 503).await;
    };
    slot.hold_also(session_place);
    let Some(backlog_place) = limits.backlog.try_hold() else {
        ServerLimits::count(&limits.refused_backlog);
        tracing::info!(
            remote = %conn.quic.remote_address(),
            "request answered 503: the request backlog is full"
        );
        return respond_and_finish(send, Some(&mut recv), 503).await;
    };
    ServerLimits::count(&limits.requests_received);
    let request = SessionRequest {
        slot: Some(slot),
        backlog: Some(backlog_place),
        conn,
        streams: Some((send, recv)),
        leftover: reader.into_remaining().freeze(),
        draft02_response,
        info: RequestInfo {
            path: req.path,
            authority: req.authority,
            protocol: req.protocol,
            headers: req.headers,
            dialect,
        },
    };
    if let Err(e) = tx.try_send(request) {
        // Server closed (the backlog gauge keeps the channel from filling): the
        // request's Drop answers it.
        tracing::debug!("session request not queued: {e}");
    }
}

/// Answer a request stream with `status` and end it; stop reading it with H3_NO_ERROR
/// (RFC 9114 §4.1.1: the rest of the request is not needed), not quinn's implicit 0.
async fn respond_and_finish(
    mut send: quinn::SendStream,
    recv: Option<&mut quinn::RecvStream>,
    status: u16,
) {
    if let Some(recv) = recv {
        http::stop_reading(recv, H3_NO_ERROR);
    }
    let status = status.to_string();
    if http::write_headers(&mut send, &[(":status", &status)])
        .await
        .is_ok()
    {
        let _ = send.finish();
    }
}

/// A client's request to open a session. Accept or reject it; dropping it unanswered
/// rejects it with 503.
pub struct SessionRequest {
    /// The session's place on the connection (held until it is answered, then, if
    /// accepted, by the session's CONNECT stream reader).
    slot: Option<SessionSlot>,
    /// Its place in the server's request backlog, given back once it is answered.
    backlog: Option<Held>,
    conn: Arc<ConnInner>,
    streams: Option<(quinn::SendStream, quinn::RecvStream)>,
    leftover: Bytes,
    draft02_response: bool,
    info: RequestInfo,
}

impl std::fmt::Debug for SessionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRequest")
            .field("info", &self.info)
            .finish()
    }
}

impl SessionRequest {
    /// Path, authority, protocol, headers and dialect of the request.
    pub fn info(&self) -> &RequestInfo {
        &self.info
    }
    pub fn path(&self) -> &str {
        &self.info.path
    }
    pub fn authority(&self) -> &str {
        &self.info.authority
    }
    pub fn origin(&self) -> Option<&str> {
        self.info.origin()
    }
    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.quic.remote_address()
    }

    /// Accept: answer 200 and return the established session.
    pub async fn accept(mut self) -> Result<Session, Error> {
        let (send, recv) = self
            .streams
            .take()
            .ok_or_else(|| Error::InvalidState("request already answered".into()))?;
        self.backlog = None;
        let shared = SessionShared::new(self.conn.clone(), send, self.info.clone());
        // Register before answering so datagrams that follow the 200 are routed.
        self.conn.register(shared.clone());
        let mut slot = self.slot.take();
        if let Some(slot) = &mut slot {
            slot.established();
        }
        let mut fields: Vec<(&str, &str)> = vec![(":status", "200")];
        if self.draft02_response {
            fields.push((headers::DRAFT_RESPONSE_HEADER, "draft02"));
        }
        let result = match shared.send.lock().await.as_mut() {
            Some(s) => http::write_headers(s, &fields).await,
            None => Err(Error::InvalidState("CONNECT stream gone".into())),
        };
        if let Err(e) = result {
            shared.set_closed(super::close::CloseReason::Local {
                code: 0,
                reason: e.to_string(),
            });
            return Err(e);
        }
        self.conn.rt.spawn(connect_stream::run(
            shared.clone(),
            recv,
            std::mem::take(&mut self.leftover),
            slot,
        ));
        Ok(Session::new(shared, None))
    }

    /// Reject with an HTTP status (e.g. 403, 404, 429); 2xx is not a rejection.
    pub async fn reject(mut self, status: u16) -> Result<(), Error> {
        if !(100..=599).contains(&status) || (200..300).contains(&status) {
            return Err(Error::InvalidArgument(format!(
                "{status} is not a rejection status"
            )));
        }
        if let Some((send, mut recv)) = self.streams.take() {
            respond_and_finish(send, Some(&mut recv), status).await;
        }
        Ok(())
    }
}

impl Drop for SessionRequest {
    fn drop(&mut self) {
        if let Some((send, mut recv)) = self.streams.take() {
            self.conn.rt.spawn(async move {
                respond_and_finish(send, Some(&mut recv), 503).await;
            });
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}
