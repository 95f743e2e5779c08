//! The `wtd` binary end to end: real `serve` and `connect` processes on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const WTD: &str = env!("CARGO_BIN_EXE_wtd");
/// Safety net for every wait: never an assertion about speed.
const LIMIT: Duration = Duration::from_secs(30);

/// A child process that is killed (and reaped) if the test ends without waiting for it.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Proc { child, name }
    }

    /// Wait for exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "{} did not exit within {limit:?}",
                self.name
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Read a stream on a thread: lines arrive on the channel as they are printed.
fn line_reader(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
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

/// Read a whole stream on a thread; join the handle for its text.
fn collect(mut stream: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = stream.read_to_string(&mut s);
        s
    })
}

/// A running `wtd serve --bind 127.0.0.1:0 --max N`, with its address and hash.
struct Serve {
    proc: Proc,
    lines: mpsc::Receiver<String>,
    stderr: thread::JoinHandle<String>,
    port: u16,
    hash: String,
}

fn serve(max: u32) -> Serve {
    serve_with(max, &[], &[])
}

/// `wtd [pre...] serve --bind 127.0.0.1:0 --max N` with `env` set (and RUST_LOG unset
/// unless given).
fn serve_with(max: u32, pre: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut cmd = Command::new(WTD);
    cmd.env_remove("RUST_LOG").args(pre).args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--max",
        &max.to_string(),
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = Proc::spawn("wtd serve", &mut cmd);
    let lines = line_reader(proc.child.stdout.take().expect("stdout"));
    let stderr = collect(proc.child.stderr.take().expect("stderr"));
    let first = lines.recv_timeout(LIMIT).expect("serve's first line");
    let addr = first
        .strip_prefix("listening https://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    assert!(addr.starts_with("127.0.0.1:"), "{first}");
    let port: u16 = addr.rsplit(':').next().unwrap().parse().expect("port");
    assert_ne!(port, 0);
    let second = lines.recv_timeout(LIMIT).expect("serve's second line");
    let hash = second
        .strip_prefix("cert-sha256 ")
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .to_string();
    assert_eq!(hash.len(), 64, "{second}");
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "hash must be lowercase hex: {second}"
    );
    Serve {
        proc,
        lines,
        stderr,
        port,
        hash,
    }
}

impl Serve {
    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Wait for the server to exit on its own; its exit status and remaining stdout.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let status = self.proc.wait(LIMIT);
        let mut out = String::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            out.push_str(&line);
            out.push('\n');
        }
        let err = self.stderr.join().unwrap_or_default();
        (status, out, err)
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Run `wtd ARGS` with `input` on stdin, bounded by LIMIT.
fn wtd(args: &[&str], input: &str) -> Output {
    let mut proc = Proc::spawn("wtd", Command::new(WTD).args(args));
    let stdout = collect(proc.child.stdout.take().expect("stdout"));
    let stderr = collect(proc.child.stderr.take().expect("stderr"));
    let mut stdin = proc.child.stdin.take().expect("stdin");
    let input = input.to_string();
    // On a thread: a child that never reads must not block the test.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let status = proc.wait(LIMIT);
    let _ = writer.join();
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

#[test]
fn lines_from_stdin_are_echoed_and_the_server_logs_the_session() {
    let server = serve(1);
    let url = server.url("/cli");
    let out = wtd(&["connect", &url, "--hash", &server.hash], "hello\nworld\n");
    assert!(
        out.status.success(),
        "connect failed: {:?}\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    let first = out.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("connected {url} dialect=draft-15 max-datagram=")),
        "{}",
        out.stdout
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.contains(&"< hello"), "{}", out.stdout);
    assert!(lines.contains(&"< world"), "{}", out.stdout);
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("stats sent=2 received=2 dropped=0 "),
        "{}",
        out.stdout
    );
    check_connection_fields(last, 10);

    // --max 1: the server exits 0 once this session has closed.
    let (status, log, err) = server.finish();
    assert!(status.success(), "serve: {status:?}\n{log}{err}");
    let session = log
        .lines()
        .find(|l| l.starts_with("session "))
        .unwrap_or_else(|| panic!("no session line in {log:?}"));
    assert!(
        session.contains(" path=/cli ") && session.ends_with("origin=- dialect=draft-15"),
        "{session}"
    );
    let id = session.split(' ').nth(1).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with(&format!("closed {id} ")) && l.contains("\"bye\"")),
        "the client's close (code 0, \"bye\") should reach the server: {log}"
    );
}

#[test]
fn counted_burst_comes_back_complete() {
    let server = serve(1);
    let out = wtd(
        &[
            "connect",
            &server.url("/burst"),
            "--hash",
            &server.hash,
            "--origin",
            "https://example.test",
            "--count",
            "500",
            "--size",
            "1000",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{:?}\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    let stats = out
        .stdout
        .lines()
        .find(|l| l.starts_with("stats sent=500 received=500 dropped="))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    check_connection_fields(stats, 500 * 1000);
    let (status, log, err) = server.finish();
    assert!(status.success(), "serve: {status:?}\n{log}{err}");
    assert!(
        log.contains("path=/burst origin=https://example.test dialect=draft-15"),
        "{log}"
    );
}

#[test]
fn wrong_certificate_hash_fails_with_exit_code_1() {
    let server = serve(1);
    let zeros = "0".repeat(64);
    let out = wtd(&["connect", &server.url("/"), "--hash", &zeros], "hi\n");
    assert_eq!(out.status.code(), Some(1), "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("connected"), "{}", out.stdout);
    let err = out.stderr.to_lowercase();
    assert!(err.starts_with("wtd: error: "), "{}", out.stderr);
    assert!(
        err.contains("certificate") || err.contains("tls"),
        "the error should say what went wrong: {}",
        out.stderr
    );
}

#[test]
fn bad_usage_exits_2_with_one_error_line() {
    for args in [
        &["frobnicate"][..],
        &["connect"],
        &["connect", "https://127.0.0.1:1/", "--hash", "xyz"],
        &[
            "connect",
            "https://127.0.0.1:1/",
            "--insecure",
            "--hash",
            "00",
        ],
        &["connect", "http://127.0.0.1:1/", "--insecure"],
        &["connect", "https://127.0.0.1:1/", "--count", "many"],
        &["serve", "--bind", "not-an-address"],
        &["serve", "--cert", "only-a-cert.pem"],
        &["serve", "--bogus"],
        &["serve", "--nats", "nats://127.0.0.1:1"],
        &["serve", "--relay", "lobby"],
        &["serve", "--nats-creds", "node.creds"],
        &["serve", "--nats", ",", "--relay", "lobby"],
        &["serve", "--web", "not-an-address"],
        &["serve", "--web", "70000"],
        &["serve", "--web"],
        &["bench"],
        &[
            "bench",
            "https://127.0.0.1:1/",
            "--insecure",
            "--duration",
            "0",
        ],
        &[
            "bench",
            "https://127.0.0.1:1/",
            "--insecure",
            "--duration",
            "-1",
        ],
        &[
            "bench",
            "https://127.0.0.1:1/",
            "--insecure",
            "--duration",
            "soon",
        ],
        &[
            "bench",
            "https://127.0.0.1:1/",
            "--insecure",
            "--duration=NaN",
        ],
        &[
            "bench",
            "https://127.0.0.1:1/",
            "--insecure",
            "--duration",
            "inf",
        ],
        &["bench", "https://127.0.0.1:1/", "--insecure", "--duration"],
        &["bench", "https://127.0.0.1:1/", "--insecure", "--size", "0"],
        &[
            "bench",
            "https://127.0.0.1:1/",
            "--insecure",
            "--size",
            "-5",
        ],
        &[
            "bench",
            "https://127.0.0.1:1/",
            "--insecure",
            "--count",
            "5",
        ],
    ] {
        let out = wtd(args, "");
        assert_eq!(out.status.code(), Some(2), "wtd {args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "wtd {args:?}: {}", out.stdout);
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "wtd {args:?}: {}",
            out.stderr
        );
        assert!(
            out.stderr.starts_with("wtd: error: "),
            "wtd {args:?}: {}",
            out.stderr
        );
    }
    // The one line names what is wrong, also where clap spreads it over several lines.
    for (args, names) in [
        (&["serve", "--cert", "only-a-cert.pem"][..], "--key"),
        (
            &["connect", "https://127.0.0.1:1/", "--size", "8"],
            "--count",
        ),
        (&["serve", "--bogus"], "--bogus"),
    ] {
        let out = wtd(args, "");
        assert!(out.stderr.contains(names), "wtd {args:?}: {}", out.stderr);
    }
}

#[test]
fn help_and_version() {
    let out = wtd(&["--help"], "");
    assert!(out.status.success());
    assert!(out.stdout.contains("wtd serve") && out.stdout.contains("wtd connect"));
    assert!(out.stdout.contains("wtd bench"), "{}", out.stdout);
    let out = wtd(&["--version"], "");
    assert!(out.status.success());
    assert_eq!(
        out.stdout.trim(),
        format!("wtd {}", env!("CARGO_PKG_VERSION"))
    );
    let out = wtd(&[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("USAGE"), "{}", out.stderr);
}

/// The `key=value` fields of a result line after its first word, in order.
fn fields(line: &str) -> Vec<(&str, f64)> {
    line.split_whitespace()
        .skip(1)
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{kv:?} in {line:?} is not key=value"));
            let v: f64 = v
                .parse()
                .unwrap_or_else(|_| panic!("{kv:?} in {line:?}: not a number"));
            (k, v)
        })
        .collect()
}

/// The connection's figures at the end of a `stats` or `bench` line: the keys in order,
/// a measured RTT, and enough packets sent to have carried `payload` bytes.
fn check_connection_fields(line: &str, payload: u64) {
    let f = fields(line);
    let tail: Vec<(&str, f64)> = f[f.len() - 7..].to_vec();
    let keys: Vec<&str> = tail.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "rtt_ms",
            "min_rtt_ms",
            "packets_sent",
            "packets_lost",
            "congestion_events",
            "cwnd",
            "path_mtu"
        ],
        "{line}"
    );
    let [rtt, min_rtt, sent, lost, events, cwnd, mtu] =
        <[f64; 7]>::try_from(tail.iter().map(|(_, v)| *v).collect::<Vec<_>>()).unwrap();
    // min_rtt can be 0 on loopback (see ConnectionStats::min_rtt).
    assert!(
        rtt > 0.0 && min_rtt >= 0.0 && min_rtt <= rtt * 4.0,
        "{line}"
    );
    assert!(sent > 0.0 && sent * mtu >= payload as f64, "{line}");
    assert!(lost >= 0.0 && events >= 0.0 && lost <= sent, "{line}");
    assert!(cwnd > 0.0, "{line}");
    assert!((1200.0..=65527.0).contains(&mtu), "{line}");
}

/// |a - b| within `rel` of b, plus `abs` for the rounding of printed figures.
fn close_to(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= b.abs() * rel + abs
}

#[test]
fn bench_prints_one_consistent_result_line() {
    let server = serve(1);
    let out = wtd(
        &[
            "bench",
            &server.url("/bench"),
            "--hash",
            &server.hash,
            "--duration",
            "0.5",
            "--size",
            "500",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{:?}\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one result line: {}", out.stdout);
    let line = lines[0];
    assert!(line.starts_with("bench "), "{line}");
    let f = fields(line);
    let keys: Vec<&str> = f.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys[..6],
        [
            "duration",
            "sent",
            "errors",
            "rate",
            "throughput",
            "error_rate"
        ],
        "{line}"
    );
    let [duration, sent, errors, rate, throughput, error_rate] =
        <[f64; 6]>::try_from(f[..6].iter().map(|(_, v)| *v).collect::<Vec<_>>()).unwrap();
    check_connection_fields(line, sent as u64 * 500);
    // Sends for 0.5 s, then lets the queue drain: never shorter.
    assert!(duration >= 0.5, "{line}");
    assert!(sent > 0.0 && sent.fract() == 0.0, "{line}");
    assert_eq!(errors, 0.0, "{line}");
    assert_eq!(error_rate, 0.0, "{line}");
    // The figures agree with each other (printed with 3 and 1 decimals).
    assert!(close_to(rate, sent / duration, 0.005, 0.1), "{line}");
    assert!(
        close_to(throughput, rate * 500.0 * 8.0 / 1e6, 0.005, 0.01),
        "{line}"
    );
    // Progress went to stderr, a line per update when it is not a terminal.
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains(" s  ") && l.contains(" datagrams  ") && l.contains(" Mbit/s  ")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains('\r'), "{:?}", out.stderr);

    // The echo server survives the flood, and the session ends with the client's close.
    let (status, log, err) = server.finish();
    assert!(status.success(), "serve: {status:?}\n{log}{err}");
    assert!(log.contains("path=/bench "), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("closed ") && l.contains("\"bye\"")),
        "{log}"
    );
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn serve_prints_failed_handshakes_and_logs_go_to_stderr_by_level() {
    // -v: INFO records (a failed handshake among them) on stderr; stdout keeps its lines.
    let server = serve_with(1, &["-v"], &[]);
    let zeros = "0".repeat(64);
    let bad = wtd(&["connect", &server.url("/"), "--hash", &zeros], "");
    assert_eq!(bad.status.code(), Some(1), "{}{}", bad.stdout, bad.stderr);
    let failed = server
        .lines
        .recv_timeout(LIMIT)
        .expect("a line for the failed handshake");
    let rest = failed
        .strip_prefix("handshake-failed 127.0.0.1:")
        .unwrap_or_else(|| panic!("{failed:?}"));
    let (port, reason) = rest.split_once(' ').expect("address and reason");
    assert!(port.parse::<u16>().is_ok(), "{failed}");
    assert!(reason.contains("TLS alert"), "{failed}");
    let good = wtd(
        &["connect", &server.url("/ok"), "--hash", &server.hash],
        "hi\n",
    );
    assert!(good.status.success(), "{}{}", good.stdout, good.stderr);
    let (status, log, err) = server.finish();
    assert!(status.success(), "serve: {status:?}\n{log}{err}");
    assert!(log.lines().any(|l| l.starts_with("session ")), "{log}");
    let record = err
        .lines()
        .find(|l| l.contains("handshake failed"))
        .unwrap_or_else(|| panic!("no INFO record of the failed handshake: {err}"));
    assert!(
        record.contains("INFO") && record.contains("remote=127.0.0.1:"),
        "{record}"
    );
    assert!(!err.contains("session opened"), "DEBUG needs -vv: {err}");

    // RUST_LOG decides when set: DEBUG of the library shows the sessions.
    let server = serve_with(1, &[], &[("RUST_LOG", "wtdatagram=debug")]);
    let good = wtd(
        &["connect", &server.url("/dbg"), "--hash", &server.hash],
        "hi\n",
    );
    assert!(good.status.success(), "{}{}", good.stdout, good.stderr);
    let (status, log, err) = server.finish();
    assert!(status.success(), "serve: {status:?}\n{log}{err}");
    assert!(
        err.lines().any(|l| l.contains("DEBUG")
            && l.contains("session opened")
            && l.contains("path=/dbg")),
        "{err}"
    );

    // By default only warnings: a failed handshake is on stdout, not on stderr.
    let server = serve(1);
    let bad = wtd(&["connect", &server.url("/"), "--hash", &zeros], "");
    assert_eq!(bad.status.code(), Some(1));
    let failed = server.lines.recv_timeout(LIMIT).expect("handshake line");
    assert!(failed.starts_with("handshake-failed "), "{failed}");
    let good = wtd(&["connect", &server.url("/"), "--hash", &server.hash], "");
    assert!(good.status.success(), "{}{}", good.stdout, good.stderr);
    let (_, _, err) = server.finish();
    assert!(!err.contains("handshake failed"), "{err}");
}

#[test]
fn keylog_writes_the_tls_secrets_where_sslkeylogfile_says() {
    let dir = std::env::temp_dir().join(format!("wtd-cli-keylog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.log");
    let _ = std::fs::remove_file(&path);
    let server = serve(1);
    let mut proc = Proc::spawn(
        "wtd connect --keylog",
        Command::new(WTD).env("SSLKEYLOGFILE", &path).args([
            "connect",
            "--keylog",
            &server.url("/k"),
            "--hash",
            &server.hash,
        ]),
    );
    let stdout = collect(proc.child.stdout.take().expect("stdout"));
    let stderr = collect(proc.child.stderr.take().expect("stderr"));
    drop(proc.child.stdin.take()); // end of input at once
    let status = proc.wait(LIMIT);
    let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "{out}{err}");
    let keys = std::fs::read_to_string(&path).expect("key log file");
    for label in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET ",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET ",
        "CLIENT_TRAFFIC_SECRET_0 ",
        "SERVER_TRAFFIC_SECRET_0 ",
    ] {
        assert_eq!(
            keys.lines().filter(|l| l.starts_with(label)).count(),
            1,
            "{label}in {keys}"
        );
    }
    let _ = server.finish();
    let _ = std::fs::remove_dir_all(&dir);

    // Without SSLKEYLOGFILE: a warning, and the command works.
    let server = serve(1);
    let mut cmd = Command::new(WTD);
    cmd.env_remove("SSLKEYLOGFILE");
    let mut proc = Proc::spawn(
        "wtd connect --keylog",
        cmd.args([
            "connect",
            "--keylog",
            &server.url("/k"),
            "--hash",
            &server.hash,
        ]),
    );
    let stderr = collect(proc.child.stderr.take().expect("stderr"));
    drop(proc.child.stdin.take());
    assert!(proc.wait(LIMIT).success());
    let err = stderr.join().unwrap();
    assert!(err.contains("SSLKEYLOGFILE is not set"), "{err}");
    let _ = server.finish();
}

#[test]
fn qlog_writes_a_trace_per_connection() {
    let dir = std::env::temp_dir().join(format!("wtd-cli-qlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let server = serve_with(1, &["--qlog", d], &[]);
    let out = wtd(
        &[
            "connect",
            &server.url("/q"),
            "--hash",
            &server.hash,
            "--count",
            "20",
        ],
        "",
    );
    assert!(out.status.success(), "{}{}", out.stdout, out.stderr);
    let (status, log, err) = server.finish();
    assert!(status.success(), "{log}{err}");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "the server's trace: {names:?}");
    assert!(names[0].starts_with("server-") && names[0].ends_with(".sqlog"));
    let text = std::fs::read_to_string(dir.join(&names[0])).unwrap();
    assert!(text.contains("qlog_version") && text.contains("packet_received"));
    let _ = std::fs::remove_dir_all(&dir);
    // Not a directory: bad usage.
    let out = wtd(&["--qlog", "/nonexistent/dir", "serve"], "");
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
}
