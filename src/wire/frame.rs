//! HTTP/3 frames (RFC 9114 §7) and the incremental type-length-value decoder shared by
//! frames and capsules (both are `varint type, varint length, payload`).

use bytes::{Buf, Bytes, BytesMut};

use super::codes::*;
use super::{varint, WireError};

pub const DATA: u64 = 0x00;
pub const HEADERS: u64 = 0x01;
pub const CANCEL_PUSH: u64 = 0x03;
pub const SETTINGS: u64 = 0x04;
pub const PUSH_PROMISE: u64 = 0x05;
pub const GOAWAY: u64 = 0x07;
pub const MAX_PUSH_ID: u64 = 0x0d;
/// WEBTRANSPORT_STREAM signal that opens a WebTransport bidirectional stream.
pub const WEBTRANSPORT_STREAM: u64 = 0x41;

/// Frame types that HTTP/2 had and HTTP/3 reserves: receiving one is H3_FRAME_UNEXPECTED.
pub fn is_reserved_h2(ty: u64) -> bool {
    matches!(ty, 0x02 | 0x06 | 0x08 | 0x09)
}

/// Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2, WebTransport).
pub mod stream_type {
    pub const CONTROL: u64 = 0x00;
    pub const PUSH: u64 = 0x01;
    pub const QPACK_ENCODER: u64 = 0x02;
    pub const QPACK_DECODER: u64 = 0x03;
    pub const WEBTRANSPORT: u64 = 0x54;
}

/// One complete type-length-value unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub ty: u64,
    pub payload: Bytes,
}

/// Append a frame (or capsule) with the given type and payload.
pub fn encode(ty: u64, payload: &[u8], out: &mut Vec<u8>) {
    varint::encode(ty, out);
    varint::encode(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Incremental decoder for a stream of TLV units: feed bytes as they arrive with
/// [`push`](Self::push), take complete units with [`next`](Self::next).
///
/// A unit whose declared length exceeds `max_len` is an error with `too_large_code`
/// (the peer would make us buffer without bound).
pub struct TlvDecoder {
    buf: BytesMut,
    max_len: u64,
    too_large_code: u64,
}

impl TlvDecoder {
    pub fn new(max_len: u64, too_large_code: u64) -> Self {
        TlvDecoder {
            buf: BytesMut::new(),
            max_len,
            too_large_code,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as a complete unit.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Give up the decoder, returning bytes received after the last complete unit.
    pub fn into_remaining(self) -> BytesMut {
        self.buf
    }

    /// The type of the next unit, once its first varint has arrived.
    pub fn peek_type(&self) -> Option<u64> {
        varint::decode(&self.buf).map(|(v, _)| v)
    }

    /// The next complete unit, `Ok(None)` if more bytes are needed.
    // Fallible, so not an Iterator: `Ok(None)` means "need more bytes", not "done".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Tlv>, WireError> {
        let Some((ty, n1)) = varint::decode(&self.buf) else {
            return Ok(None);
        };
        let Some((len, n2)) = varint::decode(&self.buf[n1..]) else {
            return Ok(None);
        };
        if len > self.max_len {
            return Err(WireError::new(
                self.too_large_code,
                format!(
                    "unit of type {ty:#x} declares {len} bytes, limit {}",
                    self.max_len
                ),
            ));
        }
        let total = n1 + n2 + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        self.buf.advance(n1 + n2);
        let payload = self.buf.split_to(len as usize).freeze();
        Ok(Some(Tlv { ty, payload }))
    }
}

/// Decode a GOAWAY payload: one varint id, nothing else.
pub fn decode_goaway(payload: &[u8]) -> Result<u64, WireError> {
    let mut r = super::Reader::new(payload, H3_FRAME_ERROR);
    let id = r.varint()?;
    if !r.is_empty() {
        return Err(WireError::new(H3_FRAME_ERROR, "GOAWAY has trailing bytes"));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_arbitrary_splits() {
        let mut wire = Vec::new();
        encode(HEADERS, b"abc", &mut wire);
        encode(DATA, &[7u8; 300], &mut wire);
        encode(0x2843, b"", &mut wire);
        for split in 0..wire.len() {
            let mut d = TlvDecoder::new(1 << 16, H3_EXCESSIVE_LOAD);
            let mut got = Vec::new();
            d.push(&wire[..split]);
            while let Some(t) = d.next().unwrap() {
                got.push(t);
            }
            d.push(&wire[split..]);
            while let Some(t) = d.next().unwrap() {
                got.push(t);
            }
            assert_eq!(got.len(), 3, "split at {split}");
            assert_eq!(got[0].payload.as_ref(), b"abc");
            assert_eq!(got[1].payload.len(), 300);
            assert_eq!(got[2].ty, 0x2843);
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn oversize_declared_length_is_error() {
        let mut wire = Vec::new();
        varint::encode(HEADERS, &mut wire);
        varint::encode(1 << 20, &mut wire);
        let mut d = TlvDecoder::new(1 << 16, H3_EXCESSIVE_LOAD);
        d.push(&wire);
        assert_eq!(d.next().unwrap_err().code, H3_EXCESSIVE_LOAD);
    }

    #[test]
    fn goaway() {
        assert_eq!(decode_goaway(&[0x40, 0x10]).unwrap(), 16);
        assert_eq!(decode_goaway(&[0x40]).unwrap_err().code, H3_FRAME_ERROR);
        assert_eq!(decode_goaway(&[1, 2]).unwrap_err().code, H3_FRAME_ERROR);
    }
}
