//! CONNECT request and response semantics (crates/proto/src/headers.rs): parse_request and
//! parse_response never panic and only answer with their documented outcomes; an
//! accepted request, re-encoded (QPACK) and decoded again, parses to the same request;
//! an accepted response likewise.
//!
//! Fields come from the input as a QPACK section when it is one, else from a small
//! vocabulary of the names and values requests use (3 bytes per field: name, value,
//! raw byte), so most inputs are nearly-valid requests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wtdatagram::wire::codes::H3_MESSAGE_ERROR;
use wtdatagram::wire::headers::{self, ConnectRequest, RequestError};
use wtdatagram::wire::qpack::{self, Field};

const NAMES: &[&str] = &[
    ":method",
    ":protocol",
    ":scheme",
    ":authority",
    ":path",
    ":status",
    ":other",
    "origin",
    "sec-webtransport-http3-draft02",
    "sec-webtransport-http3-draft",
    "connection",
    "upgrade",
    "x-custom",
];
const VALUES: &[&str] = &[
    "CONNECT",
    "GET",
    "webtransport",
    "webtransport-h3",
    "websocket",
    "https",
    "127.0.0.1:4433",
    "/",
    "/echo?x=1",
    "",
    "200",
    "404",
    "99",
    "1000",
    "1",
];

fn vocabulary_fields(data: &[u8]) -> Vec<Field> {
    data.chunks(3)
        .map(|c| {
            let name = NAMES[usize::from(c[0]) % NAMES.len()];
            let value = match c.get(1) {
                Some(&v) if usize::from(v) < VALUES.len() * 16 => {
                    VALUES[usize::from(v) % VALUES.len()].to_string()
                }
                Some(&v) => format!("{}{}", c.get(2).copied().unwrap_or(b'a') as char, v),
                None => String::new(),
            };
            (name.to_string(), value.replace(['\0', '\r', '\n'], ""))
        })
        .collect()
}

fn roundtrip(fields: &[Field]) -> Vec<Field> {
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    qpack::decode(&qpack::encode(&refs)).expect("valid fields re-encode")
}

fn request_fields(r: &ConnectRequest) -> Vec<Field> {
    let mut f = vec![
        (":method".to_string(), "CONNECT".to_string()),
        (":protocol".to_string(), r.protocol.clone()),
        (":scheme".to_string(), r.scheme.clone()),
        (":authority".to_string(), r.authority.clone()),
        (":path".to_string(), r.path.clone()),
    ];
    f.extend(r.headers.iter().cloned());
    f
}

fuzz_target!(|data: &[u8]| {
    let fields = qpack::decode(data).unwrap_or_else(|_| vocabulary_fields(data));
    match headers::parse_request(&fields) {
        Ok(req) => {
            assert!(
                req.protocol == headers::PROTOCOL_DRAFT || req.protocol == headers::PROTOCOL_H3
            );
            assert!(!req.path.is_empty() && !req.authority.is_empty());
            assert!(req.headers.iter().all(|(n, _)| !n.starts_with(':')));
            let _ = req.wants_draft02_response();
            let again = headers::parse_request(&roundtrip(&request_fields(&req)));
            assert_eq!(again, Ok(req));
        }
        Err(RequestError::Respond(status, _)) => assert!(status == 404 || status == 501),
        Err(RequestError::Malformed(e)) => assert_eq!(e.code, H3_MESSAGE_ERROR),
    }
    match headers::parse_response(&fields) {
        Ok((status, hdrs)) => {
            assert!((100..=999).contains(&status));
            assert!(hdrs.iter().all(|(n, _)| !n.starts_with(':')));
            let mut f = vec![(":status".to_string(), status.to_string())];
            f.extend(hdrs.iter().cloned());
            assert_eq!(headers::parse_response(&roundtrip(&f)), Ok((status, hdrs)));
        }
        Err(e) => assert_eq!(e.code, H3_MESSAGE_ERROR),
    }
});
