# SPDX-License-Identifier: MIT
# Sourced by the shell tests (`. "$(dirname "$0")/../common.sh"`): where things are, and the one
# way to find the shared test data. Under `make check` the Makefile sets abs_top_builddir,
# abs_top_srcdir and SHARED_DIR; run by hand from BUILD/tests, the defaults below apply.
#   top         the build tree          src   the source tree
#   SHARED_DIR  ../shared beside the source tree unless the environment names another folder
#   need_shared PATH...   skip (exit 77), naming the path, unless each PATH under SHARED_DIR exists
here=$(cd "$(dirname "$0")" && pwd)
top=${abs_top_builddir:-$(cd .. && pwd)}
src=${abs_top_srcdir:-$(cd "$here/../.." && pwd)}
SHARED_DIR=${SHARED_DIR:-$src/../shared}
export SHARED_DIR
need_shared() {
    for p in "$@"; do
        [ -e "$SHARED_DIR/$p" ] || {
            echo "SKIP: $SHARED_DIR/$p absent (the shared test data: set SHARED_DIR or put it at $src/../shared)"
            exit 77
        }
    done
}
