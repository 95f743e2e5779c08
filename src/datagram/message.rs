//! Payload formats of the datagram stream, byte-compatible with pywebtransport:
//! compact JSON, structured messages `[u8 type_len][type utf8][payload]`, and
//! heartbeats `HEARTBEAT:<unix seconds>`.

use bytes::Bytes;

/// Longest structured message type, in bytes.
pub const MAX_TYPE_LEN: usize = 255;
pub const HEARTBEAT_PREFIX: &[u8] = b"HEARTBEAT:";

/// Why a received payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("malformed structured datagram: {0}")]
    Structured(&'static str),
}

/// Compact JSON text of `value`, UTF-8.
pub fn encode_json(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a serde_json::Value always serializes")
}

pub fn decode_json(data: &[u8]) -> Result<serde_json::Value, DecodeError> {
    serde_json::from_slice(data).map_err(|e| DecodeError::Json(e.to_string()))
}

/// `[u8 type_len][type][payload]`; `None` if the type is empty or longer than 255 bytes.
pub fn encode_structured(ty: &str, payload: &[u8]) -> Option<Vec<u8>> {
    if ty.is_empty() || ty.len() > MAX_TYPE_LEN {
        return None;
    }
    let mut out = Vec::with_capacity(1 + ty.len() + payload.len());
    out.push(ty.len() as u8);
    out.extend_from_slice(ty.as_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// Split a structured datagram into (type, payload) without copying the payload.
pub fn decode_structured(data: &Bytes) -> Result<(String, Bytes), DecodeError> {
    let Some(&n) = data.first() else {
        return Err(DecodeError::Structured("empty datagram"));
    };
    let n = usize::from(n);
    if n == 0 {
        return Err(DecodeError::Structured("empty type"));
    }
    if data.len() < 1 + n {
        return Err(DecodeError::Structured("type longer than the datagram"));
    }
    let ty = std::str::from_utf8(&data[1..1 + n])
        .map_err(|_| DecodeError::Structured("type is not UTF-8"))?;
    Ok((ty.to_string(), data.slice(1 + n..)))
}

/// `HEARTBEAT:<unix seconds>` for the current time.
pub fn create_heartbeat_datagram() -> Vec<u8> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("HEARTBEAT:{secs}").into_bytes()
}

/// Whether `data` is a heartbeat datagram (`HEARTBEAT:` followed by decimal digits).
pub fn is_heartbeat(data: &[u8]) -> bool {
    data.strip_prefix(HEARTBEAT_PREFIX)
        .is_some_and(|rest| !rest.is_empty() && rest.iter().all(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_bytes_match_pywebtransport() {
        // pywebtransport: struct.pack("!B", len(t)) + t.encode() + payload
        let b = encode_structured("chat", b"{\"m\":1}").unwrap();
        assert_eq!(b, b"\x04chat{\"m\":1}");
        let (t, p) = decode_structured(&Bytes::from(b)).unwrap();
        assert_eq!((t.as_str(), &p[..]), ("chat", &b"{\"m\":1}"[..]));
        let long = "t".repeat(255);
        assert_eq!(encode_structured(&long, b"").unwrap()[0], 255);
        assert!(encode_structured(&"t".repeat(256), b"").is_none());
        assert!(encode_structured("", b"x").is_none());
        // Empty payload is fine.
        assert_eq!(
            decode_structured(&Bytes::from_static(b"\x01a")).unwrap(),
            ("a".to_string(), Bytes::new())
        );
    }

    #[test]
    fn malformed_structured() {
        for bad in [&b""[..], b"\x00abc", b"\x05ab", b"\x02\xff\xfe"] {
            assert!(
                decode_structured(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_is_compact_utf8() {
        let v = serde_json::json!({"a": [1, 2], "b": "é"});
        let text = encode_json(&v);
        assert_eq!(
            std::str::from_utf8(&text).unwrap(),
            "{\"a\":[1,2],\"b\":\"é\"}"
        );
        assert_eq!(decode_json(&text).unwrap(), v);
        // pywebtransport's default ensure_ascii output parses the same.
        assert_eq!(decode_json(br#"{"b":"\u00e9"}"#).unwrap()["b"], "é");
        assert!(matches!(
            decode_json(b"{not json"),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn heartbeats() {
        let h = create_heartbeat_datagram();
        assert!(h.starts_with(b"HEARTBEAT:"));
        assert!(is_heartbeat(&h));
        let secs: u64 = std::str::from_utf8(&h[10..]).unwrap().parse().unwrap();
        assert!(secs > 1_700_000_000);
        assert!(!is_heartbeat(b"HEARTBEAT:"));
        assert!(!is_heartbeat(b"HEARTBEAT:12a"));
        assert!(!is_heartbeat(b"hello"));
    }
}
