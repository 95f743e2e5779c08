//! The structured transport (src/datagram/structured.rs): `[u16 type id][payload]`
//! frames split and re-encode exactly; the JSON and MessagePack serializers read back
//! what they wrote from anything they accepted (JSON written in the Python-compatible
//! form, whose normalization is then idempotent; MessagePack kept byte for byte).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use wtdatagram::datagram::structured::{
    decode_frame, encode_frame, JsonSerializer, MsgPackSerializer, Serializer, Value, HEADER_SIZE,
};

/// Equality where NaN equals NaN (MessagePack can carry one) and floats compare by bits.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
        }
        _ => a == b,
    }
}

fn check(ser: &dyn Serializer, data: &[u8]) {
    let Ok(v) = ser.from_bytes(data) else {
        assert!(
            ser.normalize(data).is_err(),
            "{}: normalize accepts what from_bytes refuses",
            ser.name()
        );
        return;
    };
    let enc = ser.to_bytes(&v).expect("a decoded value encodes");
    let back = ser.from_bytes(&enc).expect("what we wrote decodes");
    assert!(
        same(&v, &back),
        "{}: {v:?} -> {enc:02x?} -> {back:?}",
        ser.name()
    );
    let norm = ser.normalize(data).expect("accepted by from_bytes");
    assert_eq!(
        ser.normalize(&norm).as_deref(),
        Ok(&norm[..]),
        "{}: normalize is not idempotent",
        ser.name()
    );
}

fuzz_target!(|data: &[u8]| {
    let b = Bytes::copy_from_slice(data);
    match decode_frame(&b) {
        Some((id, payload)) => {
            assert_eq!(encode_frame(id, &payload), data);
            assert_eq!(payload.len() + HEADER_SIZE, data.len());
        }
        None => assert!(data.len() < HEADER_SIZE),
    }
    check(&JsonSerializer::new(), data);
    check(&JsonSerializer::compact(), data);
    check(&MsgPackSerializer, data);
});
