//! Pluggable serializers of the structured transport: the [`Serializer`] trait, the
//! pywebtransport-exact [`JsonSerializer`] and [`MsgPackSerializer`], and [`transcode`]
//! between them.

use serde::Serialize;

use super::json::{self, Separators};
use super::msgpack;
use super::value::Value;
use crate::transport::Error;

// ------------------------------------------------------------------------------------
// Serializers

/// Turns [`Value`]s into bytes and back. Implement it to plug in another format.
pub trait Serializer: Send + Sync {
    /// A short name of the format ("json", "msgpack").
    fn name(&self) -> &str;
    /// Encode a value.
    fn to_bytes(&self, value: &Value) -> Result<Vec<u8>, Error>;
    /// Decode a whole payload (trailing bytes are an error).
    #[allow(clippy::wrong_self_convention)]
    fn from_bytes(&self, data: &[u8]) -> Result<Value, Error>;
    /// Check an already-serialized payload and return the bytes to send. The default
    /// decodes it and sends it unchanged; [`JsonSerializer`] re-emits it in its form.
    fn normalize(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        self.from_bytes(data)?;
        Ok(data.to_vec())
    }
}

/// JSON exactly as pywebtransport's `JSONSerializer` writes it: Python's
/// `json.dumps(obj)`, by default with Python's separators `(", ", ": ")`
/// (`{"name": "\u00e9", "x": 1.0}`), or compact `(",", ":")` with
/// [`JsonSerializer::compact`] (`{"name":"\u00e9","x":1.0}`, what
/// `JSONSerializer(dump_kwargs={"separators": (",", ":")})` writes). Non-ASCII escaped
/// as `\uXXXX`, floats spelled like Python's `repr`, `NaN`/`Infinity`, entries in
/// order; see [`super::json`]. Reading accepts what Python's `json.loads` accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonSerializer {
    separators: Separators,
}

impl JsonSerializer {
    /// Python's default separators `(", ", ": ")`: pywebtransport's `JSONSerializer()`.
    pub const fn new() -> JsonSerializer {
        JsonSerializer::with_separators(Separators::Python)
    }

    /// Compact separators `(",", ":")`.
    pub const fn compact() -> JsonSerializer {
        JsonSerializer::with_separators(Separators::Compact)
    }

    pub const fn with_separators(separators: Separators) -> JsonSerializer {
        JsonSerializer { separators }
    }

    pub fn separators(&self) -> Separators {
        self.separators
    }

    /// Serialize any `T` (as [`Value::from_serialize`] describes it).
    pub fn encode<T: Serialize + ?Sized>(&self, v: &T) -> Result<Vec<u8>, Error> {
        self.to_bytes(&Value::from_serialize(v)?)
    }
}

/// MessagePack exactly as pywebtransport's `MsgPackSerializer` writes it
/// (msgpack-python's `packb(obj)`): an object is a map of field names to values, bytes
/// stay bin, every float is a float 64, map keys keep their type; see
/// [`super::msgpack`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgPackSerializer;

impl MsgPackSerializer {
    /// Serialize any `T` (as [`Value::from_serialize`] describes it).
    pub fn encode<T: Serialize + ?Sized>(&self, v: &T) -> Result<Vec<u8>, Error> {
        self.to_bytes(&Value::from_serialize(v)?)
    }
}

impl Serializer for JsonSerializer {
    fn name(&self) -> &str {
        "json"
    }
    fn to_bytes(&self, value: &Value) -> Result<Vec<u8>, Error> {
        json::to_vec(value, self.separators)
            .map_err(|e| Error::InvalidArgument(format!("serialization error: {e}")))
    }
    fn from_bytes(&self, data: &[u8]) -> Result<Value, Error> {
        json::from_slice(data).map_err(|e| Error::InvalidData(format!("invalid JSON: {e}")))
    }
    fn normalize(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let v = self
            .from_bytes(data)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.to_bytes(&v)
    }
}

impl Serializer for MsgPackSerializer {
    fn name(&self) -> &str {
        "msgpack"
    }
    fn to_bytes(&self, value: &Value) -> Result<Vec<u8>, Error> {
        msgpack::to_vec(value).map_err(Error::InvalidArgument)
    }
    fn from_bytes(&self, data: &[u8]) -> Result<Value, Error> {
        msgpack::from_slice(data).map_err(Error::InvalidData)
    }
    fn normalize(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        self.from_bytes(data)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(data.to_vec())
    }
}

/// One serialized value from one format to another: `data` is read as `from` reads it
/// (one whole value) and written as `to` writes it, through [`Value`]. What a binding
/// calls instead of writing its own pywebtransport-exact encoder: it hands over the
/// value in the format it can write exactly (e.g. MessagePack, which keeps `1.0` a float
/// and bytes bytes) and gets the bytes Python would send in the other. `from == to`
/// re-emits the value in `to`'s form (JSON: [`JsonSerializer::normalize`]; MessagePack:
/// its canonical packb form, a float 32 widened to the float 64 of the same value,
/// integers and lengths in their most compact form).
///
/// `InvalidData` if `data` does not decode in `from`, `InvalidArgument` if the value
/// cannot be written in `to` (a JSON map key that is bytes, an array or a map; nesting
/// deeper than [`MAX_DEPTH`](super::value::MAX_DEPTH)).
pub fn transcode(
    from: &dyn Serializer,
    to: &dyn Serializer,
    data: &[u8],
) -> Result<Vec<u8>, Error> {
    to.to_bytes(&from.from_bytes(data)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The byte vectors written by real Python (json, msgpack-python; see
    /// bindings/go/testdata/gen_structured_vectors.py), shared with the Go binding, the JS
    /// module and tests/c/test_transcode.c.
    pub(crate) fn shared_vectors() -> Vec<serde_json::Value> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("bindings/go/testdata/structured_vectors.json");
        let text = std::fs::read_to_string(&path).expect("read the shared vectors");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vectors = doc["vectors"].as_array().expect("vectors").clone();
        assert!(vectors.len() >= 12);
        vectors
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Every format to every format over the byte vectors written by real Python
    /// (bindings/go/testdata/structured_vectors.json, shared with the Go binding and
    /// tests/c/test_transcode.c).
    #[test]
    fn transcode_matches_python_vectors() {
        let vectors = shared_vectors();
        let (py, compact) = (JsonSerializer::new(), JsonSerializer::compact());
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let mp = unhex(v["msgpack"].as_str().unwrap());
            let json = v["json"].as_str();
            let json_compact = v["json_compact"].as_str();
            let mut sources: Vec<(&dyn Serializer, Vec<u8>)> =
                vec![(&MsgPackSerializer, mp.clone())];
            // A JSON-sourced vector also reads from its JSON texts (a Python-sourced one's
            // JSON lost what JSON cannot carry: integer keys become strings).
            if let Some(input) = v["input"].as_str() {
                sources.push((&py, input.as_bytes().to_vec()));
                sources.push((&py, json.unwrap().as_bytes().to_vec()));
                sources.push((&compact, json_compact.unwrap().as_bytes().to_vec()));
            }
            for (from, data) in &sources {
                let from_name = from.name();
                assert_eq!(
                    hex(&transcode(*from, &MsgPackSerializer, data).unwrap()),
                    hex(&mp),
                    "{name}: {from_name} -> msgpack"
                );
                if let (Some(j), Some(c)) = (json, json_compact) {
                    assert_eq!(
                        transcode(*from, &py, data).unwrap(),
                        j.as_bytes(),
                        "{name}: {from_name} -> json"
                    );
                    assert_eq!(
                        transcode(*from, &compact, data).unwrap(),
                        c.as_bytes(),
                        "{name}: {from_name} -> json compact"
                    );
                }
            }
        }
    }

    #[test]
    fn transcode_errors_say_which_side_failed() {
        let py = JsonSerializer::new();
        // Not JSON / not one MessagePack value: the input does not decode.
        for (from, bad) in [
            (&py as &dyn Serializer, &b"{nope"[..]),
            (&py, b"{} trailing"),
            (&MsgPackSerializer, &[0xc1]),
            (&MsgPackSerializer, &[0x01, 0x02]),
        ] {
            assert!(
                matches!(
                    transcode(from, &MsgPackSerializer, bad),
                    Err(Error::InvalidData(_))
                ),
                "{bad:02x?}"
            );
        }
        // {[1]: 2} and {b"k": 1} decode, but JSON cannot carry such keys.
        for key in [
            &[0x81, 0x91, 0x01, 0x02][..],
            &[0x81, 0xc4, 0x01, b'k', 0x01],
        ] {
            assert!(matches!(
                transcode(&MsgPackSerializer, &py, key),
                Err(Error::InvalidArgument(_))
            ));
        }
    }

    #[test]
    fn msgpack_to_msgpack_is_packb_form() {
        // packb(1.100000023841858) of a float 32 1.1, a non-minimal uint 16 1 and a
        // str 8 "a" in an array 16: the same values in packb's form.
        let input = [
            0xdc, 0x00, 0x03, 0xca, 0x3f, 0x8c, 0xcc, 0xcd, 0xcd, 0x00, 0x01, 0xd9, 0x01, b'a',
        ];
        assert_eq!(
            hex(&transcode(&MsgPackSerializer, &MsgPackSerializer, &input).unwrap()),
            "93cb3ff19999a000000001a161"
        );
    }
}
