#!/usr/bin/env python3
"""K gossip-node processes in a clique, a client writing COUNT frames of 4 KiB into each
as fast as TCP takes them and reading what the others wrote: the binary as people run
it (separate processes, default flags), under the load of #11's clique test.

    cargo build --release -p gossip-tokio --bin gossip-node
    python3 scripts/clique_binary.py 6 20000                          # flood
    GOSSIP_FLAGS="--protocol plumtree" python3 scripts/clique_binary.py 6 20000
    GOSSIP_NODE=/other/build/gossip-node python3 scripts/clique_binary.py  # another build

Prints the time, how many frames never reached a client (or came twice), the nodes'
counters summed (slow peers cut, stall escapes, frames sent, copies not sent), and each
node's warning lines (LOG_DIR=dir keeps each node's whole stderr in dir/nodeN.log). A client that gets nothing for PATIENCE seconds (default 30) stops
waiting; one whose node reads nothing of its frames that long stops writing (said, and
its unwritten frames are not counted lost).
"""

import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile_probe as hp  # noqa: E402  (its node, connect and stop helpers)

K = int(sys.argv[1]) if len(sys.argv) > 1 else 3
COUNT = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
PATIENCE = float(os.environ.get("PATIENCE", "30"))
WARNINGS_SHOWN = int(os.environ.get("WARNINGS_SHOWN", "1"))
SIZE = 4096


def read_exactly(sock, buffer, n):
    """Returns `n` bytes and what is left, reading more from `sock` as needed, or None
    at the end of the stream."""
    while len(buffer) < n:
        data = sock.recv(1 << 20)
        if not data:
            return None
        buffer += data
    return buffer[:n], buffer[n:]


def reader(me, sock, got, twice, last):
    seen = set()
    buffer = b""
    sock.settimeout(PATIENCE)
    try:
        for _ in range((K - 1) * COUNT):
            header = read_exactly(sock, buffer, 4)
            if header is None:
                return
            length = struct.unpack(">I", header[0])[0]
            frame = read_exactly(sock, header[1], length)
            if frame is None:
                return
            payload, buffer = frame
            key = payload[:9]
            if key in seen:
                twice[me] += 1
            seen.add(key)
            got[me][payload[0]] += 1
            last[me] = time.time()
    except socket.timeout:
        return


def writer(origin, sock, written):
    """Writes the client's frames; gives up if its node reads nothing of them for
    PATIENCE seconds (it holds its input while its queues are full), leaving in
    `written[origin]` how many frames went before the batch that did not. (Not
    `sendall`: its timeout bounds the whole batch, so a node that reads slowly but
    steadily would count as one that reads nothing.)"""
    batch = bytearray()
    for n in range(COUNT):
        batch += struct.pack(">I", SIZE) + bytes([origin]) + struct.pack(">Q", n)
        batch += b"Z" * (SIZE - 9)
        if len(batch) >= 65536 or n + 1 == COUNT:
            unsent = memoryview(batch)
            while unsent:
                try:
                    unsent = unsent[sock.send(unsent):]
                except socket.timeout:
                    return
            written[origin] = n + 1
            batch = bytearray()


def main():
    ports = [hp.free_port() for _ in range(K)]
    nodes = [hp.node(ports[i], *ports[:i]) for i in range(K)]
    time.sleep(1.5)
    clients = [hp.connect(port) for port in ports]
    client_ports = [client.getsockname()[1] for client in clients]
    # A plumtree node takes an accepted connection that stays silent for its
    # preamble timeout (1 s) for a plain peer; until then (or its first bytes) it sends
    # it nothing. So every client is a peer of its node before any client writes.
    time.sleep(1.5)
    got = [[0] * K for _ in range(K)]
    twice = [0] * K
    last = [0.0] * K
    started = time.time()
    readers = [threading.Thread(target=reader, args=(i, c, got, twice, last))
               for i, c in enumerate(clients)]
    written = [0] * K
    writers = [threading.Thread(target=writer, args=(i, c, written))
               for i, c in enumerate(clients)]
    for thread in readers + writers:
        thread.start()
    for thread in writers + readers:
        thread.join()
    elapsed = time.time() - started
    stderr = [hp.stop(node) for node in nodes]
    # A frame the client never wrote is not lost; one of a batch cut short may arrive.
    missing = [[max(0, written[o] - got[me][o]) if me != o else 0 for o in range(K)]
               for me in range(K)]
    lost = sum(map(sum, missing))
    print(f"{K} nodes, {COUNT} frames each: {elapsed:.1f} s, lost {lost} of "
          f"{(K - 1) * sum(written)} written, came twice {sum(twice)}, last frame at "
          f"{max(last) - started:.1f} s")
    print("  " + counters_summed(stderr))
    for o in range(K):
        if written[o] < COUNT:
            print(f"  client {o} gave up writing after {written[o]} frames: its node "
                  f"read none of the next batch for {PATIENCE:.0f} s")
    # Which origins' frames went missing, and where: a loss at the origin shows as one
    # column missing the same frames at every other node.
    for o in range(K):
        row = [missing[me][o] for me in range(K)]
        if any(row):
            print(f"  frames of client {o} not received, by node: {row}")
    for i, text in enumerate(stderr):
        if os.environ.get("LOG_DIR"):
            os.makedirs(os.environ["LOG_DIR"], exist_ok=True)
            with open(os.path.join(os.environ["LOG_DIR"], f"node{i}.log"), "w") as log:
                log.write(text)
        warnings = [line for line in text.splitlines() if "WARN" in line]
        # A cut peer is logged by address: a node's listening port if this node dialled
        # it, else the port that dialled in (its client's is shown here).
        print(f"  node {i} (listens on {ports[i]}, its client from "
              f"{client_ports[i]}): {len(warnings)} warning lines")
        for line in warnings[:WARNINGS_SHOWN]:
            print("    " + line[:300])
        if os.environ.get("SHOW_STATS"):
            for counters in counter_lines(text):
                print("    " + counters)


def counter_lines(text):
    """The counters lines in a node's stderr, from `delivered=` on."""
    return [line[line.index("delivered="):] for line in text.splitlines()
            if "delivered=" in line]


def counters_summed(stderr):
    """The counters the nodes print as they stop (their last counters line), summed
    over the nodes: how the clique fared at a glance, to compare runs and builds."""
    totals = {}
    for text in stderr:
        lines = counter_lines(text)
        if not lines:
            continue
        for name, value in re.findall(r"(\w+)=(\d+)", lines[-1]):
            totals[name] = totals.get(name, 0) + int(value)
    names = ["slow_peers_cut", "stall_escapes", "frames_out", "copies_not_sent"]
    return "all nodes: " + " ".join(f"{name}={totals.get(name, 0)}" for name in names)


if __name__ == "__main__":
    main()
