//! What the commands print and how they fail, shared by `main` and `relay`.

use std::io::Write;

/// How a command failed: bad usage (exit 2) or at run time (exit 1).
#[derive(Debug)]
pub enum Fail {
    Usage(String),
    Runtime(String),
}

pub fn runtime(msg: impl Into<String>) -> Fail {
    Fail::Runtime(msg.into())
}

/// Print one line on stdout and flush; a closed stdout is not worth dying for.
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

pub fn warn(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr().lock(), "wtd: warning: {}", line.as_ref());
}
