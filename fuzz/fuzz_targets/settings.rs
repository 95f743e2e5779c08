//! SETTINGS (crates/proto/src/settings.rs): a payload that decodes re-encodes into a SETTINGS
//! frame whose payload decodes to the same pairs (decoding keeps known ids only); accepted pairs have no duplicate and
//! no reserved HTTP/2 id; errors carry H3_FRAME_ERROR or H3_SETTINGS_ERROR; and any
//! list of distinct, allowed pairs (from the input) round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtdatagram::wire::codes::{H3_FRAME_ERROR, H3_SETTINGS_ERROR};
use wtdatagram::wire::frame::{self, TlvDecoder};
use wtdatagram::wire::settings::{self, Settings};
use wtdatagram::wire::varint;

fn reencoded(s: &Settings) -> Settings {
    let mut out = Vec::new();
    s.encode_frame(&mut out);
    let mut d = TlvDecoder::new(u64::MAX, 0);
    d.push(&out);
    let t = d.next().unwrap().expect("one complete frame");
    assert_eq!(t.ty, frame::SETTINGS);
    assert_eq!(d.buffered(), 0);
    Settings::decode(&t.payload).expect("our own SETTINGS decode")
}

fuzz_target!(|data: &[u8]| {
    match Settings::decode(data) {
        Ok(s) => {
            for (i, (k, v)) in s.pairs.iter().enumerate() {
                assert!(!(0x02..=0x05).contains(k), "reserved id {k:#x} accepted");
                assert!(
                    s.pairs[..i].iter().all(|(k2, _)| k2 != k),
                    "duplicate {k:#x}"
                );
                assert_eq!(s.get(*k), Some(*v));
            }
            let _ = (s.datagrams(), s.flow_control(), s.dialect());
            assert_eq!(reencoded(&s), s);
        }
        Err(e) => assert!(
            e.code == H3_FRAME_ERROR || e.code == H3_SETTINGS_ERROR,
            "{e:?}"
        ),
    }
    // Pairs built from the input (8 bytes each: id, value), made valid.
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    for c in data.chunks_exact(8) {
        let id = u64::from(u32::from_be_bytes(c[..4].try_into().unwrap())) & varint::MAX;
        let value = u64::from(u32::from_be_bytes(c[4..].try_into().unwrap())) << (c[0] % 31);
        if (0x02..=0x05).contains(&id) || pairs.iter().any(|(k, _)| *k == id) {
            continue;
        }
        pairs.push((id, value.min(varint::MAX)));
    }
    // Unknown ids are dropped on decode (RFC 9114 §7.2.4.1: ignored), known ones kept
    // in order.
    let s = Settings { pairs };
    let known = Settings {
        pairs: s
            .pairs
            .iter()
            .copied()
            .filter(|(k, _)| settings::is_known(*k))
            .collect(),
    };
    assert_eq!(reencoded(&s), known);
    // Ours, for any session limit.
    if let Some(b) = data.get(..8) {
        let max = u64::from_be_bytes(b.try_into().unwrap()) & varint::MAX;
        let ours = Settings::webtransport(max);
        assert_eq!(reencoded(&ours), ours);
        assert!(ours.datagrams() && ours.flow_control() && ours.dialect().is_some());
    }
});
