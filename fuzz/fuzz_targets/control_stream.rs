//! The control stream reader (crates/proto/src/control.rs): the same bytes whole or in
//! chunks give the same events and the same error; an error is a connection error with
//! one of the codes RFC 9114 prescribes for the control stream.
#![no_main]

#[path = "chunks.rs"]
mod chunks;

use libfuzzer_sys::fuzz_target;
use wtdatagram_proto::codes::*;
use wtdatagram_proto::control::{ControlEvent, ControlStreamReader};
use wtdatagram_proto::error::WireError;
use wtdatagram_proto::streams::Role;

fn run(role: Role, parts: &[&[u8]]) -> (Vec<ControlEvent>, Option<WireError>) {
    let mut c = ControlStreamReader::new(role);
    let mut events = Vec::new();
    for part in parts {
        c.push(part);
        loop {
            match c.next() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((plan, body)) = chunks::split(data) else {
        return;
    };
    for role in [Role::Client, Role::Server] {
        let whole = run(role, &[body]);
        assert_eq!(whole, run(role, &chunks::chunks(body, plan)));
        if let Some(e) = &whole.1 {
            assert!(
                [
                    H3_FRAME_UNEXPECTED,
                    H3_FRAME_ERROR,
                    H3_MISSING_SETTINGS,
                    H3_SETTINGS_ERROR,
                    H3_EXCESSIVE_LOAD
                ]
                .contains(&e.code),
                "{e:?}"
            );
        }
        // SETTINGS comes first and once.
        let settings = whole
            .0
            .iter()
            .filter(|e| matches!(e, ControlEvent::Settings(_)))
            .count();
        assert!(settings <= 1);
        if let Some(first) = whole.0.first() {
            assert!(matches!(first, ControlEvent::Settings(_)));
        }
    }
});
