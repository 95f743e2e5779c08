//! Bad input from a peer: a hand-rolled HTTP/3 peer built directly on quinn sends
//! malformed frames, settings, headers, capsules and datagrams, and the tests check that
//! our side ends the connection (or only the session / request stream) with the error
//! code RFC 9114, RFC 9204, RFC 9297 and WebTransport prescribe, and never panics (a
//! panic in a spawned task would show up here as a missing close, i.e. a timeout).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::*;
use common::*;
use quinn::{ConnectionError, ReadError, RecvStream, SendStream, VarInt};
use wtdatagram::wire::capsule::{self, Capsule};
use wtdatagram::wire::codes::*;
use wtdatagram::wire::datagram::Prefix;
use wtdatagram::wire::frame::{self, stream_type};
use wtdatagram::wire::settings::{self, Settings};
use wtdatagram::{Client, ClientConfig, CloseReason, Server, Session, Verify};

// ---------------------------------------------------------------------------------------
// Control stream and SETTINGS
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_setting_is_settings_error() {
    control_violation(
        &settings_frame(&[(settings::H3_DATAGRAM, 1), (settings::H3_DATAGRAM, 1)]),
        H3_SETTINGS_ERROR,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_with_truncated_varint_is_frame_error() {
    // Payload: id 0x33, then a value whose 2-byte varint has only its first byte.
    control_violation(&frame(frame::SETTINGS, &[0x33, 0x40]), H3_FRAME_ERROR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_id_without_value_is_frame_error() {
    control_violation(&frame(frame::SETTINGS, &[0x33]), H3_FRAME_ERROR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_control_frame_not_settings_is_missing_settings() {
    control_violation(&frame(frame::GOAWAY, &vi(0)), H3_MISSING_SETTINGS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_settings_is_frame_unexpected() {
    let mut bytes = wt_settings();
    bytes.extend(settings_frame(&[(settings::H3_DATAGRAM, 1)]));
    control_violation(&bytes, H3_FRAME_UNEXPECTED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_http2_setting_is_settings_error() {
    control_violation(&settings_frame(&[(0x2, 1)]), H3_SETTINGS_ERROR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_with_trailing_bytes_is_frame_error() {
    let mut bytes = wt_settings();
    bytes.extend(frame(frame::GOAWAY, &[0x00, 0x00]));
    control_violation(&bytes, H3_FRAME_ERROR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_frame_on_control_stream_is_frame_unexpected() {
    let mut bytes = wt_settings();
    bytes.extend(frame(frame::DATA, b"nope"));
    control_violation(&bytes, H3_FRAME_UNEXPECTED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_control_stream_is_stream_creation_error() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    raw.control(&wt_settings()).await;
    assert_code(raw.closed_code().await, H3_STREAM_CREATION_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_control_stream_is_closed_critical_stream() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control(&wt_settings()).await.finish().expect("finish");
    assert_code(raw.closed_code().await, H3_CLOSED_CRITICAL_STREAM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetting_control_stream_is_closed_critical_stream() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // A session opens only once our server has read the SETTINGS, so the stream type
    // has been seen and the reset cannot discard it unread.
    let (_ss, _send, _recv) = raw.session(&server, "/before-reset").await;
    raw.kept[0].reset(VarInt::from_u32(0x100)).expect("reset");
    assert_code(raw.closed_code().await, H3_CLOSED_CRITICAL_STREAM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_stream_from_client_is_stream_creation_error() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let mut push = vi(stream_type::PUSH);
    push.extend(vi(0)); // push id 0
    raw.uni(&push).await;
    assert_code(raw.closed_code().await, H3_STREAM_CREATION_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_uni_stream_type_is_stopped_and_connection_survives() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // 0x21 is a reserved (grease) stream type: RFC 9114 §6.2 says abort reading it.
    let s = raw.uni(&[0x21, 1, 2, 3]).await;
    let stopped = within(s.stopped()).await.expect("stopped");
    assert_code(
        stopped.expect("STOP_SENDING").into_inner(),
        H3_STREAM_CREATION_ERROR,
    );
    raw.assert_open();
    let (_ss, _send, _recv) = raw.session(&server, "/after-grease").await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_unknown_control_frame_is_skipped() {
    // RFC 9114 §9: unknown frame types are ignored whatever their size (this one is
    // 100 KB, past any buffer we keep); SETTINGS before it still counts, and a session
    // opens after it.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    let mut bytes = wt_settings();
    bytes.extend(frame(0x1f * 7 + 0x21, &vec![0x5a; 100_000]));
    raw.control(&bytes).await;
    let (_ss, _send, _recv) = raw.session(&server, "/after-big-frame").await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpack_encoder_stream_capacity_above_zero_is_encoder_stream_error() {
    // RFC 9204 §4.3.1: a capacity above our SETTINGS_QPACK_MAX_TABLE_CAPACITY (0).
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    raw.uni(&[stream_type::QPACK_ENCODER as u8, 0x20, 0x21])
        .await;
    assert_code(raw.closed_code().await, QPACK_ENCODER_STREAM_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpack_encoder_insert_is_encoder_stream_error() {
    // Insert With Literal Name into a table of capacity 0.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    raw.uni(&[stream_type::QPACK_ENCODER as u8, 0x41, b'a', 0x01, b'b'])
        .await;
    assert_code(raw.closed_code().await, QPACK_ENCODER_STREAM_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpack_decoder_insert_count_increment_is_decoder_stream_error() {
    // We inserted nothing, so no Insert Count Increment can be valid (RFC 9204 §4.4.3).
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    raw.uni(&[stream_type::QPACK_DECODER as u8, 0x01]).await;
    assert_code(raw.closed_code().await, QPACK_DECODER_STREAM_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_qpack_streams_keep_the_connection() {
    // Capacity 0 on the encoder stream and a Stream Cancellation on the decoder stream
    // are legal; a session still opens.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    raw.uni(&[stream_type::QPACK_ENCODER as u8, 0x20]).await;
    raw.uni(&[stream_type::QPACK_DECODER as u8, 0x44]).await;
    let (_ss, _send, _recv) = raw.session(&server, "/qpack-ok").await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_qpack_stream_is_stream_creation_error() {
    // RFC 9204 §4.2: each endpoint opens at most one encoder and one decoder stream.
    for ty in [stream_type::QPACK_ENCODER, stream_type::QPACK_DECODER] {
        let server = server();
        let mut raw = RawClient::connect(&server).await;
        raw.control_ok().await;
        raw.uni(&[ty as u8]).await;
        // Only once the first was read can the second be the second.
        let (_ss, _send, _recv) = raw.session(&server, "/first-qpack").await;
        raw.uni(&[ty as u8]).await;
        assert_code(raw.closed_code().await, H3_STREAM_CREATION_ERROR);
    }
}

// ---------------------------------------------------------------------------------------
// Request streams
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpack_dynamic_table_reference_is_decompression_failed() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // Required Insert Count 1: the section depends on a dynamic table we set to 0.
    let (_send, _recv) = raw.bidi(&frame(frame::HEADERS, &[0x01, 0x00, 0x80])).await;
    assert_code(raw.closed_code().await, QPACK_DECOMPRESSION_FAILED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpack_dynamic_indexed_line_is_decompression_failed() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // Insert count 0, base 0, then an indexed field line with T=0 (dynamic table).
    let (_send, _recv) = raw.bidi(&frame(frame::HEADERS, &[0x00, 0x00, 0x81])).await;
    assert_code(raw.closed_code().await, QPACK_DECOMPRESSION_FAILED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpack_huffman_with_bad_padding_is_decompression_failed() {
    // RFC 7541 §5.2: padding must be the most significant bits of EOS (all ones) and at
    // most 7 bits. "0" is 00000: 00000110 pads with 110, 00000111 + 0xff pads 11 bits.
    for value in [&[0x81u8, 0b0000_0110][..], &[0x82, 0b0000_0111, 0xff]] {
        let server = server();
        let mut raw = RawClient::connect(&server).await;
        raw.control_ok().await;
        let mut block = vec![0x00, 0x00, 0x51];
        block.extend_from_slice(value);
        let (_send, _recv) = raw.bidi(&frame(frame::HEADERS, &block)).await;
        assert_code(raw.closed_code().await, QPACK_DECOMPRESSION_FAILED);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qpack_invalid_huffman_is_decompression_failed() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // :path (static 1) with a Huffman value of four 0xff bytes: the EOS symbol, which
    // RFC 7541 §5.2 makes a decoding error.
    let (_send, _recv) = raw
        .bidi(&frame(
            frame::HEADERS,
            &[0x00, 0x00, 0x51, 0x84, 0xff, 0xff, 0xff, 0xff],
        ))
        .await;
    assert_code(raw.closed_code().await, QPACK_DECOMPRESSION_FAILED);
}

/// A malformed request is a stream error: the stream is reset with H3_MESSAGE_ERROR and
/// the connection keeps serving (a valid session opens on it afterwards).
async fn malformed_request_resets_only_the_stream(request: Vec<u8>) {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (send, mut recv) = raw.bidi(&request).await;
    assert_code(expect_reset(&mut recv).await, H3_MESSAGE_ERROR);
    let stopped = within(send.stopped()).await.expect("stopped");
    assert_code(
        stopped.expect("STOP_SENDING").into_inner(),
        H3_MESSAGE_ERROR,
    );
    raw.assert_open();
    let (ss, _send, _recv) = raw.session(&server, "/after-malformed").await;
    assert!(ss.close_reason().is_none());
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_without_path_is_message_error() {
    malformed_request_resets_only_the_stream(headers_frame(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        (":scheme", "https"),
        (":authority", "localhost"),
    ]))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppercase_header_name_is_message_error() {
    malformed_request_resets_only_the_stream(headers_frame(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/"),
        ("X-Upper", "1"),
    ]))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pseudo_header_after_regular_header_is_message_error() {
    malformed_request_resets_only_the_stream(headers_frame(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport"),
        ("origin", "https://example.com"),
        (":scheme", "https"),
        (":authority", "localhost"),
        (":path", "/"),
    ]))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_request_is_answered_404() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (send, mut recv) = raw
        .bidi(&headers_frame(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", "/"),
        ]))
        .await;
    let fields = read_headers(&mut recv).await.expect("response");
    assert_eq!(status(&fields), 404, "{fields:?}");
    expect_fin(&mut recv).await;
    // The request stream is still open on our side: the server asks us to stop
    // sending it, without error (RFC 9114 §4.1.1), not with quinn's implicit 0.
    assert_eq!(
        within(send.stopped()).await.expect("stopped"),
        Some(VarInt::from_u64(H3_NO_ERROR).unwrap())
    );
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_connect_is_answered_501_and_stopped_without_error() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (send, mut recv) = raw
        .bidi(&headers_frame(&[
            (":method", "CONNECT"),
            (":authority", "localhost:443"),
        ]))
        .await;
    let fields = read_headers(&mut recv).await.expect("response");
    assert_eq!(status(&fields), 501, "{fields:?}");
    assert_eq!(
        within(send.stopped()).await.expect("stopped"),
        Some(VarInt::from_u64(H3_NO_ERROR).unwrap())
    );
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_before_headers_is_frame_unexpected() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (_send, _recv) = raw.bidi(&frame(frame::DATA, b"early")).await;
    assert_code(raw.closed_code().await, H3_FRAME_UNEXPECTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_headers_frame_is_answered_431() {
    // RFC 9114 §4.2.2: a request over SETTINGS_MAX_FIELD_SECTION_SIZE gets 431 on its
    // own stream; the connection and its other requests go on. Refused from the frame
    // header alone: a HEADERS frame declaring 1 MiB, of which only 32 bytes are sent.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let mut bytes = vi(frame::HEADERS);
    bytes.extend(vi(1 << 20));
    bytes.extend([0u8; 32]);
    let (send, mut recv) = raw.bidi_stoppable(&bytes).await;
    let fields = read_headers(&mut recv).await.expect("431 response");
    assert_eq!(status(&fields), 431);
    expect_fin(&mut recv).await;
    // The rest of the request is not wanted, without error (RFC 9114 §4.1.1).
    assert_eq!(
        within(send.stopped()).await.expect("stopped"),
        Some(VarInt::from_u64(H3_NO_ERROR).unwrap())
    );
    raw.assert_open();
    let (ss, _s, _r) = raw.session(&server, "/after-431").await;
    assert!(ss.close_reason().is_none());
    assert_eq!(server.stats().requests_too_large, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_stream_ending_without_headers_is_request_incomplete() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // A complete frame of a reserved (grease) type, then FIN: no request at all.
    let (mut send, mut recv) = raw.bidi(&frame(0x21, b"grease")).await;
    send.finish().expect("finish");
    assert_code(expect_reset(&mut recv).await, H3_REQUEST_INCOMPLETE);
    raw.assert_open();
    let (_ss, _s, _r) = raw.session(&server, "/after-incomplete").await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_stream_ending_inside_headers_frame_is_frame_error() {
    // RFC 9114 §7.1: "When a stream terminates cleanly, if the last frame on the stream
    // was truncated, this MUST be treated as a connection error of type H3_FRAME_ERROR."
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let request = connect_request(&raw.authority, "/truncated");
    let (mut send, mut recv) = raw.bidi(&request[..request.len() / 2]).await;
    send.finish().expect("finish");
    expect_connection_error(&raw, &mut recv, H3_FRAME_ERROR).await;
}

// ---------------------------------------------------------------------------------------
// Capsules on an established session's CONNECT stream
// ---------------------------------------------------------------------------------------

async fn expect_protocol_close(ss: &Session, code: u64) {
    match within(ss.closed()).await {
        CloseReason::Protocol { code: c, reason } => {
            eprintln!("session closed: {reason}");
            assert_code(c, code);
        }
        other => panic!("expected CloseReason::Protocol({code:#x}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_close_capsule_resets_session_with_message_error() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, mut send, mut recv) = raw.session(&server, "/short-close").await;
    // CLOSE_WEBTRANSPORT_SESSION of 2 bytes: shorter than its 4-byte code.
    let capsule = frame(capsule::CLOSE_WEBTRANSPORT_SESSION, &[0x00, 0x01]);
    within(send.write_all(&frame(frame::DATA, &capsule)))
        .await
        .expect("write capsule");
    assert_code(expect_reset(&mut recv).await, H3_MESSAGE_ERROR);
    expect_protocol_close(&ss, H3_MESSAGE_ERROR).await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_close_capsule_is_message_error() {
    // A close reason is at most 1024 bytes: a CLOSE_WEBTRANSPORT_SESSION declaring 1 MiB
    // is malformed from its header on (nothing of it is held), inside a DATA frame or raw
    // (as web-transport-quinn wrote them).
    for raw_capsule in [false, true] {
        let server = server();
        let mut raw = RawClient::connect(&server).await;
        raw.control_ok().await;
        let (ss, mut send, mut recv) = raw.session(&server, "/big-capsule").await;
        let mut header = vi(capsule::CLOSE_WEBTRANSPORT_SESSION);
        header.extend(vi(1 << 20));
        let bytes = if raw_capsule {
            header
        } else {
            let mut b = vi(frame::DATA);
            b.extend(vi(1 << 21));
            b.extend(header);
            b
        };
        within(send.write_all(&bytes))
            .await
            .expect("write capsule header");
        assert_code(expect_reset(&mut recv).await, H3_MESSAGE_ERROR);
        expect_protocol_close(&ss, H3_MESSAGE_ERROR).await;
        // A session-level error: the connection and new sessions on it are fine.
        raw.assert_open();
        let (ss2, _s, _r) = raw.session(&server, "/next").await;
        assert!(ss2.close_reason().is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_data_frames_and_unknown_capsules_are_streamed() {
    // Legal and large: a 100 KB DATA frame holding a 99 KB capsule of an unknown type,
    // then a 1 MiB unknown frame, then a close capsule. The session stays open through
    // them and then sees the close (RFC 9114 §9, RFC 9297 §3.2: unknown ones are
    // skipped, whatever their size).
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, mut send, _recv) = raw.session(&server, "/big-data").await;
    let unknown = Capsule::Unknown {
        ty: 0x3a3a,
        payload: vec![7u8; 99_000].into(),
    };
    within(send.write_all(&unknown.encode_in_data_frame()))
        .await
        .expect("write DATA");
    within(send.write_all(&frame(0x2f2f, &vec![0u8; 1 << 20])))
        .await
        .expect("write unknown frame");
    // The session is still open: a datagram goes through.
    let qid = Prefix::for_stream(ss.id());
    raw.datagram(&qid.frame(b"still here"));
    assert_eq!(
        &within(ss.recv_datagram()).await.expect("datagram")[..],
        b"still here"
    );
    assert!(ss.close_reason().is_none());
    let close = Capsule::Close {
        code: 7,
        reason: "after the big ones".into(),
    };
    within(send.write_all(&close.encode_in_data_frame()))
        .await
        .expect("write close");
    assert_eq!(
        within(ss.closed()).await,
        CloseReason::Remote {
            code: 7,
            reason: "after the big ones".into()
        }
    );
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_close_capsule_reaches_the_session() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, mut send, mut recv) = raw.session(&server, "/close").await;
    let close = Capsule::Close {
        code: 0xdead_beef,
        reason: "fin ✓ done".into(),
    };
    within(send.write_all(&close.encode_in_data_frame()))
        .await
        .expect("write capsule");
    assert_eq!(
        within(ss.closed()).await,
        CloseReason::Remote {
            code: 0xdead_beef,
            reason: "fin ✓ done".into()
        }
    );
    // Our side answers by finishing its half of the CONNECT stream.
    expect_fin(&mut recv).await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_stream_ending_inside_a_capsule_is_message_error() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, mut send, mut recv) = raw.session(&server, "/cut-capsule").await;
    // A complete DATA frame carrying only the first bytes of a close capsule, then FIN:
    // an incomplete capsule makes the message malformed (RFC 9297 §3.3).
    let capsule = Capsule::Close {
        code: 7,
        reason: "never finished".into(),
    }
    .encode();
    within(send.write_all(&frame(frame::DATA, &capsule[..6])))
        .await
        .expect("write");
    send.finish().expect("finish");
    assert_code(expect_reset(&mut recv).await, H3_MESSAGE_ERROR);
    expect_protocol_close(&ss, H3_MESSAGE_ERROR).await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_stream_ending_inside_a_frame_is_frame_error() {
    // RFC 9114 §7.1: a stream that terminates cleanly inside a frame is a connection
    // error of type H3_FRAME_ERROR.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, mut send, mut recv) = raw.session(&server, "/cut-frame").await;
    let data = Capsule::Close {
        code: 7,
        reason: "never finished".into(),
    }
    .encode_in_data_frame();
    within(send.write_all(&data[..5])).await.expect("write");
    send.finish().expect("finish");
    expect_connection_error(&raw, &mut recv, H3_FRAME_ERROR).await;
    expect_protocol_close(&ss, H3_FRAME_ERROR).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_frame_on_connect_stream_is_connection_error() {
    // RFC 9114 §7.2.4: SETTINGS on any stream but the control stream is a connection
    // error of type H3_FRAME_UNEXPECTED.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, mut send, mut recv) = raw.session(&server, "/settings-here").await;
    within(send.write_all(&wt_settings())).await.expect("write");
    expect_connection_error(&raw, &mut recv, H3_FRAME_UNEXPECTED).await;
    expect_protocol_close(&ss, H3_FRAME_UNEXPECTED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_frame_on_connect_stream_is_connection_error() {
    // RFC 9114 §7.2.8: HTTP/2 frame types (here 0x06, PING) are a connection error of
    // type H3_FRAME_UNEXPECTED.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, mut send, mut recv) = raw.session(&server, "/h2-frame").await;
    within(send.write_all(&frame(0x06, &[0u8; 8])))
        .await
        .expect("write");
    expect_connection_error(&raw, &mut recv, H3_FRAME_UNEXPECTED).await;
    expect_protocol_close(&ss, H3_FRAME_UNEXPECTED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_after_trailers_on_connect_stream_is_connection_error() {
    // RFC 9114 §4.1: "a HEADERS or DATA frame after the trailing HEADERS frame" is an
    // invalid frame sequence, a connection error of type H3_FRAME_UNEXPECTED.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, mut send, mut recv) = raw.session(&server, "/after-trailers").await;
    let mut bytes = headers_frame(&[("x-trailer", "1")]);
    bytes.extend(
        Capsule::Close {
            code: 1,
            reason: "after trailers".into(),
        }
        .encode_in_data_frame(),
    );
    within(send.write_all(&bytes)).await.expect("write");
    expect_connection_error(&raw, &mut recv, H3_FRAME_UNEXPECTED).await;
    expect_protocol_close(&ss, H3_FRAME_UNEXPECTED).await;
}

// ---------------------------------------------------------------------------------------
// Datagrams
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_with_truncated_prefix_is_datagram_error() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // 0x40 starts a 2-byte varint that never comes.
    raw.datagram(&[0x40]);
    assert_code(raw.closed_code().await, H3_DATAGRAM_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_with_quarter_id_above_limit_is_datagram_error() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    // 2^62 - 1 as a quarter stream id: the stream id would exceed 2^62 - 1.
    raw.datagram(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'x']);
    assert_code(raw.closed_code().await, H3_DATAGRAM_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagram_for_unknown_session_is_dropped_and_counted() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (ss, _send, _recv) = raw.session(&server, "/dgram").await;
    assert_eq!(ss.connection_unknown_session_datagrams(), 0);

    // Session id 400 was never opened.
    raw.datagram(&Prefix::for_stream(400).frame(b"stray"));
    let prefix = Prefix::for_stream(ss.id());
    raw.datagram(&prefix.frame(b"for the real session"));
    let d = within(ss.recv_datagram()).await.expect("datagram");
    assert_eq!(&d[..], b"for the real session");

    // Datagrams may be reordered: wait (bounded) for the stray one to be counted.
    within(async {
        while ss.connection_unknown_session_datagrams() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(ss.connection_unknown_session_datagrams(), 1);
    assert_eq!(ss.stats().datagrams_received, 1);

    // Still working both ways afterwards.
    raw.datagram(&prefix.frame(b"again"));
    let d = within(ss.recv_datagram()).await.expect("datagram");
    assert_eq!(&d[..], b"again");
    ss.send_datagram(b"pong").await.expect("send");
    let back = within(raw.conn.read_datagram())
        .await
        .expect("read datagram");
    assert_eq!(&back[..], &prefix.frame(b"pong")[..]);
    assert!(ss.close_reason().is_none());
    raw.assert_open();
}

// ---------------------------------------------------------------------------------------
// Client role: a raw server misbehaving towards our Client
// ---------------------------------------------------------------------------------------

/// Accept one connection on `endpoint`, open a control stream carrying `control`, run
/// `then` on the connection, and report how the connection ended.
fn spawn_raw_server<F, Fut, T>(
    endpoint: quinn::Endpoint,
    control: Vec<u8>,
    then: F,
) -> tokio::task::JoinHandle<(T, ConnectionError)>
where
    F: FnOnce(quinn::Connection) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
    T: Send + 'static,
{
    tokio::spawn(async move {
        let incoming = endpoint.accept().await.expect("incoming connection");
        let conn = incoming.await.expect("QUIC handshake");
        let mut ctl = conn.open_uni().await.expect("open control");
        let mut bytes = vi(stream_type::CONTROL);
        bytes.extend(control);
        ctl.write_all(&bytes).await.expect("write control");
        let t = then(conn.clone()).await;
        let e = conn.closed().await;
        drop(ctl);
        drop(endpoint);
        (t, e)
    })
}

fn our_client() -> Client {
    init_log();
    Client::new(ClientConfig {
        verify: Verify::Insecure,
        ..Default::default()
    })
    .expect("client")
}

fn raw_url(addr: SocketAddr, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", addr.port())
}

fn application_code(e: ConnectionError) -> u64 {
    match e {
        ConnectionError::ApplicationClosed(c) => {
            eprintln!(
                "raw server saw close {:#x}: {}",
                c.error_code.into_inner(),
                String::from_utf8_lossy(&c.reason)
            );
            c.error_code.into_inner()
        }
        other => panic!("expected an HTTP/3 application close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rejects_server_with_duplicate_setting() {
    let endpoint = raw_server_endpoint();
    let addr = endpoint.local_addr().unwrap();
    let task = spawn_raw_server(
        endpoint,
        settings_frame(&[
            (settings::ENABLE_WEBTRANSPORT, 1),
            (settings::H3_DATAGRAM, 1),
            (settings::ENABLE_WEBTRANSPORT, 1),
        ]),
        |_| async {},
    );
    let client = our_client();
    let r = within(client.connect(&raw_url(addr, "/"))).await;
    match &r {
        Ok(_) => panic!("connect must fail on malformed SETTINGS"),
        Err(e) => eprintln!("connect failed as expected: {e}"),
    }
    drop(r);
    let (_, e) = within(task).await.expect("raw server task");
    assert_code(application_code(e), H3_SETTINGS_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rejects_garbage_qpack_response() {
    let endpoint = raw_server_endpoint();
    let addr = endpoint.local_addr().unwrap();
    let mut good = Vec::new();
    Settings::webtransport(16).encode_frame(&mut good);
    let task = spawn_raw_server(endpoint, good, |conn| async move {
        let (mut send, mut recv) = conn.accept_bi().await.expect("CONNECT stream");
        let req = read_headers(&mut recv).await.expect("request HEADERS");
        assert!(
            req.contains(&(":method".into(), "CONNECT".into())),
            "{req:?}"
        );
        // Required Insert Count 1 against a dynamic table of capacity 0.
        send.write_all(&frame(frame::HEADERS, &[0x01, 0x00, 0xd9]))
            .await
            .expect("write response");
        // Keep both halves alive until the connection ends.
        let _ = conn.closed().await;
        drop((send, recv));
    });
    let client = our_client();
    let conn = within(client.connect(&raw_url(addr, "/")))
        .await
        .expect("connect to a raw server with valid SETTINGS");
    let r = within(conn.open_session("/wt", &[])).await;
    match &r {
        Ok(_) => panic!("open_session must fail on a garbage QPACK response"),
        Err(e) => eprintln!("open_session failed as expected: {e}"),
    }
    let (_, e) = within(task).await.expect("raw server task");
    assert_code(application_code(e), QPACK_DECOMPRESSION_FAILED);
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_rejects_push_stream_with_id_error() {
    // RFC 9114 §6.2.2: a push stream when no MAX_PUSH_ID was sent is H3_ID_ERROR.
    let endpoint = raw_server_endpoint();
    let addr = endpoint.local_addr().unwrap();
    let mut good = Vec::new();
    Settings::webtransport(16).encode_frame(&mut good);
    let task = spawn_raw_server(endpoint, good, |conn| async move {
        let mut push = conn.open_uni().await.expect("open push stream");
        let mut bytes = vi(stream_type::PUSH);
        bytes.extend(vi(0));
        push.write_all(&bytes).await.expect("write push stream");
        push
    });
    let client = our_client();
    // Whether connect() wins the race with the push stream does not matter; keep what it
    // returns so that a successful connection is not closed by dropping it.
    let conn = within(client.connect(&raw_url(addr, "/"))).await;
    let (_push, e) = within(task).await.expect("raw server task");
    assert_code(application_code(e), H3_ID_ERROR);
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_resets_malformed_response_with_message_error() {
    // RFC 9114 §4.1.2: a malformed response (here: no :status) is a stream error of
    // type H3_MESSAGE_ERROR; the connection stays up.
    let endpoint = raw_server_endpoint();
    let addr = endpoint.local_addr().unwrap();
    let mut good = Vec::new();
    Settings::webtransport(16).encode_frame(&mut good);
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let task = spawn_raw_server(endpoint, good, |conn| async move {
        let (mut send, mut recv) = conn.accept_bi().await.expect("CONNECT stream");
        read_headers(&mut recv).await.expect("request HEADERS");
        send.write_all(&headers_frame(&[("server", "raw")]))
            .await
            .expect("write response");
        // How does the client end its half of the request stream?
        let outcome = loop {
            match recv.read_chunk(1 << 16, true).await {
                Ok(Some(_)) => continue,
                Ok(None) => break "finished cleanly (FIN)".to_string(),
                Err(ReadError::Reset(c)) => break format!("reset {:#x}", c.into_inner()),
                Err(e) => break format!("error: {e}"),
            }
        };
        let _ = tx.send(outcome);
        drop(send);
    });
    let client = our_client();
    let conn = within(client.connect(&raw_url(addr, "/")))
        .await
        .expect("connect to a raw server with valid SETTINGS");
    let r = within(conn.open_session("/wt", &[])).await;
    match &r {
        Ok(_) => panic!("open_session must fail on a response without :status"),
        Err(e) => eprintln!("open_session failed as expected: {e}"),
    }
    drop(r);
    // The connection stays open until the raw server has seen how the stream ended.
    let outcome = within(rx).await.expect("raw server outcome");
    assert!(
        !conn.is_closed(),
        "a malformed response is only a stream error"
    );
    drop(conn);
    let _ = within(task).await.expect("raw server task");
    assert_eq!(
        outcome,
        format!("reset {H3_MESSAGE_ERROR:#x}"),
        "the client must reset its request stream with H3_MESSAGE_ERROR"
    );
}

// ---------------------------------------------------------------------------------------
// Clients that announce WebTransport only by their request (webtransport-go <= 0.10)
// ---------------------------------------------------------------------------------------

/// The CONNECT of webtransport-go's client as quic-go's http3 request writer encodes it:
/// v0.9.0 adds the draft-02 offer header, v0.10.0 does not (it sends `accept-encoding:
/// gzip` instead). Both send SETTINGS with only H3_DATAGRAM.
fn webtransport_go_request(authority: &str, path: &str, protocol: &str, v0_9: bool) -> Vec<u8> {
    let mut fields = vec![
        (":authority", authority),
        (":method", "CONNECT"),
        (":path", path),
        (":scheme", "https"),
        (":protocol", protocol),
    ];
    if v0_9 {
        fields.push(("sec-webtransport-http3-draft02", "1"));
    } else {
        fields.push(("accept-encoding", "gzip"));
    }
    fields.push(("user-agent", "quic-go HTTP/3"));
    headers_frame(&fields)
}

/// Open a raw client whose SETTINGS are exactly `pairs`, send webtransport-go's CONNECT
/// with `protocol`, and read the response status (a refusal must end with FIN).
async fn answer_to(server: &Server, pairs: &[(u64, u64)], protocol: &str) -> (RawClient, u16) {
    let mut raw = RawClient::connect(server).await;
    raw.control(&settings_frame(pairs)).await;
    let request = webtransport_go_request(&raw.authority, "/wt", protocol, true);
    let (_send, mut recv) = raw.bidi(&request).await;
    let fields = read_headers(&mut recv).await.expect("response HEADERS");
    let code = status(&fields);
    if code != 200 {
        expect_fin(&mut recv).await;
    }
    (raw, code)
}

/// A client whose SETTINGS are only H3_DATAGRAM=1 (no ENABLE_WEBTRANSPORT, no
/// WT_MAX_SESSIONS, no WT_ENABLED) sends a `:protocol webtransport` CONNECT: the session
/// is accepted as draft-02, answered with the draft02 header only if offered, and
/// datagrams flow both ways.
async fn only_h3_datagram_client(v0_9: bool) {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control(&settings_frame(&[(settings::H3_DATAGRAM, 1)]))
        .await;
    let request = webtransport_go_request(&raw.authority, "/wtgo?x=1", "webtransport", v0_9);
    let (_send, mut recv) = raw.bidi(&request).await;
    let (ss, fields) = tokio::join!(
        async {
            within(server.accept())
                .await
                .expect("session request")
                .accept()
                .await
                .expect("accept")
        },
        async { read_headers(&mut recv).await.expect("response HEADERS") }
    );
    assert_eq!(status(&fields), 200, "{fields:?}");
    let answered = fields.contains(&("sec-webtransport-http3-draft".into(), "draft02".into()));
    assert_eq!(answered, v0_9, "draft02 header in the response: {fields:?}");
    assert_eq!(ss.request().path, "/wtgo?x=1");
    assert_eq!(ss.request().protocol, "webtransport");
    assert_eq!(ss.request().dialect, settings::Dialect::Draft02);

    let prefix = Prefix::for_stream(ss.id());
    raw.datagram(&prefix.frame(b"from quic-go"));
    let d = within(ss.recv_datagram()).await.expect("datagram");
    assert_eq!(&d[..], b"from quic-go");
    ss.send_datagram(b"from us").await.expect("send");
    let back = within(raw.conn.read_datagram())
        .await
        .expect("read datagram");
    assert_eq!(&back[..], &prefix.frame(b"from us")[..]);
    assert!(ss.close_reason().is_none());
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_announcing_only_h3_datagram_is_accepted_as_draft02() {
    only_h3_datagram_client(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_announcing_only_h3_datagram_without_offer_header_is_accepted() {
    only_h3_datagram_client(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_announcing_neither_webtransport_nor_datagrams_gets_400() {
    let server = server();
    let (raw, code) = answer_to(
        &server,
        &[(settings::QPACK_MAX_TABLE_CAPACITY, 0)],
        "webtransport",
    )
    .await;
    assert_eq!(code, 400);
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft15_request_without_wt_enabled_gets_400() {
    // `webtransport-h3` is draft-15, which requires WT_ENABLED in the client's SETTINGS.
    let server = server();
    let (raw, code) = answer_to(&server, &[(settings::H3_DATAGRAM, 1)], "webtransport-h3").await;
    assert_eq!(code, 400);
    raw.assert_open();
}

/// Our client closes its last session against a raw server that answers the close late
/// (FIN after a pause) or never. draft-ietf-webtrans-http3 §5: the recipient of
/// CLOSE_WEBTRANSPORT_SESSION closes or resets its side of the CONNECT stream in
/// response, and the closer should not close the QUIC connection before that, or a peer
/// that reads the capsule late never sees it (web-transport-quinn 0.13 and wtransport
/// 0.7 drop unread stream data on CONNECTION_CLOSE; tests/interop_rust_peers.rs). A peer
/// that never answers only delays the connection's close, which stays bounded.
async fn client_close_waits_for_the_peer_to_answer(answer: bool) {
    let endpoint = raw_server_endpoint();
    let addr = endpoint.local_addr().unwrap();
    let mut good = Vec::new();
    Settings::webtransport(16).encode_frame(&mut good);
    let task = spawn_raw_server(endpoint, good, move |conn| async move {
        let (mut send, mut recv) = conn.accept_bi().await.expect("CONNECT stream");
        read_headers(&mut recv).await.expect("request HEADERS");
        send.write_all(&headers_frame(&[(":status", "200")]))
            .await
            .expect("write response");
        // Everything the client sends after its request, up to its FIN.
        let rest = within(recv.read_to_end(1 << 16))
            .await
            .expect("CONNECT stream up to FIN");
        // A slow peer: the connection must still be up while it has not answered.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let open_before_answer = conn.close_reason().is_none();
        if answer {
            send.finish().expect("FIN");
        }
        let _ = conn.closed().await;
        drop(send);
        (rest, open_before_answer)
    });
    let client = our_client();
    let s = within(client.open_session(&raw_url(addr, "/close")))
        .await
        .expect("open session");
    s.close(4242, "bye");
    // The last handle: the connection closes once the session's close is complete.
    drop(s);
    let ((rest, open_before_answer), e) = within(task).await.expect("raw server task");
    assert_eq!(
        rest,
        Capsule::Close {
            code: 4242,
            reason: "bye".into()
        }
        .encode_in_data_frame(),
        "CLOSE_WEBTRANSPORT_SESSION inside one DATA frame, then FIN"
    );
    assert!(
        open_before_answer,
        "the connection closed before the peer answered our close"
    );
    assert_code(application_code(e), H3_NO_ERROR);
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_holds_the_connection_until_the_peer_finishes_its_side() {
    client_close_waits_for_the_peer_to_answer(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_of_a_peer_that_never_answers_still_closes_the_connection() {
    client_close_waits_for_the_peer_to_answer(false).await;
}

// ---------------------------------------------------------------------------------------
// draft-15 session pooling and flow control (draft-ietf-webtrans-http3-15 §5.1, §5.3)
// ---------------------------------------------------------------------------------------

/// A draft-15 client's SETTINGS (WT_ENABLED), declaring flow control (`fc`: some
/// WT_INITIAL_MAX_* other than 0, like pywebtransport) or not (webtransport-go 0.13 with
/// its default config).
fn wt15_settings(fc: bool) -> Vec<u8> {
    let mut pairs = vec![
        (settings::QPACK_MAX_TABLE_CAPACITY, 0),
        (settings::ENABLE_CONNECT_PROTOCOL, 1),
        (settings::H3_DATAGRAM, 1),
        (settings::WT_ENABLED, 1),
    ];
    if fc {
        pairs.extend([
            (settings::WT_INITIAL_MAX_DATA, 4096),
            (settings::WT_INITIAL_MAX_STREAMS_UNI, 4),
            (settings::WT_INITIAL_MAX_STREAMS_BIDI, 4),
        ]);
    }
    settings_frame(&pairs)
}

/// A draft-15 extended CONNECT (`:protocol webtransport-h3`, no draft-02 header).
fn connect_request_h3(authority: &str, path: &str) -> Vec<u8> {
    headers_frame(&[
        (":method", "CONNECT"),
        (":protocol", "webtransport-h3"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
    ])
}

impl RawClient {
    /// Like [`RawClient::session`], with a draft-15 CONNECT.
    async fn session_h3(&self, server: &Server, path: &str) -> (Session, SendStream, RecvStream) {
        let (send, mut recv) = self.bidi(&connect_request_h3(&self.authority, path)).await;
        let (ss, fields) = tokio::join!(
            async {
                within(server.accept())
                    .await
                    .expect("session request")
                    .accept()
                    .await
                    .expect("accept")
            },
            async { read_headers(&mut recv).await.expect("response HEADERS") }
        );
        assert_eq!(status(&fields), 200, "{fields:?}");
        assert_eq!(ss.request().path, path);
        assert_eq!(ss.request().dialect, settings::Dialect::Draft15);
        (ss, send, recv)
    }
}

/// The code the peer stopped (STOP_SENDING) our send stream with.
async fn expect_stopped(send: &mut SendStream) -> u64 {
    match within(send.stopped()).await {
        Ok(Some(code)) => code.into_inner(),
        other => panic!("expected STOP_SENDING, got {other:?}"),
    }
}

/// One datagram each way on an established session (raw client `raw`, ours `ss`).
async fn datagrams_flow(raw: &RawClient, ss: &Session, tag: &[u8]) {
    let prefix = Prefix::for_stream(ss.id());
    raw.datagram(&prefix.frame(tag));
    let d = within(ss.recv_datagram()).await.expect("datagram");
    assert_eq!(&d[..], tag);
    ss.send_datagram(tag).await.expect("send");
    let back = within(raw.conn.read_datagram())
        .await
        .expect("read datagram");
    assert_eq!(&back[..], &prefix.frame(tag)[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_draft15_session_without_flow_control_is_request_rejected() {
    // §5.1: a server that receives more than one session on a connection without flow
    // control MUST reset the excess CONNECT stream with H3_REQUEST_REJECTED.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control(&wt15_settings(false)).await;
    let (ss1, mut send1, mut recv1) = raw.session_h3(&server, "/first").await;

    let request = connect_request_h3(&raw.authority, "/second");
    let (mut send2, mut recv2) = raw.bidi(&request).await;
    assert_code(expect_reset(&mut recv2).await, H3_REQUEST_REJECTED);
    assert_code(expect_stopped(&mut send2).await, H3_REQUEST_REJECTED);
    // Only that request stream: the connection and the first session carry on.
    raw.assert_open();
    datagrams_flow(&raw, &ss1, b"first still up").await;

    // Once the first session is over (we end it; our server's answer, its FIN, shows it
    // took note), the connection takes a new one. The application never saw "/second":
    // the next request it gets is "/third".
    send1.finish().expect("FIN");
    expect_fin(&mut recv1).await;
    assert_eq!(
        within(ss1.closed()).await,
        CloseReason::Remote {
            code: 0,
            reason: String::new()
        }
    );
    let (ss3, _send3, _recv3) = raw.session_h3(&server, "/third").await;
    datagrams_flow(&raw, &ss3, b"third").await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_draft15_requests_without_flow_control_admit_one() {
    // Two CONNECTs before the application answered either: one is queued for it, the
    // other reset at once (a pending request counts as a session).
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control(&wt15_settings(false)).await;
    let (_sa, mut ra) = raw.bidi(&connect_request_h3(&raw.authority, "/a")).await;
    let (_sb, mut rb) = raw.bidi(&connect_request_h3(&raw.authority, "/b")).await;
    let req = within(server.accept()).await.expect("one request");
    let admitted = req.path().to_string();
    let ss = req.accept().await.expect("accept");
    let (admitted_recv, refused_recv) = if admitted == "/a" {
        (&mut ra, &mut rb)
    } else {
        (&mut rb, &mut ra)
    };
    assert_code(expect_reset(refused_recv).await, H3_REQUEST_REJECTED);
    let fields = read_headers(admitted_recv).await.expect("response HEADERS");
    assert_eq!(status(&fields), 200, "{fields:?}");
    datagrams_flow(&raw, &ss, b"the admitted one").await;
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft15_sessions_share_a_connection_with_flow_control() {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control(&wt15_settings(true)).await;
    let (s1, _a, _b) = raw.session_h3(&server, "/one").await;
    let (s2, _c, _d) = raw.session_h3(&server, "/two").await;
    let (s3, _e, _f) = raw.session_h3(&server, "/three").await;
    for (s, tag) in [(&s1, b"1"), (&s2, b"2"), (&s3, b"3")] {
        datagrams_flow(&raw, s, tag).await;
    }
    raw.assert_open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft02_sessions_share_a_connection_without_flow_control() {
    // The draft-15 rule is for draft-15 sessions: draft-02 clients (Chromium, aioquic,
    // webtransport-go <= 0.10) announce no flow control and keep sharing a connection
    // up to our WT_MAX_SESSIONS.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control_ok().await;
    let (s1, _a, _b) = raw.session(&server, "/one").await;
    let (s2, _c, _d) = raw.session(&server, "/two").await;
    datagrams_flow(&raw, &s1, b"1").await;
    datagrams_flow(&raw, &s2, b"2").await;
    raw.assert_open();
}

/// A raw draft-15 client with flow control opens a WebTransport stream (`bidi` or
/// unidirectional) in its session although we announced a limit of 0: §5.3, the session
/// is closed with WT_FLOW_CONTROL_ERROR (its CONNECT stream reset and stopped with it),
/// the stream refused with WT_SESSION_GONE (§6); the connection and a neighbour session
/// are unaffected. A stream for no established session is refused as before, with
/// WT_BUFFERED_STREAM_REJECTED, harming nobody.
async fn stream_beyond_our_limit(bidi: bool) {
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control(&wt15_settings(true)).await;
    let (ss, mut send, mut recv) = raw.session_h3(&server, "/victim").await;
    let (other, _o1, _o2) = raw.session_h3(&server, "/neighbour").await;

    let open = |session_id: u64| {
        let mut bytes = if bidi {
            vi(frame::WEBTRANSPORT_STREAM)
        } else {
            vi(stream_type::WEBTRANSPORT)
        };
        bytes.extend(vi(session_id));
        bytes.extend_from_slice(b"stream data");
        bytes
    };
    // No session 400: not over any limit of ours, just unknown.
    let refused = if bidi {
        let (mut s, mut r) = raw.bidi(&open(400)).await;
        assert_code(expect_reset(&mut r).await, WT_BUFFERED_STREAM_REJECTED);
        expect_stopped(&mut s).await
    } else {
        expect_stopped(raw.uni(&open(400)).await).await
    };
    assert_code(refused, WT_BUFFERED_STREAM_REJECTED);
    assert!(ss.close_reason().is_none());

    let refused = if bidi {
        let (mut s, mut r) = raw.bidi(&open(ss.id())).await;
        assert_code(expect_reset(&mut r).await, WT_SESSION_GONE);
        expect_stopped(&mut s).await
    } else {
        expect_stopped(raw.uni(&open(ss.id())).await).await
    };
    assert_code(refused, WT_SESSION_GONE);
    match within(ss.closed()).await {
        CloseReason::Protocol { code, reason } => {
            assert_code(code, WT_FLOW_CONTROL_ERROR);
            eprintln!("session closed: {reason}");
        }
        other => panic!("session closed with {other:?}, want WT_FLOW_CONTROL_ERROR"),
    }
    assert_code(expect_reset(&mut recv).await, WT_FLOW_CONTROL_ERROR);
    assert_code(expect_stopped(&mut send).await, WT_FLOW_CONTROL_ERROR);
    raw.assert_open();
    assert!(other.close_reason().is_none());
    datagrams_flow(&raw, &other, b"neighbour").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uni_stream_beyond_our_limit_is_flow_control_error() {
    stream_beyond_our_limit(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_stream_beyond_our_limit_is_flow_control_error() {
    stream_beyond_our_limit(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_without_flow_control_is_only_refused() {
    // Without flow control there is no stream limit to break: a WebTransport stream of
    // an established session is refused (we take none), the session stays.
    let server = server();
    let mut raw = RawClient::connect(&server).await;
    raw.control(&wt15_settings(false)).await;
    let (ss, _send, _recv) = raw.session_h3(&server, "/kept").await;
    let mut bytes = vi(stream_type::WEBTRANSPORT);
    bytes.extend(vi(ss.id()));
    bytes.extend_from_slice(b"data");
    assert_code(
        expect_stopped(raw.uni(&bytes).await).await,
        WT_BUFFERED_STREAM_REJECTED,
    );
    let mut bytes = vi(frame::WEBTRANSPORT_STREAM);
    bytes.extend(vi(ss.id()));
    let (mut s, mut r) = raw.bidi(&bytes).await;
    assert_code(expect_reset(&mut r).await, WT_BUFFERED_STREAM_REJECTED);
    assert_code(expect_stopped(&mut s).await, WT_BUFFERED_STREAM_REJECTED);
    datagrams_flow(&raw, &ss, b"still here").await;
    assert!(ss.close_reason().is_none());
    raw.assert_open();
}

// Client role ------------------------------------------------------------------------

/// What a draft-15 server without flow control announces (webtransport-go 0.13 with its
/// default config: WT_ENABLED, no WT_INITIAL_MAX_*).
fn wt15_server_settings(fc: bool) -> Vec<u8> {
    let mut pairs = vec![
        (settings::ENABLE_CONNECT_PROTOCOL, 1),
        (settings::H3_DATAGRAM, 1),
        (settings::WT_ENABLED, 1),
    ];
    if fc {
        pairs.push((settings::WT_INITIAL_MAX_DATA, 4096));
    }
    settings_frame(&pairs)
}

/// Accept the next CONNECT on a raw server connection and answer 200; its streams and
/// `:path`.
async fn answer_connect(conn: &quinn::Connection) -> (SendStream, RecvStream, String) {
    let (mut send, mut recv) = conn.accept_bi().await.expect("CONNECT stream");
    let req = read_headers(&mut recv).await.expect("request HEADERS");
    let path = req
        .iter()
        .find(|(n, _)| n == ":path")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    send.write_all(&headers_frame(&[(":status", "200")]))
        .await
        .expect("write response");
    (send, recv, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_opens_one_draft15_session_at_a_time_without_flow_control() {
    // §5.1: without flow control a client MUST NOT attempt more than one simultaneous
    // session. Ours fails a second one at once (InvalidState) without opening a stream,
    // and a new one after a close waits until the server has ended the old one.
    let endpoint = raw_server_endpoint();
    let addr = endpoint.local_addr().unwrap();
    let task = spawn_raw_server(endpoint, wt15_server_settings(false), |conn| async move {
        let (mut s0, mut r0, p0) = answer_connect(&conn).await;
        // The first session's close: capsule, then FIN.
        let rest = within(r0.read_to_end(1 << 16))
            .await
            .expect("CONNECT 0 to FIN");
        // While we have not ended our side, no new CONNECT may come.
        let early = tokio::select! {
            biased;
            s = conn.accept_bi() => Some(s.expect("stream").0.id()),
            _ = tokio::time::sleep(Duration::from_millis(300)) => None,
        };
        assert_eq!(
            early, None,
            "a new CONNECT came before the old session ended"
        );
        s0.finish().expect("FIN");
        let (s1, r1, p1) = answer_connect(&conn).await;
        let id1 = VarInt::from(s1.id()).into_inner();
        (vec![p0, p1], id1, rest, (s0, s1, r1))
    });
    let client = our_client();
    let conn = within(client.connect(&raw_url(addr, "/")))
        .await
        .expect("connect");
    assert_eq!(conn.peer_dialect(), Some(settings::Dialect::Draft15));
    let first = within(conn.open_session("/first", &[]))
        .await
        .expect("first session");
    match within(conn.open_session("/second", &[])).await {
        Err(wtdatagram::Error::InvalidState(msg)) => {
            assert!(msg.contains("flow control"), "{msg}");
        }
        other => panic!("second session: {other:?}, want InvalidState"),
    }
    assert!(
        first.close_reason().is_none(),
        "the first session is unharmed"
    );
    assert_eq!(conn.session_count(), 1);
    first.close(7, "make room");
    let third = within(conn.open_session("/third", &[]))
        .await
        .expect("a session after the first one ended");
    // Client bidirectional stream ids go 0, 4, 8: "/second" opened none.
    assert_eq!(third.id(), 4);
    let ((paths, id1, rest, _streams), _) = {
        drop(third);
        drop(first);
        drop(conn);
        within(task).await.expect("raw server task")
    };
    assert_eq!(paths, ["/first", "/third"]);
    assert_eq!(id1, 4);
    assert_eq!(
        rest,
        Capsule::Close {
            code: 7,
            reason: "make room".into()
        }
        .encode_in_data_frame()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_shares_a_connection_unless_draft15_without_flow_control() {
    // A draft-15 server with flow control, and a draft-02 server without (aioquic,
    // Chromium's peers), both take two sessions at once from our client.
    for control in [
        wt15_server_settings(true),
        settings_frame(&[
            (settings::H3_DATAGRAM, 1),
            (settings::ENABLE_WEBTRANSPORT, 1),
        ]),
    ] {
        let endpoint = raw_server_endpoint();
        let addr = endpoint.local_addr().unwrap();
        let task = spawn_raw_server(endpoint, control, |conn| async move {
            let a = answer_connect(&conn).await;
            let b = answer_connect(&conn).await;
            (a.2.clone(), b.2.clone(), a, b)
        });
        let client = our_client();
        let conn = within(client.connect(&raw_url(addr, "/")))
            .await
            .expect("connect");
        let (s1, s2) = tokio::join!(
            within(conn.open_session("/x", &[])),
            within(conn.open_session("/y", &[]))
        );
        let (s1, s2) = (s1.expect("session x"), s2.expect("session y"));
        assert_eq!(conn.session_count(), 2);
        let mut ids = [s1.id(), s2.id()];
        ids.sort();
        assert_eq!(ids, [0, 4]);
        drop((s1, s2, conn));
        let ((p1, p2, _a, _b), _) = within(task).await.expect("raw server task");
        let mut paths = [p1, p2];
        paths.sort();
        assert_eq!(paths, ["/x", "/y"]);
    }
}

/// A raw draft-15 server with flow control opens a WebTransport stream in our client's
/// session: the limit we announced is 0, so the session is closed with
/// WT_FLOW_CONTROL_ERROR and the stream refused with WT_SESSION_GONE.
async fn server_stream_beyond_our_limit(bidi: bool) {
    let endpoint = raw_server_endpoint();
    let addr = endpoint.local_addr().unwrap();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<(u64, u64, u64)>();
    let task = spawn_raw_server(
        endpoint,
        wt15_server_settings(true),
        move |conn| async move {
            let (mut s0, mut r0, _) = answer_connect(&conn).await;
            go_rx.await.expect("go");
            let mut bytes = vi(if bidi {
                frame::WEBTRANSPORT_STREAM
            } else {
                stream_type::WEBTRANSPORT
            });
            bytes.extend(vi(0));
            bytes.extend_from_slice(b"stream data");
            let stream_code = if bidi {
                let (mut s, mut r) = conn.open_bi().await.expect("open bidi");
                s.write_all(&bytes).await.expect("write");
                assert_code(expect_reset(&mut r).await, WT_SESSION_GONE);
                expect_stopped(&mut s).await
            } else {
                let mut s = conn.open_uni().await.expect("open uni");
                s.write_all(&bytes).await.expect("write");
                expect_stopped(&mut s).await
            };
            let reset = expect_reset(&mut r0).await;
            let stopped = expect_stopped(&mut s0).await;
            let _ = done_tx.send((stream_code, reset, stopped));
        },
    );
    let client = our_client();
    let conn = within(client.connect(&raw_url(addr, "/")))
        .await
        .expect("connect");
    let s = within(conn.open_session("/streams", &[]))
        .await
        .expect("session");
    go_tx.send(()).expect("raw server waiting");
    match within(s.closed()).await {
        CloseReason::Protocol { code, .. } => assert_code(code, WT_FLOW_CONTROL_ERROR),
        other => panic!("session closed with {other:?}, want WT_FLOW_CONTROL_ERROR"),
    }
    // The connection stays up until the raw server has seen everything.
    let (stream_code, reset, stopped) = within(done_rx).await.expect("raw server results");
    assert!(!conn.is_closed(), "only the session ends");
    drop((s, conn));
    within(task).await.expect("raw server task");
    assert_code(stream_code, WT_SESSION_GONE);
    assert_code(reset, WT_FLOW_CONTROL_ERROR);
    assert_code(stopped, WT_FLOW_CONTROL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_closes_session_on_server_uni_stream_beyond_limit() {
    server_stream_beyond_our_limit(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_closes_session_on_server_bidi_stream_beyond_limit() {
    server_stream_beyond_our_limit(true).await;
}
