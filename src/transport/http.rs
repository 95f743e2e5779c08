//! Reading and writing HEADERS on request streams (shared by client and server).

use quinn::VarInt;

use super::session::CloseReason;
use super::Error;
use crate::wire::codes::*;
use crate::wire::frame::{self, TlvDecoder};
use crate::wire::qpack::{self, Field};
use crate::wire::WireError;

/// Largest HEADERS frame we accept.
pub(crate) const MAX_HEADERS: u64 = 64 * 1024;

pub(crate) enum HeadersError {
    /// The peer sent something malformed (stream or connection error per its code).
    Wire(WireError),
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

/// Read until the next HEADERS frame on a request stream, skipping unknown frames.
pub(crate) async fn read_headers(
    recv: &mut quinn::RecvStream,
    dec: &mut TlvDecoder,
    first: bool,
) -> Result<StreamStart, HeadersError> {
    loop {
        if first && dec.peek_type() == Some(frame::WEBTRANSPORT_STREAM) {
            return Ok(StreamStart::WebTransportStream);
        }
        while let Some(f) = dec.next().map_err(HeadersError::Wire)? {
            match f.ty {
                frame::HEADERS => {
                    return qpack::decode(&f.payload)
                        .map(StreamStart::Headers)
                        .map_err(HeadersError::Wire)
                }
                frame::DATA => {
                    return Err(HeadersError::Wire(WireError::new(
                        H3_FRAME_UNEXPECTED,
                        "DATA before HEADERS",
                    )))
                }
                frame::SETTINGS | frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH => {
                    return Err(HeadersError::Wire(WireError::new(
                        H3_FRAME_UNEXPECTED,
                        format!("frame {:#x} on a request stream", f.ty),
                    )))
                }
                ty if frame::is_reserved_h2(ty) => {
                    return Err(HeadersError::Wire(WireError::new(
                        H3_FRAME_UNEXPECTED,
                        "HTTP/2 frame type",
                    )))
                }
                _ => {}
            }
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(c)) => dec.push(&c.bytes),
            Ok(None) if dec.buffered() > 0 => {
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

/// Abort a request stream in both directions with `code`.
pub(crate) fn abort(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, code: u64) {
    let code = VarInt::from_u64(code).unwrap_or_default();
    let _ = recv.stop(code);
    let _ = send.reset(code);
}
