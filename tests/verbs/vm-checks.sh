#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# vm-checks.sh: the verbs checks, run inside the Soft-RoCE guest by rxe-vm.sh.
# Needs RINGRUN, RING_TEST and RING_LOOP (set by the automake test environment).
# RING_TEST_BIG: the large, odd count that makes collectives span many slots (default 300007).
set -u
: "${RINGRUN:?}" "${RING_TEST:?}" "${RING_LOOP:?}"
here=$(cd "$(dirname "$0")" && pwd)
big=${RING_TEST_BIG:-300007}
step() { echo; echo "== $*"; }
t_start=$SECONDS

step "verbs devices"
ibv_devinfo -d rxe0 | grep -E 'hca_id|state|active_mtu|link_layer' || { echo "FAIL: no rxe0 in the guest"; exit 1; }

for n in 2 4; do
    step "ring-test, $n ranks, RING_TRANSPORT=verbs (all collectives, types, ops; counts 0,1,3,1000,$big)"
    t=$SECONDS
    out=$(RING_TRANSPORT=verbs RING_LOG_LEVEL=info "$RINGRUN" -n "$n" --timeout 900 -- \
        "$RING_TEST" --counts 0,1,3,1000 --big "$big" 2>&1)
    st=$?
    echo "$out" | grep -E 'transport|checks passed|FAIL|ERROR' | head -n 20
    [ "$st" = 0 ] || { echo "$out" | tail -n 30; echo "FAIL: ring-test on $n ranks over verbs (status $st)"; exit 1; }
    used=$(echo "$out" | grep -c 'transport verbs: verbs on rxe0')
    [ "$used" = "$n" ] || { echo "FAIL: $used of $n ranks chose verbs on rxe0"; exit 1; }
    echo "ok: $n ranks in $((SECONDS - t)) s"
done

step "transport auto picks verbs"
out=$(RING_TRANSPORT=auto "$RINGRUN" -n 2 --timeout 300 -- "$RING_TEST" --counts 1000 2>&1)
st=$?
echo "$out" | grep -E 'transport auto|checks passed'
[ "$st" = 0 ] && echo "$out" | grep -q 'transport auto: verbs on rxe0' || { echo "FAIL: auto did not run over verbs"; exit 1; }

step "RING_IB_DEVICE naming a missing device"
out=$(RING_TRANSPORT=verbs RING_IB_DEVICE=mlx5_7 "$RINGRUN" -n 2 --timeout 60 -- "$RING_TEST" --counts 1 2>&1)
echo "$out" | grep 'ring-test:' | head -n 1
echo "$out" | grep -q 'RING_IB_DEVICE=mlx5_7 not found (devices seen: rxe0)' || { echo "FAIL: no clear error"; exit 1; }

step "kill test: SIGKILL rank 1 of 4 mid-loop (config \"transport\": \"verbs\", op timeout 4 s)"
"$here/kill-test.sh" 4 verbs 4000 KILL || exit 1
step "stop test: SIGSTOP rank 1 of 4 mid-loop (the deadline path)"
"$here/kill-test.sh" 4 verbs 4000 STOP || exit 1

echo
echo "PASS: verbs checks on rxe0 in $((SECONDS - t_start)) s"
