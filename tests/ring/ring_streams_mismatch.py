#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Ranks that disagree on the TCP streams per neighbour (RING_TCP_STREAMS, or
"tcp_streams" in RING_CONFIG) must fail to form the ring with a configuration error
naming both counts, and no rank may hang; bad values are refused by name.

Each rank runs ring-chaos; a rank that cannot form the ring prints
"CREATE_FAILED <status> <message>" and exits 1.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ring_fail  # noqa: E402  (free ports, config files, the ring-chaos path)

CONNECT_MS = 3000


def run_ring(n, env_k, cfg_k):
    """env_k[r]: RING_TCP_STREAMS of rank r (None: unset); cfg_k[r]: its "tcp_streams"."""
    d = tempfile.mkdtemp(prefix="ringstreams.")
    paths, _ = ring_fail.write_configs(d, n)
    procs = []
    try:
        for r in range(n):
            if cfg_k[r] is not None:
                with open(paths[r]) as f:
                    cfg = json.load(f)
                cfg["tcp_streams"] = cfg_k[r]
                with open(paths[r], "w") as f:
                    json.dump(cfg, f)
            env = dict(os.environ, RING_CONFIG=paths[r], RING_CONNECT_TIMEOUT_MS=str(CONNECT_MS),
                       RING_LOG_LEVEL="error")
            env.pop("RING_TCP_STREAMS", None)
            if env_k[r] is not None:
                env["RING_TCP_STREAMS"] = str(env_k[r])
            procs.append(subprocess.Popen([ring_fail.CHAOS, "--iters", "2", "--count", "1000"], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        out, end = [], time.time() + CONNECT_MS / 1000 + 10
        for p in procs:
            try:
                o, e = p.communicate(timeout=max(0.1, end - time.time()))
                out.append((p.returncode, o, e))
            except subprocess.TimeoutExpired:
                p.kill()
                o, e = p.communicate()
                out.append((None, o, e))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for q in paths:
            os.unlink(q)
        os.rmdir(d)


def created(o):
    for line in o.splitlines():
        if line.startswith("CREATE_FAILED "):
            f = line.split(" ", 2)
            return f[1], f[2] if len(f) > 2 else ""
    return None, None


def check(label, out, named, want_status="RING_ERR_CONFIG"):
    """Every rank fails to create; ranks in named (rank -> (theirs, ours)) with want_status
    and a message naming both counts."""
    for r, (rc, o, e) in enumerate(out):
        st, msg = created(o)
        if rc is None:
            print("FAIL %s: rank %d hung\n%s%s" % (label, r, o, e[-1500:]))
            return False
        if st is None or "Sanitizer" in e or "runtime error" in e:
            print("FAIL %s: rank %d did not fail to form the ring (exit %s)\n%s%s" % (label, r, rc, o, e[-1500:]))
            return False
        if r in named:
            theirs, ours = named[r]
            if st != want_status or ("uses %d TCP stream" % theirs) not in msg or ("this rank %d" % ours) not in msg:
                print("FAIL %s: rank %d: %s %s (expected %s naming %d and %d)" % (label, r, st, msg, want_status,
                                                                                   theirs, ours))
                return False
            print("%s: rank %d %s: %s" % (label, r, st, msg[:200]))
    return True


def bad_value(label, env_k, cfg_k, want):
    out = run_ring(2, env_k, cfg_k)
    for r, (rc, o, e) in enumerate(out):
        st, msg = created(o)
        if rc is None or st != "RING_ERR_CONFIG" or want not in msg:
            print("FAIL %s: rank %d: exit %s, %s %s (expected RING_ERR_CONFIG with '%s')\n%s" % (
                label, r, rc, st, msg, want, e[-1500:]))
            return False
    print("%s: both ranks RING_ERR_CONFIG: %s" % (label, created(out[0][1])[1][:160]))
    return True


def main():
    if not os.access(ring_fail.CHAOS, os.X_OK):
        print("ring-chaos not built at %s" % ring_fail.CHAOS)
        return 1
    # 2 ranks: 2 streams from the environment against 4 from the config file; each is the
    # other's right neighbour, so both are refused at once and name both counts.
    if not check("2 ranks, 2 vs 4 streams", run_ring(2, [2, None], [None, 4]), {0: (4, 2), 1: (2, 4)}):
        return 1
    # 4 ranks, rank 2 on one stream, the others on 4: rank 1 (its left) and rank 2 are
    # refused by their right neighbours; rank 3 refused rank 2 and says so when its connect
    # deadline passes; rank 0 times out waiting for check-ins.
    out = run_ring(4, [4, 4, None, 4], [None, None, None, None])
    if not check("4 ranks, rank 2 on 1 stream", out, {1: (1, 4), 2: (4, 1)}):
        return 1
    if not check("4 ranks, rank 2 on 1 stream", out, {3: (1, 4)}, want_status="RING_ERR_TIMEOUT"):
        return 1
    if not bad_value("RING_TCP_STREAMS=abc", ["abc", "abc"], [None, None], "RING_TCP_STREAMS: not an integer: 'abc'"):
        return 1
    if not bad_value("RING_TCP_STREAMS=17", ["17", "17"], [None, None], "RING_TCP_STREAMS: must be in 1..16, got 17"):
        return 1
    if not bad_value("tcp_streams 0", [None, None], [0, 0], "field 'tcp_streams' must be in 1..16, got 0"):
        return 1
    print("PASS: rings whose ranks disagree on RING_TCP_STREAMS fail with both counts named")
    return 0


if __name__ == "__main__":
    sys.exit(main())
