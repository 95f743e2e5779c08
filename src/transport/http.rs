//! Reading and writing HEADERS on request streams (shared by client and server).

use quinn::VarInt;

use super::session::CloseReason;
use super::Error;
use crate::wire::codes::*;
use crate::wire::frame::{self, Piece, Take, TlvReader};
use crate::wire::qpack::{self, Field, FieldLimits, SectionError};
use crate::wire::WireError;

pub(crate) enum HeadersError {
    /// The peer sent something malformed (stream or connection error per its code).
    Wire(WireError),
    /// A well-formed field section larger than our limits (a request is answered 431).
    TooLarge,
    /// The stream or connection ended first.
    Gone(Error),
}

/// What opened a request stream.
pub(crate) enum StreamStart {
    Headers(Vec<Field>),
    /// A WebTransport bidirectional stream (signal 0x41), not a request.
    WebTransportStream,
}

/// Whether an error code must close the whole connection (vs. just the stream).
pub(crate) fn is_connection_error(code: u64) -> bool {
    code != H3_MESSAGE_ERROR && code != H3_REQUEST_INCOMPLETE
}

/// How a frame before the HEADERS of a request or response is read: HEADERS whole, if
/// within the field section limit (a larger frame is refused from its header, before
/// any of it is held); unknown frames skipped whatever their size (RFC 9114 §9).
fn take_before_headers(ty: u64, len: u64, limits: &FieldLimits) -> Result<Take, HeadersError> {
    let unexpected = |msg: String| HeadersError::Wire(WireError::new(H3_FRAME_UNEXPECTED, msg));
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

/// Read until the next HEADERS frame on a request stream, skipping unknown frames, and
/// decode it within `limits`. With `first`, a stream that starts with the
/// WEBTRANSPORT_STREAM signal is reported as such.
pub(crate) async fn read_headers(
    recv: &mut quinn::RecvStream,
    reader: &mut TlvReader,
    first: bool,
    limits: &FieldLimits,
) -> Result<StreamStart, HeadersError> {
    loop {
        if first && reader.peek_type() == Some(frame::WEBTRANSPORT_STREAM) {
            return Ok(StreamStart::WebTransportStream);
        }
        while let Some(piece) = reader.next(|ty, len| take_before_headers(ty, len, limits))? {
            if let Piece::Unit(f) = piece {
                return match qpack::decode_limited(&f.payload, *limits) {
                    Ok(fields) => Ok(StreamStart::Headers(fields)),
                    Err(SectionError::TooLarge) => Err(HeadersError::TooLarge),
                    Err(SectionError::Malformed(e)) => Err(HeadersError::Wire(e)),
                };
            }
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(c)) => reader.push(&c.bytes),
            Ok(None) if !reader.at_boundary() => {
                return Err(HeadersError::Wire(WireError::new(
                    H3_FRAME_ERROR,
                    "stream ended inside a frame",
                )))
            }
            Ok(None) => {
                return Err(HeadersError::Wire(WireError::new(
                    H3_REQUEST_INCOMPLETE,
                    "stream ended before HEADERS",
                )))
            }
            Err(quinn::ReadError::ConnectionLost(e)) => {
                return Err(HeadersError::Gone(Error::Closed(
                    CloseReason::from_connection(&e),
                )))
            }
            Err(quinn::ReadError::Reset(code)) => {
                return Err(HeadersError::Gone(Error::Closed(CloseReason::Reset {
                    code: code.into_inner(),
                })))
            }
            Err(e) => return Err(HeadersError::Gone(Error::Io(e.to_string()))),
        }
    }
}

pub(crate) async fn write_headers(
    send: &mut quinn::SendStream,
    fields: &[(&str, &str)],
) -> Result<(), Error> {
    let block = qpack::encode(fields);
    let mut buf = Vec::with_capacity(block.len() + 4);
    frame::encode(frame::HEADERS, &block, &mut buf);
    send.write_all(&buf)
        .await
        .map_err(|e| Error::Io(format!("writing HEADERS: {e}")))
}

/// Tell the peer we read no more of a request stream: with H3_NO_ERROR after a complete
/// response (RFC 9114 §4.1.1: "abort transmission of a request without error"), which
/// quinn's implicit STOP_SENDING on drop would say as 0.
pub(crate) fn stop_reading(recv: &mut quinn::RecvStream, code: u64) {
    let _ = recv.stop(VarInt::from_u64(code).unwrap_or_default());
}

/// Abort a request stream in both directions with `code`.
pub(crate) fn abort(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, code: u64) {
    let code = VarInt::from_u64(code).unwrap_or_default();
    let _ = recv.stop(code);
    let _ = send.reset(code);
}
