#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A delaying TCP relay for network tests (this kernel has no netem).

  ring_relay.py LISTEN_HOST:PORT TARGET_HOST:PORT [--delay-ms LO-HI] [--chunk N]
                [--corrupt-after BYTES]

Accepts connections and forwards each direction, re-cutting the stream into chunks of at
most N bytes and holding each for a random LO..HI ms (order kept: TCP cannot reorder a
stream, so jitter and re-segmentation are what a relay can add). --corrupt-after flips one
bit of the byte at that offset of the client-to-target stream (to test CRC32C).
"""
import argparse
import random
import socket
import sys
import threading
import time


def pump(src, dst, lo, hi, chunk, corrupt_at):
    seen = 0
    try:
        while True:
            data = src.recv(chunk)
            if not data:
                break
            if corrupt_at is not None and seen <= corrupt_at < seen + len(data):
                b = bytearray(data)
                b[corrupt_at - seen] ^= 0x10
                data = bytes(b)
                # When, on the ranks' clock: the time to error is measured from here.
                print("flipped a bit at %d ms" % int(time.time() * 1000), flush=True)
            seen += len(data)
            if hi > 0:
                time.sleep(random.uniform(lo, hi) / 1000.0)
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("listen")
    ap.add_argument("target")
    ap.add_argument("--delay-ms", default="0-0")
    ap.add_argument("--chunk", type=int, default=16384)
    ap.add_argument("--corrupt-after", type=int, default=None)
    a = ap.parse_args()
    lo, hi = (float(x) for x in a.delay_ms.split("-"))
    lh, lp = a.listen.rsplit(":", 1)
    th, tp = a.target.rsplit(":", 1)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((lh, int(lp)))
    srv.listen(8)
    print("relay %s -> %s, delay %s ms, chunk %d" % (a.listen, a.target, a.delay_ms, a.chunk), flush=True)
    first = True
    while True:
        c, _ = srv.accept()
        t = None
        for _ in range(200):  # the target may not listen yet: retry for 20 s
            try:
                t = socket.create_connection((th, int(tp)), timeout=30)
                break
            except OSError:
                time.sleep(0.1)
        if t is None:
            c.close()
            continue
        t.settimeout(None)
        for s in (c, t):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        corrupt = a.corrupt_after if first else None
        first = False
        threading.Thread(target=pump, args=(c, t, lo, hi, a.chunk, corrupt), daemon=True).start()
        threading.Thread(target=pump, args=(t, c, lo, hi, a.chunk, None), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
