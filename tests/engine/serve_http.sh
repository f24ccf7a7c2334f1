#!/bin/sh
# SPDX-License-Identifier: MIT
# ringinfer serve over raw HTTP on loopback: SSE bytes, errors, stop strings, seeds, queue,
# the n choices of a request, prompt caching, continuous batching (alone == together), aborts, idle connections, a slow client, SIGTERM drain, the chat-template fixtures through /apply-template (serve_http.py).
. "$(dirname "$0")/serve_common.sh"
py="$(dirname "$0")/serve_http.py"
rc=0
timeout 600 python3 "$py" basic || rc=1
timeout 600 python3 "$py" choices || rc=1
timeout 600 python3 "$py" cache || rc=1
timeout 600 python3 "$py" batching || rc=1
timeout 600 python3 "$py" slow || rc=1
timeout 600 python3 "$py" templates || rc=1
exit $rc
