//! A real nats-server on a free loopback port, for the cluster tests (`tests/cluster.rs`,
//! `crates/cli/tests/relay.rs`), and what those tests check clients with.
//!
//! nats-server comes from `scripts/setup-nats.sh` (Debian's package; run by
//! `scripts/setup.sh`), or from `WTD_NATS_SERVER`. Without it the tests fail and say
//! so: they never pass without having run.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use wtdatagram::Session;

use super::{within, LIMIT};

pub fn nats_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WTD_NATS_SERVER") {
        return p.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/usr/local/sbin".into()]);
    for d in dirs {
        let p = d.join("nats-server");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "nats-server not found: run `bash scripts/setup-nats.sh` (Debian's nats-server) \
         or set WTD_NATS_SERVER to its path"
    );
}

/// A nats-server child process on 127.0.0.1, killed when dropped.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
}

/// Start nats-server with `args` and `-p port` (-1: a free one); the port it listens on.
fn spawn_nats(args: &[String], port: i32) -> Option<(Child, u16)> {
    let mut child = Command::new(nats_bin())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning nats-server");
    // Drained for the server's whole life: a Go program dies of SIGPIPE when its stderr
    // is a closed pipe (as it would be at its next log line, e.g. a refused login).
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    let mut port = None;
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(p) = line
            .split("Listening for client connections on 127.0.0.1:")
            .nth(1)
        {
            port = Some(p.trim().parse().expect("port"));
        }
        if line.contains("Server is ready") {
            break;
        }
    }
    match port {
        Some(p) => Some((child, p)),
        None => {
            // It could not listen (e.g. the port of a restart is still held).
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

impl Nats {
    pub fn start() -> Nats {
        Nats::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Nats {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, port) = spawn_nats(&args, -1).expect("nats-server did not start listening");
        Nats {
            child: Some(child),
            port,
            args,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again on the same port (bounded retries while the port is still held).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill before restart");
        for _ in 0..50 {
            if let Some((c, p)) = spawn_nats(&self.args, self.port.into()) {
                assert_eq!(p, self.port);
                self.child = Some(c);
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("nats-server did not restart on port {}", self.port);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The lines of `stream`, read on a thread of their own.
pub fn line_reader(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Receive exactly `want` on `s` (any order), failing on anything else or a repeat.
pub async fn expect_exactly(s: &Session, want: &BTreeSet<Vec<u8>>) {
    let mut got = BTreeSet::new();
    while got.len() < want.len() {
        let d = within(s.recv_datagram()).await.expect("client receives");
        assert!(
            want.contains(d.as_ref()),
            "unexpected datagram {:?}",
            String::from_utf8_lossy(&d)
        );
        assert!(
            got.insert(d.to_vec()),
            "datagram {:?} delivered twice",
            String::from_utf8_lossy(&d)
        );
    }
}

pub fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<Vec<u8>> {
    items.into_iter().map(String::into_bytes).collect()
}
