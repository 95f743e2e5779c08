#!/usr/bin/env python3
"""An independent WebTransport peer on aioquic, for tests/interop_aioquic.rs.

Modes:
  server  listen on 127.0.0.1, accept WebTransport sessions, echo every datagram on the
          session it came on, print `CLOSED <code> <reason>` when a session's CONNECT
          stream carries CLOSE_WEBTRANSPORT_SESSION, and exit 0 after --sessions closes.
  client  open --sessions sessions on one connection (print `OPEN <n>`), with --wait-go
          read `GO <max>` from stdin, then on every session at once send --count
          datagrams (sizes 1..max) in windows, check every echo, print
          `RESULT ok <sent> <received> sessions <n> max <max>` or `RESULT fail <why>`,
          then close session k with code 7 "bye from aioquic k" (capsule in a DATA frame
          + FIN).

Dialects:
  draft02  aioquic as published: SETTINGS ENABLE_WEBTRANSPORT (0x2b603742); the client
           sends `:protocol webtransport` + `sec-webtransport-http3-draft02: 1`; the
           server accepts `:protocol webtransport`.
  draft15  SETTINGS also carry WT_ENABLED (0x2c7cf000) = 1 and declare draft-15 flow
           control as a datagram-only endpoint does (WT_INITIAL_MAX_DATA 0x2b61 = 1,
           WT_INITIAL_MAX_STREAMS_UNI/_BIDI 0x2b64/0x2b65 = 0: no stream accepted), which
           draft-ietf-webtrans-http3-15 §5.1 requires for several sessions on one
           connection (without it a client opens one at a time and a server resets a
           second CONNECT with H3_REQUEST_REJECTED); the peer opens no stream, so it has
           no limit of ours to keep. The client sends `:protocol webtransport-h3`; the
           server answers 400 to anything else and to clients whose SETTINGS lack
           WT_ENABLED.

Protocol lines go to stdout (flushed); diagnostics go to stderr. Every wait is bounded.
"""

import argparse
import asyncio
import socket
import ssl
import struct
import sys
from collections import Counter
from urllib.parse import urlparse

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.buffer import Buffer, BufferReadError, encode_uint_var
from aioquic.h3.connection import H3_ALPN, ErrorCode, H3Connection
from aioquic.h3.events import (
    DataReceived,
    DatagramReceived,
    H3Event,
    HeadersReceived,
)
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    QuicEvent,
    StopSendingReceived,
    StreamReset,
)

WT_ENABLED = 0x2C7CF000
WT_INITIAL_MAX_DATA = 0x2B61
WT_INITIAL_MAX_STREAMS_UNI = 0x2B64
WT_INITIAL_MAX_STREAMS_BIDI = 0x2B65
ENABLE_WEBTRANSPORT = 0x2B603742
CLOSE_WEBTRANSPORT_SESSION = 0x2843
DRAIN_WEBTRANSPORT_SESSION = 0x78AE
DATA_FRAME = 0x0

# quinn accepts UDP payloads up to 1472 bytes and discovers a path MTU up to 1452: with
# aioquic's default of 1200 it could not echo the largest datagrams quinn may send.
MAX_UDP_PAYLOAD = 1472


def enlarge_buffers(transport) -> None:
    """4 MiB UDP socket buffers, as our library sets them. With the default (~208 KiB) the
    kernel drops datagrams when three sessions have 50 echoes of ~1.4 KB each in flight
    (each queued packet costs about twice its size in the socket's accounting)."""
    sock = transport.get_extra_info("socket")
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):
        # SO_RCVBUFFORCE / SO_SNDBUFFORCE (33 / 32) pass net.core.*mem_max when root.
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, 4 << 20)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, 4 << 20)


def out(line: str) -> None:
    print(line, flush=True)


def log(line: str) -> None:
    print(f"[aioquic_peer] {line}", file=sys.stderr, flush=True)


class H3Draft15(H3Connection):
    """aioquic's H3Connection that also announces WT_ENABLED (draft-15) and datagram-only
    draft-15 flow control (see the module docstring)."""

    def _get_local_settings(self) -> dict:
        settings = super()._get_local_settings()
        settings[WT_ENABLED] = 1
        settings[WT_INITIAL_MAX_DATA] = 1
        settings[WT_INITIAL_MAX_STREAMS_UNI] = 0
        settings[WT_INITIAL_MAX_STREAMS_BIDI] = 0
        return settings


def make_h3(quic, dialect: str) -> H3Connection:
    cls = H3Draft15 if dialect == "draft15" else H3Connection
    return cls(quic, enable_webtransport=True)


def close_capsule(code: int, reason: str) -> bytes:
    payload = struct.pack(">I", code) + reason.encode("utf-8")
    return (
        encode_uint_var(CLOSE_WEBTRANSPORT_SESSION)
        + encode_uint_var(len(payload))
        + payload
    )


class CapsuleParser:
    """Capsules (RFC 9297) from the data of a CONNECT stream."""

    def __init__(self) -> None:
        self.buf = b""

    def push(self, data: bytes):
        self.buf += data
        while True:
            b = Buffer(data=self.buf)
            try:
                ctype = b.pull_uint_var()
                length = b.pull_uint_var()
                value = b.pull_bytes(length)
            except BufferReadError:
                return
            self.buf = self.buf[b.tell() :]
            yield ctype, value


def headers_dict(headers) -> dict:
    d = {}
    for k, v in headers:
        d.setdefault(k.decode("latin-1"), v.decode("latin-1"))
    return d


# ----------------------------------------------------------------------------- server


class ServerProtocol(QuicConnectionProtocol):
    dialect = "draft02"
    done: asyncio.Future = None  # set by run_server: every expected session closed
    expect_closes = 1
    closes: list = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = None
        self.sessions = {}  # open session stream id -> CapsuleParser
        self.known = set()  # every session stream id, for diagnostics

    def quic_event_received(self, event: QuicEvent) -> None:
        if self.h3 is None:
            self.h3 = make_h3(self._quic, self.dialect)
        if isinstance(event, ConnectionTerminated):
            log(
                f"server: connection terminated code={event.error_code:#x} "
                f"reason={event.reason_phrase!r}"
            )
        if isinstance(event, StreamReset) and event.stream_id in self.known:
            log(f"server: CONNECT stream {event.stream_id} reset code={event.error_code:#x}")
        if isinstance(event, StopSendingReceived) and event.stream_id in self.known:
            log(
                f"server: STOP_SENDING on CONNECT stream {event.stream_id} "
                f"code={event.error_code:#x}"
            )
        for h3_event in self.h3.handle_event(event):
            self.h3_event_received(h3_event)

    def respond(self, stream_id: int, status: int, end: bool, extra=()) -> None:
        headers = [(b":status", str(status).encode())] + list(extra)
        self.h3.send_headers(stream_id, headers, end_stream=end)
        self.transmit()

    def h3_event_received(self, ev: H3Event) -> None:
        if isinstance(ev, HeadersReceived):
            h = headers_dict(ev.headers)
            log(f"server: request on stream {ev.stream_id}: {h}")
            log(f"server: peer SETTINGS {self.peer_settings()}")
            want = "webtransport-h3" if self.dialect == "draft15" else "webtransport"
            if h.get(":method") != "CONNECT" or h.get(":protocol") != want:
                log(f"server: answering 400 (want :protocol {want})")
                self.respond(ev.stream_id, 400, True)
                return
            settings = self.h3.received_settings or {}
            if self.dialect == "draft15" and settings.get(WT_ENABLED) != 1:
                log("server: answering 400 (client SETTINGS lack WT_ENABLED=1)")
                self.respond(ev.stream_id, 400, True)
                return
            extra = []
            if self.dialect == "draft02" and "sec-webtransport-http3-draft02" in h:
                extra.append((b"sec-webtransport-http3-draft", b"draft02"))
            self.sessions[ev.stream_id] = CapsuleParser()
            self.known.add(ev.stream_id)
            self.respond(ev.stream_id, 200, False, extra)
            if ev.stream_ended:
                self.on_session_end(ev.stream_id, None)
        elif isinstance(ev, DatagramReceived):
            if ev.stream_id in self.sessions:
                self.h3.send_datagram(ev.stream_id, ev.data)
                self.transmit()
            else:
                log(f"server: datagram for unknown session {ev.stream_id}")
        elif isinstance(ev, DataReceived):
            parser = self.sessions.get(ev.stream_id)
            if parser is None:
                return
            for ctype, value in parser.push(ev.data):
                if ctype == CLOSE_WEBTRANSPORT_SESSION:
                    if len(value) < 4:
                        log("server: malformed CLOSE capsule")
                        continue
                    code = struct.unpack(">I", value[:4])[0]
                    reason = value[4:].decode("utf-8", "replace")
                    self.on_session_end(ev.stream_id, (code, reason))
                    return
                log(f"server: capsule {ctype:#x} ({len(value)} bytes)")
            if ev.stream_ended:
                self.on_session_end(ev.stream_id, None)

    def peer_settings(self) -> dict:
        return {hex(k): v for k, v in (self.h3.received_settings or {}).items()}

    def on_session_end(self, stream_id: int, close) -> None:
        self.sessions.pop(stream_id, None)
        if close is None:
            log(f"server: session {stream_id} ended by FIN without CLOSE capsule")
            out("CLOSED-FIN")
        else:
            out(f"CLOSED {close[0]} {close[1]}")
        # End our side of the CONNECT stream too, as the session is over.
        try:
            self.h3.send_data(stream_id, b"", end_stream=True)
            self.transmit()
        except Exception as e:  # noqa: BLE001 - diagnostics only
            log(f"server: could not FIN stream {stream_id}: {e}")
        type(self).closes.append(close)
        if (
            self.done is not None
            and not self.done.done()
            and len(type(self).closes) >= type(self).expect_closes
        ):
            self.done.set_result(list(type(self).closes))


async def run_server(args) -> int:
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN,
        max_datagram_frame_size=65536,
        max_datagram_size=MAX_UDP_PAYLOAD,
        idle_timeout=30.0,
    )
    config.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    class P(ServerProtocol):
        pass

    P.dialect = args.dialect
    P.done = done
    P.expect_closes = args.sessions
    P.closes = []
    server = await serve(
        "127.0.0.1", args.port, configuration=config, create_protocol=P
    )
    enlarge_buffers(server._transport)
    port = server._transport.get_extra_info("sockname")[1]
    log(f"server: {args.dialect} listening on 127.0.0.1:{port}")
    out(f"READY {port}")
    try:
        closes = await asyncio.wait_for(done, args.timeout)
    except asyncio.TimeoutError:
        out("TIMEOUT no session close")
        return 2
    # Let the ACKs and our FIN go out before the socket closes.
    await asyncio.sleep(0.2)
    server.close()
    return 0 if all(c is not None for c in closes) else 3


# ----------------------------------------------------------------------------- client


class ClientSession:
    """One WebTransport session of the client: its CONNECT stream and what arrived on it."""

    def __init__(self, loop) -> None:
        self.response = loop.create_future()
        self.peer_fin = loop.create_future()
        self.datagrams: asyncio.Queue = asyncio.Queue()
        self.parser = CapsuleParser()
        self.peer_close = None


class ClientProtocol(QuicConnectionProtocol):
    dialect = "draft02"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = make_h3(self._quic, self.dialect)
        self.sessions = {}  # CONNECT stream id -> ClientSession
        self.settings = asyncio.get_running_loop().create_future()

    def open(self) -> int:
        sid = self._quic.get_next_available_stream_id()
        self.sessions[sid] = ClientSession(asyncio.get_running_loop())
        return sid

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            log(
                f"client: connection terminated code={event.error_code:#x} "
                f"reason={event.reason_phrase!r}"
            )
            futures = [self.settings]
            for s in self.sessions.values():
                futures += [s.response, s.peer_fin]
            for f in futures:
                if not f.done():
                    f.set_exception(ConnectionError(f"connection terminated: {event}"))
        if isinstance(event, StopSendingReceived) and event.stream_id in self.sessions:
            log(f"client: STOP_SENDING on CONNECT stream code={event.error_code:#x}")
        if isinstance(event, StreamReset) and event.stream_id in self.sessions:
            log(f"client: CONNECT stream reset code={event.error_code:#x}")
            fin = self.sessions[event.stream_id].peer_fin
            if not fin.done():
                fin.set_result("reset")
        for h3_event in self.h3.handle_event(event):
            self.h3_event_received(h3_event)
        if self.h3.received_settings is not None and not self.settings.done():
            self.settings.set_result(dict(self.h3.received_settings))

    def h3_event_received(self, ev: H3Event) -> None:
        s = self.sessions.get(ev.stream_id)
        if s is None:
            log(f"client: event on unexpected stream: {ev}")
            return
        if isinstance(ev, HeadersReceived):
            if not s.response.done():
                s.response.set_result(headers_dict(ev.headers))
        elif isinstance(ev, DatagramReceived):
            s.datagrams.put_nowait(ev.data)
        elif isinstance(ev, DataReceived):
            for ctype, value in s.parser.push(ev.data):
                if ctype == CLOSE_WEBTRANSPORT_SESSION:
                    s.peer_close = value
                    log(f"client: peer sent CLOSE capsule {value!r}")
                else:
                    log(f"client: capsule {ctype:#x} ({len(value)} bytes)")
            if ev.stream_ended and not s.peer_fin.done():
                s.peer_fin.set_result("fin")


def payload(i: int, size: int, k: int = 0) -> bytes:
    """Datagram i of session k: the index (big-endian, cut to size) then a pattern derived
    from i and k, so an echo routed to the wrong session does not match."""
    head = struct.pack(">I", i)
    if size <= 4:
        return head[-size:]
    body = bytes((i * 31 + j + 17 * k) % 251 for j in range(size - 4))
    return head + body


def size_of(i: int, max_size: int) -> int:
    if i == 0:
        return 1
    if i == 1:
        return max_size
    return 1 + (i * 97) % max_size


async def exchange(proto: ClientProtocol, sid: int, k: int, args, max_size: int) -> str:
    s = proto.sessions[sid]
    sent = received = 0
    for start in range(0, args.count, args.window):
        expected = Counter()
        for i in range(start, min(start + args.window, args.count)):
            d = payload(i, size_of(i, max_size), k)
            expected[d] += 1
            proto.h3.send_datagram(sid, d)
            sent += 1
        proto.transmit()
        outstanding = sum(expected.values())
        while outstanding:
            try:
                d = await asyncio.wait_for(s.datagrams.get(), args.echo_timeout)
            except asyncio.TimeoutError:
                return (
                    f"fail lost: session {k} window at {start}: {outstanding} echoes "
                    f"missing after {args.echo_timeout}s (sent {sent}, received {received})"
                )
            if expected[d] <= 0:
                idx = struct.unpack(">I", d[:4])[0] if len(d) >= 4 else None
                return (
                    f"fail content: session {k}: unexpected echo of {len(d)} bytes "
                    f"(index {idx}) in window at {start}"
                )
            expected[d] -= 1
            outstanding -= 1
            received += 1
    return f"ok {sent} {received}"


async def read_go() -> int:
    """Wait for `GO <max size>` on stdin: the test says when our side's path MTU settled."""
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    parts = line.split()
    if len(parts) != 2 or parts[0] != "GO":
        raise ValueError(f"expected 'GO <max>' on stdin, got {line!r}")
    return int(parts[1])


async def run_client(args) -> int:
    url = urlparse(args.url)
    host, port = url.hostname, url.port or 443
    authority = url.netloc
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        verify_mode=ssl.CERT_NONE,
        server_name="localhost",
        max_datagram_frame_size=65536,
        max_datagram_size=MAX_UDP_PAYLOAD,
        idle_timeout=30.0,
    )

    class P(ClientProtocol):
        pass

    P.dialect = args.dialect
    async with connect(host, port, configuration=config, create_protocol=P) as proto:
        enlarge_buffers(proto._transport)
        settings = await asyncio.wait_for(proto.settings, 5)
        log(f"client: server SETTINGS {{{', '.join(f'{k:#x}: {v}' for k, v in settings.items())}}}")
        if args.dialect == "draft15" and settings.get(WT_ENABLED) != 1:
            out("RESULT fail server SETTINGS lack WT_ENABLED=1")
            return 1
        if settings.get(ENABLE_WEBTRANSPORT) != 1 and settings.get(WT_ENABLED) != 1:
            out("RESULT fail server SETTINGS announce no WebTransport")
            return 1
        # Several sessions on this one connection, each its own CONNECT stream.
        sids = []
        for k in range(args.sessions):
            sid = proto.open()
            sids.append(sid)
            headers = [
                (b":method", b"CONNECT"),
                (b":scheme", b"https"),
                (b":authority", authority.encode()),
                (b":path", f"{path}{'&' if '?' in path else '?'}session={k}".encode()),
            ]
            if args.dialect == "draft15":
                headers.append((b":protocol", b"webtransport-h3"))
            else:
                headers.append((b":protocol", b"webtransport"))
                headers.append((b"sec-webtransport-http3-draft02", b"1"))
            headers.append((b"origin", b"https://aioquic.test"))
            proto.h3.send_headers(sid, headers, end_stream=False)
        proto.transmit()
        for k, sid in enumerate(sids):
            resp = await asyncio.wait_for(proto.sessions[sid].response, 5)
            log(f"client: session {k} response {resp}")
            if resp.get(":status") != "200":
                out(f"RESULT fail session {k} status {resp.get(':status')}")
                return 1
        out(f"OPEN {len(sids)}")
        max_size = await read_go() if args.wait_go else args.max_size
        # All sessions at once, so datagrams of different sessions interleave on the wire.
        results = await asyncio.gather(
            *(exchange(proto, sid, k, args, max_size) for k, sid in enumerate(sids))
        )
        # Nothing extra may arrive (e.g. duplicates).
        await asyncio.sleep(0.05)
        extra = sum(proto.sessions[sid].datagrams.qsize() for sid in sids)
        fails = [r for r in results if not r.startswith("ok")]
        if fails:
            result = fails[0]
        elif extra:
            result = f"fail extra: {extra} unexpected datagrams after the run"
        else:
            sent = sum(int(r.split()[1]) for r in results)
            received = sum(int(r.split()[2]) for r in results)
            result = f"ok {sent} {received} sessions {len(sids)} max {max_size}"
        out(f"RESULT {result}")
        # Close each session: CLOSE_WEBTRANSPORT_SESSION in a DATA frame, then FIN.
        for k, sid in enumerate(sids):
            proto.h3.send_data(sid, close_capsule(7, f"bye from aioquic {k}"), end_stream=True)
        proto.transmit()
        for sid in sids:
            try:
                how = await asyncio.wait_for(asyncio.shield(proto.sessions[sid].peer_fin), 5)
                log(f"client: server ended CONNECT stream {sid} ({how})")
            except asyncio.TimeoutError:
                log(f"client: server did not end CONNECT stream {sid} within 5 s")
        proto.close(error_code=ErrorCode.H3_NO_ERROR, reason_phrase="done")
        await asyncio.wait_for(proto.wait_closed(), 5)
    return 0 if result.startswith("ok") else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--dialect", choices=["draft02", "draft15"], required=True)
    ap.add_argument("--cert", help="server: PEM certificate file")
    ap.add_argument("--key", help="server: PEM private key file")
    ap.add_argument("--port", type=int, default=0, help="server: UDP port (0: any)")
    ap.add_argument("--url", help="client: https://host:port/path")
    ap.add_argument("--count", type=int, default=1000, help="client: datagrams per session")
    ap.add_argument("--max-size", type=int, default=1100, help="client: largest payload")
    ap.add_argument("--window", type=int, default=50, help="client: datagrams in flight")
    ap.add_argument("--sessions", type=int, default=1, help="client: sessions on the connection; server: closes to wait for")
    ap.add_argument("--wait-go", action="store_true", help="client: after OPEN, read 'GO <max size>' from stdin")
    ap.add_argument("--echo-timeout", type=float, default=3.0)
    ap.add_argument("--timeout", type=float, default=25.0, help="whole run, seconds")
    args = ap.parse_args()
    if args.mode == "server":
        if not (args.cert and args.key):
            ap.error("server mode needs --cert and --key")
        coro = run_server(args)
    else:
        if not args.url:
            ap.error("client mode needs --url")
        if args.max_size < 1 or args.count < 2:
            ap.error("--max-size must be >= 1 and --count >= 2")
        coro = run_client(args)

    async def bounded():
        return await asyncio.wait_for(coro, args.timeout)

    try:
        return asyncio.run(bounded())
    except asyncio.TimeoutError:
        out(f"RESULT fail timeout after {args.timeout}s" if args.mode == "client" else "TIMEOUT")
        return 2
    except Exception as e:  # noqa: BLE001 - report, never hang
        log(f"{args.mode}: error {type(e).__name__}: {e}")
        if args.mode == "client":
            out(f"RESULT fail {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
