//! The RFC 9297 datagram prefix (crates/proto/src/datagram.rs): a datagram that splits is its
//! prefix plus its payload, framing the payload again for that session gives a datagram
//! that splits the same way (and the same bytes when the input used the shortest
//! prefix); any stream id and payload (from the input) round-trip.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wtdatagram::wire::codes::H3_DATAGRAM_ERROR;
use wtdatagram::wire::datagram::{split, Prefix, MAX_QUARTER_STREAM_ID};

fuzz_target!(|data: &[u8]| {
    match split(Bytes::copy_from_slice(data)) {
        Ok((qid, payload)) => {
            assert!(qid <= MAX_QUARTER_STREAM_ID);
            let prefix_len = data.len() - payload.len();
            assert_eq!(&data[prefix_len..], &payload[..]);
            let p = Prefix::for_stream(qid * 4);
            assert_eq!(p.as_bytes().len(), p.len());
            let framed = p.frame(&payload);
            assert_eq!(split(framed.clone()), Ok((qid, payload)));
            if p.len() == prefix_len {
                assert_eq!(&framed[..], data);
            }
        }
        Err(e) => assert_eq!(e.code, H3_DATAGRAM_ERROR),
    }
    if let Some(b) = data.get(..8) {
        let stream_id = u64::from_be_bytes(b.try_into().unwrap()) & ((1 << 62) - 1);
        let payload = Bytes::copy_from_slice(&data[8..]);
        let framed = Prefix::for_stream(stream_id).frame(&payload);
        assert_eq!(split(framed), Ok((stream_id / 4, payload)));
    }
});
