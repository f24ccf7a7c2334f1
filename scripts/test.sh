#!/bin/sh
# SPDX-License-Identifier: MIT
# The test suite: install what is missing, then build and run `make check` twice:
#   1. ring only, with AddressSanitizer and UndefinedBehaviorSanitizer;
#   2. everything this machine has (CUDA, NCCL, verbs when found), as users build it.
# Ends with one line "test: N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
scripts/install-deps || exit 1
autoreconf -fi >/dev/null 2>&1 || { echo "test: autoreconf failed"; exit 1; }
jobs=$(nproc)
status=0
run_config() {
    name=$1
    shift
    echo "==== $name: configure $*"
    rm -rf "$top/build-$name" && mkdir -p "$top/build-$name" && cd "$top/build-$name" || return 1
    ../configure "$@" >configure.out 2>&1 || { tail -20 configure.out; return 1; }
    sed -n '/configuration$/,$p' configure.out
    make -j"$jobs" >make.out 2>&1 || { tail -40 make.out; return 1; }
    make -j"$jobs" check >check.out 2>&1
    rc=$?
    grep -E '^(PASS|FAIL|SKIP|ERROR|XFAIL|XPASS):' check.out
    if [ $rc -ne 0 ]; then
        for log in $(grep -lE '^:test-result: (FAIL|ERROR)' $(find . -name '*.trs') 2>/dev/null); do
            echo "---- ${log%.trs}.log"; tail -40 "${log%.trs}.log"
        done
    fi
    cd "$top"
    return $rc
}
# --enable-werror: warnings are errors here, and so in CI.
run_config ring --without-cuda --without-nccl --without-verbs --enable-sanitizers --enable-werror || status=1
run_config full --enable-werror || status=1
# Every .trs at any depth: the tests live in tests/<folder>/ (ring, coll, engine, tools, verbs, fuzz).
results=$(find "$top/build-ring" "$top/build-full" -name '*.trs' -exec cat {} + 2>/dev/null)
pass=$(printf '%s\n' "$results" | grep -c '^:test-result: PASS')
fail=$(printf '%s\n' "$results" | grep -cE '^:test-result: (FAIL|ERROR|XPASS)')
skip=$(printf '%s\n' "$results" | grep -c '^:test-result: SKIP')
echo "test: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] || status=1
exit $status
