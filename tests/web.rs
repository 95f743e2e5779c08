//! `wtd serve --web ADDR`: the page, its script, the JS module, the configuration and
//! the statistics over plain HTTP, the responder's bounds, and the page in headless
//! Chromium driven through the DevTools protocol: it connects, echoes flow (pings with
//! their RTT, heartbeats, a JSON message from the text box, a throughput test), both
//! sides' statistics show, and then a screenshot is kept as `target/web-page.png` (the
//! README's picture, docs/wtd-serve-web.png, is a copy of one).

#[path = "common/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-page.png");
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
