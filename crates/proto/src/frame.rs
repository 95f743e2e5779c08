//! HTTP/3 frames (RFC 9114 §7) and the incremental type-length-value decoder shared by
//! frames and capsules (both are `varint type, varint length, payload`).

use bytes::{Buf, Bytes, BytesMut};

use crate::codes::*;
use crate::error::WireError;
use crate::varint;

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

/// What a [`TlvReader`] does with a unit, decided from its type and declared length
/// before any of its payload is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Hold the whole payload and return it as one [`Piece::Unit`]. The caller decides
    /// the bound: the declared length is known when this is chosen.
    Buffer,
    /// Pass the payload on as it arrives, in [`Piece::Chunk`]s (never held whole).
    Stream,
    /// Discard the payload as it arrives (unknown frame types, RFC 9114 §9), then
    /// report it once as [`Piece::Skipped`].
    Skip,
}

/// What a [`TlvReader`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A unit read with [`Take::Buffer`].
    Unit(Tlv),
    /// Part of the payload of a unit read with [`Take::Stream`]; `end` on its last part
    /// (a unit of length 0 yields one empty chunk with `end`).
    Chunk { ty: u64, data: Bytes, end: bool },
    /// A unit read with [`Take::Skip`] is over.
    Skipped { ty: u64, len: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// Waiting for the next unit's type and length.
    Header,
    /// Inside the payload of a unit of type `ty`, `left` bytes of it still to come.
    Payload {
        ty: u64,
        len: u64,
        left: u64,
        take: Take,
    },
}

/// Incremental reader for a stream of type-length-value units (HTTP/3 frames, capsules)
/// that never holds more of a unit than its caller allows: for each unit the caller
/// chooses, from type and declared length, to buffer it whole, stream it, or skip it.
///
/// Memory: the bytes pushed and not yet consumed, plus at most one buffered unit, whose
/// bound the caller enforces in its `decide` function. Streamed and skipped payloads
/// are never accumulated, whatever length they declare.
#[derive(Debug)]
pub struct TlvReader {
    buf: BytesMut,
    state: ReadState,
}

impl Default for TlvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl TlvReader {
    pub fn new() -> Self {
        TlvReader {
            buf: BytesMut::new(),
            state: ReadState::Header,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes pushed and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the stream may end here: between units, with nothing pending.
    pub fn at_boundary(&self) -> bool {
        self.state == ReadState::Header && self.buf.is_empty()
    }

    /// The type of the next unit, once its first varint has arrived (only between units).
    pub fn peek_type(&self) -> Option<u64> {
        match self.state {
            ReadState::Header => varint::decode(&self.buf).map(|(v, _)| v),
            ReadState::Payload { .. } => None,
        }
    }

    /// Give up the reader, returning the bytes pushed and not consumed (only meaningful
    /// between units).
    pub fn into_remaining(self) -> BytesMut {
        self.buf
    }

    /// The next piece, or `Ok(None)` when more bytes are needed. `decide(ty, len)` is
    /// called once per unit, when its header is complete; its error is returned as is
    /// (the reader itself cannot fail: any byte sequence is a prefix of valid units).
    // Fallible, so not an Iterator: `Ok(None)` means "need more bytes", not "done".
    #[allow(clippy::should_implement_trait)]
    pub fn next<E>(
        &mut self,
        mut decide: impl FnMut(u64, u64) -> Result<Take, E>,
    ) -> Result<Option<Piece>, E> {
        loop {
            match self.state {
                ReadState::Header => {
                    let Some((ty, n1)) = varint::decode(&self.buf) else {
                        return Ok(None);
                    };
                    let Some((len, n2)) = varint::decode(&self.buf[n1..]) else {
                        return Ok(None);
                    };
                    let take = decide(ty, len)?;
                    self.buf.advance(n1 + n2);
                    self.state = ReadState::Payload {
                        ty,
                        len,
                        left: len,
                        take,
                    };
                    if len == 0 && take == Take::Stream {
                        self.state = ReadState::Header;
                        return Ok(Some(Piece::Chunk {
                            ty,
                            data: Bytes::new(),
                            end: true,
                        }));
                    }
                }
                ReadState::Payload {
                    ty,
                    len,
                    left,
                    take,
                } => match take {
                    Take::Buffer => {
                        if (self.buf.len() as u64) < left {
                            return Ok(None);
                        }
                        let payload = self.buf.split_to(left as usize).freeze();
                        self.state = ReadState::Header;
                        return Ok(Some(Piece::Unit(Tlv { ty, payload })));
                    }
                    Take::Stream => {
                        if self.buf.is_empty() {
                            return Ok(None);
                        }
                        let n = left.min(self.buf.len() as u64);
                        let data = self.buf.split_to(n as usize).freeze();
                        let left = left - n;
                        let end = left == 0;
                        self.state = if end {
                            ReadState::Header
                        } else {
                            ReadState::Payload {
                                ty,
                                len,
                                left,
                                take,
                            }
                        };
                        return Ok(Some(Piece::Chunk { ty, data, end }));
                    }
                    Take::Skip => {
                        let n = left.min(self.buf.len() as u64);
                        self.buf.advance(n as usize);
                        let left = left - n;
                        if left > 0 {
                            self.state = ReadState::Payload {
                                ty,
                                len,
                                left,
                                take,
                            };
                            return Ok(None);
                        }
                        self.state = ReadState::Header;
                        return Ok(Some(Piece::Skipped { ty, len }));
                    }
                },
            }
        }
    }
}

/// Decode a GOAWAY payload: one varint id, nothing else.
pub fn decode_goaway(payload: &[u8]) -> Result<u64, WireError> {
    let mut r = crate::reader::Reader::new(payload, H3_FRAME_ERROR);
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

    /// Read `wire` fed in pieces of `step` bytes: buffer type 1, stream type 0, skip
    /// the rest; chunks of a streamed unit are concatenated.
    fn read_all(wire: &[u8], step: usize) -> (Vec<(u64, Vec<u8>)>, usize) {
        let mut r = TlvReader::new();
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut streaming = false;
        let mut most_buffered = 0;
        for part in wire.chunks(step.max(1)) {
            r.push(part);
            most_buffered = most_buffered.max(r.buffered());
            while let Some(p) = r
                .next(|ty, _| {
                    Ok::<_, ()>(match ty {
                        HEADERS => Take::Buffer,
                        DATA => Take::Stream,
                        _ => Take::Skip,
                    })
                })
                .unwrap()
            {
                match p {
                    Piece::Unit(t) => out.push((t.ty, t.payload.to_vec())),
                    Piece::Chunk { ty, data, end } => {
                        if !streaming {
                            out.push((ty, Vec::new()));
                        }
                        out.last_mut().unwrap().1.extend_from_slice(&data);
                        streaming = !end;
                    }
                    Piece::Skipped { ty, len } => out.push((ty, vec![len as u8])),
                }
            }
        }
        assert!(r.at_boundary());
        (out, most_buffered)
    }

    #[test]
    fn reader_streams_and_skips_whatever_the_split() {
        let mut wire = Vec::new();
        encode(HEADERS, b"abc", &mut wire);
        encode(DATA, &[7u8; 300], &mut wire);
        encode(0x21, &[1u8; 200], &mut wire); // reserved type: skipped
        encode(DATA, b"", &mut wire);
        encode(HEADERS, b"", &mut wire);
        let (whole, _) = read_all(&wire, wire.len());
        assert_eq!(
            whole,
            vec![
                (HEADERS, b"abc".to_vec()),
                (DATA, vec![7u8; 300]),
                (0x21, vec![200]),
                (DATA, vec![]),
                (HEADERS, vec![]),
            ]
        );
        for step in 1..wire.len() {
            assert_eq!(read_all(&wire, step).0, whole, "step {step}");
        }
    }

    #[test]
    fn reader_never_holds_a_skipped_or_streamed_payload() {
        // A 1 MB unknown frame and a 1 MB DATA frame, fed 4 KiB at a time: the reader
        // holds at most what one push brought.
        let mut wire = Vec::new();
        encode(0x2f, &vec![0u8; 1 << 20], &mut wire);
        encode(DATA, &vec![1u8; 1 << 20], &mut wire);
        let (units, most) = read_all(&wire, 4096);
        assert_eq!(units.len(), 2);
        assert_eq!(units[1].1.len(), 1 << 20);
        assert!(most <= 4096 + 16, "held {most} bytes");
    }

    #[test]
    fn reader_returns_the_callers_error_before_consuming() {
        let mut wire = Vec::new();
        encode(HEADERS, &[0u8; 100], &mut wire);
        let mut r = TlvReader::new();
        r.push(&wire);
        let e = r
            .next(|ty, len| {
                if len > 10 {
                    Err((ty, len))
                } else {
                    Ok(Take::Buffer)
                }
            })
            .unwrap_err();
        assert_eq!(e, (HEADERS, 100));
        assert_eq!(r.peek_type(), Some(HEADERS));
    }

    #[test]
    fn goaway() {
        assert_eq!(decode_goaway(&[0x40, 0x10]).unwrap(), 16);
        assert_eq!(decode_goaway(&[0x40]).unwrap_err().code, H3_FRAME_ERROR);
        assert_eq!(decode_goaway(&[1, 2]).unwrap_err().code, H3_FRAME_ERROR);
    }
}
