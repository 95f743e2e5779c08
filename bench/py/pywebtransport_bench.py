#!/usr/bin/env python3
"""pywebtransport 0.21 datagram rate for scripts/bench.sh: a pywebtransport client sends
to a pywebtransport server, both the interop peer tests/interop/pywebtransport_peer.py
(its `blast` and `sink` commands) running in the Debian trixie root (Python >= 3.12) via
scripts/run-in-trixie.sh, on loopback.

  pywebtransport_bench.py oneway SIZE SECS
  pywebtransport_bench.py rtt SIZE COUNT     COUNT sequential pings echoed by the server

The client awaits each send before the next (`blast ... 1`: backpressured; 16 sends in
flight go faster but most of them are lost in the receiver). The count is sized from a
short warm-up so the run takes about SECS. pywebtransport's largest
datagram payload between two pywebtransport peers is 1161 bytes: SIZE is capped there
and the JSON line says so (`payload`). CPU time is both peer processes' (from /proc).
Prints one JSON line (the fields of bench/README.md). Every wait is bounded.
"""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER = os.path.join(ROOT, "tests", "interop", "pywebtransport_peer.py")
RUN = os.path.join(ROOT, "scripts", "run-in-trixie.sh")
INFLIGHT = 1
WAIT = 60.0


def start(args):
    return subprocess.Popen(
        ["bash", RUN, PEER] + args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )


def readline(p, prefix: str, timeout: float = WAIT) -> str:
    # The peers answer promptly or end; a hung one is killed by the caller's timeout.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"peer ended while waiting for {prefix!r}")
        if line.startswith(prefix):
            return line.strip()
    raise RuntimeError(f"no {prefix!r} within {timeout}s")


def fields(line: str) -> dict:
    return dict(w.split("=", 1) for w in line.split() if "=" in w)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def send(p, line: str) -> None:
    p.stdin.write(line + "\n")
    p.stdin.flush()


def blast(srv, cli, count: int, size: int):
    send(srv, f"sink 0 {count} 1.0")
    readline(srv, "OK sink")
    cpu0 = cpu_seconds(srv.pid) + cpu_seconds(cli.pid)
    t0 = time.monotonic()
    send(cli, f"blast 0 {count} {size} {INFLIGHT}")
    b = fields(readline(cli, "OK blast"))
    s = fields(readline(srv, "SINK"))
    wall = time.monotonic() - t0
    cpu = cpu_seconds(srv.pid) + cpu_seconds(cli.pid) - cpu0
    return int(b["sent"]), int(s["received"]), float(s["seconds"]), wall, cpu


def main() -> int:
    case, size, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if case not in ("oneway", "rtt"):
        print("pywebtransport_bench: case is oneway or rtt", file=sys.stderr)
        return 2
    srv = start(["server"])
    cli = None
    try:
        port = readline(srv, "READY").split()[1]
        cli = start(["client", "--url", f"https://127.0.0.1:{port}/bench"])
        readline(cli, "SESSION")
        readline(srv, "SESSION")
        send(cli, "info 0")
        max_payload = int(fields(readline(cli, "OK info"))["max"])
        payload = min(size, max_payload)
        if case == "rtt":
            count = min(int(secs), 1_000_000)
            send(srv, "echo 0")
            readline(srv, "OK echo")
            send(cli, f"ping 0 200 {payload}")  # warm-up
            readline(cli, "OK ping")
            send(cli, f"ping 0 {count} {payload}")
            r = fields(readline(cli, "OK ping", timeout=WAIT + count * 0.01))
            print(
                json.dumps(
                    {
                        "impl": "pywebtransport",
                        "case": "rtt",
                        "size": size,
                        "payload": payload,
                        "pings": count,
                        "answered": int(r["answered"]),
                        "p50_us": float(r["p50_us"]),
                        "p99_us": float(r["p99_us"]),
                    }
                ),
                flush=True,
            )
            return 0
        sent, got, _, wall, _ = blast(srv, cli, 2000, payload)  # warm-up, sizes the run
        count = int(min(max(got / max(wall, 1e-3) * secs, 1000), 500_000))
        sent, got, sink_secs, wall, cpu = blast(srv, cli, count, payload)
        span = max(sink_secs, 1e-9)
        print(
            json.dumps(
                {
                    "impl": "pywebtransport",
                    "case": "oneway",
                    "size": size,
                    "payload": payload,
                    "sent": sent,
                    "received": got,
                    "secs": span,
                    "rate": got / span,
                    "mb_per_s": got * payload / span / 1e6,
                    "loss_pct": 100.0 * max(sent - got, 0) / sent if sent else 0.0,
                    "cpu_us_per_dgram": cpu * 1e6 / got if got else 0.0,
                }
            ),
            flush=True,
        )
        return 0
    finally:
        for p in (cli, srv):
            if p is None:
                continue
            try:
                send(p, "quit")
                p.wait(10)
            except Exception:  # noqa: BLE001 - make sure it ends
                p.kill()
                p.wait()


if __name__ == "__main__":
    sys.exit(main())
