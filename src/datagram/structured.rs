//! Structured objects over datagrams, wire-compatible with pywebtransport's
//! `StructuredDatagramTransport`.
//!
//! # Wire format
//!
//! Every datagram is `[u16 big-endian type id][serialized object]`. A [`TypeRegistry`]
//! maps type ids to Rust types; a [`Serializer`] turns objects into bytes and back.
//! [`JsonSerializer`] produces exactly what pywebtransport's JSON serializer produces
//! (Python `json.dumps(obj, separators=(",", ":"))`: compact, `ensure_ascii`, fields in
//! declaration order, Python's float spelling); [`MsgPackSerializer`] produces a
//! MessagePack map of field names to values (like `msgpack.packb` of a dict).
//!
//! # One owner per session
//!
//! A transport creates its own [`DatagramStream`] on the session, and a session's
//! datagrams have exactly one owner: creating a second transport (or a stream, or any
//! other datagram layer) on the same session fails with [`Error::InvalidState`]. That is
//! the answer to "a reliability-layer DATA frame `04 44 ...` would parse as structured
//! type id 0x0444": such a datagram can never reach this layer, because a session
//! carries either structured objects or another layer's frames, never both.
//!
//! # Receiving
//!
//! A task of the transport takes every datagram from the stream and decodes it at once.
//! Objects wait in a bounded queue (`queue_size`; when full, the arriving object is
//! dropped and counted in [`StructuredStats::queue_drops`]). A datagram shorter than
//! the 2-byte header, one with an unregistered type id, or one whose payload does not
//! decode as the registered type is counted ([`StructuredStats`]) and reported — queued
//! for [`StructuredDatagramTransport::next_error`] (bounded likewise, the oldest report
//! is dropped when full) and passed to the [`StructuredDatagramTransport::set_on_error`]
//! hook — and the transport goes on with the next datagram.
//!
//! # Values
//!
//! Serializers work on [`Value`], a self-describing value that, unlike
//! `serde_json::Value`, keeps map entries in order, so struct fields keep their
//! declaration order on the wire. Any serde format can implement [`Serializer`]:
//! `Value` is `Serialize` and `Deserialize`.
//!
//! Known differences from Python: non-finite floats are written as `null` (Python writes
//! `NaN`/`Infinity`), and integers beyond the 64-bit range are read as floats.

use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::Notify;

use super::stream::{DatagramStream, StreamConfig};
use crate::transport::{CloseReason, Error, Session};

/// Size of the type id header.
pub const HEADER_SIZE: usize = 2;

/// One datagram: `[u16 big-endian type id][payload]`.
pub fn encode_frame(type_id: u16, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(HEADER_SIZE + payload.len());
    data.extend_from_slice(&type_id.to_be_bytes());
    data.extend_from_slice(payload);
    data
}

/// Split a datagram into its type id and payload (without copying); `None` when it is
/// shorter than [`HEADER_SIZE`].
pub fn decode_frame(data: &Bytes) -> Option<(u16, Bytes)> {
    let id = data.get(..HEADER_SIZE)?;
    Some((
        u16::from_be_bytes([id[0], id[1]]),
        data.slice(HEADER_SIZE..),
    ))
}

// ------------------------------------------------------------------------------------
// Value

/// A self-describing value whose maps keep their entry order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// Entries in order (keys are usually strings).
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// The value of `v` as its `Serialize` impl describes it (structs become maps with
    /// fields in declaration order).
    pub fn from_serialize<T: Serialize + ?Sized>(v: &T) -> Result<Value, Error> {
        let json = serde_json::to_vec(v)
            .map_err(|e| Error::InvalidArgument(format!("serialization error: {e}")))?;
        serde_json::from_slice(&json)
            .map_err(|e| Error::InvalidArgument(format!("serialization error: {e}")))
    }

    /// Convert into a `T` (e.g. a struct from a map of its fields).
    pub fn to_typed<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let json = serde_json::to_vec(self)
            .map_err(|e| Error::InvalidData(format!("deserialization error: {e}")))?;
        serde_json::from_slice(&json)
            .map_err(|e| Error::InvalidData(format!("deserialization error: {e}")))
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::I64(i) => s.serialize_i64(*i),
            Value::U64(u) => s.serialize_u64(*u),
            Value::F64(f) => s.serialize_f64(*f),
            Value::String(t) => s.serialize_str(t),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any self-describing value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(if v >= 0 {
            Value::U64(v as u64)
        } else {
            Value::I64(v)
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some((k, v)) = map.next_entry()? {
            out.push((k, v));
        }
        Ok(Value::Map(out))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

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

/// JSON exactly as Python's `json.dumps(obj, separators=(",", ":"))` writes it (what
/// pywebtransport's JSON serializer sends): compact, non-ASCII and DEL escaped as
/// lowercase `\uXXXX` (surrogate pairs beyond the BMP), floats spelled like Python's
/// `repr` (`1.0`, `1e+16`, `1.5e-05`), entries in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

/// MessagePack, maps keyed by field names (like `msgpack.packb` of a dataclass dict).
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPackSerializer;

/// serde_json formatter with Python's `ensure_ascii` escaping and float spelling.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\x7f' {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{:04x}", u)?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f64) -> io::Result<()> {
        w.write_all(python_float_repr(v).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f32) -> io::Result<()> {
        // Python has only doubles; the shortest f32 text read as f64 is what it keeps.
        let v: f64 = v.to_string().parse().unwrap_or(f64::from(v));
        w.write_all(python_float_repr(v).as_bytes())
    }
}

/// Python's `repr(float)` of a finite `v`: shortest round-trip digits, positional for
/// decimal exponents -4..16, scientific otherwise with a signed, at least 2-digit
/// exponent.
fn python_float_repr(v: f64) -> String {
    let sci = format!("{:e}", v.abs()); // e.g. "1.5e-5", "1e16", "0e0"
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

impl JsonSerializer {
    /// Serialize any `T` directly (no intermediate value) in the Python-compatible form.
    pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
        v.serialize(&mut ser)
            .map_err(|e| Error::InvalidArgument(format!("serialization error: {e}")))?;
        Ok(out)
    }
}

impl Serializer for JsonSerializer {
    fn name(&self) -> &str {
        "json"
    }
    fn to_bytes(&self, value: &Value) -> Result<Vec<u8>, Error> {
        JsonSerializer::encode(value)
    }
    fn from_bytes(&self, data: &[u8]) -> Result<Value, Error> {
        serde_json::from_slice(data).map_err(|e| Error::InvalidData(format!("invalid JSON: {e}")))
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
        rmp_serde::to_vec_named(value)
            .map_err(|e| Error::InvalidArgument(format!("serialization error: {e}")))
    }
    fn from_bytes(&self, data: &[u8]) -> Result<Value, Error> {
        let mut cur = io::Cursor::new(data);
        let v = {
            let mut de = rmp_serde::Deserializer::new(&mut cur);
            Value::deserialize(&mut de)
                .map_err(|e| Error::InvalidData(format!("invalid MessagePack: {e}")))?
        };
        if cur.position() != data.len() as u64 {
            return Err(Error::InvalidData(format!(
                "invalid MessagePack: {} trailing bytes",
                data.len() as u64 - cur.position()
            )));
        }
        Ok(v)
    }
    fn normalize(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        self.from_bytes(data)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(data.to_vec())
    }
}

// ------------------------------------------------------------------------------------
// Registry

type DecodeFn = fn(&Value) -> Result<Box<dyn Any + Send>, Error>;

#[derive(Clone)]
struct Entry {
    /// None for an untyped registration (the object is the [`Value`] itself).
    rust_type: Option<(TypeId, &'static str)>,
    decode: DecodeFn,
}

fn decode_as<T: DeserializeOwned + Send + 'static>(
    v: &Value,
) -> Result<Box<dyn Any + Send>, Error> {
    Ok(Box::new(v.to_typed::<T>()?))
}

fn decode_untyped(v: &Value) -> Result<Box<dyn Any + Send>, Error> {
    Ok(Box::new(v.clone()))
}

/// Maps type ids to Rust types, one to one.
#[derive(Clone, Default)]
pub struct TypeRegistry {
    by_id: HashMap<u16, Entry>,
    by_type: HashMap<TypeId, u16>,
}

impl fmt::Debug for TypeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self
            .by_id
            .iter()
            .map(|(id, e)| (*id, e.rust_type.map_or("<untyped>", |t| t.1)))
            .collect();
        ids.sort();
        f.debug_struct("TypeRegistry").field("types", &ids).finish()
    }
}

impl TypeRegistry {
    pub fn new() -> TypeRegistry {
        TypeRegistry::default()
    }

    /// Register `T` under `id`. [`Error::InvalidArgument`] if the id or the type is
    /// already registered.
    pub fn register<T>(&mut self, id: u16) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let tid = TypeId::of::<T>();
        self.check_id(id)?;
        if let Some(other) = self.by_type.get(&tid) {
            return Err(Error::InvalidArgument(format!(
                "type {} is already registered with id {other}",
                std::any::type_name::<T>()
            )));
        }
        self.by_id.insert(
            id,
            Entry {
                rust_type: Some((tid, std::any::type_name::<T>())),
                decode: decode_as::<T>,
            },
        );
        self.by_type.insert(tid, id);
        Ok(())
    }

    /// Register `id` without a Rust type: its objects are sent and received as
    /// [`Value`]s (what the C ABI uses). [`Error::InvalidArgument`] if already taken.
    pub fn register_untyped(&mut self, id: u16) -> Result<(), Error> {
        self.check_id(id)?;
        self.by_id.insert(
            id,
            Entry {
                rust_type: None,
                decode: decode_untyped,
            },
        );
        Ok(())
    }

    fn check_id(&self, id: u16) -> Result<(), Error> {
        if self.by_id.contains_key(&id) {
            return Err(Error::InvalidArgument(format!(
                "type id {id} is already registered"
            )));
        }
        Ok(())
    }

    /// The id `T` is registered under.
    pub fn id_of<T: 'static>(&self) -> Option<u16> {
        self.by_type.get(&TypeId::of::<T>()).copied()
    }

    pub fn contains(&self, id: u16) -> bool {
        self.by_id.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

// ------------------------------------------------------------------------------------
// Transport

/// A received object.
pub struct ReceivedObject {
    pub type_id: u16,
    /// The decoded value.
    pub value: Value,
    /// The payload as received (without the type id header).
    pub payload: Bytes,
    /// The registered Rust type (a [`Value`] for an untyped registration).
    object: Box<dyn Any + Send>,
}

impl fmt::Debug for ReceivedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedObject")
            .field("type_id", &self.type_id)
            .field("value", &self.value)
            .finish()
    }
}

impl ReceivedObject {
    /// Whether the object is a `T`.
    pub fn is<T: 'static>(&self) -> bool {
        self.object.is::<T>()
    }

    /// The object as a `T`, if it is one.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        self.object.downcast_ref()
    }

    /// The object as a `T`, or the object back if it is not one.
    pub fn downcast<T: 'static>(self) -> Result<T, ReceivedObject> {
        match self.object.downcast::<T>() {
            Ok(b) => Ok(*b),
            Err(object) => Err(ReceivedObject { object, ..self }),
        }
    }
}

/// What was wrong with a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredErrorKind {
    /// The type id is not registered.
    UnknownType,
    /// Shorter than the 2-byte header.
    TooShort,
    /// The payload does not decode as the registered type.
    DecodeError,
}

/// A received datagram the transport could not turn into an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuredError {
    pub kind: StructuredErrorKind,
    /// The datagram's type id (None when it was too short to have one).
    pub type_id: Option<u16>,
    pub message: String,
    /// The whole datagram.
    pub data: Bytes,
}

/// Counters of a transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StructuredStats {
    /// Objects queued for sending.
    pub sent: u64,
    /// Datagrams that decoded into objects (including those `queue_drops` counts).
    pub received: u64,
    /// Datagrams with an unregistered type id.
    pub unknown_type: u64,
    /// Datagrams shorter than the header.
    pub too_short: u64,
    /// Payloads that did not decode as their registered type.
    pub decode_errors: u64,
    /// Decoded objects dropped because the object queue was full.
    pub queue_drops: u64,
}

/// Hook called for every receive error (on a runtime worker; do not block in it).
pub type ErrorHook = Arc<dyn Fn(&StructuredError) + Send + Sync>;

struct State {
    objects: VecDeque<ReceivedObject>,
    errors: VecDeque<StructuredError>,
    closed: bool,
}

struct Inner {
    stream: DatagramStream,
    serializer: Arc<dyn Serializer>,
    registry: RwLock<TypeRegistry>,
    queue_size: usize,
    state: Mutex<State>,
    stats: Mutex<StructuredStats>,
    on_error: Mutex<Option<ErrorHook>>,
    arrived: Notify,
    error_arrived: Notify,
}

impl Inner {
    fn is_closed(&self) -> bool {
        let closed = self.state.lock().closed;
        closed || self.stream.is_closed()
    }

    fn close(&self) {
        self.state.lock().closed = true;
        self.stream.close();
        self.arrived.notify_waiters();
        self.error_arrived.notify_waiters();
    }

    fn closed_error(&self) -> Error {
        match self.stream.session().close_reason() {
            Some(r) => Error::Closed(r),
            None => Error::Closed(CloseReason::Local {
                code: 0,
                reason: "structured datagram transport closed".into(),
            }),
        }
    }

    fn handle(&self, data: Bytes) {
        match self.decode(&data) {
            Ok(obj) => {
                let dropped = {
                    let mut st = self.state.lock();
                    if st.objects.len() >= self.queue_size {
                        true
                    } else {
                        st.objects.push_back(obj);
                        false
                    }
                };
                let mut s = self.stats.lock();
                s.received += 1;
                if dropped {
                    s.queue_drops += 1;
                }
                drop(s);
                if !dropped {
                    self.arrived.notify_one();
                }
            }
            Err(err) => {
                {
                    let mut s = self.stats.lock();
                    match err.kind {
                        StructuredErrorKind::UnknownType => s.unknown_type += 1,
                        StructuredErrorKind::TooShort => s.too_short += 1,
                        StructuredErrorKind::DecodeError => s.decode_errors += 1,
                    }
                }
                tracing::debug!(kind = ?err.kind, type_id = ?err.type_id, "structured datagram rejected: {}", err.message);
                {
                    let mut st = self.state.lock();
                    if st.errors.len() >= self.queue_size {
                        st.errors.pop_front();
                    }
                    st.errors.push_back(err.clone());
                }
                self.error_arrived.notify_one();
                let hook = self.on_error.lock().clone();
                if let Some(h) = hook {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h(&err)));
                }
            }
        }
    }

    fn decode(&self, data: &Bytes) -> Result<ReceivedObject, StructuredError> {
        let fail = |kind, type_id, message: String| StructuredError {
            kind,
            type_id,
            message,
            data: data.clone(),
        };
        let Some((type_id, payload)) = decode_frame(data) else {
            return Err(fail(
                StructuredErrorKind::TooShort,
                None,
                format!(
                    "datagram of {} bytes is shorter than the {HEADER_SIZE}-byte header",
                    data.len()
                ),
            ));
        };
        let entry = self.registry.read().by_id.get(&type_id).cloned();
        let Some(entry) = entry else {
            return Err(fail(
                StructuredErrorKind::UnknownType,
                Some(type_id),
                format!("unknown type id {type_id}"),
            ));
        };
        let decoded = self
            .serializer
            .from_bytes(&payload)
            .and_then(|value| (entry.decode)(&value).map(|object| (value, object)));
        match decoded {
            Ok((value, object)) => Ok(ReceivedObject {
                type_id,
                value,
                payload,
                object,
            }),
            Err(e) => Err(fail(
                StructuredErrorKind::DecodeError,
                Some(type_id),
                format!(
                    "type id {type_id}: {}",
                    match e {
                        Error::InvalidData(m) | Error::InvalidArgument(m) => m,
                        other => other.to_string(),
                    }
                ),
            )),
        }
    }

    async fn run_receiver(self: Arc<Self>) {
        loop {
            match self.stream.receive(None).await {
                Ok(d) => self.handle(d),
                Err(_) => {
                    self.state.lock().closed = true;
                    self.arrived.notify_waiters();
                    self.error_arrived.notify_waiters();
                    return;
                }
            }
        }
    }
}

/// Closes the transport when the last user handle goes away.
struct Guard(Arc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Structured objects over one session's datagrams. Cheap to clone.
#[derive(Clone)]
pub struct StructuredDatagramTransport {
    inner: Arc<Inner>,
    _guard: Arc<Guard>,
}

impl fmt::Debug for StructuredDatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StructuredDatagramTransport")
            .field("session", &self.inner.stream.session().id())
            .field("serializer", &self.inner.serializer.name())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl StructuredDatagramTransport {
    /// Take over `session`'s datagrams (through a [`DatagramStream`] with send and
    /// receive queues of `queue_size`; the object and error queues hold `queue_size`
    /// too, pywebtransport's default being 100). Fails with [`Error::InvalidState`] if
    /// the session's datagrams already have an owner, InvalidArgument for a 0 size.
    pub fn new(
        session: &Session,
        serializer: Arc<dyn Serializer>,
        registry: TypeRegistry,
        queue_size: usize,
    ) -> Result<StructuredDatagramTransport, Error> {
        if queue_size == 0 {
            return Err(Error::InvalidArgument(
                "queue_size must be at least 1".into(),
            ));
        }
        let stream = DatagramStream::new(
            session,
            StreamConfig {
                send_queue: queue_size,
                recv_queue: queue_size,
                ..StreamConfig::default()
            },
        )?;
        let inner = Arc::new(Inner {
            stream,
            serializer,
            registry: RwLock::new(registry),
            queue_size,
            state: Mutex::new(State {
                objects: VecDeque::new(),
                errors: VecDeque::new(),
                closed: false,
            }),
            stats: Mutex::new(StructuredStats::default()),
            on_error: Mutex::new(None),
            arrived: Notify::new(),
            error_arrived: Notify::new(),
        });
        session.runtime_handle().spawn(inner.clone().run_receiver());
        Ok(StructuredDatagramTransport {
            _guard: Arc::new(Guard(inner.clone())),
            inner,
        })
    }

    /// The session this transport belongs to.
    pub fn session(&self) -> &Session {
        self.inner.stream.session()
    }

    /// The serializer's name.
    pub fn serializer_name(&self) -> String {
        self.inner.serializer.name().to_string()
    }

    /// Register another type (see [`TypeRegistry::register`]).
    pub fn register<T>(&self, id: u16) -> Result<(), Error>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        self.inner.registry.write().register::<T>(id)
    }

    /// Register an untyped id (see [`TypeRegistry::register_untyped`]).
    pub fn register_untyped(&self, id: u16) -> Result<(), Error> {
        self.inner.registry.write().register_untyped(id)
    }

    /// Whether `id` is registered.
    pub fn is_registered(&self, id: u16) -> bool {
        self.inner.registry.read().contains(id)
    }

    /// Send `obj` at priority 0 without a time-to-live (see [`send_obj_with`]).
    ///
    /// [`send_obj_with`]: Self::send_obj_with
    pub fn send_obj<T: Serialize + 'static>(&self, obj: &T) -> Result<(), Error> {
        self.send_obj_with(obj, 0, None)
    }

    /// Serialize `obj` and queue `[type id][payload]` on the stream with `priority` and
    /// `ttl` (see [`DatagramStream::send`]). An unregistered type is
    /// [`Error::InvalidArgument`] ("serialization error: type not registered").
    pub fn send_obj_with<T: Serialize + 'static>(
        &self,
        obj: &T,
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        let id = self.inner.registry.read().id_of::<T>().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "serialization error: type not registered: {}",
                std::any::type_name::<T>()
            ))
        })?;
        let value = Value::from_serialize(obj)?;
        let payload = self.inner.serializer.to_bytes(&value)?;
        self.send_frame(id, &payload, priority, ttl)
    }

    /// Send a [`Value`] under a registered id (typed or untyped).
    pub fn send_value(&self, type_id: u16, value: &Value) -> Result<(), Error> {
        self.check_registered(type_id)?;
        let payload = self.inner.serializer.to_bytes(value)?;
        self.send_frame(type_id, &payload, 0, None)
    }

    /// Send an already-serialized payload under a registered id. It is checked with
    /// [`Serializer::normalize`] (JSON is re-emitted in the Python-compatible form);
    /// InvalidArgument if it does not decode or the id is not registered.
    pub fn send_payload(
        &self,
        type_id: u16,
        payload: &[u8],
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        self.check_registered(type_id)?;
        let payload = self.inner.serializer.normalize(payload)?;
        self.send_frame(type_id, &payload, priority, ttl)
    }

    fn check_registered(&self, type_id: u16) -> Result<(), Error> {
        if !self.is_registered(type_id) {
            return Err(Error::InvalidArgument(format!(
                "serialization error: type not registered: id {type_id}"
            )));
        }
        Ok(())
    }

    fn send_frame(
        &self,
        type_id: u16,
        payload: &[u8],
        priority: u8,
        ttl: Option<Duration>,
    ) -> Result<(), Error> {
        if self.inner.is_closed() {
            return Err(self.inner.closed_error());
        }
        let data = encode_frame(type_id, payload);
        self.inner.stream.send(&data, priority, ttl)?;
        self.inner.stats.lock().sent += 1;
        Ok(())
    }

    /// The next object if one is queued, without waiting.
    pub fn try_receive_obj(&self) -> Option<ReceivedObject> {
        self.inner.state.lock().objects.pop_front()
    }

    /// The next object, waiting up to `timeout` (None: no limit). [`Error::Timeout`]
    /// when none came; [`Error::Closed`] once closed and drained.
    pub async fn receive_obj(&self, timeout: Option<Duration>) -> Result<ReceivedObject, Error> {
        let i = &self.inner;
        super::wait_on(&i.arrived, timeout, || match self.try_receive_obj() {
            Some(o) => Some(Ok(o)),
            None if i.is_closed() => Some(Err(i.closed_error())),
            None => None,
        })
        .await
    }

    /// The next object as a `T`. If the next object is of another type it stays queued
    /// and [`Error::InvalidData`] is returned.
    pub async fn receive_as<T: 'static>(&self, timeout: Option<Duration>) -> Result<T, Error> {
        let o = self.receive_obj(timeout).await?;
        o.downcast::<T>().map_err(|o| {
            let id = o.type_id;
            self.unreceive(o);
            Error::InvalidData(format!(
                "next object has type id {id}, not {}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Put an object back at the front of the queue.
    pub(crate) fn unreceive(&self, o: ReceivedObject) {
        self.inner.state.lock().objects.push_front(o);
        self.inner.arrived.notify_one();
    }

    /// Objects waiting to be received.
    pub fn pending_objects(&self) -> usize {
        self.inner.state.lock().objects.len()
    }

    /// The next receive error if one is queued, without waiting.
    pub fn try_next_error(&self) -> Option<StructuredError> {
        self.inner.state.lock().errors.pop_front()
    }

    /// The next receive error report, waiting up to `timeout` (None: no limit).
    /// [`Error::Timeout`] when none came; [`Error::Closed`] once closed and drained.
    pub async fn next_error(&self, timeout: Option<Duration>) -> Result<StructuredError, Error> {
        let i = &self.inner;
        super::wait_on(&i.error_arrived, timeout, || match self.try_next_error() {
            Some(e) => Some(Ok(e)),
            None if i.is_closed() => Some(Err(i.closed_error())),
            None => None,
        })
        .await
    }

    /// Call `hook` for every receive error from now on (None removes it). It runs on a
    /// runtime worker; errors are queued for [`next_error`](Self::next_error) as well.
    pub fn set_on_error(&self, hook: Option<ErrorHook>) {
        *self.inner.on_error.lock() = hook;
    }

    pub fn stats(&self) -> StructuredStats {
        *self.inner.stats.lock()
    }

    /// The underlying datagram stream (for its statistics; sending raw datagrams
    /// through it bypasses the structured format).
    pub fn stream(&self) -> &DatagramStream {
        &self.inner.stream
    }

    /// Stop: queued objects stay receivable, waiting calls return Closed once drained,
    /// the stream is closed (the session stays open, its datagrams are dropped).
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether the transport, its stream or its session is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Named {
        name: String,
        x: i32,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Zebra {
        zeta: u8,
        alpha: Vec<f64>,
        mid: Option<bool>,
    }

    fn json<T: Serialize>(v: &T) -> String {
        let value = Value::from_serialize(v).unwrap();
        let via_value = JsonSerializer.to_bytes(&value).unwrap();
        let direct = JsonSerializer::encode(v).unwrap();
        assert_eq!(via_value, direct, "value path and direct path agree");
        String::from_utf8(direct).unwrap()
    }

    #[test]
    fn json_matches_python_ensure_ascii() {
        // json.dumps({"name": "é", "x": 1}, separators=(",", ":"))
        assert_eq!(
            json(&Named {
                name: "é".into(),
                x: 1
            }),
            r#"{"name":"\u00e9","x":1}"#
        );
        // Field order is declaration order, not alphabetical.
        assert_eq!(
            json(&Zebra {
                zeta: 3,
                alpha: vec![1.0, 0.5, -2.25],
                mid: None
            }),
            r#"{"zeta":3,"alpha":[1.0,0.5,-2.25],"mid":null}"#
        );
        // json.dumps("日本😀\x7f\n\t\"\\\x01", separators=(",", ":"))
        assert_eq!(
            json(&"日本😀\u{7f}\n\t\"\\\u{1}"),
            r#""\u65e5\u672c\ud83d\ude00\u007f\n\t\"\\\u0001""#
        );
        assert_eq!(
            json(&serde_json::json!([
                true,
                false,
                null,
                -7,
                18446744073709551615u64
            ])),
            "[true,false,null,-7,18446744073709551615]"
        );
    }

    #[test]
    fn floats_are_spelled_like_python_repr() {
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
            assert_eq!(json(&v), want);
        }
    }

    #[test]
    fn json_decode_keeps_order_and_normalizes() {
        let v = JsonSerializer
            .from_bytes(br#"{ "b" : 1, "a" : [ "\u00e9", 2.50 ] }"#)
            .unwrap();
        assert_eq!(
            JsonSerializer.to_bytes(&v).unwrap(),
            br#"{"b":1,"a":["\u00e9",2.5]}"#
        );
        assert_eq!(
            JsonSerializer
                .normalize("{\"k\": \"é\"}".as_bytes())
                .unwrap(),
            br#"{"k":"\u00e9"}"#
        );
        assert!(matches!(
            JsonSerializer.normalize(b"{nope"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(JsonSerializer.from_bytes(b"{} trailing").is_err());
    }

    #[test]
    fn msgpack_is_a_named_map() {
        let v = Value::from_serialize(&Named {
            name: "é".into(),
            x: 1,
        })
        .unwrap();
        let b = MsgPackSerializer.to_bytes(&v).unwrap();
        // msgpack.packb({"name": "é", "x": 1})
        assert_eq!(
            b,
            [0x82, 0xa4, b'n', b'a', b'm', b'e', 0xa2, 0xc3, 0xa9, 0xa1, b'x', 0x01]
        );
        let back = MsgPackSerializer.from_bytes(&b).unwrap();
        assert_eq!(back.to_typed::<Named>().unwrap().name, "é");
        assert!(MsgPackSerializer.from_bytes(&[0xc1]).is_err());
        assert!(
            MsgPackSerializer.from_bytes(&[0x01, 0x02]).is_err(),
            "trailing bytes"
        );
        assert!(
            MsgPackSerializer.from_bytes(&[0x92, 0x01]).is_err(),
            "truncated"
        );
        assert!(matches!(
            MsgPackSerializer.normalize(&[0xc1]),
            Err(Error::InvalidArgument(_))
        ));
    }

    /// The byte vectors shared with the Go binding (its serializers assert the same
    /// bytes in bindings/go/serialize_test.go).
    #[test]
    fn shared_vectors_match_the_go_binding() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("bindings/go/testdata/structured_vectors.json");
        let text = std::fs::read_to_string(&path).expect("read the shared vectors");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vectors = doc["vectors"].as_array().expect("vectors");
        assert!(vectors.len() >= 8);
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let input = v["input"].as_str().unwrap().as_bytes();
            let want_json = v["json"].as_str().unwrap().as_bytes();
            let value = JsonSerializer.from_bytes(input).unwrap();
            assert_eq!(
                JsonSerializer.to_bytes(&value).unwrap(),
                want_json,
                "{name}: json"
            );
            assert_eq!(
                JsonSerializer.normalize(input).unwrap(),
                want_json,
                "{name}"
            );
            let mp = MsgPackSerializer.to_bytes(&value).unwrap();
            let hex: String = mp.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, v["msgpack"].as_str().unwrap(), "{name}: msgpack");
            let back = MsgPackSerializer.from_bytes(&mp).unwrap();
            assert_eq!(
                JsonSerializer.to_bytes(&back).unwrap(),
                want_json,
                "{name}: back"
            );
        }
    }

    #[test]
    fn registry_rejects_duplicates() {
        let mut r = TypeRegistry::new();
        r.register::<Named>(1).unwrap();
        assert!(matches!(
            r.register::<Zebra>(1),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            r.register::<Named>(2),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            r.register_untyped(1),
            Err(Error::InvalidArgument(_))
        ));
        r.register_untyped(7).unwrap();
        r.register::<Zebra>(2).unwrap();
        assert_eq!(r.id_of::<Named>(), Some(1));
        assert_eq!(r.id_of::<Zebra>(), Some(2));
        assert_eq!(r.id_of::<String>(), None);
        assert!(r.contains(7));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn typed_decode_checks_the_shape() {
        let v = JsonSerializer
            .from_bytes(br#"{"name":"a","x":"no"}"#)
            .unwrap();
        assert!(matches!(v.to_typed::<Named>(), Err(Error::InvalidData(_))));
        let v = JsonSerializer.from_bytes(br#"{"name":"a","x":5}"#).unwrap();
        assert_eq!(
            v.to_typed::<Named>().unwrap(),
            Named {
                name: "a".into(),
                x: 5
            }
        );
    }
}
