#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# libcurl is core's business: no source above core/ (the modules, the
# framework, koc-apiserver, the examples) includes the client's internal
# header or libcurl's, so that no libcurl type reaches them.  They post
# requests through the public client API or core's post-and-wait
# (core/sync.h).
# Usage: check-no-curl-above-core.sh SOURCE_DIR
set -euo pipefail
cd "$1"
found=$(grep -rlE '#include *[<"](core/client-internal\.h|client-internal\.h|curl/curl\.h)[>"]' \
        --include='*.c' --include='*.h' framework leader probes shutdown apiserver examples \
        2>/dev/null || true)
if [ -n "$found" ]; then
        echo "above core/, these include the client's internals or libcurl:"
        echo "$found" | sed 's/^/  /'
        exit 1
fi
echo "no source above core/ includes client-internal.h or curl/curl.h"
