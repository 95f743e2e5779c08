#![allow(dead_code)]
//! Helpers shared by the integration tests: a loopback server and a client that trusts it.

use std::time::Duration;

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
