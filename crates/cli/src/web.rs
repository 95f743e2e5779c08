//! `wtd serve --web ADDR`: a page, served over plain HTTP, that connects to this server
//! from a browser through the JavaScript module (`bindings/js`) and shows what happens.
//!
//! The HTTP side is a small HTTP/1.1 responder on tokio, bounded in every way a client
//! could stretch it: at most [`MAX_CONNECTIONS`] connections at once (more wait in the
//! kernel's backlog), a request head of at most [`MAX_HEAD`] bytes, [`TIMEOUT`] per
//! connection, GET and HEAD only, one request per connection (`Connection: close`).
//! Everything it serves is compiled into the binary: the page (`web/`) and the compiled
//! module (`bindings/js/dist/*.js`).
//!
//! Routes: `/` the page; `/app.js` its script; `/wtdatagram/NAME.js` the module;
//! `/config.json` where the WebTransport server is, its certificate hash and its mode
//! (`echo`, or `relay` with the channel: then the page is one more client of the
//! channel, and what it receives is what every client of the channel sent, its own
//! datagrams included);
//! `/stats.json` the server's statistics and each open session's (every field their
//! `Debug` form shows, so fields added to the stats structs appear without a change
//! here).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use wtdatagram::transport::tls;
use wtdatagram::{Server, Session};

/// Connections handled at once.
pub const MAX_CONNECTIONS: usize = 32;
/// Largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 16 * 1024;
/// Time a connection may take, from accept to the last byte of the answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

const INDEX_HTML: &str = include_str!("../../../web/index.html");
const APP_JS: &str = include_str!("../../../web/app.js");

/// The compiled module, file by file (`crates/cli/tests/web.rs` checks that every file
/// of `bindings/js/dist` is here).
pub const MODULE: &[(&str, &str)] = &[
    (
        "connect.js",
        include_str!("../../../bindings/js/dist/connect.js"),
    ),
    (
        "errors.js",
        include_str!("../../../bindings/js/dist/errors.js"),
    ),
    (
        "index.js",
        include_str!("../../../bindings/js/dist/index.js"),
    ),
    ("json.js", include_str!("../../../bindings/js/dist/json.js")),
    (
        "message.js",
        include_str!("../../../bindings/js/dist/message.js"),
    ),
    (
        "msgpack.js",
        include_str!("../../../bindings/js/dist/msgpack.js"),
    ),
    (
        "queue.js",
        include_str!("../../../bindings/js/dist/queue.js"),
    ),
    (
        "reliability.js",
        include_str!("../../../bindings/js/dist/reliability.js"),
    ),
    (
        "signal.js",
        include_str!("../../../bindings/js/dist/signal.js"),
    ),
    (
        "stream.js",
        include_str!("../../../bindings/js/dist/stream.js"),
    ),
    (
        "structured.js",
        include_str!("../../../bindings/js/dist/structured.js"),
    ),
    (
        "throughput.js",
        include_str!("../../../bindings/js/dist/throughput.js"),
    ),
    (
        "value.js",
        include_str!("../../../bindings/js/dist/value.js"),
    ),
];

/// What `wtd serve` tells the page about a session.
struct Tracked {
    session: Session,
    path: String,
    origin: String,
    dialect: &'static str,
}

/// The sessions `wtd serve` holds, for `/stats.json`.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<BTreeMap<u64, Tracked>>>);

/// Removes its session from [`Sessions`] when dropped.
pub struct TrackGuard(Sessions, u64);

impl Drop for TrackGuard {
    fn drop(&mut self) {
        self.0 .0.lock().remove(&self.1);
    }
}

impl Sessions {
    /// Show `session` (numbered `id` like `wtd serve`'s lines) until the guard drops.
    pub fn track(&self, id: u64, session: &Session) -> TrackGuard {
        let req = session.request();
        self.0.lock().insert(
            id,
            Tracked {
                session: session.clone(),
                path: req.path.clone(),
                origin: req.origin().unwrap_or_default().to_string(),
                dialect: req.dialect.name(),
            },
        );
        TrackGuard(self.clone(), id)
    }
}

/// `Name { a: 1, b: 2.5ms }` -> `{"a": 1, "b": "2.5ms"}`: every field a flat stats
/// struct's `Debug` shows (numbers as numbers, anything else as its text).
pub fn debug_fields(v: &impl Debug) -> serde_json::Value {
    let text = format!("{v:?}");
    let mut out = serde_json::Map::new();
    let Some(open) = text.find('{') else {
        return serde_json::Value::Object(out);
    };
    let body = text[open + 1..].trim_end().trim_end_matches('}');
    let (mut depth, mut start) = (0i32, 0usize);
    let mut fields = Vec::new();
    for (i, c) in body.char_indices() {
        match c {
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                fields.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(&body[start..]);
    for f in fields {
        if let Some((k, v)) = f.split_once(':') {
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                continue;
            }
            let value = if let Ok(i) = v.parse::<i64>() {
                serde_json::json!(i)
            } else if let Ok(u) = v.parse::<u64>() {
                serde_json::json!(u)
            } else {
                match v.parse::<f64>() {
                    Ok(n) if n.is_finite() => serde_json::json!(n),
                    _ => serde_json::json!(v.trim_matches('"')),
                }
            };
            out.insert(k.to_string(), value);
        }
    }
    serde_json::Value::Object(out)
}

/// What the page shows: the server, its sessions and its mode.
pub struct Page {
    pub server: Arc<Server>,
    pub sessions: Sessions,
    /// The certificate is self-signed: the page trusts it by its hash
    /// (serverCertificateHashes), else through the browser's trust store.
    pub self_signed: bool,
    /// Relay mode's channel (`--relay`); `None`: the echo server.
    pub relay: Option<String>,
}

struct State {
    server: Arc<Server>,
    sessions: Sessions,
    /// SHA-256 of the certificate when it is self-signed (for serverCertificateHashes).
    cert_hash: Option<[u8; 32]>,
    relay: Option<String>,
}

/// Bind `addr` and serve the page until the process ends. Returns the bound address.
pub async fn serve(addr: SocketAddr, page: Page) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let state = Arc::new(State {
        cert_hash: page.self_signed.then(|| page.server.cert_sha256()),
        server: page.server,
        sessions: page.sessions,
        relay: page.relay,
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::debug!("web: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let state = state.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(TIMEOUT, handle(stream, &state)).await;
                drop(permit);
            });
        }
    });
    Ok(local)
}

/// Read one request head; answer it; close.
async fn handle(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() >= MAX_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
                true,
            )
            .await;
        }
        let mut chunk = [0u8; 2048];
        let want = chunk.len().min(MAX_HEAD - buf.len());
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let with_body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => {
            return respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"GET or HEAD only\n",
                true,
            )
            .await
        }
    };
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body): (&str, &str, Vec<u8>) = match path {
        "/" | "/index.html" => ("200 OK", "text/html; charset=utf-8", INDEX_HTML.into()),
        "/app.js" => ("200 OK", "text/javascript; charset=utf-8", APP_JS.into()),
        "/config.json" => (
            "200 OK",
            "application/json",
            config(state).to_string().into(),
        ),
        "/stats.json" => (
            "200 OK",
            "application/json",
            stats(state).to_string().into(),
        ),
        p => match p
            .strip_prefix("/wtdatagram/")
            .and_then(|name| MODULE.iter().find(|(n, _)| *n == name))
        {
            Some((_, js)) => (
                "200 OK",
                "text/javascript; charset=utf-8",
                js.as_bytes().to_vec(),
            ),
            None => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        },
    };
    respond(&mut stream, status, ctype, &body, with_body).await
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

fn config(state: &State) -> serde_json::Value {
    let (mode, path) = match state.relay {
        Some(_) => ("relay", "/relay"),
        None => ("echo", "/echo"),
    };
    serde_json::json!({
        "port": state.server.local_addr().port(),
        "path": path,
        "certificateHash": state.cert_hash.map(|h| tls::sha256_hex(&h)),
        "mode": mode,
        "channel": state.relay,
    })
}

fn stats(state: &State) -> serde_json::Value {
    let sessions: Vec<serde_json::Value> = state
        .sessions
        .0
        .lock()
        .iter()
        .map(|(id, t)| {
            serde_json::json!({
                "id": id,
                "path": t.path,
                "origin": t.origin,
                "dialect": t.dialect,
                "maxDatagramSize": t.session.max_datagram_size().ok(),
                "stats": debug_fields(&t.session.stats()),
            })
        })
        .collect();
    serde_json::json!({
        "server": debug_fields(&state.server.stats()),
        "sessions": sessions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read only through Debug, which is what debug_fields takes apart.
    #[allow(dead_code)]
    #[derive(Debug)]
    struct S {
        a: u64,
        b: f64,
        c: Duration,
        d: [u8; 2],
    }

    #[test]
    fn debug_fields_of_a_flat_struct() {
        let v = debug_fields(&S {
            a: 7,
            b: 2.5,
            c: Duration::from_millis(3),
            d: [1, 2],
        });
        assert_eq!(v["a"], 7);
        assert_eq!(v["b"], 2.5);
        assert_eq!(v["c"], "3ms");
        assert_eq!(v["d"], "[1, 2]");
        assert_eq!(v.as_object().unwrap().len(), 4);
    }
}
