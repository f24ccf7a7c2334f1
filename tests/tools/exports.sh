#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared libraries export their public API and nothing else: the functions that
# `nm -D --defined-only` lists for libring.so and libcoll.so must be exactly those that
# ring.h and coll.h declare with RING_API / COLL_API (internals are built hidden).
set -u
top=${abs_top_builddir:-..}
src=${abs_top_srcdir:-..}
command -v nm >/dev/null || { echo "SKIP: nm not found (binutils)"; exit 77; }
fail=0
check() { # LIB HEADER MACRO
    so=$top/$1/.libs/$1.so
    [ -f "$so" ] || { echo "FAIL: $so not built"; fail=1; return; }
    # Defined dynamic symbols, less the linker's own (_init, _fini, _edata, _end, __bss_start).
    nm -D --defined-only "$so" | awk '{print $3}' | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' |
        sed 's/@.*//' | sort -u >"$tmp/$1.exported"
    # Declared: the identifier before the first '(' on each MACRO line of the header.
    sed -n "s/^$3 .*[ *]\([a-z_][a-z0-9_]*\)(.*/\1/p" "$src/$1/$2" | sort -u >"$tmp/$1.declared"
    n=$(wc -l <"$tmp/$1.declared")
    [ "$n" -gt 10 ] || { echo "FAIL: only $n $3 declarations found in $2"; fail=1; return; }
    if ! cmp -s "$tmp/$1.exported" "$tmp/$1.declared"; then
        echo "FAIL: $1.so exports differ from $2 ('<' exported, not declared; '>' declared, not exported):"
        diff "$tmp/$1.exported" "$tmp/$1.declared" | grep '^[<>]'
        fail=1
    else
        echo "$1.so: exports exactly the $n functions $2 declares"
    fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -d "$top/libring/.libs" ] && check libring ring.h RING_API
check libcoll coll.h COLL_API
exit $fail
