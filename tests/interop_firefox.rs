//! Firefox ESR (Debian's `firefox-esr`, WebTransport over its own QUIC stack, neqo)
//! against our server, like tests/interop_chromium.rs (tests/common/browser_echo.rs): the
//! page opens a session with `serverCertificateHashes`, sends 1,000 datagrams of 1 byte
//! up to its `maxDatagramSize` that our side echoes, closes with a code and reason, and
//! reports over plain HTTP. What Firefox does differently is measured and printed.
//!
//! Needs `/usr/bin/firefox-esr` (`scripts/setup-firefox.sh` installs it); fails without it.

#[path = "common/browser.rs"]
mod browser;
#[path = "common/browser_echo.rs"]
mod browser_echo;
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_echoes_datagrams_and_closes_with_code_and_reason() {
    browser_echo::run(browser::Kind::Firefox).await;
}
