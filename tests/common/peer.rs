//! Driving an interop peer process over stdin/stdout lines (the aioquic and
//! pywebtransport scripts, `rust-peer`): each test gives its own program and arguments,
//! this module owns the process, its output and the failure reports.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use wtdatagram::{Server, Session};

/// Every wait on a peer is bounded by this (safety net, never an assertion on speed).
pub const LIMIT: Duration = Duration::from_secs(30);

/// A running peer process: its stdout lines, its stdin for commands, its stderr kept for
/// diagnostics, and the process killed when this is dropped (also on a failed assertion).
pub struct Peer {
    /// What runs ("aioquic peer", "rust-peer"): named in the failure reports.
    kind: String,
    /// This pair ("aioquic draft02 client -> wtdatagram server"): starts every failure.
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Lines read while looking for another one.
    backlog: VecDeque<String>,
    /// Lines that fail the test as soon as they are read while waiting for another one.
    fatal: fn(&str) -> bool,
    stderr: Arc<Mutex<String>>,
}

impl Peer {
    /// Start `command` (program, arguments and environment set by the caller) as the
    /// `kind` peer of the pair `name`, with piped stdio, killed on drop.
    pub fn spawn(kind: &str, name: &str, command: &mut Command) -> Peer {
        Peer::spawn_filtered(kind, name, command, |_| true)
    }

    /// [`Peer::spawn`], with every stdout line shown to `keep` first: a line it returns
    /// false for is never handed to the test (reports the test folds in elsewhere).
    pub fn spawn_filtered(
        kind: &str,
        name: &str,
        command: &mut Command,
        mut keep: impl FnMut(&str) -> bool + Send + 'static,
    ) -> Peer {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start the {kind}: {e}"));
        let (tx, lines) = mpsc::unbounded_channel();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                if keep(&line) && tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped stderr");
        let kept = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take().expect("piped stdin");
        Peer {
            kind: kind.to_string(),
            name: name.to_string(),
            child,
            stdin,
            lines,
            backlog: VecDeque::new(),
            fatal: |_| false,
            stderr,
        }
    }

    /// Lines for which `fatal` is true fail the test when [`Peer::line_of`] meets them.
    pub fn fatal_lines(mut self, fatal: fn(&str) -> bool) -> Peer {
        self.fatal = fatal;
        self
    }

    /// Fail the test: `what`, the lines not read yet, and everything the peer logged.
    pub fn fail(&self, what: &str) -> ! {
        let unread = if self.backlog.is_empty() {
            String::new()
        } else {
            format!("\n(unread peer lines: {:?})", self.backlog)
        };
        panic!(
            "{}: {what}{unread}\n--- {} stderr ---\n{}",
            self.name,
            self.kind,
            self.stderr.lock().unwrap()
        )
    }

    /// The very next stdout line, whatever it says.
    pub async fn next_line(&mut self, waiting_for: &str) -> String {
        if let Some(l) = self.backlog.pop_front() {
            return l;
        }
        match tokio::time::timeout(LIMIT, self.lines.recv()).await {
            Ok(Some(l)) => l,
            Ok(None) => self.fail(&format!("peer exited before printing {waiting_for}")),
            Err(_) => self.fail(&format!("no {waiting_for} from the peer within {LIMIT:?}")),
        }
    }

    /// The next line starting with one of `prefixes` (other lines are kept for later).
    pub async fn line_of(&mut self, prefixes: &[&str]) -> String {
        let wanted = |l: &str| prefixes.iter().any(|p| l.starts_with(p));
        if let Some(at) = self.backlog.iter().position(|l| wanted(l)) {
            return self.backlog.remove(at).expect("position is in range");
        }
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) if wanted(&l) => return l,
                Ok(Some(l)) if (self.fatal)(&l) => self.fail(&format!(
                    "peer reported {l:?} while we waited for {prefixes:?}"
                )),
                Ok(Some(l)) => self.backlog.push_back(l),
                Ok(None) => self.fail(&format!("peer exited before printing {prefixes:?}")),
                Err(_) => self.fail(&format!("no {prefixes:?} from the peer within {LIMIT:?}")),
            }
        }
    }

    /// The next line starting with `prefix` (other lines are kept for later).
    pub async fn line(&mut self, prefix: &str) -> String {
        self.line_of(&[prefix]).await
    }

    /// Lines already printed and not read, without waiting (for failure messages).
    pub fn drain(&mut self) -> Vec<String> {
        while let Ok(l) = self.lines.try_recv() {
            self.backlog.push_back(l);
        }
        self.backlog.iter().cloned().collect()
    }

    /// One line to the peer's stdin.
    pub async fn send_line(&mut self, line: &str) {
        let r = async {
            self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
            self.stdin.flush().await
        }
        .await;
        if let Err(e) = r {
            self.fail(&format!("writing {line:?} to the peer: {e}"));
        }
    }

    /// The peer's exit status, waited for (bounded).
    pub async fn exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(LIMIT, self.child.wait()).await {
            Ok(Ok(st)) => st,
            Ok(Err(e)) => self.fail(&format!("waiting for the peer: {e}")),
            Err(_) => self.fail(&format!("peer still running after {LIMIT:?}")),
        }
    }

    /// [`Peer::exit`], failing unless the peer exited successfully (`role`: "aioquic
    /// client", in the message).
    pub async fn exit_ok(&mut self, role: &str) {
        let status = self.exit().await;
        if !status.success() {
            self.fail(&format!("{role} exited with {status}"));
        }
    }

    /// The next session request on `server` (from this peer), accepted; `what` names it
    /// in the failure message ("session request from the peer").
    pub async fn accept(&self, server: &Server, what: &str) -> Session {
        let req = match tokio::time::timeout(LIMIT, server.accept()).await {
            Ok(Some(r)) => r,
            Ok(None) => self.fail("server closed before a request"),
            Err(_) => self.fail(&format!("no {what} within {LIMIT:?}")),
        };
        match req.accept().await {
            Ok(s) => s,
            Err(e) => self.fail(&format!("accepting the {what}: {e}")),
        }
    }

    /// Wait for exchange tasks that return the sizes they sent (smallest, largest): the
    /// overall (smallest, largest); the first error fails the test.
    pub async fn join_exchanges(
        &self,
        runs: Vec<tokio::task::JoinHandle<Result<(usize, usize), String>>>,
    ) -> (usize, usize) {
        let (mut smallest, mut largest) = (usize::MAX, 0);
        for r in runs {
            match r.await.expect("exchange task") {
                Ok((lo, hi)) => (smallest, largest) = (smallest.min(lo), largest.max(hi)),
                Err(e) => self.fail(&e),
            }
        }
        (smallest, largest)
    }

    /// `READY <port> ...`, the first line of a peer server: its port and the other words.
    pub async fn ready(&mut self) -> (u16, Vec<String>) {
        let ready = self.line("READY").await;
        let mut words = ready.split(' ');
        match (words.next(), words.next().and_then(|p| p.parse().ok())) {
            (Some("READY"), Some(port)) => (port, words.map(str::to_string).collect()),
            _ => self.fail(&format!("expected READY <port> ..., got {ready:?}")),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::env::var_os("WTD_INTEROP_VERBOSE").is_some() {
            eprintln!(
                "--- {} stderr ---\n{}",
                self.name,
                self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
            );
        }
    }
}

/// The repository root (where `.venv-interop`, `.peers` and `scripts` are).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/wtd-<tag>-<pid>-<nanos>`.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "wtd-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `der` as a PEM block labelled `label` (base64, 64 characters a line).
pub fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
