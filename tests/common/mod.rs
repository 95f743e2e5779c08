#![allow(dead_code)]
//! Helpers shared by the integration tests: a loopback server and a client that trusts it.

use std::time::Duration;

pub mod exchange;
pub mod nats;
pub mod peer;
pub mod raw;
pub mod relay;

use wtdatagram::{Client, ClientConfig, Server, ServerConfig, Session, TransportOptions, Verify};

/// Every wait in the tests is bounded by this; it is a safety net, never an assertion.
pub const LIMIT: Duration = Duration::from_secs(20);

pub fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn server_with(opts: TransportOptions) -> Server {
    init_log();
    Server::bind(ServerConfig {
        transport: opts,
        ..Default::default()
    })
    .expect("bind server")
}

pub fn server() -> Server {
    server_with(TransportOptions::default())
}

pub fn client_for(server: &Server) -> Client {
    Client::new(ClientConfig {
        verify: Verify::Hashes(vec![server.cert_sha256()]),
        ..Default::default()
    })
    .expect("client")
}

pub fn url(server: &Server, path: &str) -> String {
    format!("https://127.0.0.1:{}{}", server.local_addr().port(), path)
}

pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("operation exceeded the test safety limit")
}

/// Accept every session request on `server` and echo each datagram back.
pub fn spawn_echo(server: std::sync::Arc<Server>) {
    tokio::spawn(async move {
        while let Some(req) = server.accept().await {
            tokio::spawn(async move {
                let s = req.accept().await.expect("accept");
                echo(s).await;
            });
        }
    });
}

pub async fn echo(s: Session) {
    while let Ok(d) = s.recv_datagram().await {
        if s.send_datagram(&d).await.is_err() {
            break;
        }
    }
}

/// Open a session from `client` to `server` and accept it: (server side, client side).
pub async fn pair(server: &Server, client: &wtdatagram::Client, url: &str) -> (Session, Session) {
    let (ss, cs) = tokio::join!(
        async {
            server
                .accept()
                .await
                .expect("request")
                .accept()
                .await
                .expect("accept")
        },
        client.open_session(url)
    );
    (ss, cs.expect("open session"))
}

/// One cell of the interoperability matrix (issue 6): peer × role × dialect.
///
/// A cell is written as "fail" the moment it starts and only rewritten as "pass" by
/// [`MatrixCell::pass`] after every assertion held, so a panic, a hang or an early return
/// can never show up as a pass. `scripts/interop-matrix.sh` prints the cells;
/// `scripts/test.sh` clears them before each run. Cells for a peer that a setup script
/// could not install are written there as "skip" with the reason, never by a test.
pub struct MatrixCell {
    path: std::path::PathBuf,
    cols: String,
    passed: bool,
}

/// Where the cells live: `target/interop-matrix/<peer>__<role>__<dialect>`.
pub fn matrix_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/interop-matrix")
}

impl MatrixCell {
    /// `peer`: the peer and its version ("aioquic 1.7.2"); `role`: what the PEER is
    /// ("client" means the peer is the client and we are the server); `dialect`: the
    /// WebTransport dialect the pair speaks.
    pub fn start(peer: &str, role: &str, dialect: &str) -> MatrixCell {
        let dir = matrix_dir();
        let _ = std::fs::create_dir_all(&dir);
        let file: String = format!("{peer}__{role}__{dialect}")
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '-',
            })
            .collect();
        let cell = MatrixCell {
            path: dir.join(file),
            cols: format!("{peer}\t{role}\t{dialect}"),
            passed: false,
        };
        cell.write("fail", "started, did not finish");
        cell
    }

    fn write(&self, outcome: &str, detail: &str) {
        let _ = std::fs::write(&self.path, format!("{}\t{outcome}\t{detail}\n", self.cols));
    }

    /// Every check of the pair held: record it with what was measured (counts, sizes).
    pub fn pass(mut self, detail: &str) {
        self.write("pass", detail);
        self.passed = true;
    }
}

impl Drop for MatrixCell {
    fn drop(&mut self) {
        if self.passed {
            return;
        }
        // Only reached without `pass`: a failed assertion unwinding, or an early return.
        let why = if std::thread::panicking() {
            "assertion failed (see the test output)"
        } else {
            "ended without reaching its last check"
        };
        self.write("fail", why);
    }
}
