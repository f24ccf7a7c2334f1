#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Loopback ports for test rings that cannot collide with client sockets.

   free_ports.py N     print a base port P such that P..P+N-1 are free on 127.0.0.1

The ports lie below the kernel's ephemeral range (net.ipv4.ip_local_port_range), which
every connect() draws its local port from: a port the kernel picked for us (bind to 0)
and then released could be handed to another test's client socket before our rank binds
it. Below that range only other tests that also pick at random can take a port, so a
random start keeps that unlikely and callers retry on "Address already in use".
"""
import random
import socket
import sys

LOW = 10000


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_base(n):
    high = ephemeral_low() - n
    if high <= LOW:
        raise RuntimeError("no room below the ephemeral port range (ip_local_port_range)")
    for _ in range(200):
        base = random.randrange(LOW, high)
        if all(_bindable(base + i) for i in range(n)):
            return base
    raise RuntimeError("no %d free consecutive ports below %d" % (n, high + n))


def free_ports(n):
    base = free_base(n)
    return list(range(base, base + n))


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or not 1 <= int(sys.argv[1]) <= 1000:
        sys.exit("usage: free_ports.py N   (1 <= N <= 1000)")
    try:
        print(free_base(int(sys.argv[1])))
    except RuntimeError as e:
        sys.exit("free_ports.py: %s" % e)
