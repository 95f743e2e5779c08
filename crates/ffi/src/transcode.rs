//! One serialized value from one structured format to another (`wtd_serializer_transcode`):
//! a stateless call over the library's serializers, for bindings and C programs that
//! want pywebtransport-exact bytes without an encoder of their own.

use super::error::*;
use super::structured::{c, wtd_serializer};
use wtd_result::*;
use wtdatagram::datagram::serializer::{transcode, JsonSerializer, MsgPackSerializer, Serializer};

/// The library's serializer for a format (the same ones `wtd_structured_new` uses).
fn serializer(s: wtd_serializer) -> &'static dyn Serializer {
    static JSON: JsonSerializer = JsonSerializer::new();
    static JSON_COMPACT: JsonSerializer = JsonSerializer::compact();
    static MSGPACK: MsgPackSerializer = MsgPackSerializer;
    match s {
        wtd_serializer::WTD_SERIALIZER_JSON => &JSON,
        wtd_serializer::WTD_SERIALIZER_MSGPACK => &MSGPACK,
        wtd_serializer::WTD_SERIALIZER_JSON_COMPACT => &JSON_COMPACT,
    }
}

/// Convert one serialized value: `data`/`len` is read as format `from` reads it (one
/// whole value: JSON as Python's json.loads reads it, NaN and Infinity allowed;
/// MessagePack as msgpack-python's unpackb reads it, no extension types) and written into
/// `out` as format `to` writes it, byte-identical to what a wtd_structured transport of
/// that format sends (WTD_SERIALIZER_JSON: Python's `json.dumps(obj)`,
/// WTD_SERIALIZER_JSON_COMPACT: with separators `(",", ":")`, WTD_SERIALIZER_MSGPACK:
/// msgpack-python's `packb(obj)`). E.g. MessagePack `82 a1 61 cb 3ff0000000000000 a1 62
/// c4 01 ff` (`{"a": 1.0, "b": b"\xff"}`) becomes the JSON `{"a": 1.0, "b": [255]}`
/// (bytes as an array of their values; Python cannot write bytes as JSON). `from` equal
/// to `to` re-emits the value in that format's form (MessagePack: a float 32 becomes the
/// float 64 of the same value, integers and lengths their most compact form).
///
/// On success `*out_len` gets the size written. If the result does not fit in `cap`
/// bytes, nothing is written to `out`, `*out_len` gets the size needed and
/// WTD_ERR_BUFFER_TOO_SMALL is returned (`out` may be NULL when `cap` is 0: a size
/// query). WTD_ERR_INVALID_DATA if `data` does not decode in `from`;
/// WTD_ERR_INVALID_ARGUMENT if the value cannot be written in `to` (a JSON map key that
/// is bytes, an array or a map; arrays and maps nested deeper than 128), for a `from` or
/// `to` that is no wtd_serializer, or NULL `data` (with `len` > 0), `out` (with `cap` >
/// 0) or `out_len`. Stateless and thread-safe; needs no runtime.
#[no_mangle]
pub unsafe extern "C" fn wtd_serializer_transcode(
    from: c::wtd_serializer,
    to: c::wtd_serializer,
    data: *const u8,
    len: usize,
    out: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> wtd_result {
    guard(|| {
        let from = serializer(from.get("from")?);
        let to = serializer(to.get("to")?);
        // SAFETY: `data` is NULL or readable for `len` bytes (the header's contract).
        let input = unsafe { bytes(data, len, "data") }?;
        // SAFETY: `out_len` is NULL or writable (the header's contract).
        let olen = unsafe { super::error::out(out_len, "out_len") }?;
        // SAFETY: `out` is NULL or writable for `cap` bytes (the header's contract).
        let buf = unsafe { out_buf(out, cap, "out") }?;
        let result = transcode(from, to, input)?;
        *olen = result.len();
        if result.len() > cap {
            return Err(FfiError::new(
                WTD_ERR_BUFFER_TOO_SMALL,
                format!("{} bytes do not fit in {cap}", result.len()),
            ));
        }
        put(buf, 0, &result);
        Ok(())
    })
}
