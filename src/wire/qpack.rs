//! QPACK field sections (RFC 9204) using only the static table. We advertise a dynamic
//! table capacity of zero, so a conforming peer never references the dynamic table; a
//! section that does is QPACK_DECOMPRESSION_FAILED. Huffman-coded strings are decoded
//! (browsers use them); we encode strings as plain literals.

use super::codes::*;
use super::WireError;

/// RFC 9204 Appendix A.
pub const STATIC_TABLE: [(&str, &str); 99] = [
    (":authority", ""),
    (":path", "/"),
    ("age", "0"),
    ("content-disposition", ""),
    ("content-length", "0"),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("referer", ""),
    ("set-cookie", ""),
    (":method", "CONNECT"),
    (":method", "DELETE"),
    (":method", "GET"),
    (":method", "HEAD"),
    (":method", "OPTIONS"),
    (":method", "POST"),
    (":method", "PUT"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "103"),
    (":status", "200"),
    (":status", "304"),
    (":status", "404"),
    (":status", "503"),
    ("accept", "*/*"),
    ("accept", "application/dns-message"),
    ("accept-encoding", "gzip, deflate, br"),
    ("accept-ranges", "bytes"),
    ("access-control-allow-headers", "cache-control"),
    ("access-control-allow-headers", "content-type"),
    ("access-control-allow-origin", "*"),
    ("cache-control", "max-age=0"),
    ("cache-control", "max-age=2592000"),
    ("cache-control", "max-age=604800"),
    ("cache-control", "no-cache"),
    ("cache-control", "no-store"),
    ("cache-control", "public, max-age=31536000"),
    ("content-encoding", "br"),
    ("content-encoding", "gzip"),
    ("content-type", "application/dns-message"),
    ("content-type", "application/javascript"),
    ("content-type", "application/json"),
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-type", "image/gif"),
    ("content-type", "image/jpeg"),
    ("content-type", "image/png"),
    ("content-type", "text/css"),
    ("content-type", "text/html; charset=utf-8"),
    ("content-type", "text/plain"),
    ("content-type", "text/plain;charset=utf-8"),
    ("range", "bytes=0-"),
    ("strict-transport-security", "max-age=31536000"),
    (
        "strict-transport-security",
        "max-age=31536000; includesubdomains",
    ),
    (
        "strict-transport-security",
        "max-age=31536000; includesubdomains; preload",
    ),
    ("vary", "accept-encoding"),
    ("vary", "origin"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    (":status", "100"),
    (":status", "204"),
    (":status", "206"),
    (":status", "302"),
    (":status", "400"),
    (":status", "403"),
    (":status", "421"),
    (":status", "425"),
    (":status", "500"),
    ("accept-language", ""),
    ("access-control-allow-credentials", "FALSE"),
    ("access-control-allow-credentials", "TRUE"),
    ("access-control-allow-headers", "*"),
    ("access-control-allow-methods", "get"),
    ("access-control-allow-methods", "get, post, options"),
    ("access-control-allow-methods", "options"),
    ("access-control-expose-headers", "content-length"),
    ("access-control-request-headers", "content-type"),
    ("access-control-request-method", "get"),
    ("access-control-request-method", "post"),
    ("alt-svc", "clear"),
    ("authorization", ""),
    (
        "content-security-policy",
        "script-src 'none'; object-src 'none'; base-uri 'none'",
    ),
    ("early-data", "1"),
    ("expect-ct", ""),
    ("forwarded", ""),
    ("if-range", ""),
    ("origin", ""),
    ("purpose", "prefetch"),
    ("server", ""),
    ("timing-allow-origin", "*"),
    ("upgrade-insecure-requests", "1"),
    ("user-agent", ""),
    ("x-forwarded-for", ""),
    ("x-frame-options", "deny"),
    ("x-frame-options", "sameorigin"),
];

/// A header field: (name, value).
pub type Field = (String, String);

fn fail(msg: impl Into<String>) -> WireError {
    WireError::new(QPACK_DECOMPRESSION_FAILED, msg)
}

/// Append an integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the flag bits.
fn encode_int(first: u8, prefix_bits: u32, mut v: u64, out: &mut Vec<u8>) {
    let max = (1u64 << prefix_bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn decode_int(buf: &[u8], pos: &mut usize, prefix_bits: u32) -> Result<u64, WireError> {
    let max = (1u64 << prefix_bits) - 1;
    let first = *buf.get(*pos).ok_or_else(|| fail("truncated integer"))?;
    *pos += 1;
    let mut v = u64::from(first) & max;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or_else(|| fail("truncated integer"))?;
        *pos += 1;
        if shift > 56 {
            return Err(fail("integer overflow"));
        }
        v = v
            .checked_add(u64::from(b & 0x7f) << shift)
            .ok_or_else(|| fail("integer overflow"))?;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
}

fn encode_string(first: u8, prefix_bits: u32, s: &str, out: &mut Vec<u8>) {
    encode_int(first, prefix_bits, s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

/// Decode a string whose Huffman flag is bit `prefix_bits` of the first byte.
fn decode_string(buf: &[u8], pos: &mut usize, prefix_bits: u32) -> Result<String, WireError> {
    let first = *buf.get(*pos).ok_or_else(|| fail("truncated string"))?;
    let huffman = first & (1 << prefix_bits) != 0;
    let len = decode_int(buf, pos, prefix_bits)? as usize;
    if buf.len() - *pos < len {
        return Err(fail("truncated string"));
    }
    let raw = &buf[*pos..*pos + len];
    *pos += len;
    let bytes = if huffman {
        let mut out = Vec::with_capacity(len * 8 / 5);
        httlib_huffman::decode(raw, &mut out, httlib_huffman::DecoderSpeed::FourBits)
            .map_err(|e| fail(format!("bad huffman string: {e:?}")))?;
        out
    } else {
        raw.to_vec()
    };
    String::from_utf8(bytes).map_err(|_| WireError::new(H3_MESSAGE_ERROR, "field is not UTF-8"))
}

fn static_entry(index: u64) -> Result<(&'static str, &'static str), WireError> {
    STATIC_TABLE
        .get(index as usize)
        .copied()
        .ok_or_else(|| fail(format!("static table index {index} out of range")))
}

/// Encode a field section: Required Insert Count 0, Base 0, then each field as a static
/// indexed line, a literal with static name reference, or a literal with literal name.
pub fn encode(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = vec![0x00, 0x00];
    for (name, value) in fields {
        let exact = STATIC_TABLE
            .iter()
            .position(|(n, v)| n == name && v == value);
        if let Some(i) = exact {
            // Indexed field line, static: 0b11xxxxxx.
            encode_int(0xc0, 6, i as u64, &mut out);
            continue;
        }
        if let Some(i) = STATIC_TABLE.iter().position(|(n, _)| n == name) {
            // Literal with name reference, N=0, static: 0b0101xxxx.
            encode_int(0x50, 4, i as u64, &mut out);
        } else {
            // Literal with literal name, N=0, H=0: 0b0010xxxx with a 3-bit length prefix.
            encode_string(0x20, 3, name, &mut out);
        }
        encode_string(0x00, 7, value, &mut out);
    }
    out
}

/// Decode a field section into (name, value) pairs in order. Field names and values are
/// checked to be valid HTTP field text (no uppercase names, no control characters).
pub fn decode(buf: &[u8]) -> Result<Vec<Field>, WireError> {
    let mut pos = 0usize;
    let required_insert_count = decode_int(buf, &mut pos, 8)?;
    if required_insert_count != 0 {
        return Err(fail(
            "field section references the dynamic table (capacity 0)",
        ));
    }
    decode_int(buf, &mut pos, 7)?; // sign + delta base: irrelevant without a dynamic table
    let mut fields = Vec::new();
    while pos < buf.len() {
        let b = buf[pos];
        let field = if b & 0x80 != 0 {
            if b & 0x40 == 0 {
                return Err(fail("indexed field line references the dynamic table"));
            }
            let (n, v) = static_entry(decode_int(buf, &mut pos, 6)?)?;
            (n.to_string(), v.to_string())
        } else if b & 0x40 != 0 {
            if b & 0x10 == 0 {
                return Err(fail("name reference into the dynamic table"));
            }
            let (n, _) = static_entry(decode_int(buf, &mut pos, 4)?)?;
            (n.to_string(), decode_string(buf, &mut pos, 7)?)
        } else if b & 0x20 != 0 {
            let name = decode_string(buf, &mut pos, 3)?;
            (name, decode_string(buf, &mut pos, 7)?)
        } else {
            return Err(fail("post-base reference into the dynamic table"));
        };
        validate(&field)?;
        fields.push(field);
    }
    Ok(fields)
}

fn validate((name, value): &Field) -> Result<(), WireError> {
    let bad_name = name.is_empty()
        || name
            .bytes()
            .enumerate()
            .any(|(i, c)| c.is_ascii_uppercase() || c <= 0x20 || c == 0x7f || (c == b':' && i > 0));
    if bad_name {
        return Err(WireError::new(
            H3_MESSAGE_ERROR,
            format!("invalid field name {name:?}"),
        ));
    }
    if value.bytes().any(|c| c == 0 || c == b'\r' || c == b'\n') {
        return Err(WireError::new(
            H3_MESSAGE_ERROR,
            format!("invalid value for field {name}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_request() {
        let fields = [
            (":method", "CONNECT"),
            (":protocol", "webtransport"),
            (":scheme", "https"),
            (":authority", "127.0.0.1:4433"),
            (":path", "/echo?x=1"),
            ("origin", "http://127.0.0.1:8000"),
            ("sec-webtransport-http3-draft02", "1"),
        ];
        let enc = encode(&fields);
        let dec = decode(&enc).unwrap();
        let expect: Vec<Field> = fields
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(dec, expect);
        // :method CONNECT is static index 15: a single byte 0xc0|15.
        assert_eq!(enc[2], 0xcf);
    }

    #[test]
    fn rfc9204_static_examples() {
        // RFC 9204 B.1: literal with name reference ":path" = "/index.html".
        let wire = [
            0x00, 0x00, 0x51, 0x0b, b'/', b'i', b'n', b'd', b'e', b'x', b'.', b'h', b't', b'm',
            b'l',
        ];
        assert_eq!(
            decode(&wire).unwrap(),
            vec![(":path".to_string(), "/index.html".to_string())]
        );
        // Huffman value: "www.example.com" (RFC 7541 C.4.1) under :authority.
        let mut wire = vec![0x00, 0x00, 0x50, 0x8c];
        wire.extend_from_slice(&[
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ]);
        assert_eq!(
            decode(&wire).unwrap(),
            vec![(":authority".to_string(), "www.example.com".to_string())]
        );
    }

    #[test]
    fn long_values_use_multibyte_lengths() {
        let long = "x".repeat(1000);
        let enc = encode(&[("x-long-custom-name", &long), (":status", "200")]);
        let dec = decode(&enc).unwrap();
        assert_eq!(dec[0].1, long);
        assert_eq!(dec[1].1, "200");
    }

    #[test]
    fn malformed_sections() {
        let cases: &[(&[u8], u64)] = &[
            (&[], QPACK_DECOMPRESSION_FAILED),
            (&[0x01, 0x00], QPACK_DECOMPRESSION_FAILED), // dynamic table in use
            (&[0x00, 0x00, 0x80], QPACK_DECOMPRESSION_FAILED), // dynamic indexed
            (&[0x00, 0x00, 0xff, 0x7f], QPACK_DECOMPRESSION_FAILED), // static index out of range
            (&[0x00, 0x00, 0x51, 0x05, b'a'], QPACK_DECOMPRESSION_FAILED), // truncated string
            (&[0x00, 0x00, 0x10], QPACK_DECOMPRESSION_FAILED), // post-base
            (
                &[
                    0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                QPACK_DECOMPRESSION_FAILED,
            ),
            (
                &[0x00, 0x00, 0x23, b'A', b'b', b'c', 0x00],
                H3_MESSAGE_ERROR,
            ), // uppercase name
            (&[0x00, 0x00, 0x51, 0x02, b'a', 0x00], H3_MESSAGE_ERROR), // NUL in value
        ];
        for (wire, code) in cases {
            assert_eq!(decode(wire).unwrap_err().code, *code, "input {wire:02x?}");
        }
    }
}
