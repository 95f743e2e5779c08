//! Sans-IO codec for everything libwtdatagram puts on the wire: QUIC varints, HTTP/3
//! frames, SETTINGS, QPACK (static table only), capsules and the RFC 9297 datagram
//! prefix. Nothing in here performs I/O; every decoder takes bytes and returns values or
//! a [`WireError`] that carries the HTTP/3 error code the caller must use to close the
//! stream or connection.

pub mod capsule;
pub mod codes;
pub mod datagram;
pub mod frame;
pub mod headers;
pub mod huffman;
pub mod qpack;
pub mod settings;
pub mod varint;

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
        write!(f, "{} ({})", self.msg, codes::name(self.code))
    }
}

impl std::error::Error for WireError {}

/// A cursor over a byte slice with bounds-checked reads. Running off the end is a
/// "truncated" error with the code given at construction.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    code: u64,
}

impl<'a> Reader<'a> {
    /// `code` is the error code for truncated input in this context.
    pub fn new(buf: &'a [u8], code: u64) -> Self {
        Reader { buf, pos: 0, code }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    fn truncated(&self, what: &str) -> WireError {
        WireError::new(self.code, format!("truncated {what}"))
    }
    pub fn varint(&mut self) -> Result<u64, WireError> {
        match varint::decode(&self.buf[self.pos..]) {
            Some((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            None => Err(self.truncated("varint")),
        }
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.truncated("byte"))?;
        self.pos += 1;
        Ok(b)
    }
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }
    pub fn u32_be(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(self.truncated("field"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
}
