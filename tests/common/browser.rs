#![allow(dead_code)]
//! Real browsers for the tests: Debian's headless Chromium and Firefox ESR, each in its
//! own process group with a throwaway profile, and a plain-HTTP page host that serves
//! test pages and the JS module (`bindings/js/dist`) and collects what the page POSTs.
//!
//! Used as `#[path = "common/browser.rs"] mod browser;` by the browser tests.

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

/// The JS module's compiled files (`bindings/js/dist/*.js`), by name.
pub fn module_files() -> HashMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/js/dist");
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
