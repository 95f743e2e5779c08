//! Python-compatible JSON: the one JSON encoder and decoder of the datagram layer,
//! used by the datagram stream (`send_json`/`receive_json`) and by the structured
//! transport's `JsonSerializer`.
//!
//! # Writing
//!
//! [`to_vec`] writes exactly what Python's `json.dumps(obj, separators=...)` writes
//! with its other defaults (`ensure_ascii=True`, `allow_nan=True`):
//!
//! - map entries in their order (never sorted);
//! - `"`, `\` and the controls `\b \f \n \r \t` as short escapes, every other control,
//!   DEL and every non-ASCII character as lowercase `\uXXXX` (a surrogate pair beyond
//!   the BMP); `/`, `<`, `>`, `&` as they are;
//! - floats as Python's `repr` spells them (`1.0`, `1e-05`, `1e+16`,
//!   `1.7976931348623157e+308`), non-finite ones as `NaN`, `Infinity`, `-Infinity`;
//! - map keys that are not strings as Python converts them (`1` -> `"1"`, `1.5` ->
//!   `"1.5"`, `true` -> `"true"`, `null` -> `"null"`); other keys are an error;
//! - the separators of [`Separators`]: pywebtransport's datagram stream sends
//!   [`Separators::Compact`] (`(",", ":")`), its structured `JSONSerializer` Python's
//!   default [`Separators::Python`] (`(", ", ": ")`).
//!
//! Python cannot write bytes as JSON (`TypeError`); a [`Value::Bytes`] is written as an
//! array of its byte values (serde_json's convention).
//!
//! # Reading
//!
//! [`from_slice`] reads what Python's `json.loads` reads from UTF-8: standard JSON plus
//! `NaN`, `Infinity` and `-Infinity`; a repeated key keeps its first position and its
//! last value (a Python dict). Integers are read as 64-bit integers (`-0` as `0`, like
//! Python), integers beyond the 64-bit range as floats (Python keeps them exact); a
//! lone surrogate escape is an error (Rust strings cannot hold one). Nesting deeper
//! than [`MAX_DEPTH`] is an error.

use std::borrow::Cow;
use std::collections::HashMap;

use super::value::Value;
pub use super::value::MAX_DEPTH;

/// The item and key separators of JSON text (Python's `separators` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Separators {
    /// `(", ", ": ")`, Python's default (`json.dumps(obj)`): what pywebtransport's
    /// structured `JSONSerializer` writes, e.g. `{"a": 1, "b": [1, 2]}`.
    #[default]
    Python,
    /// `(",", ":")`: what pywebtransport's datagram stream `send_json` writes, e.g.
    /// `{"a":1,"b":[1,2]}`.
    Compact,
}

impl Separators {
    /// Between items of an array or entries of a map.
    pub fn item(self) -> &'static str {
        match self {
            Separators::Python => ", ",
            Separators::Compact => ",",
        }
    }

    /// Between a key and its value.
    pub fn key(self) -> &'static str {
        match self {
            Separators::Python => ": ",
            Separators::Compact => ":",
        }
    }
}

/// Why a value could not be written or text could not be read as JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

// ------------------------------------------------------------------------------------
// Writing

/// `value` as JSON text, UTF-8 (ASCII in fact), exactly as Python's `json.dumps`
/// writes it with `separators`.
pub fn to_vec(value: &Value, separators: Separators) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    write_value(&mut out, value, separators, 0)?;
    Ok(out)
}

fn write_value(
    out: &mut Vec<u8>,
    v: &Value,
    sep: Separators,
    depth: usize,
) -> Result<(), JsonError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::I64(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::U64(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::F64(f) => out.extend_from_slice(json_float(*f).as_bytes()),
        Value::String(s) => write_string(out, s),
        Value::Bytes(b) => {
            out.push(b'[');
            for (i, byte) in b.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(sep.item().as_bytes());
                }
                out.extend_from_slice(byte.to_string().as_bytes());
            }
            out.push(b']');
        }
        Value::Array(a) => {
            check_depth(depth)?;
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(sep.item().as_bytes());
                }
                write_value(out, item, sep, depth + 1)?;
            }
            out.push(b']');
        }
        Value::Map(m) => {
            check_depth(depth)?;
            out.push(b'{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(sep.item().as_bytes());
                }
                write_key(out, k)?;
                out.extend_from_slice(sep.key().as_bytes());
                write_value(out, item, sep, depth + 1)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn check_depth(depth: usize) -> Result<(), JsonError> {
    if depth >= MAX_DEPTH {
        return Err(JsonError(format!(
            "nested deeper than {MAX_DEPTH} arrays and maps"
        )));
    }
    Ok(())
}

/// A map key as Python's `json.dumps` converts it to a string.
fn write_key(out: &mut Vec<u8>, k: &Value) -> Result<(), JsonError> {
    write_string(out, &key_text(k)?);
    Ok(())
}

/// The string Python's `json.dumps` makes of a map key: a string as it is, `1` ->
/// `1`, `1.5` -> `1.5`, `True` -> `true`, `None` -> `null`; other keys are an error.
pub(crate) fn key_text(k: &Value) -> Result<Cow<'_, str>, JsonError> {
    Ok(match k {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Null => Cow::Borrowed("null"),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::I64(i) => Cow::Owned(i.to_string()),
        Value::U64(u) => Cow::Owned(u.to_string()),
        Value::F64(f) => Cow::Owned(json_float(*f)),
        Value::Bytes(_) => {
            return Err(JsonError(
                "keys must be str, int, float, bool or None, not bytes".into(),
            ))
        }
        Value::Array(_) => {
            return Err(JsonError(
                "keys must be str, int, float, bool or None, not an array".into(),
            ))
        }
        Value::Map(_) => {
            return Err(JsonError(
                "keys must be str, int, float, bool or None, not a map".into(),
            ))
        }
    })
}

/// `s` quoted and escaped like Python's `json.dumps` with `ensure_ascii`.
fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let short: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            ' '..='~' => continue,
            _ => b"",
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.extend_from_slice(format!("\\u{u:04x}").as_bytes());
            }
        } else {
            out.extend_from_slice(short);
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A float as Python's JSON encoder writes it: `repr` for finite values, `NaN`,
/// `Infinity` and `-Infinity` otherwise.
pub(crate) fn json_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        python_float_repr(v)
    }
}

/// Python's `repr(float)` of a finite `v`: shortest round-trip digits, positional for
/// decimal exponents -4..16 (always with a fraction, `1.0`), scientific otherwise
/// with a signed exponent of at least two digits (`1e-05`, `1e+16`).
pub fn python_float_repr(v: f64) -> String {
    let sci = format!("{:e}", v.abs()); // shortest digits: "1.5e-5", "1e16", "0e0"
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let e = exp as usize;
            let (int, frac) = if digits.len() > e + 1 {
                (digits[..e + 1].to_string(), digits[e + 1..].to_string())
            } else {
                (format!("{digits:0<width$}", width = e + 1), "0".to_string())
            };
            format!("{sign}{int}.{frac}")
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{es}{:02}", exp.abs())
    }
}

// ------------------------------------------------------------------------------------
// Reading

/// Read one JSON value (surrounded by optional whitespace) as Python's `json.loads`
/// reads it; see the module documentation.
pub fn from_slice(data: &[u8]) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(data).map_err(|e| JsonError(format!("not UTF-8: {e}")))?;
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    let v = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.err("extra data after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    /// Valid UTF-8.
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> JsonError {
        JsonError(format!("{what} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        let v = match self.peek() {
            Some(b'{') => return self.object(depth),
            Some(b'[') => return self.array(depth),
            Some(b'"') => Value::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => {
                if self.eat("-Infinity") {
                    Value::F64(f64::NEG_INFINITY)
                } else {
                    self.number()?
                }
            }
            _ if self.eat("null") => Value::Null,
            _ if self.eat("true") => Value::Bool(true),
            _ if self.eat("false") => Value::Bool(false),
            _ if self.eat("NaN") => Value::F64(f64::NAN),
            _ if self.eat("Infinity") => Value::F64(f64::INFINITY),
            None => return Err(self.err("expected a value, found the end")),
            Some(_) => return Err(self.err("expected a value")),
        };
        Ok(v)
    }

    fn enter(&self, depth: usize) -> Result<(), JsonError> {
        if depth >= MAX_DEPTH {
            return Err(self.err(&format!(
                "nested deeper than {MAX_DEPTH} arrays and objects"
            )));
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.enter(depth)?;
        self.pos += 1; // [
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.enter(depth)?;
        self.pos += 1; // {
        let mut entries: Vec<(Value, Value)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Map(entries));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a string key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let v = self.value(depth + 1)?;
            // A Python dict: a repeated key keeps its place and takes the last value.
            match index.get(&key) {
                Some(&i) => entries[i].1 = v,
                None => {
                    index.insert(key.clone(), entries.len());
                    entries.push((Value::String(key), v));
                }
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Map(entries));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let h = self
            .s
            .get(self.pos..self.pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u16::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.pos += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // "
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The run ends at an ASCII byte (or the end), so it is whole UTF-8.
            out.push_str(std::str::from_utf8(&self.s[start..self.pos]).expect("UTF-8 run"));
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let u = self.hex4()?;
                            let c = if (0xd800..0xdc00).contains(&u) {
                                if !self.eat("\\u") {
                                    return Err(self.err("lone surrogate in a \\u escape"));
                                }
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.err("lone surrogate in a \\u escape"));
                                }
                                char::from_u32(
                                    0x10000
                                        + ((u32::from(u) - 0xd800) << 10)
                                        + (u32::from(lo) - 0xdc00),
                                )
                            } else {
                                char::from_u32(u32::from(u))
                            };
                            out.push(c.ok_or_else(|| self.err("lone surrogate in a \\u escape"))?);
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.err("invalid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.err("invalid control character in a string")),
            }
        }
    }

    /// Python's number syntax `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`.
    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - s
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.err("expected a value")),
        }
        let mut float = false;
        if self.peek() == Some(b'.') && matches!(self.s.get(self.pos + 1), Some(b'0'..=b'9')) {
            self.pos += 1;
            digits(self);
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                self.pos = save; // not an exponent: "extra data" follows
            } else {
                float = true;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).expect("ASCII");
        if !float {
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Value::U64(u));
            }
            if let Ok(i) = text.parse::<i64>() {
                return Ok(if i == 0 { Value::U64(0) } else { Value::I64(i) });
            }
        }
        text.parse::<f64>()
            .map(Value::F64)
            .map_err(|_| self.err("invalid number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(text: &str, sep: Separators) -> String {
        let v = from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        String::from_utf8(to_vec(&v, sep).unwrap()).unwrap()
    }

    // Every expected string below is what CPython 3.11 and 3.13 print for
    // json.dumps(json.loads(text)) (Separators::Python) or
    // json.dumps(json.loads(text), separators=(",", ":")) (Compact).

    #[test]
    fn separators_python_default_and_compact() {
        let t = r#"{"b": [1, 2.0, {"c": null}], "a": {}, "e": []}"#;
        assert_eq!(
            py(t, Separators::Python),
            r#"{"b": [1, 2.0, {"c": null}], "a": {}, "e": []}"#
        );
        assert_eq!(
            py(t, Separators::Compact),
            r#"{"b":[1,2.0,{"c":null}],"a":{},"e":[]}"#
        );
        assert_eq!(Separators::default(), Separators::Python);
    }

    #[test]
    fn key_order_is_kept_and_repeated_keys_are_a_dict() {
        assert_eq!(
            py(r#"{"zeta":1,"alpha":2,"mid":3}"#, Separators::Compact),
            r#"{"zeta":1,"alpha":2,"mid":3}"#
        );
        // json.loads keeps the first position and the last value.
        assert_eq!(
            py(r#"{"a":1,"b":2,"a":3}"#, Separators::Compact),
            r#"{"a":3,"b":2}"#
        );
    }

    #[test]
    fn strings_are_ascii_escaped() {
        assert_eq!(py(r#""é""#, Separators::Compact), r#""\u00e9""#);
        assert_eq!(
            py(
                "\"日本😀\u{7f}/<>&'\\n\\t\\\"\\\\\\u0001\\b\\f\\r\\u2028\"",
                Separators::Compact
            ),
            r#""\u65e5\u672c\ud83d\ude00\u007f/<>&'\n\t\"\\\u0001\b\f\r\u2028""#
        );
        // Escapes are read in any case and "\/" is a slash.
        assert_eq!(
            py(r#""\u00C9\/\uD83D\uDE00""#, Separators::Compact),
            r#""\u00c9/\ud83d\ude00""#
        );
    }

    #[test]
    fn numbers_are_spelled_like_python() {
        assert_eq!(
            py(
                "[1.0, 1e-05, 0.00001, 1E2, 2.50, 1e16, 1.5e-7, -0, -0.0, 0, 1e400, -1e400, 18446744073709551615, -9223372036854775808]",
                Separators::Compact
            ),
            "[1.0,1e-05,1e-05,100.0,2.5,1e+16,1.5e-07,0,-0.0,0,Infinity,-Infinity,18446744073709551615,-9223372036854775808]"
        );
        // Beyond 64 bits: read as a float (Python keeps the integer).
        assert_eq!(
            py("18446744073709551616", Separators::Compact),
            "1.8446744073709552e+19"
        );
        for (v, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (123456.789, "123456.789"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(python_float_repr(v), want, "{v:e}");
        }
    }

    #[test]
    fn non_finite_floats_like_python() {
        assert_eq!(
            py("[NaN, Infinity, -Infinity]", Separators::Python),
            "[NaN, Infinity, -Infinity]"
        );
        let v = Value::Array(vec![
            Value::F64(f64::NAN),
            Value::F64(f64::INFINITY),
            Value::F64(f64::NEG_INFINITY),
        ]);
        assert_eq!(
            to_vec(&v, Separators::Compact).unwrap(),
            b"[NaN,Infinity,-Infinity]"
        );
        let back = from_slice(b"NaN").unwrap();
        assert!(matches!(back, Value::F64(f) if f.is_nan()));
    }

    #[test]
    fn keys_are_converted_like_python() {
        // json.dumps({1: "a", -2: "b", 1.5: "c", False: "d", None: "e", float("nan"): "f"})
        let v = Value::Map(vec![
            (Value::U64(1), Value::String("a".into())),
            (Value::I64(-2), Value::String("b".into())),
            (Value::F64(1.5), Value::String("c".into())),
            (Value::Bool(false), Value::String("d".into())),
            (Value::Null, Value::String("e".into())),
            (Value::F64(f64::NAN), Value::String("f".into())),
        ]);
        assert_eq!(
            to_vec(&v, Separators::Python).unwrap(),
            br#"{"1": "a", "-2": "b", "1.5": "c", "false": "d", "null": "e", "NaN": "f"}"#
        );
        let bad = Value::Map(vec![(Value::Bytes(vec![1]), Value::Null)]);
        assert!(to_vec(&bad, Separators::Python).is_err());
        // Bytes as a value: an array of byte values.
        assert_eq!(
            to_vec(&Value::Bytes(vec![0, 255]), Separators::Python).unwrap(),
            b"[0, 255]"
        );
    }

    #[test]
    fn rejects_what_python_rejects() {
        for bad in [
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{'a':1}",
            "{1:2}",
            "[1 2]",
            "01",
            "1.",
            ".5",
            "1e",
            "+1",
            "nan",
            "inf",
            "-NaN",
            "tru",
            "\"a",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\u{1}b\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "{} trailing",
            "[1]]",
            "\u{feff}1",
        ] {
            assert!(from_slice(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(from_slice(b"\"\xff\"").is_err(), "not UTF-8");
        // Whitespace around the value is fine, DEL in a string too.
        assert_eq!(py(" \t\r\n[ 1 ] \n", Separators::Compact), "[1]");
        assert_eq!(py("\"\u{7f}\"", Separators::Compact), "\"\\u007f\"");
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(py(&ok, Separators::Compact), ok);
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(from_slice(deep.as_bytes()).is_err());
        let mut v = Value::Null;
        for _ in 0..=MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        assert!(to_vec(&v, Separators::Compact).is_err());
        // Far deeper input fails cleanly instead of overflowing the stack.
        assert!(from_slice("[".repeat(100_000).as_bytes()).is_err());
    }
}
