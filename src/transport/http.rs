//! Request streams on quinn: reading HEADERS with the protocol crate's
//! [`HeadersReader`], writing them, and ending a stream with a code.

use quinn::VarInt;

use super::close::CloseReason;
use super::error::Error;
use wtdatagram_proto::frame;
use wtdatagram_proto::qpack;
use wtdatagram_proto::request::{HeadersError, HeadersReader, Start};

/// Why [`read_headers`] returned no HEADERS.
pub(crate) enum ReadError {
    /// What the peer sent (see [`HeadersError`]), or the stream ending early.
    Peer(HeadersError),
    /// The stream or connection went away first.
    Gone(Error),
}

/// Read until the next HEADERS (or, on a peer-opened stream, the WebTransport stream
/// signal), decoded within the reader's limits.
pub(crate) async fn read_headers(
    recv: &mut quinn::RecvStream,
    reader: &mut HeadersReader,
) -> Result<Start, ReadError> {
    loop {
        if let Some(start) = reader.next().map_err(ReadError::Peer)? {
            return Ok(start);
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(c)) => reader.push(&c.bytes),
            Ok(None) => {
                return Err(ReadError::Peer(HeadersError::Malformed(
                    reader.end_of_stream(),
                )))
            }
            Err(quinn::ReadError::ConnectionLost(e)) => {
                return Err(ReadError::Gone(Error::Closed(
                    super::close::from_connection(&e),
                )))
            }
            Err(quinn::ReadError::Reset(code)) => {
                return Err(ReadError::Gone(Error::Closed(CloseReason::Reset {
                    code: code.into_inner(),
                })))
            }
            Err(e) => return Err(ReadError::Gone(Error::Io(e.to_string()))),
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
