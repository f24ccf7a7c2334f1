#!/bin/sh
# SPDX-License-Identifier: MIT
# The tree's style, checked in CI: every C, header and CUDA file is formatted with the root
# .clang-format (clang-format --dry-run -Werror), and every source file carries an SPDX line.
set -u
top=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v clang-format >/dev/null 2>&1 || { echo "SKIP: clang-format not installed (scripts/install-deps installs it)"; exit 77; }
cd "$top" || exit 1
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files)
else
    echo "SKIP: not a git checkout (the file list comes from git ls-files)"
    exit 77
fi
bad=0
n=0
for f in $files; do
    case "$f" in
    *_tab.h) ;; # generated tables (tok_unicode_gen.py) keep the generator's layout
    *.c | *.h | *.cu | *.cuh)
        n=$((n + 1))
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            echo "not formatted: $f (run: clang-format -i $f)"
            bad=$((bad + 1))
        fi ;;
    esac
    case "$f" in
    *.c | *.h | *.cu | *.cuh | *.sh | *.py | *.mk | *.am | *.m4 | *.mjs | configure.ac)
        if ! head -3 "$f" | grep -q 'SPDX-License-Identifier: MIT'; then
            echo "no SPDX line in its first three lines: $f"
            bad=$((bad + 1))
        fi ;;
    esac
done
echo "style: $n C/CUDA files checked, $bad problems"
[ "$bad" -eq 0 ]
