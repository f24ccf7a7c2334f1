#!/bin/sh
# SPDX-License-Identifier: MIT
# The one-shot "p2p" all-reduce between two real processes on one GPU (CUDA IPC within a
# device): two ring ranks over loopback started by ringrun (free ports), both on GPU 0
# (MISTRALRS_NO_NCCL=1: NCCL refuses two ranks on one GPU). Exit 77 when test_coll_p2p
# skips (no CUDA build or no GPU) or ringrun is not built.
top=${abs_top_builddir:-$(cd .. && pwd)}
bin=${COLL_P2P_TEST:-$top/tests/coll/test_coll_p2p}
rr=${RINGRUN:-$top/tools/ringrun}
[ -x "$rr" ] || { echo "SKIP: $rr not built"; exit 77; }
[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
MISTRALRS_NO_NCCL=1 CUDA_VISIBLE_DEVICES=${P2P_GPU:-0} COLL_OP_TIMEOUT_MS=30000 \
    COLL_RDV_TIMEOUT_MS=30000 "$rr" -n 2 --timeout 240 -- "$bin"
rc=$?
case $rc in
0) echo "PASS: one-shot all-reduce, 2 processes on one GPU" ;;
77) echo "SKIP: test_coll_p2p skipped (see above)" ;;
*) echo "FAIL: ringrun exited $rc" ;;
esac
exit $rc
