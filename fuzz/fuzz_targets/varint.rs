//! QUIC varints (crates/proto/src/varint.rs): every decoded value re-encodes (shortest form) to
//! bytes that decode to it again, the length comes from the first byte, the Reader
//! agrees with `decode`, and every value up to 2^62-1 round-trips through `encode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtdatagram::wire::codes::H3_FRAME_ERROR;
use wtdatagram::wire::{varint, Reader};

fuzz_target!(|data: &[u8]| {
    match varint::decode(data) {
        None => assert!(data.is_empty() || data.len() < 1 << (data[0] >> 6)),
        Some((v, n)) => {
            assert_eq!(n, 1 << (data[0] >> 6));
            assert!(v <= varint::MAX);
            let mut out = Vec::new();
            varint::encode(v, &mut out);
            assert_eq!(out.len(), varint::encoded_len(v));
            assert!(out.len() <= n, "the shortest form is never longer");
            assert_eq!(varint::decode(&out), Some((v, out.len())));
            if out.len() == n {
                assert_eq!(
                    &out[..],
                    &data[..n],
                    "a shortest-form input re-encodes exactly"
                );
            }
            let (arr, len) = varint::encode_array(v);
            assert_eq!(&arr[..len], &out[..]);
            let mut r = Reader::new(data, H3_FRAME_ERROR);
            assert_eq!(r.varint().ok(), Some(v));
            assert_eq!(r.position(), n);
        }
    }
    if let Some(b) = data.get(..8) {
        let v = u64::from_be_bytes(b.try_into().unwrap()) & varint::MAX;
        let mut out = Vec::new();
        varint::encode(v, &mut out);
        assert_eq!(varint::decode(&out), Some((v, out.len())));
        // Shortest: the next smaller length could not hold it.
        let smaller = match out.len() {
            1 => None,
            2 => Some(1u64 << 6),
            4 => Some(1u64 << 14),
            _ => Some(1u64 << 30),
        };
        if let Some(limit) = smaller {
            assert!(v >= limit, "{v} encoded in {} bytes", out.len());
        }
    }
});
