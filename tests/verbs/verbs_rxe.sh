#!/bin/sh
# SPDX-License-Identifier: MIT
# The verbs transport on a real verbs device: boots a QEMU guest with Soft-RoCE
# (tests/verbs/rxe-vm.sh) and runs vm-checks.sh inside it: ring-test over verbs on 2 and
# 4 ranks (every collective, type and op), transport selection, and kill/stop tests.
# SKIP (77) when libring has no verbs transport or the guest cannot be set up (no qemu,
# no kernel package, no apt registry to fetch them, not root). Bounded: the guest is
# killed after RXE_VM_TIMEOUT seconds (default 1500), which fails the test.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${RINGRUN:?}" "${RING_TEST:?}"
RING_LOOP=${RING_LOOP:-$(dirname "$RING_TEST")/ring-loop}
export RINGRUN RING_TEST RING_LOOP

probe=$(RING_TRANSPORT=verbs RING_IB_DEVICE=ringcoll_probe "$RINGRUN" -n 1 --timeout 30 -- "$RING_TEST" --counts 1 2>&1)
if echo "$probe" | grep -q 'built without verbs'; then
    echo "SKIP: libring was built without the verbs transport (configure --with-verbs, libibverbs-dev)"
    exit 77
fi

RXE_VM_TIMEOUT=${RXE_VM_TIMEOUT:-1500}
# Share what holds both the build folder and the scripts: the guest's /tmp is its own, so a
# tree under the host's /tmp is only visible through this share.
RXE_VM_WORKDIR=${RXE_VM_WORKDIR:-$(python3 -c 'import os, sys; print(os.path.commonpath(sys.argv[1:]))' \
    "$(cd .. && pwd)" "$(cd "$here/../.." && pwd)")}
export RXE_VM_TIMEOUT RXE_VM_WORKDIR
"$here/rxe-vm.sh" "$here/vm-checks.sh"
st=$?
case $st in
0) exit 0 ;;
125) echo "SKIP: the Soft-RoCE VM could not be set up (see the 'rxe-vm: cannot' line above)"; exit 77 ;;
124) echo "FAIL: the verbs checks ran past ${RXE_VM_TIMEOUT} s in the VM"; exit 1 ;;
132) echo "FAIL: illegal instruction in the VM: build for baseline x86-64 (no -march=native)"; exit 1 ;;
*) echo "FAIL: verbs checks in the VM exited $st"; exit 1 ;;
esac
