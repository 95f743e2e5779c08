//! QPACK field sections (crates/proto/src/qpack.rs, static table only): any section that
//! decodes re-encodes to one that decodes to the same fields; any list of valid fields
//! (built from the input) survives encode -> decode unchanged; errors are QPACK or
//! message errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtdatagram::wire::codes::{H3_MESSAGE_ERROR, QPACK_DECOMPRESSION_FAILED};
use wtdatagram::wire::qpack::{self, Field};

fn refs(fields: &[Field]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// Valid fields from arbitrary bytes: records separated by 0xff, name and value split
/// at the first 0xfe; names lowercased with disallowed characters dropped (a leading
/// ':' kept), values without NUL, CR and LF.
fn valid_fields(data: &[u8]) -> Vec<Field> {
    data.split(|b| *b == 0xff)
        .map(|rec| {
            let (n, v) = match rec.iter().position(|b| *b == 0xfe) {
                Some(i) => (&rec[..i], &rec[i + 1..]),
                None => (rec, &[][..]),
            };
            let mut name: String = String::from_utf8_lossy(n)
                .chars()
                .enumerate()
                .filter(|(i, c)| {
                    !(c.is_ascii_uppercase()
                        || (*c as u32) <= 0x20
                        || *c == '\x7f'
                        || (*c == ':' && *i > 0))
                })
                .map(|(_, c)| c)
                .collect();
            // A ':' that became first after filtering is fine; an empty name is not.
            if name.is_empty() {
                name.push('x');
            }
            if name.chars().skip(1).any(|c| c == ':') {
                name = name.replace(':', "");
                if name.is_empty() {
                    name.push('x');
                }
            }
            let value: String = String::from_utf8_lossy(v)
                .chars()
                .filter(|c| !matches!(c, '\0' | '\r' | '\n'))
                .collect();
            (name, value)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    match qpack::decode(data) {
        Ok(fields) => {
            let again = qpack::decode(&qpack::encode(&refs(&fields)))
                .expect("a re-encoded section decodes");
            assert_eq!(again, fields);
        }
        Err(e) => assert!(
            e.code == QPACK_DECOMPRESSION_FAILED || e.code == H3_MESSAGE_ERROR,
            "{e:?}"
        ),
    }
    let fields = valid_fields(data);
    let enc = qpack::encode(&refs(&fields));
    assert_eq!(qpack::decode(&enc).as_ref(), Ok(&fields), "{enc:02x?}");
});
