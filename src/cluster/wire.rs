//! The message a cluster broadcaster puts on the bus: a fixed 32-byte header, then the
//! datagram payload, as the payload of one NATS core message (no NATS headers).
//!
//! ```text
//! offset size  field
//!      0    1  version      1
//!      1    1  kind         0 = broadcast (deliver), 1 = probe (never delivered)
//!      2    1  priority     0..=2, for the receivers' datagram streams
//!      3    1  reserved     0 (ignored by readers)
//!      4    4  ttl_ms       u32 BE, time-to-live for datagram streams; 0 = none
//!      8    8  origin       u64 BE, random id of the publishing broadcaster
//!     16    8  seq          u64 BE, per origin and kind, from 1 (gaps = missed messages)
//!     24    8  sent_us      u64 BE, the publisher's wall clock, microseconds since 1970
//!     32    -  payload      the datagram, as given to `broadcast`
//! ```
//!
//! A receiver drops what it cannot read (shorter than the header, another version, an
//! unknown kind, a priority above 2) and counts it; it never delivers a message whose
//! origin is its own (that one was delivered locally when it was broadcast).

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes in front of every payload on the bus.
pub const HEADER_LEN: usize = 32;
/// The format version written and read.
pub const VERSION: u8 = 1;

/// What a bus message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A broadcast: every other broadcaster of the channel delivers it.
    Broadcast,
    /// A probe: only its origin looks at it (to learn that its subscription is live and
    /// to measure the bus round trip).
    Probe,
}

/// A decoded bus message (the payload borrows the received bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub kind: Kind,
    pub priority: u8,
    pub ttl_ms: u32,
    pub origin: u64,
    pub seq: u64,
    pub sent_us: u64,
    pub payload: Bytes,
}

/// Header followed by `payload`, in one buffer.
pub fn encode(
    kind: Kind,
    priority: u8,
    ttl_ms: u32,
    origin: u64,
    seq: u64,
    sent_us: u64,
    payload: &[u8],
) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER_LEN + payload.len());
    b.put_u8(VERSION);
    b.put_u8(match kind {
        Kind::Broadcast => 0,
        Kind::Probe => 1,
    });
    b.put_u8(priority);
    b.put_u8(0);
    b.put_u32(ttl_ms);
    b.put_u64(origin);
    b.put_u64(seq);
    b.put_u64(sent_us);
    b.put_slice(payload);
    b.freeze()
}

/// Read a bus message; `None` for anything that is not one (see the module docs).
pub fn decode(msg: &Bytes) -> Option<BusMessage> {
    if msg.len() < HEADER_LEN || msg[0] != VERSION {
        return None;
    }
    let kind = match msg[1] {
        0 => Kind::Broadcast,
        1 => Kind::Probe,
        _ => return None,
    };
    let priority = msg[2];
    if priority > 2 {
        return None;
    }
    let u32_at = |i: usize| u32::from_be_bytes(msg[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_be_bytes(msg[i..i + 8].try_into().expect("8 bytes"));
    Some(BusMessage {
        kind,
        priority,
        ttl_ms: u32_at(4),
        origin: u64_at(8),
        seq: u64_at(16),
        sent_us: u64_at(24),
        payload: msg.slice(HEADER_LEN..),
    })
}

/// Microseconds since the Unix epoch by the wall clock (0 if the clock is before it).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(u64::MAX as u128) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let m = encode(Kind::Broadcast, 2, 1500, 0x0102030405060708, 7, 99, b"hi");
        assert_eq!(m.len(), HEADER_LEN + 2);
        assert_eq!(&m[..4], &[1, 0, 2, 0]);
        assert_eq!(&m[4..8], &1500u32.to_be_bytes());
        assert_eq!(&m[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&m[16..24], &7u64.to_be_bytes());
        assert_eq!(&m[24..32], &99u64.to_be_bytes());
        let d = decode(&m).expect("decodes");
        assert_eq!(
            d,
            BusMessage {
                kind: Kind::Broadcast,
                priority: 2,
                ttl_ms: 1500,
                origin: 0x0102030405060708,
                seq: 7,
                sent_us: 99,
                payload: Bytes::from_static(b"hi"),
            }
        );
        let p = decode(&encode(Kind::Probe, 0, 0, 1, 1, 1, b"")).expect("probe");
        assert_eq!((p.kind, p.payload.len()), (Kind::Probe, 0));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let good = encode(Kind::Broadcast, 0, 0, 1, 1, 1, b"x");
        assert!(decode(&good.slice(..HEADER_LEN - 1)).is_none(), "short");
        for (at, v) in [(0usize, 2u8), (0, 0), (1, 2), (2, 3)] {
            let mut b = good.to_vec();
            b[at] = v;
            assert!(decode(&Bytes::from(b)).is_none(), "byte {at} = {v}");
        }
        // The reserved byte is ignored.
        let mut b = good.to_vec();
        b[3] = 0xff;
        assert!(decode(&Bytes::from(b)).is_some());
    }
}
