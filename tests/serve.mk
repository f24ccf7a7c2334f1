# SPDX-License-Identifier: MIT
# ringinfer serve (engine/server, docs/SERVER.md), for tests/Makefile.am after check_PROGRAMS,
# TESTS and EXTRA_DIST: raw HTTP (python3), the ring (ringrun, killed rank), the openai npm
# client (installed into tests/serve-node). Each skips (77) without libmicrohttpd, ../shared,
# python3, ringrun or node/npm.
TESTS += serve_http.sh serve_tp.sh serve_openai.sh
EXTRA_DIST += serve_http.sh serve_tp.sh serve_openai.sh serve_common.sh serve_http.py \
	serve_openai.mjs

clean-local: clean-serve-node
clean-serve-node:
	rm -rf serve-node
.PHONY: clean-serve-node
