#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Checks that libkoc.a defines no global symbol outside koc's two namespaces:
# the public API (the koc_ functions listed in koc.sym) and the internal
# helpers shared between files (the koc__ prefix).  A program that links the
# static archive gets every global symbol of the objects it pulls in, hidden
# or not, so an unprefixed internal name (leader_fsm_step) or a koc_ name
# that is not in the API could collide with the program's own.
# Usage: check-static.sh LIBKOC_A KOC_SYM
set -euo pipefail

lib=$1
sym=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The public names: the entries of koc.sym's global: list.
sed -n '/^[[:space:]]*global:/,/^[[:space:]]*local:/p' "$sym" |
        sed -nE 's/^[[:space:]]*([a-zA-Z_][a-zA-Z0-9_]*);.*$/\1/p' | sort -u >"$tmp/public"
if [ ! -s "$tmp/public" ]; then
        echo "no global: entries read from $sym"
        exit 1
fi

# Every defined global symbol of every member ("member.o:" lines and blanks
# have fewer than three fields).  ASan's one-definition-rule indicator of a
# global variable is named after it: the variable's name is checked.
nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}' | sed 's/^__odr_asan_gen_//' |
        sort -u >"$tmp/defined"
if [ ! -s "$tmp/defined" ]; then
        echo "no defined global symbol found in $lib"
        exit 1
fi

status=0
outside=$(grep -v '^koc_' "$tmp/defined" || true)
if [ -n "$outside" ]; then
        status=1
        echo "global symbols of libkoc.a without the koc_ or koc__ prefix:"
        echo "$outside" | sed 's/^/  + /'
        echo "  (make them static, or give internal helpers the koc__ prefix)"
fi
# koc_x (one underscore) is the public namespace: only koc.sym's names.
unlisted=$(grep '^koc_' "$tmp/defined" | grep -v '^koc__' | comm -23 - "$tmp/public" || true)
if [ -n "$unlisted" ]; then
        status=1
        echo "global koc_ symbols of libkoc.a that are not public API (not in koc.sym):"
        echo "$unlisted" | sed 's/^/  + /'
        echo "  (internal helpers take the koc__ prefix; public functions go into koc.sym)"
fi
if [ "$status" = 0 ]; then
        echo "libkoc.a defines $(grep -cv '^koc__' "$tmp/defined") public (koc.sym) and" \
                "$(grep -c '^koc__' "$tmp/defined") internal (koc__) global symbols, no other"
fi
exit $status
