#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Forming the ring against hostile or mistaken set-ups (issue 15), with ring-chaos ranks:

- 40 idle connections on the master port while a ring of 4 forms: it must still form (the
  joining side retries a handshake the server gave up, the server evicts the stalest stranger
  instead of refusing newcomers);
- IPv6: "::1" and "[::1]" as master_ip/right_ip form a ring of 2;
- a right_port naming the rank's own port is reported as such, not as a neighbour refusing;
- ranks of different world sizes are told "world size", not "job identity".
Each ring runs under a deadline; exit 1 on the first failure."""
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ring_fail import CHAOS, free_ports  # noqa: E402
import json  # noqa: E402


def configs(d, n, host="127.0.0.1", master=None, edit=None):
    ports = free_ports(n + 1)
    paths = []
    for r in range(n):
        cfg = {"master_ip": master or host, "master_port": ports[0], "port": ports[1 + r],
               "right_ip": host, "right_port": ports[1 + (r + 1) % n], "rank": r,
               "world_size": n, "job_id": "0x1234"}
        if edit:
            edit(r, cfg)
        p = os.path.join(d, "rank-%d.json" % r)
        with open(p, "w") as f:
            json.dump(cfg, f)
        paths.append(p)
    return paths, ports


def start(path, args, env_extra=None):
    env = dict(os.environ, RING_CONFIG=path, RING_LOG_LEVEL="warn", RING_OP_TIMEOUT_MS="5000")
    env.update(env_extra or {})
    return subprocess.Popen([CHAOS] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs, timeout):
    out, end = [], time.time() + timeout
    for p in procs:
        try:
            o, e = p.communicate(timeout=max(0.1, end - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
            out.append((None, o, e))
            continue
        out.append((p.returncode, o, e))
    return out


def idle_strangers(d):
    paths, ports = configs(d, 4)
    env = {"RING_CONNECT_TIMEOUT_MS": "30000"}
    procs = [start(paths[0], ["--iters", "3", "--count", "1000"], env)]
    strangers = []
    end = time.time() + 20
    while len(strangers) < 40 and time.time() < end:  # rank 0 listens once it started
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", ports[0]))
            strangers.append(s)
        except OSError:
            s.close()
            time.sleep(0.02)
    procs += [start(paths[r], ["--iters", "3", "--count", "1000"], env) for r in (1, 2, 3)]
    out = finish(procs, 40)
    for s in strangers:
        s.close()
    for r, (rc, o, e) in enumerate(out):
        if rc != 0 or "DONE" not in o:
            print("FAIL idle strangers: rank %d exit %s\n%s%s" % (r, rc, o, e[-2000:]))
            return 1
    print("idle strangers: ring of 4 formed and ran with %d idle connections on the master port" % len(strangers))
    return 0


def ipv6(d):
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        print("no IPv6 loopback here: the IPv6 ring is skipped")
        return 0
    for host, master in (("::1", "::1"), ("[::1]", "[::1]"), ("::1", "127.0.0.1")):
        paths, _ = configs(d, 2, host, master)
        procs = [start(p, ["--iters", "3", "--count", "1000"], {"RING_CONNECT_TIMEOUT_MS": "10000"}) for p in paths]
        out = finish(procs, 20)
        for r, (rc, o, e) in enumerate(out):
            if rc != 0 or "DONE" not in o:
                print("FAIL IPv6 right_ip %s master_ip %s: rank %d exit %s\n%s%s" % (host, master, r, rc, o, e[-2000:]))
                return 1
        print("IPv6: right_ip %s, master_ip %s: ring of 2 formed" % (host, master))
    return 0


def mistakes(d):
    cases = [
        ("right_port is the rank's own port", lambda r, c: c.update(right_port=c["port"]) if r == 1 else None,
         1, "this rank itself"),
        ("world sizes differ", lambda r, c: c.update(world_size=4) if r == 1 else None, 1, "world size"),
    ]
    for label, edit, rank, want in cases:
        paths, _ = configs(d, 2, edit=edit)
        procs = [start(p, ["--iters", "3"], {"RING_CONNECT_TIMEOUT_MS": "3000"}) for p in paths]
        out = finish(procs, 20)
        rc, o, e = out[rank]
        if rc in (0, None) or want not in o + e or "job identity" in o + e:
            print("FAIL %s: rank %d exit %s, want '%s'\n%s%s" % (label, rank, rc, want, o, e[-2000:]))
            return 1
        line = [x for x in (o + e).splitlines() if want in x][0]
        print("%s: rank %d exit %d: %s" % (label, rank, rc, line[:200]))
    return 0


def main():
    if not os.access(CHAOS, os.X_OK):
        print("SKIP: ring-chaos not built at %s" % CHAOS)
        return 77
    with tempfile.TemporaryDirectory() as d:
        return idle_strangers(d) or ipv6(d) or mistakes(d)


if __name__ == "__main__":
    sys.exit(main())
