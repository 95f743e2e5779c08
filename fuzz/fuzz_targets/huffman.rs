//! The strict Huffman decoder (crates/proto/src/huffman.rs): whatever decodes re-encodes
//! to exactly the input (the padding rule leaves one valid encoding per string), any
//! byte string round-trips through encode/decode, and the output limit holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtdatagram_proto::huffman::{decode, encode, encoded_len, HuffmanError};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if decode(data, &mut out, usize::MAX).is_ok() {
        let mut again = Vec::new();
        encode(&out, &mut again);
        assert_eq!(again, data, "a decodable string has one encoding");
        // The limit: one byte less than the output is refused, before growing past it.
        if !out.is_empty() {
            let mut short = Vec::new();
            assert_eq!(
                decode(data, &mut short, out.len() - 1),
                Err(HuffmanError::TooLong)
            );
            assert!(short.len() < out.len());
        }
    }
    let mut enc = Vec::new();
    encode(data, &mut enc);
    assert_eq!(enc.len(), encoded_len(data));
    let mut dec = Vec::new();
    decode(&enc, &mut dec, data.len()).expect("our encoding decodes");
    assert_eq!(dec, data);
});
