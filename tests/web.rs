//! `wtd serve --web ADDR`: the page, its script, the JS module, the configuration and
//! the statistics over plain HTTP, the responder's bounds, and the page in headless
//! Chromium: it reports "connected" in its DOM, and a screenshot is kept as
//! `target/web-page.png` (the README's picture is docs/wtd-serve-web.png).

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

#[test]
fn the_page_connects_in_chromium_and_a_screenshot_is_kept() {
    browser::Kind::Chromium.assert_installed();
    let (_wtd, web, _) = serve();
    let dir = std::env::temp_dir().join(format!("wtd-web-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-page.png");
    let _ = std::fs::remove_file(&shot);
    // Virtual time lets the page load, connect and draw before the capture.
    let run = |extra: &[String]| {
        Command::new(browser::CHROMIUM)
            .args(browser::CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(["--window-size=1280,1100", "--virtual-time-budget=8000"])
            .args(extra)
            .arg(format!("http://{web}/"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run chromium")
    };
    let dom = run(&["--dump-dom".to_string()]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("data-state=\"connected\""),
        "the page did not report connected: {}",
        &dom[..dom.len().min(2000)]
    );
    assert!(
        dom.contains("maxDatagramSize"),
        "the page shows the session's limit"
    );
    run(&[format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let _ = std::fs::remove_dir_all(&dir);
}
