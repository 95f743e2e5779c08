//! Capsules on the CONNECT stream (RFC 9297 §3.2) used by WebTransport sessions.
//!
//! RFC 9297 carries capsules inside HTTP/3 DATA frames, and every peer in the interop
//! matrix does so (Chromium, aioquic, pywebtransport, webtransport-go, wtransport 0.7 and
//! web-transport-quinn 0.13, which also only read them from DATA frames), so that is what
//! we write. Older web-transport-quinn releases wrote them raw, and a decoder should not
//! depend on which. Frames and capsules share the same type-length-value layout, so
//! [`ConnectStreamDecoder`] accepts both: a DATA frame feeds its payload to an inner
//! capsule decoder, and a unit whose type is a WebTransport capsule type is taken as a
//! raw capsule. Other unknown units are skipped (unknown frame types must be ignored).

use bytes::Bytes;

use crate::codes::*;
use crate::error::WireError;
use crate::frame::{self, Piece, Take, Tlv, TlvReader};
use crate::reader::Reader;

pub const DATAGRAM: u64 = 0x00;
pub const CLOSE_WEBTRANSPORT_SESSION: u64 = 0x2843;
pub const DRAIN_WEBTRANSPORT_SESSION: u64 = 0x78ae;
/// draft-15 flow-control capsules (draft-ietf-webtrans-http3-15 §5.6). Peers that enabled
/// flow control with us (both sides' SETTINGS declare it, see
/// [`Settings::flow_control`](crate::settings::Settings::flow_control)) may send them on
/// the CONNECT stream. They only govern WebTransport streams, which a datagram-only
/// endpoint neither opens nor accepts, so they decode as [`Capsule::Unknown`] and the
/// session ignores them (as §5.1 requires anyway while flow control is not enabled).
pub const WT_MAX_DATA: u64 = 0x190b_4d3d;
pub const WT_MAX_STREAMS_BIDI: u64 = 0x190b_4d3f;
pub const WT_MAX_STREAMS_UNI: u64 = 0x190b_4d40;
pub const WT_DATA_BLOCKED: u64 = 0x190b_4d41;
pub const WT_STREAMS_BLOCKED_BIDI: u64 = 0x190b_4d43;
pub const WT_STREAMS_BLOCKED_UNI: u64 = 0x190b_4d44;
/// Longest close reason the protocol allows, in bytes.
pub const MAX_CLOSE_REASON: usize = 1024;

/// A capsule relevant to a WebTransport session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capsule {
    Close { code: u32, reason: String },
    Drain,
    Unknown { ty: u64, payload: Bytes },
}

impl Capsule {
    pub fn decode(ty: u64, payload: Bytes) -> Result<Capsule, WireError> {
        match ty {
            CLOSE_WEBTRANSPORT_SESSION => {
                let mut r = Reader::new(&payload, H3_MESSAGE_ERROR);
                let code = r.u32_be()?;
                let reason = r.rest();
                if reason.len() > MAX_CLOSE_REASON {
                    return Err(WireError::new(
                        H3_MESSAGE_ERROR,
                        "close reason longer than 1024 bytes",
                    ));
                }
                let reason = std::str::from_utf8(reason)
                    .map_err(|_| WireError::new(H3_MESSAGE_ERROR, "close reason is not UTF-8"))?
                    .to_string();
                Ok(Capsule::Close { code, reason })
            }
            DRAIN_WEBTRANSPORT_SESSION => {
                if !payload.is_empty() {
                    return Err(WireError::new(
                        H3_MESSAGE_ERROR,
                        "DRAIN capsule with a payload",
                    ));
                }
                Ok(Capsule::Drain)
            }
            ty => Ok(Capsule::Unknown { ty, payload }),
        }
    }

    /// The capsule's bytes (type, length, value).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Capsule::Close { code, reason } => {
                let reason = truncate_utf8(reason, MAX_CLOSE_REASON);
                let mut value = Vec::with_capacity(4 + reason.len());
                value.extend_from_slice(&code.to_be_bytes());
                value.extend_from_slice(reason.as_bytes());
                frame::encode(CLOSE_WEBTRANSPORT_SESSION, &value, &mut out);
            }
            Capsule::Drain => frame::encode(DRAIN_WEBTRANSPORT_SESSION, &[], &mut out),
            Capsule::Unknown { ty, payload } => frame::encode(*ty, payload, &mut out),
        }
        out
    }

    /// The capsule wrapped in an HTTP/3 DATA frame, as RFC 9297 puts it on the stream.
    pub fn encode_in_data_frame(&self) -> Vec<u8> {
        let capsule = self.encode();
        let mut out = Vec::with_capacity(capsule.len() + 4);
        frame::encode(frame::DATA, &capsule, &mut out);
        out
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_webtransport_capsule(ty: u64) -> bool {
    matches!(ty, CLOSE_WEBTRANSPORT_SESSION | DRAIN_WEBTRANSPORT_SESSION)
        // draft-15 flow-control capsules (WT_MAX_DATA .. WT_STREAMS_BLOCKED).
        || (WT_MAX_DATA..=WT_STREAMS_BLOCKED_UNI).contains(&ty)
}

/// What the CONNECT stream carried after the response/request HEADERS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// A capsule a session acts on: CLOSE_WEBTRANSPORT_SESSION or DRAIN.
    Capsule(Capsule),
    /// Any other capsule (flow control, DATAGRAM capsules, extensions): a datagram-only
    /// session does not act on it, so its payload was skipped without being held.
    Ignored { ty: u64, len: u64 },
    /// Trailing HEADERS: the message is over.
    Trailers,
}

/// How much of a capsule of type `ty` declaring `len` bytes is held: CLOSE and DRAIN,
/// whose size the draft bounds, whole; every other one is skipped (never buffered).
fn capsule_take(ty: u64, len: u64) -> Result<Take, WireError> {
    match ty {
        CLOSE_WEBTRANSPORT_SESSION if len > 4 + MAX_CLOSE_REASON as u64 => Err(WireError::new(
            H3_MESSAGE_ERROR,
            format!("CLOSE_WEBTRANSPORT_SESSION of {len} bytes: the reason is limited to 1024"),
        )),
        DRAIN_WEBTRANSPORT_SESSION if len != 0 => Err(WireError::new(
            H3_MESSAGE_ERROR,
            "DRAIN capsule with a payload",
        )),
        CLOSE_WEBTRANSPORT_SESSION | DRAIN_WEBTRANSPORT_SESSION => Ok(Take::Buffer),
        _ => Ok(Take::Skip),
    }
}

/// How a frame of type `ty` on an established session's CONNECT stream is read.
fn frame_take(ty: u64, len: u64, after_trailers: bool) -> Result<Take, WireError> {
    match ty {
        frame::DATA | frame::HEADERS if after_trailers => Err(WireError::new(
            H3_FRAME_UNEXPECTED,
            "frame after trailers (RFC 9114 §4.1)",
        )),
        // Capsules travel in DATA frames of any size: stream them into the capsule layer.
        frame::DATA => Ok(Take::Stream),
        // Trailers end the message; their fields mean nothing to a session.
        frame::HEADERS => Ok(Take::Skip),
        ty if is_webtransport_capsule(ty) => capsule_take(ty, len),
        frame::SETTINGS | frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH => {
            Err(WireError::new(
                H3_FRAME_UNEXPECTED,
                format!("frame {ty:#x} on a request stream"),
            ))
        }
        ty if frame::is_reserved_h2(ty) => Err(WireError::new(
            H3_FRAME_UNEXPECTED,
            format!("HTTP/2 frame {ty:#x}"),
        )),
        // Unknown frame types are ignored whatever their size (RFC 9114 §9).
        _ => Ok(Take::Skip),
    }
}

/// Decoder for the data of an established session's CONNECT stream: HTTP/3 frames, and
/// capsules inside DATA frames (or raw). It holds at most one CLOSE capsule (1028
/// bytes) plus what was pushed and not yet read: DATA frames are streamed and unknown
/// frames and capsules skipped, whatever length they declare.
#[derive(Default)]
pub struct ConnectStreamDecoder {
    frames: TlvReader,
    capsules: TlvReader,
    trailers: bool,
}

impl ConnectStreamDecoder {
    pub fn push(&mut self, data: &[u8]) {
        self.frames.push(data);
    }

    /// Bytes held: pushed and not yet decoded, or part of an incomplete capsule.
    pub fn buffered(&self) -> usize {
        self.frames.buffered() + self.capsules.buffered()
    }

    /// The error for the stream ending now, if it ends mid-unit: inside an HTTP/3 frame
    /// is H3_FRAME_ERROR (RFC 9114 §7.1), inside a capsule H3_MESSAGE_ERROR.
    pub fn end_of_stream_error(&self) -> Option<WireError> {
        if !self.frames.at_boundary() {
            Some(WireError::new(
                H3_FRAME_ERROR,
                "CONNECT stream ended inside a frame",
            ))
        } else if !self.capsules.at_boundary() {
            Some(WireError::new(
                H3_MESSAGE_ERROR,
                "CONNECT stream ended inside a capsule",
            ))
        } else {
            None
        }
    }

    fn capsule(piece: Piece) -> Result<Option<StreamItem>, WireError> {
        match piece {
            Piece::Unit(Tlv { ty, payload }) => {
                Capsule::decode(ty, payload).map(|c| Some(StreamItem::Capsule(c)))
            }
            Piece::Skipped { ty, len } => Ok(Some(StreamItem::Ignored { ty, len })),
            // capsule_take never streams.
            Piece::Chunk { .. } => Ok(None),
        }
    }

    // Fallible, so not an Iterator: `Ok(None)` means "need more bytes", not "done".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<StreamItem>, WireError> {
        loop {
            if let Some(p) = self.capsules.next(capsule_take)? {
                if let Some(item) = Self::capsule(p)? {
                    return Ok(Some(item));
                }
                continue;
            }
            let trailers = self.trailers;
            let Some(p) = self.frames.next(|ty, len| frame_take(ty, len, trailers))? else {
                return Ok(None);
            };
            match p {
                Piece::Chunk { data, .. } => self.capsules.push(&data),
                Piece::Skipped {
                    ty: frame::HEADERS, ..
                } => {
                    self.trailers = true;
                    return Ok(Some(StreamItem::Trailers));
                }
                // A raw capsule (type at the frame level).
                Piece::Unit(_) => return Self::capsule(p),
                Piece::Skipped { ty, .. } if is_webtransport_capsule(ty) => {
                    return Self::capsule(p)
                }
                Piece::Skipped { .. } => {} // unknown frame: ignored
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_capsule_exact_bytes() {
        // Same bytes quiche's capsule tests use: type 0x2843, length 9, code 0x1234, "hello".
        let c = Capsule::Close {
            code: 0x1234,
            reason: "hello".into(),
        };
        assert_eq!(
            c.encode(),
            [0x68, 0x43, 0x09, 0x00, 0x00, 0x12, 0x34, b'h', b'e', b'l', b'l', b'o']
        );
        let mut d = ConnectStreamDecoder::default();
        d.push(&c.encode_in_data_frame());
        assert_eq!(d.next().unwrap(), Some(StreamItem::Capsule(c.clone())));
        assert_eq!(d.next().unwrap(), None);
        assert_eq!(d.end_of_stream_error(), None);
        // Raw (no DATA frame), as older web-transport-quinn releases wrote it.
        let mut d = ConnectStreamDecoder::default();
        d.push(&c.encode());
        assert_eq!(d.next().unwrap(), Some(StreamItem::Capsule(c)));
    }

    #[test]
    fn capsule_split_across_data_frames() {
        let c = Capsule::Close {
            code: 7,
            reason: "bye bye".into(),
        };
        let bytes = c.encode();
        let mut wire = Vec::new();
        frame::encode(frame::DATA, &bytes[..3], &mut wire);
        frame::encode(0x21, b"grease", &mut wire); // reserved/unknown frame type: ignored
        frame::encode(frame::DATA, &bytes[3..], &mut wire);
        let mut d = ConnectStreamDecoder::default();
        d.push(&wire);
        assert_eq!(d.next().unwrap(), Some(StreamItem::Capsule(c)));
    }

    #[test]
    fn frames_after_trailers_and_truncation() {
        let mut wire = Vec::new();
        frame::encode(frame::HEADERS, &[0, 0], &mut wire);
        frame::encode(frame::DATA, &[], &mut wire);
        let mut d = ConnectStreamDecoder::default();
        d.push(&wire);
        assert_eq!(d.next().unwrap(), Some(StreamItem::Trailers));
        assert_eq!(d.next().unwrap_err().code, H3_FRAME_UNEXPECTED);

        let mut d = ConnectStreamDecoder::default();
        d.push(&[0x00, 0x05, 0x68]); // DATA frame announcing 5 bytes, 1 present
        assert_eq!(d.next().unwrap(), None);
        assert_eq!(d.end_of_stream_error().unwrap().code, H3_FRAME_ERROR);

        let mut d = ConnectStreamDecoder::default();
        d.push(&[0x00, 0x02, 0x68, 0x43]); // complete DATA frame, capsule header only
        assert_eq!(d.next().unwrap(), None);
        assert_eq!(d.end_of_stream_error().unwrap().code, H3_MESSAGE_ERROR);
    }

    #[test]
    fn long_reason_is_truncated_on_a_char_boundary() {
        let reason = "é".repeat(600); // 1200 bytes
        let c = Capsule::Close { code: 1, reason };
        let enc = c.encode();
        let mut d = ConnectStreamDecoder::default();
        d.push(&enc);
        match d.next().unwrap() {
            Some(StreamItem::Capsule(Capsule::Close { reason, .. })) => {
                assert_eq!(reason.len(), 1024)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flow_control_capsules_are_skipped() {
        // What pywebtransport 0.21 and webtransport-go 0.13 send once flow control is on:
        // each capsule's value is one varint. In DATA frames (how both peers write them)
        // and raw, they come out as Ignored (skipped, never held) and do not disturb
        // the capsule after them.
        let close = Capsule::Close {
            code: 9,
            reason: "done".into(),
        };
        let flow = [
            (WT_MAX_DATA, 4_194_304u64),
            (WT_MAX_STREAMS_BIDI, 10),
            (WT_MAX_STREAMS_UNI, 10),
            (WT_DATA_BLOCKED, 1),
            (WT_STREAMS_BLOCKED_BIDI, 0),
            (WT_STREAMS_BLOCKED_UNI, 0),
        ];
        for raw in [false, true] {
            let mut wire = Vec::new();
            for (ty, v) in flow {
                let mut value = Vec::new();
                crate::varint::encode(v, &mut value);
                let c = Capsule::Unknown {
                    ty,
                    payload: Bytes::from(value),
                };
                wire.extend(if raw {
                    c.encode()
                } else {
                    c.encode_in_data_frame()
                });
            }
            wire.extend(close.encode_in_data_frame());
            let mut d = ConnectStreamDecoder::default();
            d.push(&wire);
            for (ty, _) in flow {
                match d.next().unwrap() {
                    Some(StreamItem::Ignored { ty: got, len }) => {
                        assert_eq!(got, ty, "raw={raw}");
                        assert!(len > 0 && len <= 8, "raw={raw}");
                    }
                    other => panic!("raw={raw}: {other:?}"),
                }
            }
            assert_eq!(d.next().unwrap(), Some(StreamItem::Capsule(close.clone())));
            assert_eq!(d.next().unwrap(), None);
        }
    }

    #[test]
    fn large_frames_and_capsules_stream_through() {
        // A 100 KB DATA frame holding a 99 KB unknown capsule and then a CLOSE, and a
        // 200 KB unknown frame before it: legal, read in 1 KiB pushes, never held whole.
        let close = Capsule::Close {
            code: 42,
            reason: "end".into(),
        };
        let mut inner = Capsule::Unknown {
            ty: 0x1234,
            payload: Bytes::from(vec![9u8; 99_000]),
        }
        .encode();
        inner.extend(close.encode());
        let mut wire = Vec::new();
        frame::encode(0x2f2f, &vec![0u8; 200_000], &mut wire);
        frame::encode(frame::DATA, &inner, &mut wire);
        for step in [1usize, 1024, 7777, wire.len()] {
            let mut d = ConnectStreamDecoder::default();
            let mut got = Vec::new();
            let mut most = 0;
            for part in wire.chunks(step) {
                d.push(part);
                while let Some(item) = d.next().unwrap() {
                    got.push(item);
                }
                most = most.max(d.buffered());
            }
            assert_eq!(
                got,
                vec![
                    StreamItem::Ignored {
                        ty: 0x1234,
                        len: 99_000
                    },
                    StreamItem::Capsule(close.clone())
                ],
                "step {step}"
            );
            assert_eq!(d.end_of_stream_error(), None);
            if step < wire.len() {
                assert!(most <= step + 1100, "step {step}: held {most}");
            }
        }
    }

    #[test]
    fn oversize_close_capsule_is_refused_from_its_header() {
        // Only the header arrived: the declared length alone is the error.
        let mut cap = Vec::new();
        crate::varint::encode(CLOSE_WEBTRANSPORT_SESSION, &mut cap);
        crate::varint::encode(4 + 1025, &mut cap);
        let mut wire = Vec::new();
        crate::varint::encode(frame::DATA, &mut wire);
        crate::varint::encode(1 << 20, &mut wire);
        wire.extend(&cap);
        let mut d = ConnectStreamDecoder::default();
        d.push(&wire);
        assert_eq!(d.next().unwrap_err().code, H3_MESSAGE_ERROR);
    }

    #[test]
    fn malformed_capsules() {
        let bad: &[&[u8]] = &[
            &[0x68, 0x43, 0x02, 0x00, 0x01],       // close shorter than its code
            &[0x68, 0x43, 0x05, 0, 0, 0, 1, 0xff], // reason not UTF-8
            &[0x80, 0x00, 0x78, 0xae, 0x01, 0x00], // drain with payload
        ];
        for b in bad {
            let mut d = ConnectStreamDecoder::default();
            let mut wire = Vec::new();
            frame::encode(frame::DATA, b, &mut wire);
            d.push(&wire);
            assert_eq!(d.next().unwrap_err().code, H3_MESSAGE_ERROR, "{b:02x?}");
        }
        let mut d = ConnectStreamDecoder::default();
        let mut wire = Vec::new();
        frame::encode(frame::SETTINGS, &[], &mut wire);
        d.push(&wire);
        assert_eq!(d.next().unwrap_err().code, H3_FRAME_UNEXPECTED);
    }
}
