//! `wtd serve --web ADDR`: the page, its script, the JS module, the configuration and
//! the statistics over plain HTTP, the responder's bounds, and the page in headless
//! Chromium driven through the DevTools protocol: it connects, echoes flow (pings with
//! their RTT, heartbeats, a JSON message from the text box, a throughput test), both
//! sides' statistics show, and then a screenshot is kept as `target/web-page.png` (the
//! README's picture, docs/wtd-serve-web.png, is a copy of one). And `--web` in relay mode
//! (`--nats URL --relay CHANNEL`, against a real nats-server): the page is one more
//! client of the channel.
//!
//! Here rather than in `tests/` because only tests of the `wtd` package get the binary
//! (`CARGO_BIN_EXE_wtd`).

#[path = "../../../tests/common/browser.rs"]
mod browser;
#[path = "../../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::nats::{line_reader, Nats};
use common::{within, LIMIT};
use wtdatagram::transport::tls;
use wtdatagram::{Client, ClientConfig, Verify};

struct Wtd(Child);

impl Drop for Wtd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `wtd serve --web 127.0.0.1:0`; returns (process, web address, cert hash).
fn serve() -> (Wtd, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wtd"))
        .args(["serve", "--bind", "127.0.0.1:0", "--web", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wtd");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut web, mut hash) = (None, None);
    for _ in 0..3 {
        let mut line = String::new();
        out.read_line(&mut line).expect("read wtd output");
        if let Some(w) = line.trim().strip_prefix("web http://") {
            web = Some(w.trim_end_matches('/').to_string());
        }
        if let Some(h) = line.trim().strip_prefix("cert-sha256 ") {
            hash = Some(h.to_string());
        }
    }
    (
        Wtd(child),
        web.expect("a 'web http://ADDR/' line"),
        hash.expect("cert line"),
    )
}

/// One raw HTTP/1.1 exchange: (status line, body).
fn http(addr: &str, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn get(addr: &str, path: &str) -> (String, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
}

#[test]
fn web_serves_the_page_the_module_config_and_stats() {
    let (_wtd, web, hash) = serve();
    let (status, body) = get(&web, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("<script type=\"module\" src=\"/app.js\">"));
    let (status, body) = get(&web, "/app.js");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("from \"/wtdatagram/index.js\""));
    // Every file of the compiled module is served, byte for byte.
    for (name, content) in browser::module_files() {
        let (status, body) = get(&web, &format!("/wtdatagram/{name}"));
        assert_eq!(
            status, "HTTP/1.1 200 OK",
            "{name} is not served (add it to web.rs MODULE)"
        );
        assert_eq!(
            body, content,
            "{name} differs from bindings/js/dist (rebuild wtd)"
        );
    }
    let (_, cfg) = get(&web, "/config.json");
    let cfg: serde_json::Value = serde_json::from_str(&cfg).expect("config JSON");
    assert_eq!(cfg["certificateHash"], hash.as_str());
    assert_eq!(cfg["path"], "/echo");
    assert_eq!(cfg["mode"], "echo");
    assert!(cfg["channel"].is_null(), "{cfg}");
    let (_, stats) = get(&web, "/stats.json");
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats JSON");
    assert_eq!(stats["server"]["sessions"], 0);
    assert!(stats["sessions"].as_array().is_some_and(|s| s.is_empty()));
    assert_eq!(get(&web, "/nope").0, "HTTP/1.1 404 Not Found");
    assert_eq!(
        http(&web, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0,
        "HTTP/1.1 405 Method Not Allowed"
    );
    // A request head beyond 16 KiB is refused, not buffered.
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(
        http(&web, &huge).0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}

/// What the page shows once echoes flowed: checked in the page (window.wtdStatus and the
/// DOM) every 50 ms until all of it holds, at most 60 s by the page's own clock.
const ECHOES_FLOWED: &str = r#"
new Promise((resolve, reject) => {
  const started = Date.now();
  const text = (id) => document.getElementById(id)?.textContent ?? "";
  const check = () => {
    const s = window.wtdStatus;
    const seen = {
      state: s?.state,
      echoed: s?.echoed ?? 0,
      rttSamples: s?.rtt?.length ?? 0,
      heartbeats: s?.beats ?? 0,
      maxDatagramSize: text("maxdg"),
      jsonEcho: text("log").includes("⇠ JSON message"),
      throughput: text("tt-result"),
      serverStats: text("server-stats"),
      sessionStats: text("session-stats"),
      shownEchoed: Number(text("echoed")),
      throughputSamples: window.wtdSeries?.tin?.length ?? 0,
    };
    if (seen.state === "failed" || seen.state === "closed") return reject(new Error("page " + JSON.stringify(seen)));
    if (seen.state === "connected" && seen.echoed >= 20 && seen.rttSamples >= 10 && seen.heartbeats >= 2 &&
        seen.jsonEcho && /datagrams of \d+ B/.test(seen.throughput) &&
        seen.serverStats.includes("sessions") && seen.sessionStats.includes("datagrams_received") &&
        seen.shownEchoed >= 20 && seen.throughputSamples >= 5) {
      return resolve(seen);
    }
    if (Date.now() - started > 60000) return reject(new Error("not within 60 s: " + JSON.stringify(seen)));
    setTimeout(check, 50);
  };
  check();
})
"#;

/// Once connected: send the text box's JSON message and run a one-second throughput
/// test, as a person would with the buttons.
const USE_THE_BUTTONS: &str = r#"
new Promise((resolve, reject) => {
  const started = Date.now();
  const wait = () => {
    if (window.wtdStatus?.state === "connected") {
      document.getElementById("msg-kind").value = "json";
      document.getElementById("msg-send").click();
      document.getElementById("tt-secs").value = "1";
      document.getElementById("tt-run").click();
      return resolve(true);
    }
    if (Date.now() - started > 60000) return reject(new Error("not connected within 60 s: " + window.wtdStatus?.state));
    setTimeout(wait, 50);
  };
  wait();
})
"#;

#[test]
fn the_page_connects_echoes_flow_in_chromium_and_a_screenshot_is_kept() {
    let (_wtd, web, hash) = serve();
    let shot = browser::repo_root().join("target/web-page.png");
    let _ = std::fs::remove_file(&shot);
    let mut cdp = browser::Devtools::chromium(&[]);
    // The whole page (header to log) in the picture.
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 1280, "height": 1180, "deviceScaleFactor": 1, "mobile": false}),
        Duration::from_secs(30),
    );
    cdp.open(&format!("http://{web}/"));
    assert_eq!(cdp.eval(USE_THE_BUTTONS, Duration::from_secs(90)), true);
    let seen = cdp.eval(ECHOES_FLOWED, Duration::from_secs(90));
    eprintln!("the page: {seen}");
    assert_eq!(seen["state"], "connected");
    assert!(seen["echoed"].as_u64().unwrap() >= 20, "{seen}");
    assert!(
        seen["maxDatagramSize"]
            .as_str()
            .unwrap()
            .starts_with("maxDatagramSize "),
        "the page shows the session's limit: {seen}"
    );
    // The page connected to this server: its certificate hash came from /config.json.
    let (_, cfg) = get(&web, "/config.json");
    assert!(cfg.contains(&hash));
    let png = cdp.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    std::fs::write(&shot, &png).expect("write the screenshot");
}

#[test]
fn serve_help_shows_the_web_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_wtd"))
        .args(["serve", "--help"])
        .output()
        .expect("run wtd");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--web <ADDR>"), "{text}");
    assert!(
        text.contains("With --relay the page is one more client"),
        "{text}"
    );
}

/// In relay mode the page checks itself: connected, at least 5 RTT samples of its own
/// pings (which came back through the channel), and at least 3 pings of another
/// client seen and not taken for its own. Bounded by 60 s of the page's clock.
const RELAY_PAGE: &str = r#"
new Promise((resolve, reject) => {
  const started = Date.now();
  const check = () => {
    const s = window.wtdStatus;
    const seen = {
      state: s?.state,
      rttSamples: s?.rtt?.length ?? 0,
      maxRtt: Math.max(0, ...(s?.rtt ?? [])),
      foreignPings: s?.foreignPings ?? 0,
      url: document.getElementById("url")?.textContent ?? "",
    };
    if (seen.state === "failed" || seen.state === "closed") return reject(new Error("page " + JSON.stringify(seen)));
    if (seen.state === "connected" && seen.rttSamples >= 5 && seen.foreignPings >= 3) return resolve(seen);
    if (Date.now() - started > 60000) return reject(new Error("not within 60 s: " + JSON.stringify(seen)));
    setTimeout(check, 50);
  };
  check();
})
"#;

/// The next line from `lines` that starts with `prefix` (earlier ones are skipped).
fn expect_line(lines: &std::sync::mpsc::Receiver<String>, prefix: &str) -> String {
    let deadline = Instant::now() + LIMIT;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with(prefix) => return l,
            Ok(_) => {}
            Err(e) => panic!("wtd: no line {prefix:?} ({e})"),
        }
    }
}

/// A 20-byte page ping ("PING" [u32 tag] [u32 seq] [f64 sent at]): its tag.
fn ping_tag(d: &[u8]) -> Option<u32> {
    (d.len() == 20 && d.starts_with(b"PING"))
        .then(|| u32::from_be_bytes(d[4..8].try_into().unwrap()))
}

/// `--web` and `--relay` combine: the page is one more client of the channel. Its
/// config says relay mode and the channel; /stats.json lists relay sessions; the page's
/// pings reach another client of the channel and come back to the page itself (its RTT
/// samples), and that client's pings reach the page without ever becoming an RTT
/// sample there (they carry another tag and a send time of -1e12 ms, which would make
/// a sample of about 1e12 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_mode_serves_the_page_as_a_client_of_the_channel() {
    let nats = Nats::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wtd"))
        .args(["serve", "--bind", "127.0.0.1:0", "--web", "127.0.0.1:0"])
        .args(["--nats", &nats.url(), "--relay", "lobby"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wtd");
    let lines = line_reader(child.stdout.take().unwrap());
    let _wtd = Wtd(child);
    let l = expect_line(&lines, "listening https://");
    let port: u16 = l
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let hash = expect_line(&lines, "cert-sha256 ")["cert-sha256 ".len()..].to_string();
    let web = expect_line(&lines, "web http://")["web http://".len()..]
        .trim_end_matches('/')
        .to_string();
    expect_line(&lines, "relay channel=lobby ");
    expect_line(&lines, "bus ready");

    let (_, cfg) = get(&web, "/config.json");
    let cfg: serde_json::Value = serde_json::from_str(&cfg).expect("config JSON");
    assert_eq!(cfg["mode"], "relay", "{cfg}");
    assert_eq!(cfg["channel"], "lobby", "{cfg}");
    assert_eq!(cfg["path"], "/relay", "{cfg}");
    assert_eq!(cfg["certificateHash"], hash.as_str(), "{cfg}");

    // A Rust client of the channel: its own datagram comes back (the sender included),
    // and /stats.json lists its session.
    let client = Client::new(ClientConfig {
        verify: Verify::Hashes(vec![tls::parse_sha256_hex(&hash).unwrap()]),
        ..Default::default()
    })
    .unwrap();
    let session = within(client.open_session(&format!("https://127.0.0.1:{port}/relay")))
        .await
        .expect("session");
    expect_line(&lines, "session 1 path=/relay");
    session.send_datagram(b"hello").await.unwrap();
    assert_eq!(
        &within(session.recv_datagram()).await.unwrap()[..],
        b"hello"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&get(&web, "/stats.json").1).expect("stats JSON");
    let listed = stats["sessions"].as_array().expect("sessions");
    assert_eq!(listed.len(), 1, "{stats}");
    assert_eq!(listed[0]["id"], 1);
    assert_eq!(listed[0]["path"], "/relay");

    // The page, in Chromium, while the client sends pings of its own.
    let page_url = format!("http://{web}/");
    let page = tokio::task::spawn_blocking(move || {
        let mut cdp = browser::Devtools::chromium(&[]);
        cdp.open(&page_url);
        let seen = cdp.eval(RELAY_PAGE, Duration::from_secs(90));
        // Both sessions are listed while the page is open.
        let (_, stats) = get(&web, "/stats.json");
        (seen, stats)
    });
    tokio::pin!(page);
    let mut foreign = [0u8; 20];
    foreign[..4].copy_from_slice(b"PING");
    foreign[12..].copy_from_slice(&(-1e12f64).to_be_bytes());
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let (mut page_pings, mut sent) = (0u64, 0u32);
    let deadline = Instant::now() + Duration::from_secs(120);
    let (seen, stats) = loop {
        assert!(Instant::now() < deadline, "the page check never ended");
        tokio::select! {
            done = &mut page => break done.expect("the page task"),
            _ = tick.tick() => {
                foreign[8..12].copy_from_slice(&sent.to_be_bytes());
                sent += 1;
                session.send_datagram(&foreign).await.unwrap();
            }
            d = session.recv_datagram() => {
                let d = d.expect("the client's session");
                if ping_tag(&d).is_some_and(|t| t != 0) {
                    page_pings += 1;
                }
            }
        }
    };
    eprintln!("the page: {seen}; the client sent {sent} pings, saw {page_pings} of the page's");
    assert_eq!(seen["state"], "connected");
    assert!(
        seen["url"]
            .as_str()
            .unwrap()
            .ends_with("(relay, channel lobby)"),
        "{seen}"
    );
    assert!(seen["foreignPings"].as_u64().unwrap() >= 3, "{seen}");
    assert!(seen["rttSamples"].as_u64().unwrap() >= 5, "{seen}");
    assert!(
        seen["maxRtt"].as_f64().unwrap() < 1e9,
        "a foreign ping became an RTT sample: {seen}"
    );
    assert!(
        page_pings >= 1,
        "the page's pings reach the other client of the channel"
    );
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats JSON");
    let paths: Vec<&str> = stats["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/relay", "/relay"], "{stats}");
}
