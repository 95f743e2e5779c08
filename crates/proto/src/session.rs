//! A session's CONNECT stream after the request and response: the capsules it carries
//! and how the session ends on it (draft-ietf-webtrans-http3 §5, RFC 9297 §3). A
//! [`ConnectStream`] takes what the driver read and says what happened; the driver does
//! the I/O (finish, reset, stop) and keeps the time.

use crate::capsule::{self, Capsule, ConnectStreamDecoder, StreamItem};
use crate::close::CloseReason;
use crate::codes::*;
use crate::error::WireError;

/// What the driver read from the CONNECT stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    Data(&'a [u8]),
    /// The peer finished its side (FIN).
    Fin,
    /// The peer reset its side with this code.
    Reset(u64),
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    Read,
    /// The peer asked to wind the session down (DRAIN_WEBTRANSPORT_SESSION); keep reading.
    Drain,
    /// The session is over: record `reason`, then do `then`. Nothing more is read.
    End { reason: CloseReason, then: Then },
}

/// The I/O that ends a session, after its end was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Then {
    /// The peer closed: end our side with FIN (answering its close) and stop reading
    /// with [`stop_code`].
    Finish,
    /// A malformed message on this stream: stop reading and reset our side with `code`
    /// (a stream error; the connection goes on).
    ResetBoth(u64),
    /// A frame-layer violation (RFC 9114 §7.1, §7.2.4, §7.2.8): close the connection.
    FailConnection(WireError),
    /// The peer reset the stream: nothing to send.
    Nothing,
}

/// The CONNECT stream of an established session, as a state machine: [`push`] what
/// was read, then take [`step`]s until one says [`Step::Read`].
///
/// [`push`]: ConnectStream::push
/// [`step`]: ConnectStream::step
#[derive(Default)]
pub struct ConnectStream {
    decoder: ConnectStreamDecoder,
    fin: bool,
    reset: Option<u64>,
    ended: bool,
}

impl ConnectStream {
    /// Feed what the driver read.
    pub fn push(&mut self, input: Input<'_>) {
        match input {
            Input::Data(d) => self.decoder.push(d),
            Input::Fin => self.fin = true,
            Input::Reset(code) => self.reset = Some(code),
        }
    }

    /// What happened, from what was pushed: call again until [`Step::Read`] (more
    /// input needed). After [`Step::End`] it only says Read.
    pub fn step(&mut self) -> Step {
        if self.ended {
            return Step::Read;
        }
        let step = self.next_step();
        self.ended = matches!(step, Step::End { .. });
        step
    }

    fn next_step(&mut self) -> Step {
        // A reset discards what was not read yet (RFC 9000 §3.2).
        if let Some(code) = self.reset {
            return Step::End {
                reason: CloseReason::Reset { code },
                then: Then::Nothing,
            };
        }
        loop {
            match self.decoder.next() {
                Ok(Some(StreamItem::Capsule(Capsule::Close { code, reason }))) => {
                    return Step::End {
                        reason: CloseReason::Remote { code, reason },
                        then: Then::Finish,
                    }
                }
                Ok(Some(StreamItem::Capsule(Capsule::Drain))) => return Step::Drain,
                // Trailers, flow-control and unknown capsules: nothing to do.
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return malformed(e),
            }
        }
        if !self.fin {
            return Step::Read;
        }
        match self.decoder.end_of_stream_error() {
            Some(e) => malformed(e),
            // A clean FIN without a capsule closes with code 0 (draft §5).
            None => Step::End {
                reason: CloseReason::Remote {
                    code: 0,
                    reason: String::new(),
                },
                then: Then::Finish,
            },
        }
    }
}

fn malformed(e: WireError) -> Step {
    let then = if matches!(e.code, H3_FRAME_UNEXPECTED | H3_FRAME_ERROR) {
        Then::FailConnection(e.clone())
    } else {
        Then::ResetBoth(e.code)
    };
    Step::End {
        reason: CloseReason::Protocol {
            code: e.code,
            reason: e.msg,
        },
        then,
    }
}

/// A local close with an application `code` and `reason` (at most 1024 bytes of UTF-8;
/// longer is cut on a character boundary): how it is recorded, and the bytes to send
/// before finishing our side (a CLOSE_WEBTRANSPORT_SESSION capsule in a DATA frame,
/// RFC 9297). After sending, keep reading (and discarding) until the peer ends its side
/// ([`reads_until_peer_ends`]): only then is the capsule known to be read.
pub fn local_close(code: u32, reason: &str) -> (CloseReason, Vec<u8>) {
    let reason = capsule::truncate_utf8(reason, capsule::MAX_CLOSE_REASON).to_string();
    let bytes = Capsule::Close {
        code,
        reason: reason.clone(),
    }
    .encode_in_data_frame();
    (CloseReason::Local { code, reason }, bytes)
}

/// Whether the reader keeps reading after the session ended this way: after a local
/// close the peer answers by ending its side, and a peer that saw the connection close
/// first would drop the capsule unread (web-transport-quinn 0.13, wtransport 0.7).
pub fn reads_until_peer_ends(reason: &CloseReason) -> bool {
    matches!(reason, CloseReason::Local { .. })
}

/// The code to stop reading the CONNECT stream with once the session ended: the error
/// it was closed for, or WT_SESSION_GONE (the draft's code; quinn's implicit
/// STOP_SENDING would say 0).
pub fn stop_code(reason: &CloseReason) -> u64 {
    match reason {
        CloseReason::Protocol { code, .. } => *code,
        _ => WT_SESSION_GONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(cs: &mut ConnectStream, input: Input<'_>) -> Vec<Step> {
        cs.push(input);
        let mut out = Vec::new();
        loop {
            match cs.step() {
                Step::Read => return out,
                s => out.push(s),
            }
        }
    }

    fn feed(cs: &mut ConnectStream, wire: &[u8], step: usize) -> Vec<Step> {
        let mut out = Vec::new();
        for part in wire.chunks(step.max(1)) {
            out.extend(steps(cs, Input::Data(part)));
        }
        out
    }

    fn one(cs: &mut ConnectStream, input: Input<'_>) -> Step {
        steps(cs, input).pop().unwrap_or(Step::Read)
    }

    #[test]
    fn peer_close_capsule_whatever_the_split() {
        let close = Capsule::Close {
            code: 9,
            reason: "bye".into(),
        };
        let mut wire = Capsule::Drain.encode_in_data_frame();
        wire.extend(close.encode_in_data_frame());
        for step in [1, 2, wire.len()] {
            let mut cs = ConnectStream::default();
            let steps = feed(&mut cs, &wire, step);
            assert_eq!(steps[0], Step::Drain);
            assert_eq!(
                steps[1],
                Step::End {
                    reason: CloseReason::Remote {
                        code: 9,
                        reason: "bye".into()
                    },
                    then: Then::Finish
                }
            );
            // Ended: later input changes nothing.
            assert_eq!(one(&mut cs, Input::Fin), Step::Read);
        }
    }

    #[test]
    fn fin_reset_and_malformed_input() {
        let mut cs = ConnectStream::default();
        assert!(matches!(
            one(&mut cs, Input::Fin),
            Step::End {
                reason: CloseReason::Remote { code: 0, .. },
                then: Then::Finish
            }
        ));
        let mut cs = ConnectStream::default();
        assert_eq!(
            one(&mut cs, Input::Reset(0x10c)),
            Step::End {
                reason: CloseReason::Reset { code: 0x10c },
                then: Then::Nothing
            }
        );
        // FIN inside a frame: connection error; inside a capsule: stream error.
        let mut cs = ConnectStream::default();
        one(&mut cs, Input::Data(&[0x00, 0x05, 0x68]));
        assert!(matches!(
            one(&mut cs, Input::Fin),
            Step::End { then: Then::FailConnection(e), .. } if e.code == H3_FRAME_ERROR
        ));
        let mut cs = ConnectStream::default();
        one(&mut cs, Input::Data(&[0x00, 0x02, 0x68, 0x43]));
        assert!(matches!(
            one(&mut cs, Input::Fin),
            Step::End {
                then: Then::ResetBoth(H3_MESSAGE_ERROR),
                ..
            }
        ));
        // A close capsule whose reason is not UTF-8: stream error H3_MESSAGE_ERROR.
        let mut cs = ConnectStream::default();
        let mut bad = Vec::new();
        crate::frame::encode(
            crate::frame::DATA,
            &[0x68, 0x43, 0x05, 0, 0, 0, 1, 0xff],
            &mut bad,
        );
        let s = one(&mut cs, Input::Data(&bad));
        assert!(
            matches!(&s, Step::End { then: Then::ResetBoth(H3_MESSAGE_ERROR), reason } if stop_code(reason) == H3_MESSAGE_ERROR)
        );
    }

    #[test]
    fn local_close_bytes_and_rules() {
        let (reason, bytes) = local_close(0x1234, "hello");
        assert_eq!(
            bytes,
            [0x00, 0x0c, 0x68, 0x43, 0x09, 0x00, 0x00, 0x12, 0x34, b'h', b'e', b'l', b'l', b'o']
        );
        assert!(reads_until_peer_ends(&reason));
        assert_eq!(stop_code(&reason), WT_SESSION_GONE);
        let (reason, _) = local_close(1, &"é".repeat(600));
        assert!(matches!(reason, CloseReason::Local { reason, .. } if reason.len() == 1024));
        assert!(!reads_until_peer_ends(&CloseReason::TimedOut));
    }
}
