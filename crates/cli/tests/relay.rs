//! `wtd serve --nats URL --relay CHANNEL` (issue 16) against a real nats-server on a free
//! loopback port (`tests/common/nats.rs`): three relay processes with clients on each
//! while NATS is killed and restarted, and the relay options' errors. Here rather than
//! in `tests/cluster.rs` because only tests of the `wtd` package get the binary
//! (`CARGO_BIN_EXE_wtd`).
//!
//! Every wait is bounded by `LIMIT`, a safety net and never an assertion about speed.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::nats::{expect_exactly, line_reader, set, Nats};
use common::*;
use wtdatagram::{Client, ClientConfig, Session, Verify};

const WTD: &str = env!("CARGO_BIN_EXE_wtd");

/// A `wtd serve --nats URL --relay CHANNEL --max 2` process.
struct RelayNode {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
    hash: [u8; 32],
    name: String,
}

impl Drop for RelayNode {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl RelayNode {
    fn start(name: &str, nats: &str, channel: &str, max: usize) -> RelayNode {
        let mut child = Command::new(WTD)
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--nats",
                nats,
                "--relay",
                channel,
            ])
            .args(["--max", &max.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning wtd serve --relay");
        let lines = line_reader(child.stdout.take().expect("stdout"));
        let mut node = RelayNode {
            child,
            lines,
            port: 0,
            hash: [0; 32],
            name: name.into(),
        };
        let l = node.expect_line("listening ");
        let addr = l["listening https://".len()..].trim_end_matches('/');
        node.port = addr.rsplit(':').next().unwrap().parse().unwrap();
        let h = node.expect_line("cert-sha256 ");
        let h = &h["cert-sha256 ".len()..];
        for i in 0..32 {
            node.hash[i] = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap();
        }
        node.expect_line(&format!(
            "relay channel={channel} subject=wtd.bcast.{channel} "
        ));
        node
    }

    /// The next line that starts with `prefix` (earlier lines are skipped).
    fn expect_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("{}: no line {prefix:?} ({e})", self.name),
            }
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/relay", self.port)
    }
}

/// Parse `stats k=v ...` into (key, value) pairs.
fn stats_fields(line: &str) -> Vec<(String, u64)> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// Three relay nodes with two clients each. A datagram from any client reaches all six
/// clients exactly once; NATS is killed (each node then relays to its own clients only)
/// and restarted (all six again), and each node's final counters are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_relay_nodes_exactly_once_across_a_nats_restart() {
    init_log();
    let mut nats = Nats::start();
    const NODES: usize = 3;
    const PER_NODE: usize = 2;
    let mut nodes: Vec<RelayNode> = (0..NODES)
        .map(|i| RelayNode::start(&format!("node{i}"), &nats.url(), "lobby", PER_NODE))
        .collect();
    for n in &mut nodes {
        n.expect_line("bus ready reconnects=0");
    }
    // Clients, and each node's word that it took them in.
    let mut clients: Vec<(usize, Client, Session)> = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        for _ in 0..PER_NODE {
            let c = Client::new(ClientConfig {
                verify: Verify::Hashes(vec![n.hash]),
                ..Default::default()
            })
            .unwrap();
            let s = within(c.open_session(&n.url())).await.expect("session");
            n.expect_line("session ");
            clients.push((i, c, s));
        }
    }

    // Round 1: every client says something; everyone hears everything once.
    let round = |tag: &str| -> Vec<String> {
        (0..NODES * PER_NODE)
            .map(|k| format!("{tag}-client{k}"))
            .collect()
    };
    let r1 = round("r1");
    for ((_, _, s), d) in clients.iter().zip(&r1) {
        s.send_datagram(d.as_bytes()).await.unwrap();
    }
    for (_, _, s) in &clients {
        expect_exactly(s, &set(r1.clone())).await;
    }

    // Round 2, NATS down: each node relays to its own clients only.
    nats.kill();
    for n in &mut nodes {
        n.expect_line("bus down");
    }
    let r2 = round("r2");
    for ((_, _, s), d) in clients.iter().zip(&r2) {
        s.send_datagram(d.as_bytes()).await.unwrap();
    }
    for (k, (i, _, s)) in clients.iter().enumerate() {
        let local: Vec<String> = clients
            .iter()
            .zip(&r2)
            .filter(|((j, _, _), _)| j == i)
            .map(|(_, d)| d.clone())
            .collect();
        assert_eq!(local.len(), PER_NODE, "client {k}");
        expect_exactly(s, &set(local)).await;
    }

    // Round 3, NATS back on the same port: cross-node delivery resumes by itself.
    nats.restart();
    for n in &mut nodes {
        n.expect_line("bus ready reconnects=1");
    }
    let r3 = round("r3");
    for ((_, _, s), d) in clients.iter().zip(&r3) {
        s.send_datagram(d.as_bytes()).await.unwrap();
    }
    for (_, _, s) in &clients {
        expect_exactly(s, &set(r3.clone())).await;
    }

    // Close every session; each node exits after its two (--max 2) and its last stats
    // line is exact: 6 broadcasts (2 failed while NATS was down), 8 received from the
    // other nodes (rounds 1 and 3), each delivered to 2 local members.
    for (_, _, s) in &clients {
        s.close(0, "done");
    }
    for n in &mut nodes {
        n.expect_line("closed ");
        n.expect_line("closed ");
        // The last stats line before the process exits (stdout closes).
        let mut last = String::new();
        while let Ok(l) = n.lines.recv_timeout(LIMIT) {
            if l.starts_with("stats ") {
                last = l;
            }
        }
        let f = stats_fields(&last);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("broadcasts"), Some(6), "{}: {last}", n.name);
        assert_eq!(get("published"), Some(4), "{}: {last}", n.name);
        assert_eq!(get("bus_failures"), Some(2), "{}: {last}", n.name);
        assert_eq!(get("received"), Some(8), "{}: {last}", n.name);
        assert_eq!(
            get("delivered_local"),
            Some(((6 + 8) * PER_NODE) as u64),
            "{}: {last}",
            n.name
        );
        assert_eq!(get("reconnects"), Some(1), "{}: {last}", n.name);
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(st) = n.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "{} did not exit", n.name);
            thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{}: {status}", n.name);
    }
}

/// `--nats` and `--relay` go together; a bad channel or an absent bus is a clear error.
#[test]
fn relay_options_are_checked() {
    let run = |args: &[&str]| {
        let out = Command::new(WTD)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running wtd");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base = ["serve", "--bind", "127.0.0.1:0"];
    let (code, err) = run(&[&base[..], &["--nats", "nats://127.0.0.1:1"]].concat());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--nats and --relay go together"), "{err}");
    let (code, err) = run(&[&base[..], &["--relay", "x"]].concat());
    assert_eq!(code, Some(2), "{err}");
    let nats = Nats::start();
    let url = nats.url();
    let (code, err) = run(&[&base[..], &["--nats", &url, "--relay", "a b"]].concat());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--relay: "), "{err}");
    // Nothing listens on port 1 of loopback.
    let (code, err) = run(&[&base[..], &["--nats", "nats://127.0.0.1:1", "--relay", "x"]].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("connecting to NATS at nats://127.0.0.1:1"),
        "{err}"
    );
}
