//! The HTTP/3 frame / capsule TLV decoder (crates/proto/src/frame.rs, `TlvDecoder`): the same
//! bytes pushed whole or in chunks (sizes chosen by the input) give the same units, the
//! same error and the same leftover; units never exceed the limit; units re-encoded
//! decode to the same units.
//!
//! Input: `[n][n chunk sizes][stream bytes]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtdatagram::wire::frame::{self, TlvDecoder};
use wtdatagram::wire::WireError;

const LIMIT: u64 = 512; // small, so "declares too many bytes" is reachable
const TOO_LARGE: u64 = 0x0107;

#[derive(Debug, PartialEq)]
struct Outcome {
    units: Vec<(u64, Vec<u8>)>,
    error: Option<WireError>,
    buffered: usize,
    peek: Option<u64>,
}

/// Feed `body` in chunks of the sizes in `plan` (cycled; a size of 0 pushes an empty
/// slice, then one byte), taking every complete unit after each push.
fn run(body: &[u8], plan: &[u8]) -> Outcome {
    let mut d = TlvDecoder::new(LIMIT, TOO_LARGE);
    let mut units = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    loop {
        loop {
            match d.next() {
                Ok(Some(t)) => units.push((t.ty, t.payload.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        units,
                        error: Some(e),
                        buffered: 0,
                        peek: None,
                    }
                }
            }
        }
        if pos == body.len() {
            break;
        }
        let n = match plan.get(i % plan.len().max(1)) {
            None => body.len(),
            Some(&b) => {
                if b % 64 == 0 {
                    d.push(&[]);
                }
                usize::from(b % 64).max(1)
            }
        };
        i += 1;
        let end = (pos + n).min(body.len());
        d.push(&body[pos..end]);
        pos = end;
    }
    Outcome {
        units,
        error: None,
        buffered: d.buffered(),
        peek: d.peek_type(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (plan, body) = rest.split_at(n);
    let whole = run(body, &[]);
    let chunked = run(body, plan);
    assert_eq!(whole, chunked, "whole and chunked disagree");

    for (_, p) in &whole.units {
        assert!(p.len() as u64 <= LIMIT);
    }
    if let Some(e) = &whole.error {
        assert_eq!(e.code, TOO_LARGE);
    }
    // Re-encoded (shortest varints), the units decode to themselves, nothing left over.
    let mut enc = Vec::new();
    for (ty, p) in &whole.units {
        frame::encode(*ty, p, &mut enc);
    }
    let again = run(&enc, &[]);
    assert_eq!(again.units, whole.units);
    assert_eq!((again.error, again.buffered), (None, 0));
});
