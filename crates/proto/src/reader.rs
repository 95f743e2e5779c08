//! A bounds-checked cursor over a byte slice.

use crate::error::WireError;
use crate::varint;

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
