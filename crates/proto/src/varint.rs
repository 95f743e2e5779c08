//! QUIC variable-length integers (RFC 9000 §16).

/// Largest encodable value, 2^62 - 1.
pub const MAX: u64 = (1 << 62) - 1;

/// Number of bytes `v` takes on the wire. `v` must be at most [`MAX`].
pub fn encoded_len(v: u64) -> usize {
    debug_assert!(v <= MAX);
    if v < 1 << 6 {
        1
    } else if v < 1 << 14 {
        2
    } else if v < 1 << 30 {
        4
    } else {
        8
    }
}

/// Append `v` to `out` in the shortest encoding. Values above [`MAX`] are a caller bug
/// and are clamped in release builds (never produced by this crate).
pub fn encode(v: u64, out: &mut Vec<u8>) {
    debug_assert!(v <= MAX, "varint out of range");
    let v = v.min(MAX);
    match encoded_len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// Encode into a fixed buffer, returning the bytes used (at most 8).
pub fn encode_array(v: u64) -> ([u8; 8], usize) {
    let mut tmp = Vec::with_capacity(8);
    encode(v, &mut tmp);
    let mut out = [0u8; 8];
    out[..tmp.len()].copy_from_slice(&tmp);
    (out, tmp.len())
}

/// Decode one varint from the front of `buf`: `Some((value, bytes_used))`, or `None`
/// when `buf` is too short.
pub fn decode(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    if buf.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9000_examples() {
        // RFC 9000 Appendix A.1 sample encodings.
        let cases: &[(&[u8], u64)] = &[
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, value) in cases {
            assert_eq!(decode(bytes), Some((*value, bytes.len())));
            let mut out = Vec::new();
            encode(*value, &mut out);
            assert_eq!(&out[..], *bytes);
        }
        // Non-minimal encodings decode too.
        assert_eq!(decode(&[0x40, 0x25]), Some((37, 2)));
    }

    #[test]
    fn boundaries_roundtrip() {
        for v in [0, 63, 64, 16383, 16384, (1 << 30) - 1, 1 << 30, MAX] {
            let mut out = Vec::new();
            encode(v, &mut out);
            assert_eq!(out.len(), encoded_len(v));
            assert_eq!(decode(&out), Some((v, out.len())));
            let (arr, n) = encode_array(v);
            assert_eq!(&arr[..n], &out[..]);
        }
    }

    #[test]
    fn truncated_is_none() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x40]), None);
        assert_eq!(decode(&[0x80, 0, 0]), None);
        assert_eq!(decode(&[0xc0, 0, 0, 0, 0, 0, 0]), None);
    }
}
