#!/bin/sh
# SPDX-License-Identifier: MIT
# The main job: install what is missing, build, and run a 4-rank all-reduce benchmark on this host.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps
[ -x configure ] || autoreconf -fi
mkdir -p build
cd build
[ -f Makefile ] || ../configure
make -j"$(nproc)"
exec ./tools/ringrun -n 4 --timeout 600 -- ./tools/coll-bench -b 4K -e 256M -f 4 -n 10 -w 3 -c 1
