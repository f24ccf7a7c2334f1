#!/bin/sh
# SPDX-License-Identifier: MIT
# ringinfer serve over the ring: TP=2 and 4 under ringrun answer the tokens of TP=1; a killed
# worker rank gives error events and 503, not a hang (serve_http.py tp, kill).
. "$(dirname "$0")/serve_common.sh"
[ -x "$top/tools/ringrun" ] || { echo "SKIP: ringrun not built"; exit 77; }
py="$(dirname "$0")/serve_http.py"
rc=0
timeout 600 python3 "$py" tp || rc=1
timeout 600 python3 "$py" kill || rc=1
exit $rc
