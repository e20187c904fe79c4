#!/usr/bin/env python3
"""Probes a release `gossip-node` (default flags) with #13's three attacks and a crowd of silent sockets, as separate
processes on loopback, and prints what a user gets:

    cargo build --release -p gossip-tokio
    python3 scripts/hostile_probe.py [lockout|loris|loud ...]

GOSSIP_NODE=path runs another binary; GOSSIP_FLAGS="..." adds flags to every node.

lockout: 200 idle sockets, then a real node dials in: messages it gets of 40, and the
         target's stderr lines.
loris:   120 sockets each announce a 1 MiB frame and send all of it but the last byte:
         the target's RSS before, after, and after the frame timeout; sockets cut.
silent:  5,000 sockets connect as fast as they can and send nothing (with
         GOSSIP_FLAGS="--protocol plumtree" they wait for their protocol to settle):
         the target's RSS before and with them, and how many it has closed.
loud:    one socket writes 1,000,000 frames of 16 B while a quiet node publishes 50
         lines 10 ms apart: an observer socket's worst delay for them, and losses.
"""

import os
import socket
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("GOSSIP_NODE", os.path.join(ROOT, "target", "release", "gossip-node"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(port, *peers, stdout=subprocess.DEVNULL):
    flags = os.environ.get("GOSSIP_FLAGS", "").split()
    args = [BINARY, *flags, f"127.0.0.1:{port}", *[f"127.0.0.1:{p}" for p in peers]]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE)
    # Read stderr all along: a pipe left full would block a node that logs synchronously.
    process.log = []
    process.log_reader = threading.Thread(
        target=lambda: process.log.extend(process.stderr), daemon=True)
    process.log_reader.start()
    return process


def connect(port):
    deadline = time.time() + 10
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.02)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.log_reader.join(timeout=10)
    return b"".join(process.log).decode(errors="replace")


def lockout():
    target_port, real_port = free_port(), free_port()
    target = node(target_port)
    squatters = [connect(target_port) for _ in range(200)]
    time.sleep(0.5)
    real = node(real_port, target_port, stdout=subprocess.PIPE)
    time.sleep(1.0)
    for m in range(40):
        target.stdin.write(f"message {m}\n".encode())
        target.stdin.flush()
        time.sleep(0.05)
    time.sleep(1.0)
    got = set()
    os.set_blocking(real.stdout.fileno(), False)
    data = real.stdout.read() or b""
    got = {line for line in data.split(b"\n") if line.startswith(b"message ")}
    err = stop(target)
    stop(real)
    for s in squatters:
        s.close()
    lines = err.count("\n")
    print(f"lockout: real node got {len(got)} of 40; target wrote {lines} stderr lines "
          f"({err.count('evicted')} evictions logged, {err.count('suppressed')} summaries)")


def settled_target():
    """A target node, listening and idle: its port, process and RSS."""
    port = free_port()
    target = node(port)
    connect(port).close()
    time.sleep(0.3)
    return port, target, rss_kib(target.pid)


def loris():
    port, target, before = settled_target()
    sockets = []
    frame = struct.pack(">I", 1 << 20) + b"\x07" * ((1 << 20) - 1)
    for _ in range(120):
        s = connect(port)
        s.sendall(frame)
        sockets.append(s)
    time.sleep(1.0)
    during = rss_kib(target.pid)
    time.sleep(21.0)
    after = rss_kib(target.pid)
    cut = 0
    for s in sockets:
        s.settimeout(0.5)
        try:
            if s.recv(1) == b"":
                cut += 1
        except (ConnectionResetError, BrokenPipeError):
            cut += 1
        except socket.timeout:
            pass
    stop(target)
    print(f"loris: RSS {before / 1024:.1f} MB before, {during / 1024:.1f} MB with 120 "
          f"partial frames, {after / 1024:.1f} MB after the frame timeout; "
          f"{cut} of 120 sockets cut")


def silent():
    port, target, before = settled_target()
    sockets = []
    # Ten connecting threads: one alone waits a round trip per socket.
    threads = [threading.Thread(target=lambda: sockets.extend(connect(port) for _ in range(500)))
               for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.2)
    during = rss_kib(target.pid)
    held = len(os.listdir(f"/proc/{target.pid}/fd"))
    closed = 0
    for s in sockets:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except BlockingIOError:
            pass
    for s in sockets:
        s.close()
    stop(target)
    print(f"silent: RSS {before / 1024:.1f} MB before, {during / 1024:.1f} MB with 5,000 "
          f"silent sockets; {closed} of them closed by the target, which holds {held} "
          f"file descriptors")


def loud():
    target_port, quiet_port = free_port(), free_port()
    target = node(target_port)
    quiet = node(quiet_port, target_port)
    observer = connect(target_port)
    flood = connect(target_port)
    time.sleep(1.0)
    threading.Thread(target=lambda: [None for _ in iter(lambda: flood.recv(1 << 16), b"")],
                     daemon=True).start()
    arrivals, sent = {}, {}
    counts = {"loud": 0}

    def observe():
        buffer = observer.makefile("rb", buffering=1 << 16)
        while len(arrivals) < 50 or counts["loud"] < 1_000_000:
            header = buffer.read(4)
            if len(header) < 4:
                return
            payload = buffer.read(struct.unpack(">I", header)[0])
            if payload.startswith(b"quiet "):
                arrivals[int(payload[6:])] = time.monotonic()
            else:
                counts["loud"] += 1

    reader = threading.Thread(target=observe, daemon=True)
    reader.start()
    wire = b"".join(struct.pack(">I", 16) + struct.pack(">Q", m) + b"loudloud"
                    for m in range(1_000_000))
    started = time.monotonic()
    writer = threading.Thread(target=flood.sendall, args=(wire,), daemon=True)
    writer.start()
    for m in range(50):
        sent[m] = time.monotonic()
        quiet.stdin.write(f"quiet {m}\n".encode())
        quiet.stdin.flush()
        time.sleep(0.01)
    writer.join()
    written = time.monotonic() - started
    reader.join(timeout=60)
    delays = [arrivals[m] - sent[m] for m in arrivals]
    stop(quiet)
    err = stop(target)
    print(f"loud: 1,000,000 frames written in {written:.2f} s; observer got "
          f"{counts['loud']} of them and {len(arrivals)} of 50 quiet ones; worst quiet "
          f"delay {max(delays) * 1000:.1f} ms, median {sorted(delays)[len(delays) // 2] * 1000:.1f} ms")


if __name__ == "__main__":
    for probe in sys.argv[1:] or ["lockout", "loris", "silent", "loud"]:
        globals()[probe]()
