#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Failure tests of the ring contract, driving ring-chaos ranks on loopback.

  ring_fail.py kill  --ranks 2,4,8 --trials 20   SIGKILL one rank mid-loop
  ring_fail.py stop  --ranks 2,4,8 --trials 20   SIGSTOP one rank mid-loop
  ring_fail.py mismatch --ranks 2,4,8            ranks disagree on count/type/op/collective
  ring_fail.py abort --ranks 4                   SIGTERM every rank: ring_comm_abort()
  ring_fail.py abort-start --ranks 2,4           one rank aborts and destroys before any collective

Every survivor must print the expected status (PEER_CLOSED for a kill, TIMEOUT for a
stop, INVALID_USAGE for a mismatch, ABORTED for an abort) within 2x the operation
deadline (RING_OP_TIMEOUT_MS, default here 1000) of the fault, and then refuse further
calls with RING_ERR_FAILED. Prints one line per trial and a summary with the median and
maximum time to error; exits 1 on the first violation.
"""
import argparse
import json
import os
import select
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from free_ports import free_ports  # noqa: E402  (ports below the ephemeral range)

CHAOS = os.environ.get("RING_CHAOS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "ring-chaos")


def write_configs(d, n, extra=None):
    ports = free_ports(n + 1)
    job = random.getrandbits(62) + 1
    paths = []
    for r in range(n):
        cfg = {"master_ip": "127.0.0.1", "master_port": ports[0], "port": ports[1 + r],
               "right_ip": "127.0.0.1", "right_port": ports[1 + (r + 1) % n], "rank": r,
               "world_size": n, "job_id": "0x%016x" % job}
        if extra:
            cfg.update(extra)
        p = os.path.join(d, "rank-%d.json" % r)
        with open(p, "w") as f:
            json.dump(cfg, f)
        paths.append(p)
    return paths, ports


class Ring:
    def __init__(self, n, args, op_ms, extra_env=None, extra_cfg=None):
        self.dir = tempfile.mkdtemp(prefix="ringfail.")
        self.paths, self.ports = write_configs(self.dir, n, extra_cfg)
        self.procs = []
        for r in range(n):
            env = dict(os.environ, RING_CONFIG=self.paths[r], RING_OP_TIMEOUT_MS=str(op_ms),
                       RING_CONNECT_TIMEOUT_MS="20000", RING_LOG_LEVEL="error")
            if extra_env:
                env.update(extra_env)
            self.procs.append(subprocess.Popen([CHAOS] + args, env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True))

    def wait_ready(self, timeout):
        """Read until every rank said READY (returns False on timeout or early exit).
        Reads the raw pipe: a buffered readline() could swallow what follows READY, which
        communicate() (reading the fd directly) would then never see."""
        self.lines = ["" for _ in self.procs]
        for r, p in enumerate(self.procs):
            end = time.time() + timeout
            fd = p.stdout.fileno()
            while "READY" not in self.lines[r]:
                left = end - time.time()
                if left <= 0:
                    return False
                ready, _, _ = select.select([fd], [], [], left)
                if not ready:
                    return False
                chunk = os.read(fd, 65536)
                if not chunk:
                    return False
                self.lines[r] += chunk.decode(errors="replace")
        return True

    def finish(self, timeout, skip=()):
        out = {}
        end = time.time() + timeout
        for r, p in enumerate(self.procs):
            if r in skip:
                continue
            try:
                o, e = p.communicate(timeout=max(0.1, end - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                o, e = p.communicate()
                out[r] = (None, self.lines[r] + o, e)
                continue
            out[r] = (p.returncode, self.lines[r] + o, e)
        return out

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for q in self.paths:
            os.unlink(q)
        os.rmdir(self.dir)


def parse_status(text):
    for line in text.splitlines():
        if line.startswith("STATUS "):
            f = line.split(" ", 4)
            return f[2], int(f[3]), f[4] if len(f) > 4 else ""
    return None, None, None


def check_survivors(out, want, t0_ms, limit_ms, label):
    """Every survivor: the wanted status, in time, and RING_ERR_FAILED afterwards."""
    times = []
    for r, (rc, o, e) in sorted(out.items()):
        st, t, msg = parse_status(o)
        if rc is None:
            return None, "%s: rank %d hung (killed by the test)\n%s%s" % (label, r, o, e)
        if "CONTRACT" in o or "WRONG" in o or "Sanitizer" in e or "runtime error" in e:
            return None, "%s: rank %d: %s\n%s" % (label, r, o.strip(), e[-3000:])
        if st != want:
            return None, "%s: rank %d returned %s (exit %s), expected %s\n%s%s" % (label, r, st, rc, want, o, e[-2000:])
        dt = t - t0_ms
        if dt > limit_ms:
            return None, "%s: rank %d took %d ms to fail (limit %d ms): %s" % (label, r, dt, limit_ms, msg)
        times.append(dt)
    return times, None


def fault_trials(kind, ns, trials, op_ms, seed):
    rng = random.Random(seed)
    sig = signal.SIGKILL if kind == "kill" else signal.SIGSTOP
    want = "RING_ERR_PEER_CLOSED" if kind == "kill" else "RING_ERR_TIMEOUT"
    all_times, count = [], 0
    for n in ns:
        times_n = []
        for trial in range(trials):
            ring = Ring(n, ["--count", "100000"], op_ms)
            try:
                if not ring.wait_ready(30):
                    out = ring.finish(1)
                    print("FAIL %s n=%d trial %d: ring did not form: %s" % (kind, n, trial, out))
                    return 1
                victim = rng.randrange(n)
                time.sleep(rng.uniform(0.0, 0.3))
                t0 = int(time.time() * 1000)
                os.kill(ring.procs[victim].pid, sig)
                out = ring.finish(4.0 * op_ms / 1000 + 5, skip=(victim,))
                times, why = check_survivors(out, want, t0, 2 * op_ms, "%s n=%d trial %d victim %d" % (kind, n, trial, victim))
                if why:
                    print("FAIL " + why)
                    return 1
                times_n += times
                count += 1
            finally:
                ring.cleanup()
        print("%s n=%d: %d trials, %d survivors, time to error median %d ms, max %d ms (limit %d ms)" % (
            kind, n, trials, len(times_n), statistics.median(times_n), max(times_n), 2 * op_ms))
        all_times += times_n
    print("%s: %d trials, %d survivor errors, median %d ms, max %d ms" % (
        kind, count, len(all_times), statistics.median(all_times), max(all_times)))
    return 0


def mismatch(ns, op_ms):
    for n in ns:
        for what in ("count", "type", "op", "coll"):
            culprit = n - 1
            ring = Ring(n, ["--count", "100000", "--iters", "6", "--mismatch", "%d:%s" % (culprit, what)], op_ms)
            try:
                ring.wait_ready(30)
                out = ring.finish(2.0 * op_ms / 1000 + 5)
                for r, (rc, o, e) in sorted(out.items()):
                    st, _, msg = parse_status(o)
                    if st != "RING_ERR_INVALID_USAGE" or "CONTRACT" in o or "Sanitizer" in e or "runtime error" in e:
                        print("FAIL mismatch %s n=%d: rank %d got %s (exit %s)\n%s%s" % (what, n, r, st, rc, o, e[-2000:]))
                        return 1
                print("mismatch %-5s n=%d: all %d ranks RING_ERR_INVALID_USAGE (e.g. \"%s\")" % (what, n, n, msg[:90]))
            finally:
                ring.cleanup()
    return 0


def abort(ns, op_ms):
    """SIGTERM to every rank mid-loop: the handler's ring_comm_abort() unblocks at once."""
    for n in ns:
        ring = Ring(n, ["--count", "100000"], op_ms)
        try:
            ring.wait_ready(30)
            time.sleep(0.2)
            t0 = int(time.time() * 1000)
            for p in ring.procs:
                p.send_signal(signal.SIGTERM)
            out = ring.finish(5)
            times, why = check_survivors(out, "RING_ERR_ABORTED", t0, op_ms // 2, "abort n=%d" % n)
            if why:
                print("FAIL " + why)
                return 1
            print("abort n=%d: all ranks RING_ERR_ABORTED, max %d ms after SIGTERM" % (n, max(times)))
        finally:
            ring.cleanup()
    return 0


def abort_start(ns):
    """One rank aborts and destroys its communicator before the first collective (a program
    failing at start-up): the others get RING_ERR_ABORTED at once, naming that rank, not a
    PEER_CLOSED after the operation deadline (30 s here, the default)."""
    op_ms = 30000
    for n in ns:
        for culprit in sorted({0, n - 1}):
            ring = Ring(n, ["--count", "100000", "--iters", "1000", "--abort-at-start", str(culprit)], op_ms)
            try:
                ok = ring.wait_ready(30)
                t0 = int(time.time() * 1000)
                out = ring.finish(10, skip=(culprit,)) if ok else ring.finish(1)
                times, why = check_survivors(out, "RING_ERR_ABORTED", t0, 5000,
                                             "abort-start n=%d rank %d" % (n, culprit))
                if not why:
                    for r, (rc, o, e) in out.items():
                        if "rank %d" % culprit not in parse_status(o)[2]:
                            why = "abort-start n=%d: rank %d's error does not name rank %d: %s" % (
                                n, r, culprit, parse_status(o)[2])
                if why:
                    print("FAIL " + why)
                    return 1
                print("abort-start n=%d rank %d: every other rank RING_ERR_ABORTED within %d ms (\"%s\")" % (
                    n, culprit, max(times), parse_status(out[min(out)][1])[2][:80]))
            finally:
                ring.cleanup()
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["kill", "stop", "mismatch", "abort", "abort-start"])
    ap.add_argument("--ranks", default="2,4,8")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--op-ms", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    if not os.access(CHAOS, os.X_OK):
        print("ring-chaos not built at %s" % CHAOS)
        return 1
    seed = a.seed if a.seed is not None else int(time.time())
    print("seed %d" % seed)
    ns = [int(x) for x in a.ranks.split(",")]
    if a.mode in ("kill", "stop"):
        return fault_trials(a.mode, ns, a.trials, a.op_ms, seed)
    if a.mode == "mismatch":
        return mismatch(ns, a.op_ms)
    if a.mode == "abort-start":
        return abort_start(ns)
    return abort(ns, a.op_ms)


if __name__ == "__main__":
    sys.exit(main())
