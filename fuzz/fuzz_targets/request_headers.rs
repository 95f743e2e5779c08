//! Reading a request stream's HEADERS within limits (crates/proto/src/request.rs): the
//! same bytes whole or in chunks give the same field section (or the same refusal:
//! malformed with the same code, or too large), and an accepted section respects the
//! limits; admission of a parsed request never panics.
#![no_main]

#[path = "chunks.rs"]
mod chunks;

use libfuzzer_sys::fuzz_target;
use wtdatagram_proto::headers::parse_request;
use wtdatagram_proto::qpack::{FieldLimits, FIELD_OVERHEAD};
use wtdatagram_proto::request::{admit, HeadersError, HeadersReader, Start};
use wtdatagram_proto::settings::Settings;

const LIMITS: FieldLimits = FieldLimits {
    max_section_size: 512,
    max_fields: 16,
};

fn run(parts: &[&[u8]]) -> Option<Result<Start, HeadersError>> {
    let mut r = HeadersReader::request(LIMITS);
    for part in parts {
        r.push(part);
        match r.next() {
            Ok(None) => {}
            Ok(Some(s)) => return Some(Ok(s)),
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let Some((plan, body)) = chunks::split(data) else {
        return;
    };
    let whole = run(&[body]);
    assert_eq!(whole, run(&chunks::chunks(body, plan)));
    if let Some(Ok(Start::Headers(fields))) = whole {
        assert!(fields.len() <= LIMITS.max_fields);
        let size: u64 = fields
            .iter()
            .map(|(n, v)| (n.len() + v.len()) as u64 + FIELD_OVERHEAD)
            .sum();
        assert!(size <= LIMITS.max_section_size);
        if let Ok(req) = parse_request(&fields) {
            let _ = admit(&req, &Settings::webtransport(4), true);
            let _ = admit(&req, &Settings::default(), false);
        }
    }
});
