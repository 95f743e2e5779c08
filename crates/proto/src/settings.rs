//! HTTP/3 SETTINGS (RFC 9114 §7.2.4) and the WebTransport dialect they announce.

use crate::codes::*;
use crate::error::WireError;
use crate::reader::Reader;
use crate::{frame, varint};

pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
pub const MAX_FIELD_SECTION_SIZE: u64 = 0x06;
pub const QPACK_BLOCKED_STREAMS: u64 = 0x07;
pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x08;
/// RFC 9297 HTTP Datagrams.
pub const H3_DATAGRAM: u64 = 0x33;
/// draft-ietf-masque-h3-datagram-04, still sent by Chromium.
pub const H3_DATAGRAM_DRAFT04: u64 = 0xff_d277;
/// ENABLE_WEBTRANSPORT, draft-02 (Chromium, aioquic, h3-webtransport).
pub const ENABLE_WEBTRANSPORT: u64 = 0x2b60_3742;
/// WEBTRANSPORT_MAX_SESSIONS, draft-07 .. draft-12 (wtransport, web-transport-quinn).
pub const WT_MAX_SESSIONS_DRAFT07: u64 = 0xc671_706a;
/// WT_MAX_SESSIONS, draft-13 and later.
pub const WT_MAX_SESSIONS: u64 = 0x14e9_cd29;
/// WT_ENABLED, draft-15 (pywebtransport).
pub const WT_ENABLED: u64 = 0x2c7c_f000;
/// draft-15 session flow control (draft-ietf-webtrans-http3-15 §5): the initial limits
/// for each session on the connection. Sending any of them with a value other than 0
/// declares the intent to use flow control; flow control is enabled when both sides do,
/// and only then may a connection carry more than one session (§5.1).
pub const WT_INITIAL_MAX_DATA: u64 = 0x2b61;
pub const WT_INITIAL_MAX_STREAMS_UNI: u64 = 0x2b64;
pub const WT_INITIAL_MAX_STREAMS_BIDI: u64 = 0x2b65;

/// What we announce as SETTINGS_WT_INITIAL_MAX_DATA: the smallest value that declares
/// flow control (§5.1 counts only values other than 0). It is stream data credit no
/// stream can use: we announce stream limits of 0 and never raise them (no
/// WT_MAX_STREAMS capsule), because this library carries datagrams only.
pub const OUR_WT_INITIAL_MAX_DATA: u64 = 1;

/// Whether [`Settings::decode`] keeps setting `id` (it drops unknown ones).
pub fn is_known(id: u64) -> bool {
    KNOWN.contains(&id)
}

/// The settings [`Settings::decode`] keeps.
const KNOWN: &[u64] = &[
    QPACK_MAX_TABLE_CAPACITY,
    MAX_FIELD_SECTION_SIZE,
    QPACK_BLOCKED_STREAMS,
    ENABLE_CONNECT_PROTOCOL,
    H3_DATAGRAM,
    H3_DATAGRAM_DRAFT04,
    ENABLE_WEBTRANSPORT,
    WT_MAX_SESSIONS_DRAFT07,
    WT_MAX_SESSIONS,
    WT_ENABLED,
    WT_INITIAL_MAX_DATA,
    WT_INITIAL_MAX_STREAMS_UNI,
    WT_INITIAL_MAX_STREAMS_BIDI,
];

/// Which WebTransport over HTTP/3 dialect a peer speaks, judged from its SETTINGS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// draft-02: ENABLE_WEBTRANSPORT; CONNECT with `:protocol webtransport` and the
    /// `sec-webtransport-http3-draft02: 1` header (Chromium).
    Draft02,
    /// draft-07 .. draft-14: WEBTRANSPORT_MAX_SESSIONS; `:protocol webtransport`.
    Draft07,
    /// draft-15: WT_ENABLED; `:protocol webtransport-h3`.
    Draft15,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Draft02 => "draft-02",
            Dialect::Draft07 => "draft-07",
            Dialect::Draft15 => "draft-15",
        }
    }
}

/// A decoded SETTINGS frame, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub pairs: Vec<(u64, u64)>,
}

impl Settings {
    pub fn get(&self, id: u64) -> Option<u64> {
        self.pairs.iter().find(|(k, _)| *k == id).map(|(_, v)| *v)
    }

    fn nonzero(&self, id: u64) -> bool {
        self.get(id).is_some_and(|v| v != 0)
    }

    /// Whether the peer announced HTTP Datagrams (RFC 9297 or draft-04).
    pub fn datagrams(&self) -> bool {
        self.nonzero(H3_DATAGRAM) || self.nonzero(H3_DATAGRAM_DRAFT04)
    }

    /// Whether these SETTINGS declare the intent to use draft-15 flow control: any of
    /// SETTINGS_WT_INITIAL_MAX_DATA / _STREAMS_UNI / _STREAMS_BIDI other than 0 (§5.1).
    /// Flow control is enabled when both endpoints' SETTINGS do; [`Settings::webtransport`]
    /// always does.
    pub fn flow_control(&self) -> bool {
        self.nonzero(WT_INITIAL_MAX_DATA)
            || self.nonzero(WT_INITIAL_MAX_STREAMS_UNI)
            || self.nonzero(WT_INITIAL_MAX_STREAMS_BIDI)
    }

    /// The newest WebTransport dialect the peer announced, if any.
    pub fn dialect(&self) -> Option<Dialect> {
        if self.nonzero(WT_ENABLED) {
            Some(Dialect::Draft15)
        } else if self.nonzero(WT_MAX_SESSIONS_DRAFT07) || self.nonzero(WT_MAX_SESSIONS) {
            Some(Dialect::Draft07)
        } else if self.nonzero(ENABLE_WEBTRANSPORT) {
            Some(Dialect::Draft02)
        } else {
            None
        }
    }

    /// The SETTINGS every known peer accepts (DESIGN.md §2): all WebTransport signals of
    /// every dialect, both datagram settings, extended CONNECT, and a QPACK dynamic table
    /// of zero (we only use the static table).
    ///
    /// They also declare draft-15 flow control, which draft-15 peers (pywebtransport 0.21,
    /// webtransport-go 0.13) require before they put a second session on a connection,
    /// and which an endpoint that lets sessions share a connection MUST enable (§5.1).
    /// The limits say what a datagram-only endpoint accepts: no unidirectional and no
    /// bidirectional stream in any session (0, which is also the default), and a session
    /// data limit of [`OUR_WT_INITIAL_MAX_DATA`] byte, the smallest value that counts as
    /// declaring flow control, unusable without a stream. The session limit
    /// (`max_sessions`) is unchanged.
    pub fn webtransport(max_sessions: u64) -> Settings {
        Settings {
            pairs: vec![
                (QPACK_MAX_TABLE_CAPACITY, 0),
                (QPACK_BLOCKED_STREAMS, 0),
                (ENABLE_CONNECT_PROTOCOL, 1),
                (H3_DATAGRAM, 1),
                (H3_DATAGRAM_DRAFT04, 1),
                (ENABLE_WEBTRANSPORT, 1),
                (WT_MAX_SESSIONS_DRAFT07, max_sessions),
                (WT_MAX_SESSIONS, max_sessions),
                (WT_ENABLED, 1),
                (WT_INITIAL_MAX_DATA, OUR_WT_INITIAL_MAX_DATA),
                (WT_INITIAL_MAX_STREAMS_UNI, 0),
                (WT_INITIAL_MAX_STREAMS_BIDI, 0),
            ],
        }
    }

    /// Add (or replace) one setting.
    pub fn with(mut self, id: u64, value: u64) -> Settings {
        self.pairs.retain(|(k, _)| *k != id);
        self.pairs.push((id, value));
        self
    }

    /// Decode a SETTINGS frame payload. Only the settings this crate knows are kept (in
    /// wire order): unknown ones (grease, extensions) must be ignored (RFC 9114
    /// §7.2.4.1), and keeping them would let a peer make every connection hold its whole
    /// SETTINGS frame. Duplicates are found in linear time whatever the frame's size.
    pub fn decode(payload: &[u8]) -> Result<Settings, WireError> {
        let mut r = Reader::new(payload, H3_FRAME_ERROR);
        let mut pairs: Vec<(u64, u64)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while !r.is_empty() {
            let id = r.varint()?;
            let value = r.varint()?;
            if matches!(id, 0x02..=0x05) {
                return Err(WireError::new(
                    H3_SETTINGS_ERROR,
                    format!("reserved HTTP/2 setting {id:#x}"),
                ));
            }
            if !seen.insert(id) {
                return Err(WireError::new(
                    H3_SETTINGS_ERROR,
                    format!("duplicate setting {id:#x}"),
                ));
            }
            if KNOWN.contains(&id) {
                pairs.push((id, value));
            }
        }
        Ok(Settings { pairs })
    }

    /// Append this as a complete SETTINGS frame.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(self.pairs.len() * 6);
        for (k, v) in &self.pairs {
            varint::encode(*k, &mut payload);
            varint::encode(*v, &mut payload);
        }
        frame::encode(frame::SETTINGS, &payload, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(pairs: &[(u64, u64)]) -> Vec<u8> {
        let mut p = Vec::new();
        for (k, v) in pairs {
            varint::encode(*k, &mut p);
            varint::encode(*v, &mut p);
        }
        p
    }

    #[test]
    fn roundtrip_and_dialects() {
        let s = Settings::webtransport(16);
        let mut wire = Vec::new();
        s.encode_frame(&mut wire);
        let mut d = frame::TlvDecoder::new(4096, H3_EXCESSIVE_LOAD);
        d.push(&wire);
        let f = d.next().unwrap().unwrap();
        assert_eq!(f.ty, frame::SETTINGS);
        let back = Settings::decode(&f.payload).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.dialect(), Some(Dialect::Draft15));
        assert!(back.datagrams());

        // What the peers of DESIGN.md §2 send.
        let chromium =
            Settings::decode(&payload(&[(0x33, 1), (0xffd277, 1), (0x2b603742, 1)])).unwrap();
        assert_eq!(chromium.dialect(), Some(Dialect::Draft02));
        let wtransport = Settings::decode(&payload(&[
            (8, 1),
            (0x33, 1),
            (0x2b603742, 1),
            (0xc671706a, 1),
        ]))
        .unwrap();
        assert_eq!(wtransport.dialect(), Some(Dialect::Draft07));
        let pywt = Settings::decode(&payload(&[
            (8, 1),
            (0x33, 1),
            (0x2c7cf000, 1),
            (0x2b61, 100),
        ]))
        .unwrap();
        assert_eq!(pywt.dialect(), Some(Dialect::Draft15));
        let plain = Settings::decode(&payload(&[(1, 0)])).unwrap();
        assert_eq!(plain.dialect(), None);
        assert!(!plain.datagrams());
    }

    #[test]
    fn flow_control_intent() {
        // Ours: flow control declared, no stream of either kind accepted, the session
        // limit untouched.
        let ours = Settings::webtransport(16);
        assert!(ours.flow_control());
        assert_eq!(ours.get(WT_INITIAL_MAX_DATA), Some(1));
        assert_eq!(ours.get(WT_INITIAL_MAX_STREAMS_UNI), Some(0));
        assert_eq!(ours.get(WT_INITIAL_MAX_STREAMS_BIDI), Some(0));
        assert_eq!(ours.get(WT_MAX_SESSIONS), Some(16));
        assert_eq!(ours.get(WT_MAX_SESSIONS_DRAFT07), Some(16));
        // The three pairs on the wire: 0x2b61 (2-byte varint 0x6b61) = 1, 0x2b64 = 0,
        // 0x2b65 = 0, at the end of the frame.
        let mut wire = Vec::new();
        ours.encode_frame(&mut wire);
        assert!(
            wire.ends_with(&[0x6b, 0x61, 0x01, 0x6b, 0x64, 0x00, 0x6b, 0x65, 0x00]),
            "{wire:02x?}"
        );

        // pywebtransport 0.21's defaults: 4 MiB of data, 10 streams of each kind.
        let pywt = Settings::decode(&payload(&[
            (0x2c7cf000, 1),
            (0x2b61, 4_194_304),
            (0x2b64, 10),
            (0x2b65, 10),
        ]))
        .unwrap();
        assert!(pywt.flow_control());
        // Any one of the three other than 0 is enough (§5.1).
        for id in [0x2b61, 0x2b64, 0x2b65] {
            assert!(Settings::decode(&payload(&[(id, 1)]))
                .unwrap()
                .flow_control());
        }
        // Absent, or all 0 (webtransport-go sends 0 for a negative limit): no intent.
        assert!(!Settings::decode(&payload(&[(0x2c7cf000, 1)]))
            .unwrap()
            .flow_control());
        assert!(
            !Settings::decode(&payload(&[(0x2b61, 0), (0x2b64, 0), (0x2b65, 0)]))
                .unwrap()
                .flow_control()
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(
            Settings::decode(&payload(&[(0x33, 1), (0x33, 1)]))
                .unwrap_err()
                .code,
            H3_SETTINGS_ERROR
        );
        assert_eq!(
            Settings::decode(&payload(&[(0x2, 1)])).unwrap_err().code,
            H3_SETTINGS_ERROR
        );
        // Identifier without a value, and a truncated varint.
        assert_eq!(Settings::decode(&[0x33]).unwrap_err().code, H3_FRAME_ERROR);
        assert_eq!(
            Settings::decode(&[0x33, 0x40]).unwrap_err().code,
            H3_FRAME_ERROR
        );
    }
}
