//! A real browser against our server: headless Debian Chromium opens a WebTransport
//! session (draft-02, `serverCertificateHashes`) to `Server`, exchanges datagrams that our
//! side echoes, closes the session with a code and reason, and reports over plain HTTP.
//!
//! Needs `/usr/bin/chromium` (`scripts/setup-chromium.sh` installs it); fails without it.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wtdatagram::{CloseReason, Dialect, Error, Server, ServerConfig};

const CHROMIUM: &str = "/usr/bin/chromium";
const PAGE: &str = include_str!("interop/chromium_page.html");
/// Datagrams the page sends (and expects echoed): 1,000 each way (issue 6).
const N: u32 = 1000;
/// The whole test stays below this; every wait is bounded by what is left of it.
const OVERALL: Duration = Duration::from_secs(55);

/// Headless Chromium in its own process group, with a throwaway profile. Dropping it kills
/// the whole group (browser, zygote, renderers) and removes the profile.
struct Chromium {
    child: Child,
    dir: PathBuf,
}

impl Chromium {
    fn launch(url: &str) -> Chromium {
        let dir = std::env::temp_dir().join(format!(
            "wtd-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(dir.join("profile")).expect("create chromium temp dir");
        let log = std::fs::File::create(dir.join("chromium.log")).expect("create chromium log");
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.join("profile").to_string_lossy()
            ))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {CHROMIUM}: {e}"));
        Chromium { child, dir }
    }

    /// The last lines Chromium wrote, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("chromium.log")).unwrap_or_default();
        // Headless Chromium without a session bus logs dbus errors constantly; skip them.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains(":ERROR:dbus/"))
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- chromium output (tail) ---\n{}", self.log_tail());
        }
        // SAFETY: kill(2) on our child's process group (process_group(0) made its pid the pgid).
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Decode `application/x-www-form-urlencoded`.
fn parse_form(body: &str) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(kv), String::new()),
        })
        .collect()
}

/// One HTTP/1.1 exchange: GET / serves the page, POST /result forwards the body, POST /log
/// prints it. Always answers with `Connection: close`.
async fn serve_http(mut stream: TcpStream, results: mpsc::Sender<String>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let header_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let content_length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = buf[header_end..].to_vec();
    while body.len() < content_length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    let path = target.split('?').next().unwrap_or_default();
    let (status, ctype, content) = match (method.as_str(), path) {
        ("GET", "/") => ("200 OK", "text/html; charset=utf-8", PAGE),
        ("POST", "/result") => {
            let _ = results.send(body).await;
            ("204 No Content", "text/plain", "")
        }
        ("POST", "/log") => {
            eprintln!("[page] {body}");
            ("204 No Content", "text/plain", "")
        }
        _ => ("404 Not Found", "text/plain", ""),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{content}",
        content.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// What our server saw of the browser's session.
#[derive(Debug)]
struct ServerSide {
    origin: Option<String>,
    path: String,
    dialect: Dialect,
    echoed: u64,
    echo_too_large: u64,
    echo_waited_for_mtu: u64,
    received: u64,
    recv_dropped: u64,
    /// An oversize send on the browser's session was refused here (TooLarge) and counted.
    oversize_refused: bool,
    close: CloseReason,
}

/// Accept one session, echo every datagram until it closes, report what happened.
async fn accept_and_echo(server: Arc<Server>) -> ServerSide {
    let req = server
        .accept()
        .await
        .expect("server closed before a request");
    eprintln!("[server] request: {:?}", req.info());
    let origin = req.origin().map(str::to_string);
    let path = req.path().to_string();
    let dialect = req.info().dialect;
    let session = req.accept().await.expect("accept the browser's session");
    eprintln!(
        "[server] session accepted; our max_datagram_size now {:?}",
        session.max_datagram_size()
    );
    // Oversize is refused on our side, before anything reaches the browser.
    let big = vec![0u8; 65_536];
    let oversize_refused = matches!(
        session.try_send_datagram(&big),
        Err(Error::TooLarge { size: 65_536, .. })
    ) && session.stats().send_too_large == 1;
    let (mut echoed, mut echo_too_large, mut echo_waited_for_mtu) = (0u64, 0u64, 0u64);
    'datagrams: loop {
        let d = match session.recv_datagram().await {
            Ok(d) => d,
            Err(Error::Closed(_)) => break,
            Err(e) => panic!("recv_datagram: {e}"),
        };
        // Chromium's maxDatagramSize (1211) is above quinn's limit before path-MTU discovery
        // (1161 after our 1-byte prefix, DESIGN.md §3). Discovery finishes within a few
        // loopback round trips, normally before the session even exists; if a max-size
        // echo still comes too early, wait (bounded) for the limit to grow.
        let give_up = Instant::now() + Duration::from_secs(2);
        loop {
            match session.send_datagram(&d).await {
                Ok(()) => {
                    echoed += 1;
                    break;
                }
                Err(Error::TooLarge { size, max }) if Instant::now() < give_up => {
                    eprintln!("[server] {size} bytes above our max {max} yet; waiting for MTU");
                    echo_waited_for_mtu += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(Error::TooLarge { size, max }) => {
                    eprintln!("[server] cannot echo {size} bytes: max is {max}");
                    echo_too_large += 1;
                    break;
                }
                Err(e) => {
                    eprintln!("[server] echo failed: {e}");
                    break 'datagrams;
                }
            }
        }
    }
    let close = session.closed().await;
    let stats = session.stats();
    ServerSide {
        origin,
        path,
        dialect,
        echoed,
        echo_too_large,
        echo_waited_for_mtu,
        received: stats.datagrams_received,
        recv_dropped: stats.recv_dropped,
        oversize_refused,
        close,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_echoes_datagrams_and_closes_with_code_and_reason() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/setup-chromium.sh (apt-get install chromium) \
         to run this browser interop test"
    );
    let version = Command::new(CHROMIUM)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    // "Chromium 156.0.8078.73 built on Debian ..." -> "Chromium 156"
    let major = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').next())
        .unwrap_or("?");
    let peer = format!("Chromium {major}");
    let cell = common::MatrixCell::start(&peer, "client", "draft-02");
    let deadline = Instant::now() + OVERALL;

    let server = Arc::new(Server::bind(ServerConfig::default()).expect("bind server"));
    let wt_port = server.local_addr().port();

    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
    let http_addr: SocketAddr = http.local_addr().expect("http addr");
    let (result_tx, mut result_rx) = mpsc::channel::<String>(4);
    let http_task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = http.accept().await else {
                break;
            };
            let tx = result_tx.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), serve_http(stream, tx)).await;
            });
        }
    });

    let server_task = tokio::spawn(accept_and_echo(server.clone()));

    let page_url = format!(
        "http://{http_addr}/?port={wt_port}&hash={}&n={N}",
        hex(&server.cert_sha256())
    );
    eprintln!("[test] opening {page_url}");
    let chromium = Chromium::launch(&page_url);

    let body = match tokio::time::timeout(left(deadline), result_rx.recv()).await {
        Ok(Some(body)) => body,
        Ok(None) => panic!("HTTP server stopped before the page reported"),
        Err(_) => panic!("the page did not report within {OVERALL:?}"),
    };
    eprintln!("[test] page result: {body}");
    let result = parse_form(&body);
    let num = |k: &str| -> u64 {
        result
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("result field {k} missing or not a number: {body}"))
    };

    assert_eq!(
        num("ok"),
        1,
        "page failed: {}",
        result.get("error").map(String::as_str).unwrap_or("")
    );

    // The page closed the session before it reported, so our side ends promptly.
    let side = match tokio::time::timeout(left(deadline).min(Duration::from_secs(10)), server_task)
        .await
    {
        Ok(Ok(side)) => side,
        Ok(Err(e)) => panic!("server task failed: {e}"),
        Err(_) => panic!("our server never saw the session close"),
    };
    eprintln!("[test] server side: {side:?}");
    drop(chromium);
    http_task.abort();

    let max = num("max");
    eprintln!(
        "[test] Chromium maxDatagramSize = {max}; echoes that waited for MTU discovery: {}",
        side.echo_waited_for_mtu
    );
    assert!(max >= 1000, "implausible maxDatagramSize {max}");

    assert_eq!(
        side.origin.as_deref(),
        Some(format!("http://127.0.0.1:{}", http_addr.port()).as_str())
    );
    assert_eq!(side.path, "/echo");
    assert_eq!(side.dialect, Dialect::Draft02, "Chromium speaks draft-02");

    // Loopback with 20 datagrams in flight: Chromium and our server lose nothing.
    assert_eq!(num("sent"), N as u64);
    assert_eq!(num("received"), N as u64, "echoes lost: {body}; {side:?}");
    assert_eq!(num("lost"), 0);
    assert_eq!(num("mismatches"), 0, "echoes with wrong content");
    assert_eq!(side.received, N as u64);
    assert_eq!(side.echoed, N as u64);
    assert_eq!(side.echo_too_large, 0);
    assert_eq!(side.recv_dropped, 0);
    assert!(
        side.oversize_refused,
        "oversize send not refused with TooLarge"
    );
    assert_eq!(num("smallest"), 1, "the page sends sizes from 1 byte");
    assert_eq!(
        num("largest"),
        max,
        "the page sends sizes up to maxDatagramSize"
    );

    assert_eq!(
        side.close,
        CloseReason::Remote {
            code: 4000,
            reason: "bye from chromium".into()
        }
    );
    let detail = format!(
        "1 session (Chromium opens one connection per WebTransport), {N}/{N} datagrams each \
         way (1..={max} B = maxDatagramSize) intact, oversize refused here, close 4000 + \
         reason seen here"
    );
    println!("{peer} client -> wtdatagram server: {detail}");
    cell.pass(&detail);
}
