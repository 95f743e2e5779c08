//! MessagePack of [`Value`]s, byte-identical to what pywebtransport's `MsgPackSerializer`
//! sends: msgpack-python's `packb(obj)` with its defaults (`use_bin_type=True`,
//! `use_single_float=False`):
//!
//! - integers in their most compact form (positive fixint, uint 8/16/32/64 for
//!   non-negative values; negative fixint, int 8/16/32/64 for negative ones);
//! - every float as a float 64 (the infinities included; every NaN as Python's
//!   `float("nan")`, `cb 7ff8000000000000`);
//! - strings as fixstr/str 8/16/32, bytes as bin 8/16/32 (bytes stay bytes);
//! - arrays and maps in their entry order, map keys of any type (an integer key stays
//!   an integer).
//!
//! Reading accepts every MessagePack value msgpack-python's `unpackb(raw=False)`
//! accepts and [`Value`] can hold: a float 32 is read as the double of the same value
//! (what Python does), a string must be UTF-8, extension types are an error. Nesting
//! deeper than [`MAX_DEPTH`](super::value::MAX_DEPTH) is an error.

use std::io;

use serde::Serialize;

use super::value::{Value, MAX_DEPTH};
use crate::transport::Error;

/// `value` as MessagePack.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    write(&mut out, value).map_err(|e| format!("serialization error: {e}"))?;
    Ok(out)
}

fn len32(n: usize) -> Result<u32, io::Error> {
    u32::try_from(n).map_err(|_| io::Error::other("longer than 2^32 - 1"))
}

fn write(out: &mut Vec<u8>, v: &Value) -> Result<(), io::Error> {
    use rmp::encode as e;
    match v {
        Value::Null => e::write_nil(out)?,
        Value::Bool(b) => e::write_bool(out, *b)?,
        Value::I64(i) => {
            e::write_sint(out, *i)?;
        }
        Value::U64(u) => {
            e::write_uint(out, *u)?;
        }
        // Every NaN as Python's float("nan") (and Rust's f64::NAN): 7ff8000000000000.
        Value::F64(f) if f.is_nan() => e::write_f64(out, f64::NAN)?,
        Value::F64(f) => e::write_f64(out, *f)?,
        Value::String(s) => {
            len32(s.len())?;
            e::write_str(out, s)?
        }
        Value::Bytes(b) => {
            len32(b.len())?;
            e::write_bin(out, b)?
        }
        Value::Array(a) => {
            e::write_array_len(out, len32(a.len())?)?;
            for item in a {
                write(out, item)?;
            }
        }
        Value::Map(m) => {
            e::write_map_len(out, len32(m.len())?)?;
            for (k, item) in m {
                write(out, k)?;
                write(out, item)?;
            }
        }
    }
    Ok(())
}

/// How a float 32 becomes the double a [`Value`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Float32 {
    /// The same value (msgpack-python: `1.1f32` reads as `1.100000023841858`).
    Exact,
    /// The double nearest the float's shortest decimal text (`1.1f32` -> `1.1`): what a
    /// Rust `f32` field means, used when a Rust value is turned into a [`Value`].
    Shortest,
}

/// Read exactly one MessagePack value (trailing bytes are an error).
pub fn from_slice(data: &[u8]) -> Result<Value, String> {
    read(data, Float32::Exact)
}

pub(crate) fn read(data: &[u8], f32_as: Float32) -> Result<Value, String> {
    let mut r = Reader { s: data, f32_as };
    let v = r
        .value(0)
        .map_err(|e| format!("invalid MessagePack: {e}"))?;
    if !r.s.is_empty() {
        return Err(format!("invalid MessagePack: {} trailing bytes", r.s.len()));
    }
    Ok(v)
}

/// A MessagePack reader over the unread rest of the input.
struct Reader<'a> {
    s: &'a [u8],
    f32_as: Float32,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.s.len() < n {
            return Err(format!("{n} bytes needed, {} left", self.s.len()));
        }
        let (head, rest) = self.s.split_at(n);
        self.s = rest;
        Ok(head)
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    /// A length of `n` bytes (1, 2 or 4), big-endian.
    fn len(&mut self, n: usize) -> Result<usize, String> {
        Ok(match n {
            1 => usize::from(self.be::<1>()?[0]),
            2 => usize::from(u16::from_be_bytes(self.be()?)),
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        let m = self.be::<1>()?[0];
        let int = |i: i64| {
            if i >= 0 {
                Value::U64(i as u64)
            } else {
                Value::I64(i)
            }
        };
        Ok(match m {
            0x00..=0x7f => Value::U64(u64::from(m)),
            0xe0..=0xff => Value::I64(i64::from(m as i8)),
            0xc0 => Value::Null,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xcc => Value::U64(u64::from(self.be::<1>()?[0])),
            0xcd => Value::U64(u64::from(u16::from_be_bytes(self.be()?))),
            0xce => Value::U64(u64::from(u32::from_be_bytes(self.be()?))),
            0xcf => Value::U64(u64::from_be_bytes(self.be()?)),
            0xd0 => int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => int(i64::from_be_bytes(self.be()?)),
            0xca => {
                let f = f32::from_be_bytes(self.be()?);
                Value::F64(match self.f32_as {
                    Float32::Exact => f64::from(f),
                    Float32::Shortest => f.to_string().parse().unwrap_or(f64::from(f)),
                })
            }
            0xcb => Value::F64(f64::from_be_bytes(self.be()?)),
            0xa0..=0xbf | 0xd9..=0xdb => {
                let n = match m {
                    0xd9 => self.len(1)?,
                    0xda => self.len(2)?,
                    0xdb => self.len(4)?,
                    _ => usize::from(m & 0x1f),
                };
                let b = self.take(n)?;
                Value::String(
                    std::str::from_utf8(b)
                        .map_err(|_| "a string is not UTF-8".to_string())?
                        .to_owned(),
                )
            }
            0xc4..=0xc6 => {
                let n = self.len(1 << (m - 0xc4))?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                let n = match m {
                    0xdc => self.len(2)?,
                    0xdd => self.len(4)?,
                    _ => usize::from(m & 0x0f),
                };
                let depth = self.enter(depth)?;
                // Every item takes at least a byte: do not trust `n` beyond that.
                let mut items = Vec::with_capacity(n.min(self.s.len()));
                for _ in 0..n {
                    items.push(self.value(depth)?);
                }
                Value::Array(items)
            }
            0x80..=0x8f | 0xde | 0xdf => {
                let n = match m {
                    0xde => self.len(2)?,
                    0xdf => self.len(4)?,
                    _ => usize::from(m & 0x0f),
                };
                let depth = self.enter(depth)?;
                let mut entries = Vec::with_capacity(n.min(self.s.len() / 2));
                for _ in 0..n {
                    let k = self.value(depth)?;
                    entries.push((k, self.value(depth)?));
                }
                Value::Map(entries)
            }
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                return Err(format!(
                    "extension types (marker 0x{m:02x}) are not supported"
                ))
            }
            0xc1 => return Err("marker 0xc1 is never used".into()),
        })
    }

    fn enter(&self, depth: usize) -> Result<usize, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} arrays and maps"));
        }
        Ok(depth + 1)
    }
}

impl Value {
    /// The value of `v` as its `Serialize` impl describes it, in its human-readable
    /// form: structs become maps with fields in declaration order, enums are externally
    /// tagged (`"Unit"`, `{"Variant": value}`), bytes stay bytes, non-finite floats and
    /// integer map keys stay what they are, an `f32` becomes the double nearest its
    /// shortest decimal text (`0.1f32` -> `0.1`). Nesting deeper than
    /// [`MAX_DEPTH`] is InvalidArgument.
    pub fn from_serialize<T: Serialize + ?Sized>(v: &T) -> Result<Value, Error> {
        let fail = |e: String| Error::InvalidArgument(format!("serialization error: {e}"));
        // rmp-serde (structs as maps, human-readable) writes a lossless image of the
        // serde data model, which is read back into a Value.
        let mut buf = Vec::new();
        let mut ser = rmp_serde::Serializer::new(&mut buf)
            .with_struct_map()
            .with_human_readable();
        v.serialize(&mut ser).map_err(|e| fail(e.to_string()))?;
        read(&buf, Float32::Shortest).map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn s(t: &str) -> Value {
        Value::String(t.into())
    }

    // Every expected hex string below is msgpack-python 1.1.2's packb of the Python
    // value in the comment.

    #[test]
    fn bytes_nan_and_integer_keys_stay_what_they_are() {
        // packb({"b": b"\x00\xff", 1: "one", -1: float("nan"), "f": float("inf")})
        let v = Value::Map(vec![
            (s("b"), Value::Bytes(vec![0, 0xff])),
            (Value::U64(1), s("one")),
            (Value::I64(-1), Value::F64(f64::NAN)),
            (s("f"), Value::F64(f64::INFINITY)),
        ]);
        let b = to_vec(&v).unwrap();
        assert_eq!(
            hex(&b),
            "84a162c40200ff01a36f6e65ffcb7ff8000000000000a166cb7ff0000000000000"
        );
        let back = from_slice(&b).unwrap();
        let Value::Map(m) = &back else { panic!() };
        assert_eq!(m[0], (s("b"), Value::Bytes(vec![0, 0xff])));
        assert_eq!(m[1], (Value::U64(1), s("one")));
        assert!(matches!(m[2], (Value::I64(-1), Value::F64(f)) if f.is_nan()));
        assert_eq!(to_vec(&back).unwrap(), b);
    }

    #[test]
    fn every_nan_is_pythons_nan() {
        // packb(float("nan")); a NaN with other bits (e.g. 0.0 / 0.0 on x86) alike.
        let other = f64::from_bits(0xfff8_0000_0000_0001);
        assert!(other.is_nan());
        assert_eq!(
            hex(&to_vec(&Value::F64(other)).unwrap()),
            "cb7ff8000000000000"
        );
    }

    #[test]
    fn key_order_is_kept() {
        // packb({"zeta": 1, "alpha": [1.0, None, True]})
        let v = Value::Map(vec![
            (s("zeta"), Value::U64(1)),
            (
                s("alpha"),
                Value::Array(vec![Value::F64(1.0), Value::Null, Value::Bool(true)]),
            ),
        ]);
        assert_eq!(
            hex(&to_vec(&v).unwrap()),
            "82a47a65746101a5616c70686193cb3ff0000000000000c0c3"
        );
    }

    #[test]
    fn reads_what_python_may_send() {
        // packb(1.1, use_single_float=True): Python reads it back as 1.100000023841858.
        let f = from_slice(&[0xca, 0x3f, 0x8c, 0xcc, 0xcd]).unwrap();
        assert_eq!(f, Value::F64(f64::from(1.1f32)));
        assert_eq!(
            read(&[0xca, 0x3f, 0x8c, 0xcc, 0xcd], Float32::Shortest).unwrap(),
            Value::F64(1.1)
        );
        // Non-minimal integers and lengths are read all the same.
        assert_eq!(from_slice(&[0xcd, 0x00, 0x01]).unwrap(), Value::U64(1));
        assert_eq!(from_slice(&[0xd0, 0x05]).unwrap(), Value::U64(5));
        assert_eq!(
            from_slice(&[0xdc, 0x00, 0x01, 0xc0]).unwrap(),
            Value::Array(vec![Value::Null])
        );
        assert_eq!(from_slice(&[0xd9, 0x01, b'a']).unwrap(), s("a"));
        for bad in [
            &[0xc1][..],                     // never used
            &[0x01, 0x02],                   // trailing
            &[0x92, 0x01],                   // truncated
            &[0xa2, 0xff, 0xfe],             // str, not UTF-8
            &[0xd4, 0x01, 0x00],             // fixext 1
            &[0xdb, 0xff, 0xff, 0xff, 0xff], // huge length, no data
            &[0xdd, 0xff, 0xff, 0xff, 0xff], // huge array, no items
            &[],
        ] {
            assert!(from_slice(bad).is_err(), "{bad:02x?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let nest = |n: usize| {
            let mut b = vec![0x91; n];
            b.push(0xa1);
            b.push(b'x');
            b
        };
        assert!(from_slice(&nest(MAX_DEPTH)).is_ok());
        assert!(from_slice(&nest(MAX_DEPTH + 1)).is_err());
        assert!(from_slice(&vec![0x91; 100_000]).is_err());
    }
}
