//! The error every decoder returns: what went wrong and the code to close with.

use std::fmt;

/// A decoding failure, with the HTTP/3 error code that the protocol prescribes for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// HTTP/3 (or QPACK / WebTransport) error code to close with.
    pub code: u64,
    /// Human-readable detail.
    pub msg: String,
}

impl WireError {
    pub fn new(code: u64, msg: impl Into<String>) -> Self {
        WireError {
            code,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.msg, crate::codes::name(self.code))
    }
}

impl std::error::Error for WireError {}
