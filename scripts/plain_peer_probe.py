#!/usr/bin/env python3
"""A tutorial-style plain peer of a `gossip-node --protocol plumtree`, in both roles,
counting the messages published into the node while it settles the peer's protocol.

    cargo build --release -p gossip-tokio
    python3 scripts/plain_peer_probe.py                 # plumtree (the case in question)
    PROTOCOL=flood python3 scripts/plain_peer_probe.py  # the same against flood
    GOSSIP_NODE=/other/build/gossip-node python3 scripts/plain_peer_probe.py

Listening: the peer connects to the node and only reads (it has nothing to say).
Dialled: the node dials the peer, which takes the plumtree preamble for the length of a
4 GB frame and waits for it, as the tutorial node does; the node then dials it again
plain. Either way 20 lines go into the node's stdin 100 ms apart, starting right after
the connection opens, and the peer counts the frames it gets within two seconds after.
"""

import os
import socket
import struct
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.environ.get("GOSSIP_NODE", os.path.join(ROOT, "target", "release", "gossip-node"))
PROTOCOL = os.environ.get("PROTOCOL", "plumtree")
MESSAGES = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(listen, peers=()):
    args = [NODE, "--protocol", PROTOCOL, "-q", listen, *peers]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)


def publish(node):
    for i in range(MESSAGES):
        node.stdin.write(b"message %d\n" % i)
        node.stdin.flush()
        time.sleep(0.1)


def read_frames(conn, got):
    """Appends each whole frame to `got` until the connection is quiet for 2 s; a length
    over 1 MiB (the preamble, read as a frame) is waited on forever, like the tutorial
    node does."""
    conn.settimeout(2)
    buf = b""
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while len(buf) >= 4:
                length = struct.unpack(">I", buf[:4])[0]
                if length > 1 << 20 or len(buf) < 4 + length:
                    break
                got.append(buf[4 : 4 + length])
                buf = buf[4 + length :]
    except socket.timeout:
        pass


def listening_peer():
    listen = "127.0.0.1:%d" % free_port()
    node = start(listen)
    try:
        time.sleep(0.5)
        host, port = listen.split(":")
        conn = socket.create_connection((host, int(port)))
        publish(node)
        got = []
        read_frames(conn, got)
        return got
    finally:
        node.kill()


def dialled_peer():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    got = []

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=read_frames, args=(conn, got), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    peer = "127.0.0.1:%d" % listener.getsockname()[1]
    node = start("127.0.0.1:%d" % free_port(), [peer])
    try:
        time.sleep(0.3)
        publish(node)
        time.sleep(2)
        return got
    finally:
        node.kill()


for role, probe in [("listening", listening_peer), ("dialled", dialled_peer)]:
    got = probe()
    print(f"{PROTOCOL}, plain peer {role}: got {len(got)} of {MESSAGES} ({len(set(got))} distinct)")
