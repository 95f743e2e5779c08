//! The CONNECT stream decoder and capsules (crates/proto/src/capsule.rs): the same stream bytes
//! pushed whole or in chunks (sizes chosen by the input) give the same items, the same
//! error and the same end-of-stream verdict; every decoded capsule re-encodes (in a DATA
//! frame, as we send it) to bytes that decode to the same capsule.
//!
//! Input: `[n][n chunk sizes][stream bytes]`.
//! The decoder streams DATA frames and skips unknown units, so chunking must not change
//! what it reports, whatever the sizes declared.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtdatagram::wire::capsule::{Capsule, ConnectStreamDecoder, StreamItem};
use wtdatagram::wire::WireError;

#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<StreamItem>,
    error: Option<WireError>,
    end_of_stream: Option<WireError>,
}

fn run(body: &[u8], plan: &[u8]) -> Outcome {
    let mut d = ConnectStreamDecoder::default();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    loop {
        loop {
            match d.next() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        items,
                        error: Some(e),
                        end_of_stream: None,
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
        items,
        error: None,
        end_of_stream: d.end_of_stream_error(),
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

    for item in &whole.items {
        let StreamItem::Capsule(c) = item else {
            continue;
        };
        if let Capsule::Close { reason, .. } = c {
            assert!(reason.len() <= 1024);
        }
        let again = run(&c.encode_in_data_frame(), &[]);
        assert_eq!(again.items, vec![item.clone()], "{c:?}");
        assert_eq!((again.error, again.end_of_stream), (None, None));
    }
});
