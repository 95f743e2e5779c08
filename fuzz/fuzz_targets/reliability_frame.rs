//! Reliability frames (src/datagram/reliability.rs): a DATA frame that decodes
//! re-encodes to the same bytes; an ACK that decodes re-encodes to an ACK of the same
//! sequence (leading zeros are not kept); any sequence and data (from the input)
//! round-trip through encode_data / encode_ack; sequence unwrapping is exact within
//! 2^31 of the reference.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wtdatagram::datagram::reliability::{
    decode_frame, encode_ack, encode_data, unwrap_sequence, Frame,
};

fuzz_target!(|data: &[u8]| {
    match decode_frame(&Bytes::copy_from_slice(data)) {
        Some(Frame::Data {
            sequence,
            data: payload,
        }) => {
            assert_eq!(encode_data(sequence, &payload), data);
        }
        Some(Frame::Ack { sequence }) => {
            let enc = encode_ack(sequence);
            assert_eq!(
                decode_frame(&Bytes::from(enc)),
                Some(Frame::Ack { sequence })
            );
            assert!(data.len() <= 4 + 10);
        }
        None => {}
    }
    let Some(b) = data.get(..12) else {
        return;
    };
    let seq = u32::from_be_bytes(b[..4].try_into().unwrap());
    let payload = &data[12..];
    assert_eq!(
        decode_frame(&Bytes::from(encode_data(seq, payload))),
        Some(Frame::Data {
            sequence: seq,
            data: Bytes::copy_from_slice(payload),
        })
    );
    assert_eq!(
        decode_frame(&Bytes::from(encode_ack(seq))),
        Some(Frame::Ack { sequence: seq })
    );
    // The 64-bit counter nearest the reference whose low 32 bits are the wire sequence.
    let reference = u64::from_be_bytes(b[4..12].try_into().unwrap()) >> 2;
    if let Some(v) = unwrap_sequence(seq, reference) {
        assert_eq!(v as u32, seq);
        assert!(v.abs_diff(reference) <= 1 << 31);
    }
});
