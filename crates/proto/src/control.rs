//! The peer's control stream (RFC 9114 §6.2.1, §7.2): SETTINGS first and exactly once,
//! GOAWAY and the push frames bounded to their one varint, unknown frames skipped
//! whatever their size, and frames that belong elsewhere refused from their header.

use crate::codes::*;
use crate::error::WireError;
use crate::frame::{self, Piece, Take, TlvReader};
use crate::settings::Settings;
use crate::streams::Role;

/// Largest SETTINGS frame held (the only control frame of any size we buffer; every
/// known setting fits in a few dozen bytes).
pub const MAX_SETTINGS_FRAME: u64 = 16 * 1024;

/// What the peer's control stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    Settings(Settings),
    /// GOAWAY with its stream or push id: no new requests after it.
    Goaway(u64),
}

/// Reads the peer's control stream (after its type byte). Holds at most one SETTINGS
/// frame plus what was pushed and not yet read.
#[derive(Debug)]
pub struct ControlStreamReader {
    reader: TlvReader,
    got_settings: bool,
    role: Role,
}

impl ControlStreamReader {
    /// For an endpoint of `role` reading its peer's control stream.
    pub fn new(role: Role) -> Self {
        ControlStreamReader {
            reader: TlvReader::new(),
            got_settings: false,
            role,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.reader.push(data);
    }

    /// The next event, `Ok(None)` when more bytes are needed. An error is a connection
    /// error with its code.
    // Fallible, so not an Iterator: `Ok(None)` means "need more bytes", not "done".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<ControlEvent>, WireError> {
        loop {
            let (got, role) = (self.got_settings, self.role);
            let Some(piece) = self.reader.next(|ty, len| take(ty, len, got, role))? else {
                return Ok(None);
            };
            let Piece::Unit(f) = piece else {
                continue; // an unknown frame, skipped
            };
            match f.ty {
                frame::SETTINGS => {
                    self.got_settings = true;
                    return Settings::decode(&f.payload).map(|s| Some(ControlEvent::Settings(s)));
                }
                frame::GOAWAY => {
                    return frame::decode_goaway(&f.payload)
                        .map(|id| Some(ControlEvent::Goaway(id)))
                }
                _ => {} // MAX_PUSH_ID, CANCEL_PUSH: we never push
            }
        }
    }

    /// The error for the control stream ending (`reset` or finished): always one.
    pub fn end(&self, reset: bool) -> WireError {
        crate::streams::critical_stream_ended("control", reset)
    }
}

fn take(ty: u64, len: u64, got_settings: bool, role: Role) -> Result<Take, WireError> {
    let unexpected = |msg: String| Err(WireError::new(H3_FRAME_UNEXPECTED, msg));
    match ty {
        frame::SETTINGS if got_settings => unexpected("second SETTINGS frame".into()),
        frame::SETTINGS if len > MAX_SETTINGS_FRAME => Err(WireError::new(
            H3_EXCESSIVE_LOAD,
            format!("SETTINGS frame of {len} bytes, limit {MAX_SETTINGS_FRAME}"),
        )),
        frame::SETTINGS => Ok(Take::Buffer),
        _ if !got_settings => Err(WireError::new(
            H3_MISSING_SETTINGS,
            "first control frame is not SETTINGS",
        )),
        frame::MAX_PUSH_ID if role == Role::Client => {
            unexpected("MAX_PUSH_ID from a server".into())
        }
        frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH if len > 8 => Err(WireError::new(
            H3_FRAME_ERROR,
            format!("frame {ty:#x} of {len} bytes holds more than one varint"),
        )),
        frame::GOAWAY | frame::MAX_PUSH_ID | frame::CANCEL_PUSH => Ok(Take::Buffer),
        frame::DATA | frame::HEADERS | frame::PUSH_PROMISE | frame::WEBTRANSPORT_STREAM => {
            unexpected(format!("frame {ty:#x} on the control stream"))
        }
        ty if frame::is_reserved_h2(ty) => unexpected(format!("HTTP/2 frame type {ty:#x}")),
        _ => Ok(Take::Skip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(role: Role, wire: &[u8], step: usize) -> Result<Vec<ControlEvent>, WireError> {
        let mut c = ControlStreamReader::new(role);
        let mut out = Vec::new();
        for part in wire.chunks(step.max(1)) {
            c.push(part);
            while let Some(e) = c.next()? {
                out.push(e);
            }
        }
        Ok(out)
    }

    fn settings() -> Vec<u8> {
        let mut w = Vec::new();
        Settings::webtransport(4).encode_frame(&mut w);
        w
    }

    #[test]
    fn settings_then_goaway_across_any_split() {
        let mut wire = settings();
        frame::encode(0x21, &vec![0u8; 70_000], &mut wire); // grease: skipped, any size
        frame::encode(frame::GOAWAY, &[0x08], &mut wire);
        for step in [1, 3, 1000, wire.len()] {
            let ev = events(Role::Client, &wire, step).unwrap();
            assert_eq!(ev.len(), 2);
            assert!(
                matches!(&ev[0], ControlEvent::Settings(s) if s.get(crate::settings::WT_MAX_SESSIONS) == Some(4))
            );
            assert_eq!(ev[1], ControlEvent::Goaway(8));
        }
    }

    #[test]
    fn order_and_placement_rules() {
        let code = |wire: Vec<u8>, role| events(role, &wire, wire.len()).unwrap_err().code;
        let mut goaway_first = Vec::new();
        frame::encode(frame::GOAWAY, &[0], &mut goaway_first);
        assert_eq!(code(goaway_first, Role::Server), H3_MISSING_SETTINGS);
        let mut twice = settings();
        twice.extend(settings());
        assert_eq!(code(twice, Role::Server), H3_FRAME_UNEXPECTED);
        for ty in [frame::DATA, frame::HEADERS, 0x02] {
            let mut w = settings();
            frame::encode(ty, b"x", &mut w);
            assert_eq!(code(w, Role::Server), H3_FRAME_UNEXPECTED, "type {ty:#x}");
        }
        let mut push_id = settings();
        frame::encode(frame::MAX_PUSH_ID, &[0], &mut push_id);
        assert_eq!(code(push_id.clone(), Role::Client), H3_FRAME_UNEXPECTED);
        assert!(events(Role::Server, &push_id, push_id.len()).is_ok());
        let mut long_goaway = settings();
        frame::encode(frame::GOAWAY, &[0; 9], &mut long_goaway);
        assert_eq!(code(long_goaway, Role::Server), H3_FRAME_ERROR);
        // Refused from the header of a huge SETTINGS frame, before its payload.
        let mut huge = Vec::new();
        crate::varint::encode(frame::SETTINGS, &mut huge);
        crate::varint::encode(1 << 20, &mut huge);
        assert_eq!(code(huge, Role::Server), H3_EXCESSIVE_LOAD);
        let c = ControlStreamReader::new(Role::Server);
        assert_eq!(c.end(false).code, H3_CLOSED_CRITICAL_STREAM);
    }
}
