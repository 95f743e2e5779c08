//! Pluggable serializers of the structured transport: the [`Serializer`] trait, and the
//! pywebtransport-exact [`JsonSerializer`] and [`MsgPackSerializer`].

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
