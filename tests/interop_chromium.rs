//! A real browser against our server: headless Debian Chromium opens a WebTransport
//! session (draft-02, `serverCertificateHashes`) to `Server`, exchanges 1,000 datagrams
//! each way that our side echoes, closes the session with a code and reason, and reports
//! over plain HTTP (tests/common/browser_echo.rs, shared with Firefox).
//!
//! Needs `/usr/bin/chromium` (`scripts/setup-chromium.sh` installs it); fails without it.

#[path = "common/browser.rs"]
mod browser;
#[path = "common/browser_echo.rs"]
mod browser_echo;
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_echoes_datagrams_and_closes_with_code_and_reason() {
    browser_echo::run(browser::Kind::Chromium).await;
}
