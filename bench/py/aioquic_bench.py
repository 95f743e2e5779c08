#!/usr/bin/env python3
"""aioquic WebTransport datagram benchmark for scripts/bench.sh: the alternative users
have today in Python. Server and client run in this one process and one asyncio loop on
loopback (as our C driver runs both ends in one process), over HTTP/3 with a
WebTransport session (draft-02 CONNECT), ECDSA P-256 certificate, 4 MiB socket buffers.

  aioquic_bench.py oneway SIZE SECS   the client sends for SECS; the server counts
  aioquic_bench.py rtt SIZE COUNT     COUNT sequential pings echoed by the server

aioquic has no datagram backpressure (its send queue is unbounded), so the sender keeps
at most 256 datagrams queued in aioquic (QuicConnection._datagrams_pending) and yields
to the event loop otherwise: the closest equivalent of a backpressured send.
Prints one JSON line (the fields of bench/README.md). Every loop is bounded.
"""

import asyncio
import datetime
import json
import os
import resource
import socket
import ssl
import struct
import sys
import tempfile
import time

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DatagramReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration

MAX_PENDING = 256


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_cert(d: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=12))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    cp, kp = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cp, kp


def enlarge_buffers(transport) -> None:
    sock = transport.get_extra_info("socket")
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, 4 << 20)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, 4 << 20)


class Server(QuicConnectionProtocol):
    echo = False
    stats = {"received": 0, "last": 0.0}

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.h3 = None

    def quic_event_received(self, event):
        if self.h3 is None:
            self.h3 = H3Connection(self._quic, enable_webtransport=True)
        for ev in self.h3.handle_event(event):
            if isinstance(ev, DatagramReceived):
                if self.echo:
                    self.h3.send_datagram(ev.stream_id, ev.data)
                    self.transmit()
                else:
                    Server.stats["received"] += 1
                    Server.stats["last"] = time.monotonic()
            elif isinstance(ev, HeadersReceived):
                self.h3.send_headers(
                    ev.stream_id,
                    [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")],
                )
                self.transmit()


class Client(QuicConnectionProtocol):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.response = asyncio.get_running_loop().create_future()
        self.datagrams: asyncio.Queue = asyncio.Queue()

    def quic_event_received(self, event):
        for ev in self.h3.handle_event(event):
            if isinstance(ev, HeadersReceived) and not self.response.done():
                self.response.set_result(dict(ev.headers))
            elif isinstance(ev, DatagramReceived):
                self.datagrams.put_nowait(ev.data)


async def oneway(proto: Client, sid: int, size: int, secs: float):
    quic = proto._quic
    payload = b"\x5a" * size
    base = Server.stats["received"]
    cpu0, t0 = cpu_seconds(), time.monotonic()
    stop = t0 + secs
    sent = 0
    while time.monotonic() < stop:
        while len(quic._datagrams_pending) < MAX_PENDING:
            proto.h3.send_datagram(sid, payload)
            sent += 1
        proto.transmit()
        await asyncio.sleep(0)
    hard = time.monotonic() + 5
    while time.monotonic() < hard:
        before = Server.stats["received"] - base
        if before >= sent:
            break
        await asyncio.sleep(0.3)
        if Server.stats["received"] - base == before:
            break
    got = Server.stats["received"] - base
    return sent, got, max(Server.stats["last"] - t0, 1e-9), cpu_seconds() - cpu0


async def rtt(proto: Client, sid: int, size: int, count: int):
    size = max(size, 8)
    samples = []
    deadline = time.monotonic() + 60
    for i in range(count):
        if time.monotonic() > deadline:
            break
        d = struct.pack(">Q", i) + b"\x5a" * (size - 8)
        t = time.perf_counter()
        proto.h3.send_datagram(sid, d)
        proto.transmit()
        while True:
            try:
                e = await asyncio.wait_for(proto.datagrams.get(), 1.0)
            except asyncio.TimeoutError:
                break
            if e[:8] == d[:8]:
                samples.append(time.perf_counter() - t)
                break
    return samples


async def main() -> int:
    case, size, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        sc = QuicConfiguration(
            is_client=False,
            alpn_protocols=H3_ALPN,
            max_datagram_frame_size=65536,
            max_datagram_size=1472,
        )
        sc.load_cert_chain(cert, key)
        Server.echo = case == "rtt"
        server = await serve("127.0.0.1", 0, configuration=sc, create_protocol=Server)
        enlarge_buffers(server._transport)
        port = server._transport.get_extra_info("sockname")[1]
        cc = QuicConfiguration(
            is_client=True,
            alpn_protocols=H3_ALPN,
            verify_mode=ssl.CERT_NONE,
            server_name="localhost",
            max_datagram_frame_size=65536,
            max_datagram_size=1472,
        )
        async with connect("127.0.0.1", port, configuration=cc, create_protocol=Client) as proto:
            enlarge_buffers(proto._transport)
            sid = proto._quic.get_next_available_stream_id()
            proto.h3.send_headers(
                sid,
                [
                    (b":method", b"CONNECT"),
                    (b":scheme", b"https"),
                    (b":authority", f"localhost:{port}".encode()),
                    (b":path", b"/bench"),
                    (b":protocol", b"webtransport"),
                    (b"sec-webtransport-http3-draft02", b"1"),
                ],
            )
            proto.transmit()
            resp = await asyncio.wait_for(proto.response, 5)
            if resp.get(b":status") != b"200":
                print(f"aioquic_bench: session refused: {resp}", file=sys.stderr)
                return 1
            if case == "oneway":
                secs = min(float(arg), 60.0)
                await oneway(proto, sid, size, 0.3)  # warm-up
                sent, got, wall, cpu = await oneway(proto, sid, size, secs)
                r = {
                    "impl": "aioquic",
                    "case": "oneway",
                    "size": size,
                    "sent": sent,
                    "received": got,
                    "secs": wall,
                    "rate": got / wall,
                    "mb_per_s": got * size / wall / 1e6,
                    "loss_pct": 100.0 * max(sent - got, 0) / sent if sent else 0.0,
                    "cpu_us_per_dgram": cpu * 1e6 / got if got else 0.0,
                }
            else:
                count = min(int(arg), 1_000_000)
                await rtt(proto, sid, size, min(count, 200))
                s = sorted(await rtt(proto, sid, size, count))
                pct = lambda q: s[int((len(s) - 1) * q + 0.5)] * 1e6 if s else 0.0  # noqa: E731
                r = {
                    "impl": "aioquic",
                    "case": "rtt",
                    "size": size,
                    "pings": count,
                    "answered": len(s),
                    "p50_us": pct(0.5),
                    "p99_us": pct(0.99),
                }
            print(json.dumps(r), flush=True)
            proto.close()
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
