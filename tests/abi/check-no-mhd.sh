#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# A program that uses only the client, leader election, shutdown and metrics
# and links libkoc.a (with the linker's --as-needed, Debian's default) must
# not need libmicrohttpd, and libkoc.a must not pull the probes server or
# core's MHD glue (core/mhd-glue.c) into it: only the HTTP servers (probes/,
# and so the manager) use them.
# Usage: check-no-mhd.sh PROGRAM
set -euo pipefail
bin=$1
status=0
if objdump -p "$bin" | grep -q 'NEEDED.*libmicrohttpd'; then
        echo "$bin links libmicrohttpd although it serves no probes:"
        objdump -p "$bin" | grep NEEDED | sed 's/^/  /'
        status=1
fi
pulled=$(nm "$bin" | awk '$2 ~ /[TtU]/ {print $3}' | grep -E '^(MHD_|koc_probes_|koc__mhd)' | sort -u || true)
if [ -n "$pulled" ]; then
        echo "$bin holds the probes server or the MHD glue (does a lower layer call into them?):"
        echo "$pulled" | head -20 | sed 's/^/  /'
        status=1
fi
"$bin" || status=1
if [ "$status" = 0 ]; then
        echo "a client and leader-only program linked with libkoc.a needs no libmicrohttpd"
fi
exit $status
