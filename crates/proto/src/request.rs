//! Request streams: reading the HEADERS that open one (within the field section
//! limits, skipping unknown frames of any size), and deciding whether a CONNECT opens a
//! WebTransport session (the server's admission) or how a client asks for one.

use bytes::BytesMut;

use crate::codes::*;
use crate::error::WireError;
use crate::frame::{self, Piece, Take, TlvReader};
use crate::headers::{self, ConnectRequest};
use crate::qpack::{self, Field, FieldLimits, SectionError};
use crate::settings::{Dialect, Settings};
use crate::slots::Exclusive;

/// What opened a request stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Headers(Vec<Field>),
    /// A WebTransport bidirectional stream (signal 0x41), not a request: its session id
    /// follows in [`HeadersReader::into_remaining`].
    WebTransportStream,
}

/// Why the HEADERS of a request stream did not come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersError {
    /// Malformed: a stream or connection error per [`is_stream_error`].
    Malformed(WireError),
    /// A well-formed field section larger than the limits (a request gets 431).
    TooLarge,
}

/// Whether an error code on a request stream ends only that stream (H3_MESSAGE_ERROR,
/// H3_REQUEST_INCOMPLETE) rather than the whole connection.
pub fn is_stream_error(code: u64) -> bool {
    code == H3_MESSAGE_ERROR || code == H3_REQUEST_INCOMPLETE
}

/// Reads a request stream up to its HEADERS (a request, or a response on a client's
/// CONNECT stream). Holds at most one HEADERS frame within the limits, plus what was
/// pushed and not yet read.
#[derive(Debug)]
pub struct HeadersReader {
    reader: TlvReader,
    limits: FieldLimits,
    /// At the start of a peer-opened bidirectional stream (it may be a WebTransport
    /// stream instead of a request).
    first: bool,
}

impl HeadersReader {
    /// For a bidirectional stream the peer opened: a request, or a WebTransport stream.
    pub fn request(limits: FieldLimits) -> Self {
        HeadersReader {
            reader: TlvReader::new(),
            limits,
            first: true,
        }
    }

    /// For the response on a stream we opened.
    pub fn response(limits: FieldLimits) -> Self {
        HeadersReader {
            reader: TlvReader::new(),
            limits,
            first: false,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.reader.push(data);
    }

    /// The next HEADERS (or the WebTransport stream signal), `Ok(None)` when more
    /// bytes are needed. Can be called again after a HEADERS (informational responses).
    // Fallible, so not an Iterator: `Ok(None)` means "need more bytes", not "done".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Start>, HeadersError> {
        if self.first && self.reader.peek_type() == Some(frame::WEBTRANSPORT_STREAM) {
            return Ok(Some(Start::WebTransportStream));
        }
        let limits = self.limits;
        while let Some(piece) = self.reader.next(|ty, len| take(ty, len, &limits))? {
            // Only the very first bytes of a stream can be the signal: after any frame
            // (even a skipped one) a 0x41 is a misplaced frame type.
            self.first = false;
            if let Piece::Unit(f) = piece {
                return match qpack::decode_limited(&f.payload, self.limits) {
                    Ok(fields) => Ok(Some(Start::Headers(fields))),
                    Err(SectionError::TooLarge) => Err(HeadersError::TooLarge),
                    Err(SectionError::Malformed(e)) => Err(HeadersError::Malformed(e)),
                };
            }
        }
        Ok(None)
    }

    /// The error for the stream ending before its HEADERS: inside a frame is
    /// H3_FRAME_ERROR (RFC 9114 §7.1), between frames H3_REQUEST_INCOMPLETE.
    pub fn end_of_stream(&self) -> WireError {
        if self.reader.at_boundary() {
            WireError::new(H3_REQUEST_INCOMPLETE, "stream ended before HEADERS")
        } else {
            WireError::new(H3_FRAME_ERROR, "stream ended inside a frame")
        }
    }

    /// Give up the reader: the bytes after the HEADERS (or after the WebTransport
    /// stream signal's type).
    pub fn into_remaining(self) -> BytesMut {
        self.reader.into_remaining()
    }
}

/// How a frame before the HEADERS is read: HEADERS whole if within the field section
/// limit (a larger one is refused from its header, before any of it is held); unknown
/// frames skipped whatever their size (RFC 9114 §9).
fn take(ty: u64, len: u64, limits: &FieldLimits) -> Result<Take, HeadersError> {
    let unexpected =
        |msg: String| HeadersError::Malformed(WireError::new(H3_FRAME_UNEXPECTED, msg));
    match ty {
        frame::HEADERS if len > limits.max_section_size => Err(HeadersError::TooLarge),
        frame::HEADERS => Ok(Take::Buffer),
        frame::DATA => Err(unexpected("DATA before HEADERS".into())),
        frame::SETTINGS | frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH => {
            Err(unexpected(format!("frame {ty:#x} on a request stream")))
        }
        frame::WEBTRANSPORT_STREAM => Err(unexpected(
            "WEBTRANSPORT_STREAM signal after the start of a stream".into(),
        )),
        ty if frame::is_reserved_h2(ty) => Err(unexpected("HTTP/2 frame type".into())),
        _ => Ok(Take::Skip),
    }
}

impl From<WireError> for HeadersError {
    fn from(e: WireError) -> Self {
        HeadersError::Malformed(e)
    }
}

/// A server's verdict on a well-formed extended CONNECT, once the client's SETTINGS
/// are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A WebTransport session in `dialect`, for the application to accept or reject.
    Session {
        dialect: Dialect,
        /// Answer with `sec-webtransport-http3-draft: draft02` (Chromium requires it).
        draft02_response: bool,
        /// Whether it must have the connection to itself (see [`Exclusive`]).
        exclusive: Exclusive,
    },
    /// Answer with this status and end the stream.
    Respond(u16, &'static str),
}

/// Admit a CONNECT request from a client whose SETTINGS are `peer`; `flow_control`:
/// both sides' SETTINGS declare draft-15 flow control.
pub fn admit(req: &ConnectRequest, peer: &Settings, flow_control: bool) -> Admission {
    let dialect = if req.protocol == headers::PROTOCOL_H3 {
        Dialect::Draft15
    } else if req.wants_draft02_response() {
        Dialect::Draft02
    } else {
        peer.dialect().unwrap_or(Dialect::Draft02)
    };
    // A client shows it speaks WebTransport by its SETTINGS, or (webtransport-go <= 0.10,
    // whose SETTINGS carry only H3_DATAGRAM) by a draft-02/07 CONNECT with HTTP
    // Datagrams negotiated. draft-15 (`webtransport-h3`) requires WT_ENABLED.
    let implied = req.protocol == headers::PROTOCOL_DRAFT && peer.datagrams();
    if peer.dialect().is_none() && !implied {
        return Admission::Respond(400, "the client announced no WebTransport support");
    }
    // draft-ietf-webtrans-http3-15 §5.1: without flow control (both sides' SETTINGS
    // declare it; ours always do) a connection carries one draft-15 session at a time;
    // an excess CONNECT is reset with H3_REQUEST_REJECTED (not processed).
    let exclusive = if dialect == Dialect::Draft15 && !flow_control {
        Exclusive::OfOpen
    } else {
        Exclusive::No
    };
    Admission::Session {
        dialect,
        draft02_response: req.wants_draft02_response(),
        exclusive,
    }
}

/// The CONNECT a client sends to a server that announced `server`: `:protocol`
/// `webtransport-h3` when it speaks draft-15, else `webtransport` with the draft-02
/// header (DESIGN.md §2). `extra` headers are checked and lower-cased.
pub fn client_request(
    server: &Settings,
    authority: &str,
    path: &str,
    extra: &[(String, String)],
) -> Result<(Dialect, ConnectRequest), String> {
    let dialect = server
        .dialect()
        .ok_or_else(|| "the server does not announce WebTransport".to_string())?;
    let protocol = if dialect == Dialect::Draft15 {
        headers::PROTOCOL_H3
    } else {
        headers::PROTOCOL_DRAFT
    };
    let mut regular: Vec<Field> = Vec::new();
    if dialect != Dialect::Draft15 {
        regular.push((headers::DRAFT02_REQUEST_HEADER.into(), "1".into()));
    }
    for (n, v) in extra {
        let n = n.to_ascii_lowercase();
        if n.is_empty() || n.starts_with(':') || v.contains(['\r', '\n', '\0']) {
            return Err(format!("invalid request header {n:?}"));
        }
        regular.push((n, v.clone()));
    }
    Ok((
        dialect,
        ConnectRequest {
            protocol: protocol.into(),
            scheme: "https".into(),
            authority: authority.into(),
            path: path.into(),
            headers: regular,
        },
    ))
}

/// What a client does with the response to its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// 1xx: read the next HEADERS.
    Informational,
    /// 2xx: the session is established.
    Established,
    /// Anything else: refused with this status.
    Refused(u16),
}

/// Classify a response's field section (a malformed one resets the stream with its
/// code, H3_MESSAGE_ERROR).
pub fn classify_response(fields: &[Field]) -> Result<Response, WireError> {
    let (status, _) = headers::parse_response(fields)?;
    Ok(match status {
        100..=199 => Response::Informational,
        200..=299 => Response::Established,
        s => Response::Refused(s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{self, Settings};

    fn limits() -> FieldLimits {
        FieldLimits {
            max_section_size: 4096,
            max_fields: 16,
        }
    }

    fn request(path: &str) -> Vec<u8> {
        let mut w = Vec::new();
        frame::encode(
            frame::HEADERS,
            &qpack::encode(&[
                (":method", "CONNECT"),
                (":protocol", "webtransport"),
                (":scheme", "https"),
                (":authority", "a"),
                (":path", path),
            ]),
            &mut w,
        );
        w
    }

    #[test]
    fn headers_after_unknown_frames_whatever_the_split() {
        let mut wire = Vec::new();
        frame::encode(0x21, &vec![1u8; 10_000], &mut wire);
        wire.extend(request("/x"));
        wire.extend([9, 9]); // what follows the HEADERS stays for the session
        for step in [1, 7, wire.len()] {
            let mut r = HeadersReader::request(limits());
            let mut got = None;
            for part in wire.chunks(step) {
                r.push(part);
                if got.is_none() {
                    got = r.next().unwrap();
                }
            }
            let Some(Start::Headers(f)) = got else {
                panic!("step {step}: {got:?}")
            };
            assert_eq!(f[4].1, "/x");
            assert_eq!(&r.into_remaining()[..], &[9, 9]);
        }
    }

    #[test]
    fn webtransport_stream_signal_and_errors() {
        let mut r = HeadersReader::request(limits());
        r.push(&[0x40, 0x41, 0x00]);
        assert_eq!(r.next().unwrap(), Some(Start::WebTransportStream));
        let mut r = HeadersReader::response(limits());
        r.push(&[0x40, 0x41, 0x00]);
        assert!(
            matches!(r.next(), Err(HeadersError::Malformed(e)) if e.code == H3_FRAME_UNEXPECTED)
        );
        let mut r = HeadersReader::request(limits());
        let mut big = Vec::new();
        crate::varint::encode(frame::HEADERS, &mut big);
        crate::varint::encode(5000, &mut big);
        r.push(&big);
        assert_eq!(r.next(), Err(HeadersError::TooLarge));
        let mut r = HeadersReader::request(limits());
        assert_eq!(r.end_of_stream().code, H3_REQUEST_INCOMPLETE);
        r.push(&[0x01, 0x05, 0x00]);
        assert_eq!(r.next(), Ok(None));
        assert_eq!(r.end_of_stream().code, H3_FRAME_ERROR);
        let mut r = HeadersReader::request(limits());
        r.push(&[0x00, 0x01, 0x00]);
        assert!(
            matches!(r.next(), Err(HeadersError::Malformed(e)) if e.code == H3_FRAME_UNEXPECTED)
        );
    }

    fn connect(protocol: &str, draft02: bool) -> ConnectRequest {
        let mut headers = Vec::new();
        if draft02 {
            headers.push((headers::DRAFT02_REQUEST_HEADER.to_string(), "1".to_string()));
        }
        ConnectRequest {
            protocol: protocol.into(),
            scheme: "https".into(),
            authority: "a".into(),
            path: "/".into(),
            headers,
        }
    }

    fn peer(pairs: &[(u64, u64)]) -> Settings {
        Settings {
            pairs: pairs.to_vec(),
        }
    }

    #[test]
    fn admission_by_dialect() {
        let chromium = peer(&[
            (settings::H3_DATAGRAM, 1),
            (settings::ENABLE_WEBTRANSPORT, 1),
        ]);
        assert_eq!(
            admit(&connect("webtransport", true), &chromium, false),
            Admission::Session {
                dialect: Dialect::Draft02,
                draft02_response: true,
                exclusive: Exclusive::No
            }
        );
        let pywt = peer(&[(settings::WT_ENABLED, 1)]);
        assert_eq!(
            admit(&connect("webtransport-h3", false), &pywt, false),
            Admission::Session {
                dialect: Dialect::Draft15,
                draft02_response: false,
                exclusive: Exclusive::OfOpen
            }
        );
        assert!(matches!(
            admit(&connect("webtransport-h3", false), &pywt, true),
            Admission::Session {
                exclusive: Exclusive::No,
                ..
            }
        ));
        // webtransport-go <= 0.10: only H3_DATAGRAM, draft CONNECT: implied support.
        let old_go = peer(&[(settings::H3_DATAGRAM, 1)]);
        assert!(matches!(
            admit(&connect("webtransport", false), &old_go, false),
            Admission::Session {
                dialect: Dialect::Draft02,
                ..
            }
        ));
        assert!(matches!(
            admit(&connect("webtransport-h3", false), &old_go, false),
            Admission::Respond(400, _)
        ));
        assert!(matches!(
            admit(&connect("webtransport", false), &peer(&[]), false),
            Admission::Respond(400, _)
        ));
    }

    #[test]
    fn client_requests_and_responses() {
        let (d, r) = client_request(&peer(&[(settings::WT_ENABLED, 1)]), "h:1", "/p", &[]).unwrap();
        assert_eq!(
            (d, r.protocol.as_str()),
            (Dialect::Draft15, "webtransport-h3")
        );
        assert!(r.headers.is_empty());
        let extra = vec![("X-Token".to_string(), "1".to_string())];
        let (d, r) = client_request(
            &peer(&[(settings::ENABLE_WEBTRANSPORT, 1)]),
            "h:1",
            "/p",
            &extra,
        )
        .unwrap();
        assert_eq!((d, r.protocol.as_str()), (Dialect::Draft02, "webtransport"));
        assert_eq!(r.header("sec-webtransport-http3-draft02"), Some("1"));
        assert_eq!(r.header("x-token"), Some("1"));
        assert!(client_request(&peer(&[]), "h", "/", &[]).is_err());
        let bad = vec![(":path".to_string(), "x".to_string())];
        assert!(client_request(&peer(&[(settings::WT_ENABLED, 1)]), "h", "/", &bad).is_err());
        let f = |s: &str| vec![(":status".to_string(), s.to_string())];
        assert_eq!(classify_response(&f("103")), Ok(Response::Informational));
        assert_eq!(classify_response(&f("200")), Ok(Response::Established));
        assert_eq!(classify_response(&f("429")), Ok(Response::Refused(429)));
        assert!(classify_response(&f("xx")).is_err());
    }
}
