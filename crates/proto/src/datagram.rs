//! HTTP Datagram framing (RFC 9297 §2.1): `varint(session_stream_id / 4) || payload`.

use bytes::Bytes;

use crate::codes::H3_DATAGRAM_ERROR;
use crate::error::WireError;
use crate::varint;

/// Largest legal quarter stream id (stream ids are at most 2^62 - 1).
pub const MAX_QUARTER_STREAM_ID: u64 = (1 << 60) - 1;

/// The prefix for datagrams of the session whose CONNECT stream has id `stream_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    bytes: [u8; 8],
    len: u8,
}

impl Prefix {
    pub fn for_stream(stream_id: u64) -> Prefix {
        let (bytes, len) = varint::encode_array(stream_id / 4);
        Prefix {
            bytes,
            len: len as u8,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    /// One allocation holding prefix and payload, ready for QUIC.
    pub fn frame(&self, payload: &[u8]) -> Bytes {
        let mut v = Vec::with_capacity(self.len() + payload.len());
        v.extend_from_slice(self.as_bytes());
        v.extend_from_slice(payload);
        Bytes::from(v)
    }
}

/// Split a received QUIC datagram into (quarter stream id, payload) without copying.
/// A truncated prefix or an id above [`MAX_QUARTER_STREAM_ID`] is H3_DATAGRAM_ERROR.
pub fn split(mut datagram: Bytes) -> Result<(u64, Bytes), WireError> {
    let (qid, n) = varint::decode(&datagram).ok_or_else(|| {
        WireError::new(
            H3_DATAGRAM_ERROR,
            "datagram with a truncated quarter stream id",
        )
    })?;
    if qid > MAX_QUARTER_STREAM_ID {
        return Err(WireError::new(
            H3_DATAGRAM_ERROR,
            "quarter stream id above 2^60-1",
        ));
    }
    // In place: no second handle on the buffer (no reference count traffic).
    bytes::Buf::advance(&mut datagram, n);
    Ok((qid, datagram))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_grows_with_the_session_id() {
        assert_eq!(Prefix::for_stream(0).as_bytes(), &[0x00]);
        assert_eq!(Prefix::for_stream(4).as_bytes(), &[0x01]);
        assert_eq!(Prefix::for_stream(252).as_bytes(), &[0x3f]);
        // Stream 256 = quarter id 64: the varint takes two bytes.
        assert_eq!(Prefix::for_stream(256).as_bytes(), &[0x40, 0x40]);
        let f = Prefix::for_stream(256).frame(b"hi");
        assert_eq!(split(f).unwrap(), (64, Bytes::from_static(b"hi")));
    }

    #[test]
    fn malformed() {
        assert_eq!(split(Bytes::new()).unwrap_err().code, H3_DATAGRAM_ERROR);
        assert_eq!(
            split(Bytes::from_static(&[0x40])).unwrap_err().code,
            H3_DATAGRAM_ERROR
        );
        let too_big = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(split(too_big).unwrap_err().code, H3_DATAGRAM_ERROR);
        // Empty payload is legal.
        assert_eq!(
            split(Bytes::from_static(&[0x02])).unwrap(),
            (2, Bytes::new())
        );
    }
}
