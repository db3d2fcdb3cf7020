#!/usr/bin/env bash
# rbac-values.yaml (Helm values for the chart: helm install -f
# rbac-values.yaml) is exactly what the program prints with --print-rbac,
# and printing needs no cluster.  Written by `koc-new api`.
#
#   check-rbac.sh PROGRAM rbac-values.yaml
set -euo pipefail
prog=${1:?usage: check-rbac.sh PROGRAM COMMITTED-VALUES}
committed=${2:?usage: check-rbac.sh PROGRAM COMMITTED-VALUES}
out=$(mktemp "${TMPDIR:-/tmp}/koc-rbac.XXXXXX")
trap 'rm -f "$out" "$out.err"' EXIT
rc=0
env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT KUBECONFIG=/nonexistent/kubeconfig \
        HOME=/nonexistent "$prog" --print-rbac >"$out" 2>"$out.err" || rc=$?
if [ "$rc" != 0 ]; then
        cat "$out.err" >&2
        echo "check-rbac: FAIL: $prog --print-rbac exited with $rc" >&2
        exit 1
fi
if ! diff -u "$committed" "$out"; then
        echo "check-rbac: FAIL: $committed differs from what $(basename "$prog") --print-rbac prints;" >&2
        echo "  regenerate it: cmake --build build --target $(basename "$prog")-rbac-values" >&2
        exit 1
fi
echo "check-rbac: OK: $committed is what $(basename "$prog") --print-rbac prints"
