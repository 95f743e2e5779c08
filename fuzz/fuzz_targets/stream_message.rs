//! Datagram stream payloads (src/datagram/message.rs): a structured message
//! `[u8 type_len][type][payload]` that decodes re-encodes to the same bytes, and any
//! type and payload encode to bytes that decode to them (None exactly for an empty or
//! over-long type); JSON that decodes re-encodes stably; heartbeats are recognised as
//! pywebtransport recognises them.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wtdatagram::datagram::message::{self, MAX_TYPE_LEN};

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    if let Ok((ty, payload)) = message::decode_structured(&b) {
        assert_eq!(
            message::encode_structured(&ty, &payload).as_deref(),
            Some(data)
        );
    }
    // Any (type, payload): the type is the input up to the first 0xff, made UTF-8.
    let (t, p) = match data.iter().position(|x| *x == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let ty = String::from_utf8_lossy(t);
    match message::encode_structured(&ty, p) {
        Some(enc) => {
            let (ty2, p2) = message::decode_structured(&Bytes::from(enc)).expect("decodes");
            assert_eq!((ty2.as_str(), &p2[..]), (&*ty, p));
        }
        None => assert!(ty.is_empty() || ty.len() > MAX_TYPE_LEN),
    }
    // JSON (Python's dialect) that decodes re-encodes to text that decodes to a value
    // that re-encodes to the same text (compared as text: NaN != NaN as a value).
    if let Ok(v) = message::decode_json(data) {
        if let Ok(enc) = message::encode_json(&v) {
            let v2 = message::decode_json(&enc).expect("our own JSON decodes");
            assert_eq!(message::encode_json(&v2).expect("re-encodes"), enc);
        }
    }
    // pywebtransport's is_heartbeat_datagram: data.startswith(b"HEARTBEAT:").
    assert_eq!(message::is_heartbeat(data), data.starts_with(b"HEARTBEAT:"));
});
