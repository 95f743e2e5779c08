#![allow(dead_code)]
//! Real browsers for the tests: Debian's headless Chromium and Firefox ESR, each in its
//! own process group with a throwaway profile, and a plain-HTTP page host that serves
//! test pages and the JS module (`bindings/js/dist`) and collects what the page POSTs.
//!
//! Used as `#[path = "common/browser.rs"] mod browser;` by the browser tests in `tests/`,
//! and as `#[path = "../../../tests/common/browser.rs"] mod browser;` by
//! `crates/cli/tests/web.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const FIREFOX: &str = "/usr/bin/firefox-esr";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chromium,
    Firefox,
}

impl Kind {
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Chromium => CHROMIUM,
            Kind::Firefox => FIREFOX,
        }
    }

    pub fn setup_script(self) -> &'static str {
        match self {
            Kind::Chromium => "scripts/setup-chromium.sh",
            Kind::Firefox => "scripts/setup-firefox.sh",
        }
    }

    /// "Chromium 156", "Firefox ESR 153": the name and major version for the matrix.
    pub fn name_and_major(self) -> String {
        self.assert_installed();
        let out = Command::new(self.binary())
            .arg("--version")
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        // "Chromium 156.0.8078.73 built on ..." / "Mozilla Firefox 153.8.0esr"
        let version = out
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .unwrap_or("?");
        let major = version.split('.').next().unwrap_or("?");
        match self {
            Kind::Chromium => format!("Chromium {major}"),
            Kind::Firefox => format!("Firefox ESR {major}"),
        }
    }

    /// The browser must be there: a missing browser is a failure with the fix, never a
    /// silent pass.
    pub fn assert_installed(self) {
        assert!(
            Path::new(self.binary()).exists(),
            "{} is missing: run {} (Debian package) to run the browser tests",
            self.binary(),
            self.setup_script()
        );
    }
}

/// Firefox preferences for a quiet, local-only headless profile: no first-run pages,
/// telemetry, updates, safe-browsing or remote-settings traffic; WebTransport on.
const FIREFOX_PREFS: &str = r#"
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.startup.page", 0);
user_pref("browser.aboutwelcome.enabled", false);
user_pref("browser.newtabpage.enabled", false);
user_pref("browser.sessionstore.resume_from_crash", false);
user_pref("toolkit.startup.max_resumed_crashes", -1);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("toolkit.telemetry.unified", false);
user_pref("toolkit.telemetry.server", "");
user_pref("app.update.enabled", false);
user_pref("app.update.auto", false);
user_pref("app.normandy.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("extensions.getAddons.cache.enabled", false);
user_pref("extensions.systemAddon.update.enabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.blockedURIs.enabled", false);
user_pref("browser.safebrowsing.provider.mozilla.updateURL", "");
user_pref("browser.safebrowsing.provider.google4.updateURL", "");
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("network.predictor.enabled", false);
user_pref("services.settings.server", "http://127.0.0.1:9/");
user_pref("browser.region.network.url", "");
user_pref("browser.region.update.enabled", false);
user_pref("media.gmp-manager.url", "");
user_pref("media.gmp-gmpopenh264.enabled", false);
user_pref("browser.topsites.contile.enabled", false);
user_pref("network.webtransport.enabled", true);
user_pref("network.webtransport.datagrams.enabled", true);
user_pref("network.http.http3.enable", true);
"#;

/// A headless browser in its own process group with a throwaway profile. Dropping it
/// kills the whole group and removes the profile.
pub struct Browser {
    pub kind: Kind,
    child: Child,
    dir: PathBuf,
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wtd-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(dir.join("profile")).expect("create browser temp dir");
    dir
}

/// Chromium's flags for this sandbox (as tests/interop_chromium.rs uses them).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

impl Browser {
    /// Open `url` in a headless `kind`.
    pub fn launch(kind: Kind, url: &str) -> Browser {
        Browser::launch_with(kind, url, &[])
    }

    /// Open `url` with extra command-line arguments (before the URL).
    pub fn launch_with(kind: Kind, url: &str, extra: &[&str]) -> Browser {
        kind.assert_installed();
        let dir = temp_dir(match kind {
            Kind::Chromium => "chromium",
            Kind::Firefox => "firefox",
        });
        let log = std::fs::File::create(dir.join("browser.log")).expect("create browser log");
        let profile = dir.join("profile");
        let mut cmd = Command::new(kind.binary());
        match kind {
            Kind::Chromium => {
                cmd.args(CHROMIUM_FLAGS)
                    .arg(format!("--user-data-dir={}", profile.to_string_lossy()));
            }
            Kind::Firefox => {
                std::fs::write(profile.join("user.js"), FIREFOX_PREFS).expect("write user.js");
                cmd.args(["--headless", "--no-remote", "--profile"])
                    .arg(&profile)
                    // Its own HOME: nothing of the machine's user profile is read or written.
                    .env("HOME", &dir)
                    .env("MOZ_CRASHREPORTER_DISABLE", "1")
                    .env_remove("DISPLAY");
            }
        }
        cmd.args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", kind.binary()));
        Browser { kind, child, dir }
    }

    /// The last lines the browser wrote, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("browser.log")).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains(":ERROR:dbus/"))
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {:?} output (tail) ---\n{}", self.kind, self.log_tail());
        }
        // SAFETY: kill(2) on our child's process group (process_group(0) made its pid
        // the group id); it signals only processes of that group.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Headless Chromium driven through the DevTools protocol over `--remote-debugging-pipe`
/// (Chromium reads NUL-terminated JSON commands on fd 3 and writes answers and events on
/// fd 4; here both are one end of a socket pair): open a page, wait in the page for a
/// condition, take a screenshot. Every call is bounded by its own deadline.
pub struct Devtools {
    /// The browser process (its process group is killed, its profile removed on drop).
    pub browser: Browser,
    commands: std::os::unix::net::UnixStream,
    answers: std::sync::mpsc::Receiver<serde_json::Value>,
    next_id: u64,
    /// The page target's session, once attached.
    session: Option<String>,
}

impl Devtools {
    /// Start headless Chromium with the DevTools pipe and a blank page attached.
    pub fn chromium(extra: &[&str]) -> Devtools {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        Kind::Chromium.assert_installed();
        let dir = temp_dir("chromium-cdp");
        let log = std::fs::File::create(dir.join("browser.log")).expect("create browser log");
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socket pair");
        let fd = theirs.as_raw_fd();
        let mut cmd = Command::new(CHROMIUM);
        cmd.args(CHROMIUM_FLAGS)
            .arg(format!(
                "--user-data-dir={}",
                dir.join("profile").to_string_lossy()
            ))
            .arg("--remote-debugging-pipe")
            .args(extra)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .process_group(0);
        // SAFETY: runs in the forked child before exec and calls only async-signal-safe
        // functions (fcntl, dup2, close) on a descriptor this process owns: Chromium's end
        // of the pair is first copied above fd 10 (it may itself be 3 or 4), then placed
        // at 3 and 4 without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                let a = libc::fcntl(fd, libc::F_DUPFD, 10);
                if a < 0 || libc::dup2(a, 3) < 0 || libc::dup2(a, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(a);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {CHROMIUM}: {e}"));
        // Chromium's end stays with Chromium only: EOF on ours when it exits.
        drop(theirs);
        let ans_r = ours.try_clone().expect("clone the socket");
        let browser = Browser {
            kind: Kind::Chromium,
            child,
            dir,
        };
        let (tx, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(ans_r);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = match r.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice(&msg[..end]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut dt = Devtools {
            browser,
            commands: ours,
            answers,
            next_id: 0,
            session: None,
        };
        let targets = dt.browser_call("Target.getTargets", serde_json::json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no page target: {targets}"));
        let attached = dt.browser_call(
            "Target.attachToTarget",
            serde_json::json!({"targetId": page, "flatten": true}),
        );
        dt.session = Some(
            attached["sessionId"]
                .as_str()
                .expect("a session id")
                .to_string(),
        );
        dt
    }

    fn send_and_wait(
        &mut self,
        method: &str,
        params: serde_json::Value,
        session: Option<String>,
        within: Duration,
    ) -> serde_json::Value {
        use std::io::Write;
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = serde_json::json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = serde_json::Value::String(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        if let Err(e) = self.commands.write_all(&bytes) {
            panic!(
                "DevTools {method}: {e}\n--- browser log ---\n{}",
                self.browser.log_tail()
            );
        }
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.answers.recv_timeout(left) {
                Ok(v) if v["id"] == id => {
                    if let Some(err) = v.get("error") {
                        panic!("DevTools {method} failed: {err}");
                    }
                    return v["result"].clone();
                }
                Ok(_) => {} // an event, or an answer to an earlier call
                Err(e) => panic!(
                    "DevTools {method}: no answer within {within:?} ({e})\n--- browser log ---\n{}",
                    self.browser.log_tail()
                ),
            }
        }
    }

    /// A browser-level command (bounded by 30 s).
    pub fn browser_call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.send_and_wait(method, params, None, Duration::from_secs(30))
    }

    /// A command to the page (bounded by `within`).
    pub fn call(
        &mut self,
        method: &str,
        params: serde_json::Value,
        within: Duration,
    ) -> serde_json::Value {
        let session = self.session.clone();
        self.send_and_wait(method, params, session, within)
    }

    /// Navigate the page to `url` and wait for its load event (bounded by 30 s).
    pub fn open(&mut self, url: &str) {
        self.call(
            "Page.enable",
            serde_json::json!({}),
            Duration::from_secs(30),
        );
        let nav = self.call(
            "Page.navigate",
            serde_json::json!({"url": url}),
            Duration::from_secs(30),
        );
        assert!(nav.get("errorText").is_none(), "navigating to {url}: {nav}");
    }

    /// Evaluate `expression` in the page; a promise is awaited. Its value (JSON), or a
    /// panic with the page's exception. `within` bounds the wait here; the expression
    /// should bound itself too (a promise that rejects after its own deadline).
    pub fn eval(&mut self, expression: &str, within: Duration) -> serde_json::Value {
        let r = self.call(
            "Runtime.evaluate",
            serde_json::json!({
                "expression": expression,
                "awaitPromise": true,
                "returnByValue": true,
            }),
            within,
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("the page threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// A PNG of the page as it is now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let r = self.call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
            Duration::from_secs(30),
        );
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }
}

/// Standard base64 (with padding), as DevTools sends binary data.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

/// The repository root: the including test's package directory or the nearest directory
/// above it that holds `bindings/js` (tests of `crates/cli` include this file too).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| d.join("bindings/js/package.json").is_file())
        .unwrap_or_else(|| panic!("no bindings/js above {}", manifest.display()))
        .to_path_buf()
}

/// The JS module's compiled files (`bindings/js/dist/*.js`), by name.
pub fn module_files() -> HashMap<String, String> {
    let dir = repo_root().join("bindings/js/dist");
    let mut out = HashMap::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.extension().is_some_and(|x| x == "js") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, std::fs::read_to_string(&p).expect("read module file"));
        }
    }
    assert!(
        out.contains_key("index.js"),
        "bindings/js/dist/index.js is missing (cd bindings/js && npm ci && npm run build)"
    );
    out
}

/// A plain-HTTP server on 127.0.0.1 for test pages: GET serves `pages` (path -> HTML)
/// and `/wtdatagram/NAME.js` (the module); POST /result sends its body to the test;
/// POST /signal raises the signal named by its body (see [`Signals`]); POST /log prints
/// it.
pub struct PageHost {
    pub addr: SocketAddr,
    /// What the page signalled so far.
    pub signals: std::sync::Arc<Signals>,
    task: tokio::task::JoinHandle<()>,
}

/// Named signals a page raises (POST /signal) and the test waits for: how a page tells
/// our side "I am done with this part" outside the connection under test.
#[derive(Default)]
pub struct Signals {
    raised: parking_lot::Mutex<std::collections::HashSet<String>>,
    notify: tokio::sync::Notify,
}

impl Signals {
    fn raise(&self, name: &str) {
        self.raised.lock().insert(name.to_string());
        self.notify.notify_waiters();
    }

    /// Wait until the page raised `name`; false if it did not within `limit`.
    pub async fn wait(&self, name: &str, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.notify.notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if self.raised.lock().contains(name) {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Drop for PageHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PageHost {
    pub async fn start(pages: Vec<(&'static str, String)>) -> (PageHost, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind http");
        let addr = listener.local_addr().expect("http addr");
        let (tx, rx) = mpsc::channel::<String>(16);
        let mut files: HashMap<String, (&'static str, String)> = HashMap::new();
        for (path, html) in pages {
            files.insert(path.to_string(), ("text/html; charset=utf-8", html));
        }
        for (name, js) in module_files() {
            files.insert(
                format!("/wtdatagram/{name}"),
                ("text/javascript; charset=utf-8", js),
            );
        }
        let files = std::sync::Arc::new(files);
        let signals = std::sync::Arc::new(Signals::default());
        let sig = signals.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let (tx, files, sig) = (tx.clone(), files.clone(), sig.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        serve_http(stream, tx, &files, &sig),
                    )
                    .await;
                });
            }
        });
        (
            PageHost {
                addr,
                signals,
                task,
            },
            rx,
        )
    }
}

async fn serve_http(
    mut stream: TcpStream,
    results: mpsc::Sender<String>,
    files: &HashMap<String, (&'static str, String)>,
    signals: &Signals,
) -> std::io::Result<()> {
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
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let content_length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(4 << 20);
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
    let (status, ctype, content): (&str, &str, &str) = match (method.as_str(), path) {
        ("GET", p) => match files.get(p) {
            Some((ctype, content)) => ("200 OK", ctype, content.as_str()),
            None => ("404 Not Found", "text/plain", ""),
        },
        ("POST", "/result") => {
            let _ = results.send(body).await;
            ("204 No Content", "text/plain", "")
        }
        ("POST", "/signal") => {
            signals.raise(body.trim());
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

/// Decode `application/x-www-form-urlencoded`.
pub fn parse_form(body: &str) -> HashMap<String, String> {
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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
