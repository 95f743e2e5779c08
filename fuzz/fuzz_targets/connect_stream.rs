//! A session's CONNECT stream as a state machine (crates/proto/src/session.rs): the
//! same bytes whole or in chunks (then FIN) give the same steps and the same end; after
//! an end nothing more happens; a local close's bytes are read back by the peer's
//! machine as the same close.
#![no_main]

#[path = "chunks.rs"]
mod chunks;

use libfuzzer_sys::fuzz_target;
use wtdatagram_proto::close::CloseReason;
use wtdatagram_proto::session::{local_close, ConnectStream, Input, Step};

fn run(parts: &[&[u8]]) -> Vec<Step> {
    let mut cs = ConnectStream::default();
    let mut steps = Vec::new();
    let feed = |cs: &mut ConnectStream, input: Input<'_>, steps: &mut Vec<Step>| {
        cs.push(input);
        loop {
            match cs.step() {
                Step::Read => break,
                s => steps.push(s),
            }
        }
    };
    for part in parts {
        feed(&mut cs, Input::Data(part), &mut steps);
    }
    feed(&mut cs, Input::Fin, &mut steps);
    assert!(
        steps
            .iter()
            .filter(|s| matches!(s, Step::End { .. }))
            .count()
            <= 1
    );
    if let Some(i) = steps.iter().position(|s| matches!(s, Step::End { .. })) {
        assert_eq!(i, steps.len() - 1, "nothing after the end");
    }
    steps
}

fuzz_target!(|data: &[u8]| {
    let Some((plan, body)) = chunks::split(data) else {
        return;
    };
    assert_eq!(run(&[body]), run(&chunks::chunks(body, plan)));
    // A local close with a reason from the input reaches the peer as sent.
    let code = data
        .iter()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(*b)));
    let reason = String::from_utf8_lossy(body);
    let (local, bytes) = local_close(code, &reason);
    let CloseReason::Local { code, reason } = local else {
        panic!("a local close is Local");
    };
    let steps = run(&[&bytes]);
    assert!(
        matches!(steps.last(), Some(Step::End { reason: CloseReason::Remote { code: c, reason: r }, .. }) if *c == code && *r == reason),
        "{steps:?}"
    );
});
