#!/usr/bin/env python3
"""An independent WebTransport peer on pywebtransport 0.21, for tests/interop_pywebtransport.rs
and the benchmarks. Runs with Python >= 3.12 (scripts/run-in-trixie.sh).

Start:
  server [--port N]   listen on 127.0.0.1 with a certificate pywebtransport generates;
                      prints `READY <port> <sha256 of the certificate DER, hex>`, then
                      `SESSION <idx> <session_id> <path>` for every session it accepts.
  client --url URL    open a session (certificate not verified); prints
                      `SESSION 0 <session_id> <path>` or `FATAL <why>` (exit 1).

Then commands, one per stdin line. Each command is answered by exactly one line that
starts with `OK <command>` or `ERR <command> <why>`; `<s>` is a session index from a
SESSION line. Lines that may come at any time:
  CLOSED <s> <code> <reason>      a session ended (code and reason as pywebtransport reports)
  CONN-CLOSED <code> <reason>     the (client's) connection ended

  info <s>                        -> OK info <s> max=<largest datagram payload> frame=<peer
                                     max datagram frame size> protocol=<wt_protocol|->
                                     fc=<1 if draft-15 flow control is on for the session,
                                     else 0> peer_fc=<the peer's SETTINGS_WT_INITIAL_MAX_DATA>/
                                     <_STREAMS_UNI>/<_STREAMS_BIDI as pywebtransport read them>
  open <path>                     client: one more session on the same connection
                                  -> OK open <idx> <session_id> | ERR open <why>
  stream <s> uni|bidi             try to open a WebTransport stream (waits at most
                                  STREAM_WAIT s) -> OK stream <s> <kind> blocked <error> when
                                  pywebtransport holds it back (flow control: no credit) |
                                  ERR stream <s> <kind> opened <stream_id> | ERR stream ... <error>
  recv <s> <count> <max> <window> check `count` datagrams coming in windows (see payload(),
                                  which tags every datagram with the session index <s>):
                                  answers OK, then prints `PROGRESS <s> <n>` whenever a
                                  window is complete and finally
                                  `RECVD <s> ok <n> <bytes> <smallest> <largest>` or
                                  `RECVD <s> fail <why>`
  send <s> <count> <max> <window> send `count` datagrams in windows; after each window wait
                                  for a `next <s>` line; max 0 means pywebtransport's own
                                  limit; answers `OK send <s> max=<m>`, then finally
                                  `SENT <s> ok <n> <bytes> <smallest> <largest>` or
                                  `SENT <s> fail <why>`
  close <s> <code> <reason...>    close the session with an application code and reason
  oversize <s>                    try to send one byte more than the limit
                                  -> OK oversize <s> rejected <error> | ERR oversize <s> sent
  quit                            close everything, print BYE, exit 0 (so does end of input)

Throughput helpers for the benchmarks (no window, no checks beyond counting):
  blast <s> <count> <size> [inflight]
                                  send `count` datagrams of `size` bytes (u32 BE sequence
                                  number then zeros) as fast as the API allows, with up to
                                  `inflight` send calls outstanding (default 1); answers when
                                  done: `OK blast <s> sent=<n> errors=<e> seconds=<t> rate=<dg/s>`
  sink <s> <count> <idle>         count datagrams until `count` arrived or none came for
                                  `idle` seconds; answers `OK sink <s> started` at once, then
                                  `SINK <s> received=<n> bytes=<b> seconds=<first..last>
                                  rate=<dg/s> distinct=<distinct sequence numbers>`
  echo <s>                        send every datagram back until the session ends or `stop`
  stop <s>                        end the sink/echo/recv running on the session

Diagnostics go to stderr. Every wait is bounded.
"""

import argparse
import asyncio
import hashlib
import logging
import os
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import time
from collections import Counter
from urllib.parse import urlparse

from pywebtransport import (
    ClientConfig,
    ServerConfig,
    WebTransportClient,
    WebTransportServer,
    __version__,
)
from pywebtransport.utils import generate_self_signed_cert
from pywebtransport.types import EventType

# Datagrams a session keeps before the application reads them (pywebtransport's default is
# 100); the windows below stay well under it.
MAX_PENDING = 4096
WAIT = 5.0  # seconds: a window's datagram, a `next`, a command
# How long `stream` lets pywebtransport try to open a stream the peer gave no credit for
# (pywebtransport's stream_create_timeout; its default is 10 s).
STREAM_WAIT = 1.0


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def log(line: str) -> None:
    print(f"[pywebtransport_peer] {line}", file=sys.stderr, flush=True)


def payload(s: int, i: int, size: int) -> bytes:
    """Datagram i of session index s: (s << 24 | i) big-endian, cut to size, then a pattern
    derived from i and s (a datagram delivered to the wrong session does not match)."""
    head = struct.pack(">I", (s << 24) | i)
    if size <= 4:
        return head[-size:]
    return head + bytes((i * 31 + s * 101 + k) % 251 for k in range(size - 4))


def size_of(i: int, max_size: int, window: int) -> int:
    """Size of datagram i: each window starts with one of the (live) maximum, then 1 byte."""
    if i % window == 0:
        return max_size
    if i % window == 1:
        return 1
    return 1 + (i * 97) % max_size


def varint_len(v: int) -> int:
    return 1 if v < 64 else 2 if v < 16384 else 4 if v < 2**30 else 8


class Peer:
    def __init__(self, role: str) -> None:
        self.role = role
        self.sessions = []  # index -> WebTransportSession
        self.tasks = {}  # index -> reader task (recv/sink/echo)
        self.next_lines = {}  # index -> asyncio.Queue of `next` lines
        self.done = asyncio.Event()
        self.client = None
        self.authority = None

    # ------------------------------------------------------------------ sessions

    def add_session(self, session) -> int:
        idx = len(self.sessions)
        self.sessions.append(session)
        self.next_lines[idx] = asyncio.Queue()

        async def on_closed(event) -> None:
            data = event.data or {}
            code = data.get("error_code")
            reason = data.get("reason") or ""
            log(f"session {idx} closed: {({k: v for k, v in data.items() if k not in ('connection', 'session')})}")
            out(f"CLOSED {idx} {code if code is not None else '-'} {reason}")

        session.events.on(event_type=EventType.SESSION_CLOSED, handler=on_closed)
        return idx

    async def max_payload(self, idx: int) -> tuple:
        session = self.sessions[idx]
        diag = await session.connection.diagnose()
        frame = diag.peer_max_datagram_frame_size or 0
        return frame - varint_len(session.session_id // 4), frame

    # ------------------------------------------------------------------ commands

    async def command(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        cmd, args = words[0], words[1:]
        try:
            if cmd == "next":
                self.next_lines[int(args[0])].put_nowait(line)
                return
            handler = getattr(self, "cmd_" + cmd, None)
            if handler is None:
                out(f"ERR {cmd} unknown command")
                return
            if cmd == "close":
                await handler(line.split(None, 3)[1:])
            else:
                await handler(args)
        except (IndexError, ValueError) as e:
            out(f"ERR {cmd} bad arguments: {e}")
        except Exception as e:  # noqa: BLE001 - a command failing must not end the peer
            log(f"{cmd}: {type(e).__name__}: {e}")
            out(f"ERR {cmd} {type(e).__name__}: {e}")

    def session(self, arg: str):
        idx = int(arg)
        if not 0 <= idx < len(self.sessions):
            raise ValueError(f"no session {idx}")
        return idx, self.sessions[idx]

    def start_reader(self, idx: int, coro) -> bool:
        task = self.tasks.get(idx)
        if task is not None and not task.done():
            coro.close()
            return False
        self.tasks[idx] = asyncio.create_task(coro)
        return True

    async def cmd_info(self, args) -> None:
        idx, s = self.session(args[0])
        max_payload, frame = await self.max_payload(idx)
        sdiag = await s.diagnose()
        cdiag = await s.connection.diagnose()
        peer_fc = f"{cdiag.peer_initial_max_data}/{cdiag.peer_initial_max_streams_uni}/{cdiag.peer_initial_max_streams_bidi}"
        out(
            f"OK info {idx} max={max_payload} frame={frame} protocol={s.wt_protocol or '-'} "
            f"fc={int(sdiag.flow_control_negotiated)} peer_fc={peer_fc}"
        )

    async def cmd_stream(self, args) -> None:
        idx, s = self.session(args[0])
        kind = args[1]
        if kind not in ("uni", "bidi"):
            raise ValueError("kind is uni or bidi")
        create = s.create_unidirectional_stream if kind == "uni" else s.create_bidirectional_stream
        try:
            stream = await asyncio.wait_for(create(), STREAM_WAIT + WAIT)
        except Exception as e:  # noqa: BLE001 - being held back is the expected answer
            name = type(e).__name__
            if "Timeout" in name:
                out(f"OK stream {idx} {kind} blocked {name}")
            else:
                out(f"ERR stream {idx} {kind} {name}: {e}")
            return
        out(f"ERR stream {idx} {kind} opened {stream.stream_id}")

    async def cmd_open(self, args) -> None:
        if self.role != "client":
            out("ERR open only a client opens sessions")
            return
        path = args[0]
        conn = self.sessions[0].connection
        try:
            s = await asyncio.wait_for(conn.create_session(authority=self.authority, path=path), WAIT)
        except Exception as e:  # noqa: BLE001 - the refusal is the answer
            out(f"ERR open {type(e).__name__}: {e}")
            return
        idx = self.add_session(s)
        out(f"OK open {idx} {s.session_id}")

    async def cmd_recv(self, args) -> None:
        idx, s = self.session(args[0])
        count, max_size, window = int(args[1]), int(args[2]), int(args[3])
        if not self.start_reader(idx, self.recv(idx, s, count, max_size, window)):
            out(f"ERR recv {idx} busy")
            return
        out(f"OK recv {idx}")

    async def recv(self, idx, s, count, max_size, window) -> None:
        got = total = 0
        smallest, largest = 1 << 30, 0
        try:
            for start in range(0, count, window):
                end = min(start + window, count)
                expected = Counter(payload(idx, i, size_of(i, max_size, window)) for i in range(start + 1, end))
                # The first datagram of a window has the sender's live maximum: any size,
                # but the index and pattern of `start`.
                first_seen = False
                left = end - start
                while left:
                    try:
                        d = await asyncio.wait_for(s.read_datagram(), WAIT)
                    except asyncio.TimeoutError:
                        out(f"RECVD {idx} fail lost: {left} of window {start}..{end} missing after {WAIT}s (got {got})")
                        return
                    if expected[d] > 0:
                        expected[d] -= 1
                    elif not first_seen and len(d) >= 4 and d == payload(idx, start, len(d)):
                        first_seen = True
                    else:
                        head = d[:4].hex()
                        out(f"RECVD {idx} fail content: unexpected {len(d)} bytes starting {head} in window {start}..{end}")
                        return
                    left -= 1
                    got += 1
                    total += len(d)
                    smallest, largest = min(smallest, len(d)), max(largest, len(d))
                out(f"PROGRESS {idx} {got}")
            out(f"RECVD {idx} ok {got} {total} {smallest} {largest}")
        except asyncio.CancelledError:
            out(f"RECVD {idx} fail stopped after {got}")
        except Exception as e:  # noqa: BLE001
            out(f"RECVD {idx} fail {type(e).__name__}: {e} (after {got})")

    async def cmd_send(self, args) -> None:
        idx, s = self.session(args[0])
        count, max_size, window = int(args[1]), int(args[2]), int(args[3])
        own_max, _ = await self.max_payload(idx)
        if max_size == 0:
            max_size = own_max
        out(f"OK send {idx} max={max_size}")
        asyncio.create_task(self.send(idx, s, count, max_size, window))

    async def send(self, idx, s, count, max_size, window) -> None:
        sent = total = 0
        smallest, largest = 1 << 30, 0
        queue = self.next_lines[idx]
        try:
            for start in range(0, count, window):
                if start:
                    try:
                        await asyncio.wait_for(queue.get(), WAIT)
                    except asyncio.TimeoutError:
                        out(f"SENT {idx} fail no `next {idx}` within {WAIT}s after {sent}")
                        return
                for i in range(start, min(start + window, count)):
                    d = payload(idx, i, size_of(i, max_size, window))
                    await s.send_datagram(data=d)
                    sent += 1
                    total += len(d)
                    smallest, largest = min(smallest, len(d)), max(largest, len(d))
            out(f"SENT {idx} ok {sent} {total} {smallest} {largest}")
        except Exception as e:  # noqa: BLE001
            out(f"SENT {idx} fail {type(e).__name__}: {e} (after {sent})")

    async def cmd_close(self, args) -> None:
        idx, s = self.session(args[0])
        code = int(args[1])
        reason = args[2] if len(args) > 2 else ""
        await asyncio.wait_for(s.close(error_code=code, reason=reason), WAIT)
        out(f"OK close {idx}")

    async def cmd_oversize(self, args) -> None:
        idx, s = self.session(args[0])
        max_payload, _ = await self.max_payload(idx)
        try:
            await s.send_datagram(data=bytes(max_payload + 1))
        except Exception as e:  # noqa: BLE001 - the rejection is the answer
            out(f"OK oversize {idx} rejected {max_payload + 1} {type(e).__name__}: {e}")
            return
        out(f"ERR oversize {idx} sent {max_payload + 1} bytes")

    async def cmd_blast(self, args) -> None:
        idx, s = self.session(args[0])
        count, size = int(args[1]), int(args[2])
        inflight = int(args[3]) if len(args) > 3 else 1
        if size < 4 or count < 1 or inflight < 1:
            raise ValueError("needs count >= 1, size >= 4, inflight >= 1")
        body = bytes(size - 4)
        errors = 0
        sem = asyncio.Semaphore(inflight)

        async def one(i: int) -> None:
            nonlocal errors
            try:
                await s.send_datagram(data=struct.pack(">I", i) + body)
            except Exception:  # noqa: BLE001 - counted
                errors += 1
            finally:
                sem.release()

        t0 = time.perf_counter()
        if inflight == 1:
            for i in range(count):
                try:
                    await s.send_datagram(data=struct.pack(">I", i) + body)
                except Exception:  # noqa: BLE001 - counted
                    errors += 1
        else:
            pending = set()
            for i in range(count):
                await sem.acquire()
                t = asyncio.create_task(one(i))
                pending.add(t)
                t.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)
        secs = time.perf_counter() - t0
        ok = count - errors
        out(f"OK blast {idx} sent={ok} errors={errors} seconds={secs:.6f} rate={ok / secs if secs else 0:.1f}")

    async def cmd_sink(self, args) -> None:
        idx, s = self.session(args[0])
        count, idle = int(args[1]), float(args[2])
        if not self.start_reader(idx, self.sink(idx, s, count, idle)):
            out(f"ERR sink {idx} busy")
            return
        out(f"OK sink {idx} started")

    async def sink(self, idx, s, count, idle) -> None:
        n = total = 0
        first = last = None
        seqs = set()
        try:
            while n < count:
                try:
                    d = await asyncio.wait_for(s.read_datagram(), idle)
                except asyncio.TimeoutError:
                    break
                last = time.perf_counter()
                if first is None:
                    first = last
                n += 1
                total += len(d)
                if len(d) >= 4:
                    seqs.add(struct.unpack(">I", d[:4])[0])
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - the session ended
            log(f"sink {idx}: {type(e).__name__}: {e}")
        secs = (last - first) if first is not None else 0.0
        rate = (n - 1) / secs if secs > 0 else 0.0
        out(f"SINK {idx} received={n} bytes={total} seconds={secs:.6f} rate={rate:.1f} distinct={len(seqs)}")

    async def cmd_echo(self, args) -> None:
        idx, s = self.session(args[0])
        if not self.start_reader(idx, self.echo(idx, s)):
            out(f"ERR echo {idx} busy")
            return
        out(f"OK echo {idx}")

    async def echo(self, idx, s) -> None:
        n = 0
        try:
            while True:
                d = await s.read_datagram()
                await s.send_datagram(data=d)
                n += 1
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - the session ended
            log(f"echo {idx}: {type(e).__name__}: {e}")
        log(f"echo {idx}: {n} datagrams echoed")

    async def cmd_ping(self, args) -> None:
        """`ping <s> <count> <size>`: count sequential pings (send one datagram, wait up to
        1 s for its echo), for the benchmarks' round-trip case. Answers
        `OK ping <s> answered=N p50_us=X p99_us=Y`."""
        idx, s = self.session(args[0])
        count, size = int(args[1]), int(args[2])
        if size < 4 or count < 1:
            raise ValueError("needs count >= 1, size >= 4")
        body = bytes(size - 4)
        rtts = []
        for i in range(count):
            t0 = time.perf_counter()
            await s.send_datagram(data=struct.pack(">I", i) + body)
            deadline = t0 + 1.0
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    d = await asyncio.wait_for(s.read_datagram(), left)
                except asyncio.TimeoutError:
                    break
                if len(d) >= 4 and struct.unpack(">I", d[:4])[0] == i:
                    rtts.append(time.perf_counter() - t0)
                    break
        rtts.sort()
        pct = lambda q: rtts[int((len(rtts) - 1) * q + 0.5)] * 1e6 if rtts else 0.0  # noqa: E731
        out(f"OK ping {idx} answered={len(rtts)} p50_us={pct(0.5):.1f} p99_us={pct(0.99):.1f}")

    async def cmd_stop(self, args) -> None:
        idx, _ = self.session(args[0])
        task = self.tasks.get(idx)
        if task is not None and not task.done():
            task.cancel()
            try:
                await asyncio.wait_for(task, WAIT)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
        out(f"OK stop {idx}")

    # ------------------------------------------------------------------ stdin

    async def read_commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while not self.done.is_set():
            raw = await reader.readline()
            if not raw:
                break
            line = raw.decode("utf-8", "replace").strip()
            if line == "quit":
                break
            # Commands that wait (send answers after its first window, blast when done)
            # must not hold up `next` lines: each command runs on its own.
            asyncio.create_task(self.command(line))
        self.done.set()


# ---------------------------------------------------------------------------- roles


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_server(args) -> int:
    peer = Peer("server")
    certdir = tempfile.mkdtemp(prefix="pywebtransport-peer-")
    try:
        _ca, cert, key = generate_self_signed_cert(hostname="localhost", output_dir=certdir, validity_days=13)
        der = ssl.PEM_cert_to_DER_cert(open(cert).read())
        server = None
        for attempt in range(5):
            port = args.port or free_udp_port()
            config = ServerConfig(
                certfile=cert,
                keyfile=key,
                bind_host="127.0.0.1",
                bind_port=port,
                max_pending_datagrams=MAX_PENDING,
                stream_create_timeout=STREAM_WAIT,
            )
            server = WebTransportServer(config=config)
            try:
                await server.listen()
                break
            except Exception as e:  # noqa: BLE001 - the port was taken meanwhile
                log(f"listen on {port} failed ({e}), attempt {attempt + 1}")
                server = None
                if args.port:
                    break
        if server is None:
            out("FATAL cannot listen")
            return 1

        async def accept_sessions(conn) -> None:
            log(f"connection from {conn.remote_address}")

            async def on_conn_closed(event) -> None:
                data = event.data or {}
                log(f"connection closed: error_code={data.get('error_code')} reason={data.get('reason')!r}")

            conn.events.on(event_type=EventType.CONNECTION_CLOSED, handler=on_conn_closed)
            async for session in conn.incoming_sessions():
                log(f"session request {session.session_id} path={session.path} headers={session.headers}")
                try:
                    await asyncio.wait_for(session.accept(), WAIT)
                except Exception as e:  # noqa: BLE001
                    log(f"accept failed: {type(e).__name__}: {e}")
                    continue
                idx = peer.add_session(session)
                out(f"SESSION {idx} {session.session_id} {session.path}")

        async def accept_connections() -> None:
            async for conn in server.incoming_connections():
                asyncio.create_task(accept_sessions(conn))

        acceptor = asyncio.create_task(accept_connections())
        out(f"READY {port} {hashlib.sha256(der).hexdigest()}")
        await peer.read_commands()
        acceptor.cancel()
        for s in peer.sessions:
            if not s.is_closed:
                await asyncio.wait_for(s.close(), WAIT)
        await asyncio.wait_for(server.close(), WAIT)
        out("BYE")
        return 0
    finally:
        shutil.rmtree(certdir, ignore_errors=True)


async def run_client(args) -> int:
    peer = Peer("client")
    url = urlparse(args.url)
    peer.authority = url.netloc
    config = ClientConfig(
        verify_mode=ssl.CERT_NONE,
        max_pending_datagrams=MAX_PENDING,
        connect_timeout=WAIT,
        stream_create_timeout=STREAM_WAIT,
    )
    async with WebTransportClient(config=config) as client:
        try:
            session = await client.connect(url=args.url)
        except Exception as e:  # noqa: BLE001
            out(f"FATAL connect {type(e).__name__}: {e}")
            return 1
        conn = session.connection

        async def on_conn_closed(event) -> None:
            data = event.data or {}
            out(f"CONN-CLOSED {data.get('error_code')} {data.get('reason') or ''}")

        conn.events.on(event_type=EventType.CONNECTION_CLOSED, handler=on_conn_closed)
        diag = await conn.diagnose()
        log(f"connected: {diag}")
        idx = peer.add_session(session)
        out(f"SESSION {idx} {session.session_id} {session.path}")
        await peer.read_commands()
        for s in peer.sessions:
            if not s.is_closed:
                await asyncio.wait_for(s.close(), WAIT)
    out("BYE")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--port", type=int, default=0, help="server: UDP port (0: a free one)")
    ap.add_argument("--url", help="client: https://host:port/path")
    ap.add_argument("--timeout", type=float, default=120.0, help="whole run, seconds")
    args = ap.parse_args()
    if args.mode == "client" and not args.url:
        ap.error("client mode needs --url")
    if os.environ.get("WTD_PEER_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    log(f"pywebtransport {__version__}, Python {sys.version.split()[0]}, {args.mode}")
    coro = run_server(args) if args.mode == "server" else run_client(args)

    async def bounded():
        return await asyncio.wait_for(coro, args.timeout)

    try:
        return asyncio.run(bounded())
    except asyncio.TimeoutError:
        out(f"FATAL timeout after {args.timeout}s")
        return 2
    except Exception as e:  # noqa: BLE001 - report, never hang
        out(f"FATAL {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
