#!/usr/bin/env bash
# The RBAC rules committed next to an example (Helm values for
# charts/koc-example) are exactly what its binary prints with --print-rbac,
# and printing needs no cluster: no kubeconfig, no service account, no
# network (KUBECONFIG and HOME point nowhere).
#
#   check-printed.sh PROGRAM COMMITTED-VALUES [FLAG...]   (FLAGs: given with --print-rbac)
set -euo pipefail
prog=${1:?usage: check-printed.sh PROGRAM COMMITTED-VALUES}
committed=${2:?usage: check-printed.sh PROGRAM COMMITTED-VALUES}
shift 2
out=$(mktemp "${TMPDIR:-/tmp}/koc-rbac.XXXXXX")
trap 'rm -f "$out" "$out.err"' EXIT
rc=0
env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT KUBECONFIG=/nonexistent/kubeconfig \
        HOME=/nonexistent "$prog" --print-rbac "$@" >"$out" 2>"$out.err" || rc=$?
if [ "$rc" != 0 ]; then
        cat "$out.err" >&2
        echo "check-printed: FAIL: $prog --print-rbac exited with $rc" >&2
        exit 1
fi
if ! diff -u "$committed" "$out"; then
        echo "check-printed: FAIL: $committed differs from what $(basename "$prog") --print-rbac prints;" >&2
        echo "  regenerate it: $(basename "$prog") --print-rbac $* > $committed" >&2
        exit 1
fi
echo "check-printed: OK: $committed is what $(basename "$prog") --print-rbac prints"
