#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Checks that libkoc.so exports exactly the public API: the functions declared
# KOC_EXPORT in include/koc/*.h, no more and no fewer, each at version KOC_0.1.
# Usage: check-exports.sh LIBKOC_SO SOURCE_DIR
set -euo pipefail

lib=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The defined dynamic symbols, without the version node ("koc_x@@KOC_0.1").
nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"

# A declaration's name is the last identifier before the first "(" after
# KOC_EXPORT; the macro's own #define line is not a declaration.
grep -h 'KOC_EXPORT' "$src"/include/koc/*.h | grep -v '^[[:space:]]*#' |
        sed -nE 's/^.*KOC_EXPORT[^(]*[^a-zA-Z0-9_(]([a-zA-Z_][a-zA-Z0-9_]*)[[:space:]]*\(.*$/\1/p' |
        sort -u >"$tmp/declared"

# Every exported symbol must carry the version node, so that a later release
# can add KOC_0.2 without breaking programs linked against this one.
unversioned=$(nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | grep -v '@@\?KOC_0\.1$' || true)

status=0
if ! diff -q "$tmp/declared" "$tmp/exported" >/dev/null; then
        status=1
        extra=$(comm -13 "$tmp/declared" "$tmp/exported")
        missing=$(comm -23 "$tmp/declared" "$tmp/exported")
        if [ -n "$extra" ]; then
                echo "exported by libkoc.so but not declared KOC_EXPORT in include/koc/*.h:"
                echo "$extra" | sed 's/^/  + /'
                echo "  (make them static, or give internal helpers the koc__ prefix and no KOC_EXPORT)"
        fi
        if [ -n "$missing" ]; then
                echo "declared KOC_EXPORT in include/koc/*.h but not exported by libkoc.so:"
                echo "$missing" | sed 's/^/  - /'
                echo "  (add each new public function to the KOC_0.1 node of koc.sym, in the global: list)"
        fi
fi
if [ -n "$unversioned" ]; then
        status=1
        echo "exported without the KOC_0.1 version node (is koc.sym applied to libkoc.so?):"
        echo "$unversioned" | sed 's/^/  ? /'
fi
if [ "$status" = 0 ]; then
        echo "libkoc.so exports the $(wc -l <"$tmp/declared") functions of include/koc/*.h at KOC_0.1"
fi
exit $status
