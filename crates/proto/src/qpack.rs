//! QPACK field sections (RFC 9204) using only the static table. We advertise a dynamic
//! table capacity of zero, so a conforming peer never references the dynamic table; a
//! section that does is QPACK_DECOMPRESSION_FAILED. Huffman-coded strings are decoded
//! (browsers use them); we encode strings as plain literals.

use crate::codes::*;
use crate::error::WireError;
use crate::huffman;

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

/// Decode a string whose Huffman flag is bit `prefix_bits` of the first byte, refusing
/// (before allocating) one longer than `budget` decoded bytes.
fn decode_string(
    buf: &[u8],
    pos: &mut usize,
    prefix_bits: u32,
    budget: usize,
) -> Result<String, SectionError> {
    let first = *buf.get(*pos).ok_or_else(|| fail("truncated string"))?;
    let huffman = first & (1 << prefix_bits) != 0;
    let len = decode_int(buf, pos, prefix_bits)?;
    if ((buf.len() - *pos) as u64) < len {
        return Err(fail("truncated string").into());
    }
    let len = len as usize;
    let raw = &buf[*pos..*pos + len];
    *pos += len;
    let bytes = if huffman {
        let mut out = Vec::with_capacity((len * 8 / 5).min(budget));
        huffman::decode(raw, &mut out, budget).map_err(|e| match e {
            huffman::HuffmanError::TooLong => SectionError::TooLarge,
            e => fail(format!("bad Huffman string: {e:?}")).into(),
        })?;
        out
    } else {
        if len > budget {
            return Err(SectionError::TooLarge);
        }
        raw.to_vec()
    };
    String::from_utf8(bytes)
        .map_err(|_| WireError::new(H3_MESSAGE_ERROR, "field is not UTF-8").into())
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

/// What RFC 9114 §4.2.2 adds to each field's name and value when it sizes a field
/// section (SETTINGS_MAX_FIELD_SECTION_SIZE).
pub const FIELD_OVERHEAD: u64 = 32;

/// Bounds on a decoded field section: its size as RFC 9114 §4.2.2 counts it (name +
/// value + 32 per field, what SETTINGS_MAX_FIELD_SECTION_SIZE announces) and its number
/// of fields. Decoding stops at the first byte past either, so a small block of static
/// table references cannot expand into a large allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLimits {
    pub max_section_size: u64,
    pub max_fields: usize,
}

impl FieldLimits {
    /// No limit (for tests and tools that decode what they produced themselves).
    pub const NONE: FieldLimits = FieldLimits {
        max_section_size: u64::MAX,
        max_fields: usize::MAX,
    };
}

/// Why a field section did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionError {
    /// Malformed: the stream or connection error its code says.
    Malformed(WireError),
    /// Well-formed so far, but larger than the [`FieldLimits`] (answer 431).
    TooLarge,
}

impl From<WireError> for SectionError {
    fn from(e: WireError) -> Self {
        SectionError::Malformed(e)
    }
}

/// Decode a field section into (name, value) pairs in order, without limits. Field
/// names and values are checked to be valid HTTP field text (no uppercase names, no
/// control characters).
pub fn decode(buf: &[u8]) -> Result<Vec<Field>, WireError> {
    decode_limited(buf, FieldLimits::NONE).map_err(|e| match e {
        SectionError::Malformed(e) => e,
        SectionError::TooLarge => fail("field section too large"),
    })
}

/// Decode a field section within `limits`.
pub fn decode_limited(buf: &[u8], limits: FieldLimits) -> Result<Vec<Field>, SectionError> {
    let mut pos = 0usize;
    let required_insert_count = decode_int(buf, &mut pos, 8)?;
    if required_insert_count != 0 {
        return Err(fail("field section references the dynamic table (capacity 0)").into());
    }
    decode_int(buf, &mut pos, 7)?; // sign + delta base: irrelevant without a dynamic table
    let mut fields = Vec::new();
    let mut size = 0u64;
    while pos < buf.len() {
        if fields.len() >= limits.max_fields {
            return Err(SectionError::TooLarge);
        }
        // What this field's name and value may still take.
        let budget = limits
            .max_section_size
            .checked_sub(size.saturating_add(FIELD_OVERHEAD))
            .ok_or(SectionError::TooLarge)?
            .min(usize::MAX as u64) as usize;
        let b = buf[pos];
        let field = if b & 0x80 != 0 {
            if b & 0x40 == 0 {
                return Err(fail("indexed field line references the dynamic table").into());
            }
            let (n, v) = static_entry(decode_int(buf, &mut pos, 6)?)?;
            if n.len() + v.len() > budget {
                return Err(SectionError::TooLarge);
            }
            (n.to_string(), v.to_string())
        } else if b & 0x40 != 0 {
            if b & 0x10 == 0 {
                return Err(fail("name reference into the dynamic table").into());
            }
            let (n, _) = static_entry(decode_int(buf, &mut pos, 4)?)?;
            let left = budget.checked_sub(n.len()).ok_or(SectionError::TooLarge)?;
            (n.to_string(), decode_string(buf, &mut pos, 7, left)?)
        } else if b & 0x20 != 0 {
            let name = decode_string(buf, &mut pos, 3, budget)?;
            let left = budget - name.len();
            let value = decode_string(buf, &mut pos, 7, left)?;
            (name, value)
        } else {
            return Err(fail("post-base reference into the dynamic table").into());
        };
        validate(&field)?;
        size += field.0.len() as u64 + field.1.len() as u64 + FIELD_OVERHEAD;
        fields.push(field);
    }
    Ok(fields)
}

/// Checks the peer's QPACK encoder stream (RFC 9204 §4.3). We announce a maximum
/// dynamic table capacity of 0, so the only instruction a peer may send is Set Dynamic
/// Table Capacity with capacity 0 (the single byte 0x20: no other encoding of 0 exists
/// with a 5-bit prefix); a larger capacity, or any insertion or duplication, is
/// QPACK_ENCODER_STREAM_ERROR (§4.3.1, §4.3.2-4). Stateless: bytes may arrive split
/// anywhere.
pub fn check_encoder_stream(data: &[u8]) -> Result<(), WireError> {
    for &b in data {
        match b {
            0x20 => {}
            b if b & 0xe0 == 0x20 => {
                return Err(WireError::new(
                    QPACK_ENCODER_STREAM_ERROR,
                    "Set Dynamic Table Capacity above our maximum of 0",
                ))
            }
            _ => {
                return Err(WireError::new(
                    QPACK_ENCODER_STREAM_ERROR,
                    "insertion into a dynamic table of capacity 0",
                ))
            }
        }
    }
    Ok(())
}

/// Checks the peer's QPACK decoder stream (RFC 9204 §4.4). Our encoder never uses the
/// dynamic table, so every field section we send has a Required Insert Count of 0: a
/// Section Acknowledgment (sent only for sections with a non-zero count, §4.4.1) and
/// an Insert Count Increment (we inserted nothing; an increment of 0 is an error too,
/// §4.4.3) are QPACK_DECODER_STREAM_ERROR. Stream Cancellations are allowed and
/// ignored.
#[derive(Debug, Default)]
pub struct DecoderStreamChecker {
    /// Continuation bytes of a Stream Cancellation's stream id still to come.
    in_integer: bool,
    integer_bytes: u8,
}

impl DecoderStreamChecker {
    pub fn push(&mut self, data: &[u8]) -> Result<(), WireError> {
        for &b in data {
            if self.in_integer {
                self.integer_bytes += 1;
                if self.integer_bytes > 9 {
                    return Err(WireError::new(
                        QPACK_DECODER_STREAM_ERROR,
                        "stream id of a Stream Cancellation overflows",
                    ));
                }
                self.in_integer = b & 0x80 != 0;
                continue;
            }
            match b {
                b if b & 0x80 != 0 => {
                    return Err(WireError::new(
                        QPACK_DECODER_STREAM_ERROR,
                        "Section Acknowledgment of a section without dynamic references",
                    ))
                }
                b if b & 0x40 != 0 => {
                    // Stream Cancellation, 6-bit prefix: all ones means more bytes follow.
                    self.in_integer = b & 0x3f == 0x3f;
                    self.integer_bytes = 0;
                }
                _ => {
                    return Err(WireError::new(
                        QPACK_DECODER_STREAM_ERROR,
                        "Insert Count Increment with nothing inserted",
                    ))
                }
            }
        }
        Ok(())
    }
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
    fn amplification_is_cut_at_the_limit() {
        // 64 KiB of one-byte static references (":path /" etc.) would decode into
        // ~65,000 fields; with 16 KiB / 128 fields it stops at the limit.
        let mut block = vec![0x00, 0x00];
        block.extend(std::iter::repeat_n(0xc0 | 1, 64 * 1024));
        let limits = FieldLimits {
            max_section_size: 16 * 1024,
            max_fields: 128,
        };
        assert_eq!(decode_limited(&block, limits), Err(SectionError::TooLarge));
        let few = FieldLimits {
            max_section_size: u64::MAX,
            max_fields: 10,
        };
        assert_eq!(decode_limited(&block, few), Err(SectionError::TooLarge));
        // Exactly at the size limit is fine, one byte less is not: ":path" "/" is
        // 5 + 1 + 32 = 38 bytes.
        let two = [0x00, 0x00, 0xc1, 0xc1];
        let exact = FieldLimits {
            max_section_size: 76,
            max_fields: 2,
        };
        assert_eq!(decode_limited(&two, exact).unwrap().len(), 2);
        let under = FieldLimits {
            max_section_size: 75,
            ..exact
        };
        assert_eq!(decode_limited(&two, under), Err(SectionError::TooLarge));
    }

    #[test]
    fn long_literals_are_refused_before_they_are_copied() {
        let value = "v".repeat(5000);
        let block = encode(&[("x-big", &value)]);
        let limits = FieldLimits {
            max_section_size: 4096,
            max_fields: 100,
        };
        assert_eq!(decode_limited(&block, limits), Err(SectionError::TooLarge));
        // Huffman-coded: the decoded length counts, not the encoded one.
        // Literal with static name reference 1 (:path), Huffman value of 5000 'a's.
        let mut huff = vec![0x00, 0x00, 0x50 | 1];
        let mut enc = Vec::new();
        huffman::encode(&[b'a'; 5000], &mut enc);
        encode_int(0x80, 7, enc.len() as u64, &mut huff);
        huff.extend(&enc);
        assert_eq!(decode_limited(&huff, limits), Err(SectionError::TooLarge));
        assert_eq!(decode(&huff).unwrap()[0].1.len(), 5000);
    }

    #[test]
    fn huffman_padding_is_checked() {
        // :path with Huffman value "0" (00000) padded with 111 is fine, with 110 is not.
        assert_eq!(
            decode(&[0x00, 0x00, 0x51, 0x81, 0b0000_0111]).unwrap()[0].1,
            "0"
        );
        for bad in [0b0000_0110u8, 0b0000_0011] {
            assert_eq!(
                decode(&[0x00, 0x00, 0x51, 0x81, bad]).unwrap_err().code,
                QPACK_DECOMPRESSION_FAILED
            );
        }
        // 8 bits of padding.
        assert_eq!(
            decode(&[0x00, 0x00, 0x51, 0x82, 0b0000_0111, 0xff])
                .unwrap_err()
                .code,
            QPACK_DECOMPRESSION_FAILED
        );
    }

    #[test]
    fn encoder_and_decoder_stream_instructions() {
        assert!(check_encoder_stream(&[0x20, 0x20]).is_ok());
        for bad in [
            &[0x21u8][..],
            &[0x3f, 0x01],
            &[0x80, 0x00],
            &[0x40],
            &[0x00],
        ] {
            assert_eq!(
                check_encoder_stream(bad).unwrap_err().code,
                QPACK_ENCODER_STREAM_ERROR,
                "{bad:02x?}"
            );
        }
        // Stream Cancellations, also with multi-byte ids split across pushes.
        let mut d = DecoderStreamChecker::default();
        d.push(&[0x44, 0x7f]).unwrap();
        d.push(&[0x80, 0x81]).unwrap();
        d.push(&[0x01, 0x45]).unwrap();
        for bad in [&[0x80u8][..], &[0x81], &[0x00], &[0x01]] {
            let mut d = DecoderStreamChecker::default();
            assert_eq!(
                d.push(bad).unwrap_err().code,
                QPACK_DECODER_STREAM_ERROR,
                "{bad:02x?}"
            );
        }
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
