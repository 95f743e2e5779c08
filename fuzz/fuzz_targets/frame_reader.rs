//! The streaming TLV reader (crates/proto/src/frame.rs, `TlvReader`): with a policy by
//! type (buffer small units, stream some, skip the rest), the same bytes pushed whole or
//! in chunks yield the same units, the same concatenated streamed payloads, the same
//! skipped lengths and the same boundary verdict; it never holds more than one buffered
//! unit plus one push, whatever lengths the input declares.
#![no_main]

#[path = "chunks.rs"]
mod chunks;

use libfuzzer_sys::fuzz_target;
use wtdatagram_proto::frame::{Piece, Take, TlvReader};

const LIMIT: u64 = 256;

#[derive(Debug, PartialEq)]
enum Item {
    Unit(u64, Vec<u8>),
    Streamed(u64, Vec<u8>),
    Skipped(u64, u64),
    TooLarge(u64, u64),
}

fn take(ty: u64, len: u64) -> Result<Take, (u64, u64)> {
    match ty % 3 {
        0 if len > LIMIT => Err((ty, len)),
        0 => Ok(Take::Buffer),
        1 => Ok(Take::Stream),
        _ => Ok(Take::Skip),
    }
}

fn run(parts: &[&[u8]]) -> (Vec<Item>, bool) {
    let mut r = TlvReader::new();
    let mut items = Vec::new();
    let mut streaming: Option<(u64, Vec<u8>)> = None;
    let mut largest_push = 0;
    for part in parts {
        r.push(part);
        largest_push = largest_push.max(part.len());
        loop {
            match r.next(take) {
                Ok(Some(Piece::Unit(t))) => items.push(Item::Unit(t.ty, t.payload.to_vec())),
                Ok(Some(Piece::Chunk { ty, data, end })) => {
                    let s = streaming.get_or_insert((ty, Vec::new()));
                    assert_eq!(s.0, ty);
                    s.1.extend_from_slice(&data);
                    if end {
                        let (ty, d) = streaming.take().unwrap();
                        items.push(Item::Streamed(ty, d));
                    }
                }
                Ok(Some(Piece::Skipped { ty, len })) => items.push(Item::Skipped(ty, len)),
                Ok(None) => break,
                Err((ty, len)) => {
                    items.push(Item::TooLarge(ty, len));
                    return (items, false);
                }
            }
            // Held: at most one buffered unit (LIMIT) and its header, plus one push.
            assert!(r.buffered() as u64 <= LIMIT + 16 + largest_push as u64);
        }
    }
    if let Some((ty, d)) = streaming {
        items.push(Item::Streamed(ty, d)); // unfinished: compared as far as it got
    }
    (items, r.at_boundary())
}

fuzz_target!(|data: &[u8]| {
    let Some((plan, body)) = chunks::split(data) else {
        return;
    };
    let whole = run(&[body]);
    let chunked = run(&chunks::chunks(body, plan));
    assert_eq!(whole, chunked, "whole and chunked disagree");
});
