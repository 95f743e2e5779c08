//! Structured objects over datagrams, wire-compatible with pywebtransport's
//! `StructuredDatagramTransport`.
//!
//! # Wire format
//!
//! Every datagram is `[u16 big-endian type id][serialized object]`. A [`TypeRegistry`]
//! maps type ids to Rust types; a [`Serializer`] turns objects into bytes and back.
//! [`JsonSerializer`] produces exactly what pywebtransport's `JSONSerializer` produces,
//! Python's `json.dumps(obj)` with its default separators `(", ", ": ")`
//! ([`JsonSerializer::new`]; [`JsonSerializer::compact`] writes `(",", ":")`), see
//! [`super::json`]; [`MsgPackSerializer`] produces exactly what its `MsgPackSerializer`
//! produces (msgpack-python's `packb(obj)`), see [`super::msgpack`]. An object is a
//! map of its field names to their values in declaration order (a dataclass's
//! `asdict`).
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
//! declaration order on the wire, and holds what MessagePack holds (bytes, NaN,
//! integer map keys). A Rust value becomes a [`Value`] through its `Serialize` impl
//! (structs as maps of field names, enums externally tagged, human-readable forms)
//! without going through JSON. Any serde format can implement [`Serializer`]:
//! `Value` is `Serialize` and `Deserialize`.
//!
//! Known difference from Python: integers beyond the 64-bit range are read as floats.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use super::stream::{DatagramStream, StreamConfig};
use super::wait::wait_on;
use crate::transport::{CloseReason, Error, Session};

pub use super::registry::TypeRegistry;
pub use super::serializer::{JsonSerializer, MsgPackSerializer, Serializer};
pub use super::value::Value;

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
        let decoder = self.registry.read().decoder(type_id);
        let Some(decode) = decoder else {
            return Err(fail(
                StructuredErrorKind::UnknownType,
                Some(type_id),
                format!("unknown type id {type_id}"),
            ));
        };
        let decoded = self
            .serializer
            .from_bytes(&payload)
            .and_then(|value| decode(&value).map(|object| (value, object)));
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
        wait_on(&i.arrived, timeout, || match self.try_receive_obj() {
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

    /// Put a received object back at the front of the queue, to be received again
    /// first (e.g. a caller's buffer was too small for it).
    pub fn unreceive(&self, o: ReceivedObject) {
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
        wait_on(&i.error_arrived, timeout, || match self.try_next_error() {
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
    use crate::datagram::json::Separators;
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
        String::from_utf8(JsonSerializer::compact().encode(v).unwrap()).unwrap()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn json_default_is_pywebtransport_json_serializer() {
        // pywebtransport: JSONSerializer().serialize(obj=Named("é", 1.0)) is
        // json.dumps(asdict(obj)): Python's default separators.
        #[derive(Serialize)]
        struct Point {
            name: String,
            x: f64,
            tags: Vec<u8>,
        }
        let p = Point {
            name: "é".into(),
            x: 1.0,
            tags: vec![1, 2],
        };
        assert_eq!(
            JsonSerializer::default().encode(&p).unwrap(),
            br#"{"name": "\u00e9", "x": 1.0, "tags": [1, 2]}"#
        );
        assert_eq!(JsonSerializer::new(), JsonSerializer::default());
        assert_eq!(JsonSerializer::new().separators(), Separators::Python);
        // JSONSerializer(dump_kwargs={"separators": (",", ":")})
        assert_eq!(
            JsonSerializer::compact().encode(&p).unwrap(),
            br#"{"name":"\u00e9","x":1.0,"tags":[1,2]}"#
        );
        // normalize re-emits in the serializer's own form.
        assert_eq!(
            JsonSerializer::new()
                .normalize(br#"{"a":[1,2],"b":{}}"#)
                .unwrap(),
            br#"{"a": [1, 2], "b": {}}"#
        );
        assert_eq!(
            JsonSerializer::compact()
                .normalize(br#"{"a": [1, 2], "b": {}}"#)
                .unwrap(),
            br#"{"a":[1,2],"b":{}}"#
        );
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
                alpha: vec![1.0, 0.5, -2.25, 0.00001, f64::NAN],
                mid: None
            }),
            r#"{"zeta":3,"alpha":[1.0,0.5,-2.25,1e-05,NaN],"mid":null}"#
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
        // serde_json::Value members keep their order (serde_json's preserve_order).
        assert_eq!(
            json(&serde_json::json!({"zeta": 1, "alpha": 2})),
            r#"{"zeta":1,"alpha":2}"#
        );
        // An f32 is the double nearest its shortest text, as a Rust reader means it.
        assert_eq!(json(&[0.1f32, 1.5f32]), "[0.1,1.5]");
    }

    #[test]
    fn json_decode_keeps_order_and_normalizes() {
        let v = JsonSerializer::compact()
            .from_bytes(br#"{ "b" : 1, "a" : [ "\u00e9", 2.50, NaN ] }"#)
            .unwrap();
        assert_eq!(
            JsonSerializer::compact().to_bytes(&v).unwrap(),
            br#"{"b":1,"a":["\u00e9",2.5,NaN]}"#
        );
        assert_eq!(
            JsonSerializer::new()
                .normalize("{\"k\": \"é\"}".as_bytes())
                .unwrap(),
            br#"{"k": "\u00e9"}"#
        );
        assert!(matches!(
            JsonSerializer::new().normalize(b"{nope"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(JsonSerializer::new().from_bytes(b"{} trailing").is_err());
    }

    #[test]
    fn msgpack_is_msgpack_python_packb() {
        let v = Value::from_serialize(&Named {
            name: "é".into(),
            x: 1,
        })
        .unwrap();
        let b = MsgPackSerializer.to_bytes(&v).unwrap();
        // msgpack.packb({"name": "é", "x": 1})
        assert_eq!(hex(&b), "82a46e616d65a2c3a9a17801");
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

        // A Rust value goes to MessagePack directly, not through JSON: bytes stay bin,
        // NaN stays a float, integer keys stay integers, entries keep their order.
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Blob {
            #[serde(with = "serde_bytes_compat")]
            data: Vec<u8>,
            ratio: f64,
            names: Vec<(u32, String)>,
        }
        mod serde_bytes_compat {
            pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(v)
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                d: D,
            ) -> Result<Vec<u8>, D::Error> {
                serde::Deserialize::deserialize(d)
            }
        }
        let blob = Blob {
            data: vec![0, 0xff],
            ratio: f64::NAN,
            names: vec![(2, "b".into())],
        };
        let b = MsgPackSerializer.encode(&blob).unwrap();
        // msgpack.packb({"data": b"\x00\xff", "ratio": float("nan"), "names": [[2, "b"]]})
        assert_eq!(
            hex(&b),
            "83a464617461c40200ffa5726174696fcb7ff8000000000000a56e616d6573919202a162"
        );
        let back: Blob = MsgPackSerializer
            .from_bytes(&b)
            .unwrap()
            .to_typed()
            .unwrap();
        assert_eq!(back.data, blob.data);
        assert!(back.ratio.is_nan());
        // packb({3: "c", 1: "a"}): integer keys, in order.
        let keyed: Vec<(u8, &str)> = vec![(3, "c"), (1, "a")];
        let map_value = Value::Map(
            keyed
                .iter()
                .map(|(k, v)| (Value::U64(u64::from(*k)), Value::String((*v).into())))
                .collect(),
        );
        assert_eq!(
            hex(&MsgPackSerializer.to_bytes(&map_value).unwrap()),
            "8203a16301a161"
        );
        let typed: std::collections::BTreeMap<u8, String> = map_value.to_typed().unwrap();
        assert_eq!(typed[&3], "c");
    }

    #[test]
    fn to_typed_follows_serde_and_json_conventions() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        enum Shape {
            Dot,
            Circle(f64),
            Rect { w: u16, h: u16 },
            Pair(i8, i8),
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Scene {
            shapes: Vec<Shape>,
            by_id: std::collections::BTreeMap<u32, String>,
            raw: Vec<u8>,
            opt: Option<u8>,
            unit: (),
        }
        let scene = Scene {
            shapes: vec![
                Shape::Dot,
                Shape::Circle(0.5),
                Shape::Rect { w: 2, h: 3 },
                Shape::Pair(-1, 2),
            ],
            by_id: [(7, "seven".to_string())].into_iter().collect(),
            raw: vec![1, 2],
            opt: None,
            unit: (),
        };
        for ser in [
            &JsonSerializer::new() as &dyn Serializer,
            &JsonSerializer::compact(),
            &MsgPackSerializer,
        ] {
            let bytes = ser
                .to_bytes(&Value::from_serialize(&scene).unwrap())
                .unwrap();
            let back: Scene = ser.from_bytes(&bytes).unwrap().to_typed().unwrap();
            assert_eq!(back, scene, "{}", ser.name());
        }
        assert_eq!(
            JsonSerializer::compact().encode(&scene).unwrap(),
            br#"{"shapes":["Dot",{"Circle":0.5},{"Rect":{"w":2,"h":3}},{"Pair":[-1,2]}],"by_id":{"7":"seven"},"raw":[1,2],"opt":null,"unit":null}"#
        );
        // Bytes (what a Python peer sends for a bytes field) read into a Vec<u8>.
        let v = Value::Map(vec![
            (Value::String("shapes".into()), Value::Array(vec![])),
            (Value::String("by_id".into()), Value::Map(vec![])),
            (Value::String("raw".into()), Value::Bytes(vec![9])),
            (Value::String("opt".into()), Value::U64(4)),
            (Value::String("unit".into()), Value::Null),
        ]);
        let s: Scene = v.to_typed().unwrap();
        assert_eq!((s.raw, s.opt), (vec![9], Some(4)));
        // Wrong shapes are InvalidData.
        assert!(matches!(
            Value::Array(vec![Value::U64(1), Value::U64(2), Value::U64(3)]).to_typed::<(u8, u8)>(),
            Err(Error::InvalidData(_))
        ));
        assert!(matches!(
            Value::U64(300).to_typed::<u8>(),
            Err(Error::InvalidData(_))
        ));
    }

    /// The byte vectors written by real Python (json, msgpack-python 1.1.2; see
    /// bindings/go/testdata/gen_structured_vectors.py), shared with the Go binding.
    #[test]
    fn shared_vectors_match_python() {
        let vectors = crate::datagram::serializer::tests::shared_vectors();
        let (py, compact) = (JsonSerializer::new(), JsonSerializer::compact());
        for v in vectors {
            let name = v["name"].as_str().unwrap();
            let want_mp = v["msgpack"].as_str().unwrap();
            let value = match v["input"].as_str() {
                Some(input) => {
                    let value = py.from_bytes(input.as_bytes()).unwrap();
                    assert_eq!(
                        py.normalize(input.as_bytes()).unwrap(),
                        v["json"].as_str().unwrap().as_bytes(),
                        "{name}: normalize"
                    );
                    value
                }
                // MessagePack-sourced: reading and writing it again gives the same bytes.
                None => {
                    let mp: Vec<u8> = (0..want_mp.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&want_mp[i..i + 2], 16).unwrap())
                        .collect();
                    MsgPackSerializer.from_bytes(&mp).unwrap()
                }
            };
            assert_eq!(
                hex(&MsgPackSerializer.to_bytes(&value).unwrap()),
                want_mp,
                "{name}: msgpack"
            );
            if let Some(want) = v["json"].as_str() {
                assert_eq!(
                    String::from_utf8(py.to_bytes(&value).unwrap()).unwrap(),
                    want,
                    "{name}: json"
                );
                let want_compact = v["json_compact"].as_str().unwrap();
                assert_eq!(
                    String::from_utf8(compact.to_bytes(&value).unwrap()).unwrap(),
                    want_compact,
                    "{name}: json_compact"
                );
                // The datagram stream's send_json writes the compact form.
                assert_eq!(
                    super::super::message::encode_json(&value).unwrap(),
                    want_compact.as_bytes(),
                    "{name}: send_json"
                );
            }
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
        let v = JsonSerializer::new()
            .from_bytes(br#"{"name":"a","x":"no"}"#)
            .unwrap();
        assert!(matches!(v.to_typed::<Named>(), Err(Error::InvalidData(_))));
        let v = JsonSerializer::new()
            .from_bytes(br#"{"name":"a","x":5}"#)
            .unwrap();
        assert_eq!(
            v.to_typed::<Named>().unwrap(),
            Named {
                name: "a".into(),
                x: 5
            }
        );
    }
}
