//! Payload formats of the datagram stream, byte-compatible with pywebtransport's
//! datagram transport: compact JSON (`json.dumps(data, separators=(",", ":"))`),
//! structured messages `[u8 type_len][type utf8][payload]`, and heartbeats
//! `HEARTBEAT:<unix seconds>`.

use bytes::Bytes;
use serde::Serialize;

use super::json::{self, Separators};
use super::value::Value;
use crate::transport::Error;

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

/// `value` as pywebtransport's `send_json` sends it: Python's
/// `json.dumps(data, separators=(",", ":"))` (keys in order, non-ASCII escaped as
/// `\uXXXX`, Python's float spelling, `NaN`/`Infinity`; see [`super::json`]).
/// InvalidArgument if `value` cannot be serialized (e.g. a map key that is an array).
pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    json::to_vec(&Value::from_serialize(value)?, Separators::Compact)
        .map_err(|e| Error::InvalidArgument(format!("serialization error: {e}")))
}

/// Read JSON as Python's `json.loads` does (`NaN`, `Infinity` and `-Infinity`
/// included), keeping object members in order.
pub fn decode_json(data: &[u8]) -> Result<Value, DecodeError> {
    json::from_slice(data).map_err(|e| DecodeError::Json(e.to_string()))
}

/// A decoded JSON value as a `serde_json::Value` (members in order; a key that is not a
/// string as Python writes it, bytes as an array). NaN and the infinities have no
/// `serde_json` form: they are [`DecodeError::Json`].
pub fn json_to_serde(value: &Value) -> Result<serde_json::Value, DecodeError> {
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::I64(i) => (*i).into(),
        Value::U64(u) => (*u).into(),
        Value::F64(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| {
                DecodeError::Json(format!(
                    "{} has no serde_json::Value form (decode_json keeps it)",
                    json::json_float(*f)
                ))
            })?,
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => b.iter().map(|&x| serde_json::Value::from(x)).collect(),
        Value::Array(a) => a.iter().map(json_to_serde).collect::<Result<_, _>>()?,
        Value::Map(m) => {
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, v) in m {
                let key = json::key_text(k).map_err(|e| DecodeError::Json(e.to_string()))?;
                out.insert(key.into_owned(), json_to_serde(v)?);
            }
            serde_json::Value::Object(out)
        }
    })
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

/// Whether `data` is a heartbeat datagram: it starts with `HEARTBEAT:` (pywebtransport's
/// `is_heartbeat_datagram`, `data.startswith(b"HEARTBEAT:")`; whatever follows, even
/// nothing).
pub fn is_heartbeat(data: &[u8]) -> bool {
    data.starts_with(HEARTBEAT_PREFIX)
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
    fn json_is_pywebtransport_send_json() {
        // Python: json.dumps({"b": "é", "a": [1, 2.0, 1e-05, None]}, separators=(",", ":"))
        let v = serde_json::json!({"b": "é", "a": [1, 2.0, 0.00001, null]});
        let text = encode_json(&v).unwrap();
        assert_eq!(text, br#"{"b":"\u00e9","a":[1,2.0,1e-05,null]}"#);
        // Structs keep their field order; NaN is written as Python writes it.
        #[derive(serde::Serialize)]
        struct Zebra {
            zeta: f64,
            alpha: f32,
        }
        assert_eq!(
            encode_json(&Zebra {
                zeta: f64::NAN,
                alpha: 0.1
            })
            .unwrap(),
            br#"{"zeta":NaN,"alpha":0.1}"#
        );
        // Decoding keeps member order, in the Value and in serde_json's form.
        let back = decode_json(&text).unwrap();
        assert_eq!(json::to_vec(&back, Separators::Compact).unwrap(), text);
        let sj = json_to_serde(&back).unwrap();
        assert_eq!(sj, v);
        assert_eq!(
            sj.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(
            decode_json(br#"{"b":"\u00e9"}"#).unwrap(),
            decode_json("{\"b\":\"é\"}".as_bytes()).unwrap()
        );
        assert!(matches!(
            decode_json(b"{not json"),
            Err(DecodeError::Json(_))
        ));
        // What Python's json.loads reads, serde_json::Value cannot always hold.
        let nan = decode_json(b"[NaN]").unwrap();
        assert!(matches!(json_to_serde(&nan), Err(DecodeError::Json(m)) if m.starts_with("NaN")));
    }

    #[test]
    fn heartbeats() {
        let h = create_heartbeat_datagram();
        assert!(h.starts_with(b"HEARTBEAT:"));
        assert!(is_heartbeat(&h));
        let secs: u64 = std::str::from_utf8(&h[10..]).unwrap().parse().unwrap();
        assert!(secs > 1_700_000_000);
        // pywebtransport: data.startswith(b"HEARTBEAT:"), whatever follows.
        assert!(is_heartbeat(b"HEARTBEAT:"));
        assert!(is_heartbeat(b"HEARTBEAT:12a"));
        assert!(is_heartbeat(b"HEARTBEAT:\xff\x00"));
        assert!(!is_heartbeat(b"HEARTBEAT"));
        assert!(!is_heartbeat(b"heartbeat:1"));
        assert!(!is_heartbeat(b" HEARTBEAT:1"));
        assert!(!is_heartbeat(b"hello"));
        assert!(!is_heartbeat(b""));
    }
}
