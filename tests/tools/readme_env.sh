#!/bin/sh
# SPDX-License-Identifier: MIT
# The README's table of environment variables is the one tests/tools/env_table prints from the
# libraries' knob tables (between the env-table markers): a knob added, renamed or given a
# new default without the README fails here with the difference.
set -u
top=${abs_top_srcdir:?}
prog=${abs_top_builddir:?}/tests/tools/env_table
[ -x "$prog" ] || { echo "SKIP: tests/tools/env_table not built"; exit 77; }
want=$(mktemp) && have=$(mktemp) || exit 1
trap 'rm -f "$want" "$have"' EXIT
"$prog" >"$want" || { echo "FAIL: env_table exited $?"; exit 1; }
sed -n '/<!-- env-table: begin/,/<!-- env-table: end/p' "$top/README.md" | sed '1d;$d' >"$have"
if [ ! -s "$have" ]; then
    echo "FAIL: README.md has no env-table markers"
    exit 1
fi
if ! diff -u "$have" "$want"; then
    echo "FAIL: README.md's environment table differs from the knob tables (above: - README, + code);"
    echo "      regenerate it with tests/tools/env_table"
    exit 1
fi
echo "ok: README.md's environment table matches the $(($(wc -l <"$want") - 2)) knobs of the code"
