#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The koc side of README.md's comparison with operator-sdk's Memcached sample,
# from one command (a measurement, not a test: nothing here passes or fails):
#
#   examples/memcached/measure.sh [BUILD_DIR]
#
# BUILD_DIR (default build/, as ./scripts/test.sh leaves it) must hold a
# built koc-example-memcached.  Prints:
#   - lines of C without blank lines and comments (gcc -fpreprocessed -dD -E -P),
#     the raw count in brackets;
#   - YAML lines written by hand and generated (blank lines and comments not counted);
#   - the binary's size, stripped;
#   - the example alone rebuilt (its generated types and its C files, koc
#     already built), then after touching main.c: wall and CPU seconds;
#   - resident and private memory idle on kube-apiserver (tests/k8s/env.sh,
#     no kube-controller-manager) after the cache synced and one Memcached
#     reconciled into its Deployment, probes and metrics off, with and without
#     leader election.
# --clean also builds koc and the example from nothing in a temporary tree
# (configure, libkoc's modules, koc-gen-types, libkoc-types, the example; -j2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
clean=0
[ "${1:-}" != --clean ] || { clean=1; shift; }
build=$(cd "${1:-$src/build}" && pwd)
prog=$build/examples/memcached/koc-example-memcached
[ -x "$prog" ] || { echo "measure: no $prog; build it first (cmake --build $build --target koc-example-memcached)" >&2; exit 2; }
work=$(mktemp -d)
pid=
cleanup() {
        [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
        [ ! -d "$work/env" ] || "$src/tests/k8s/env.sh" stop "$work/env" >/dev/null 2>&1 || true
        rm -rf "$work"
}
trap cleanup EXIT

c_lines() { gcc -fpreprocessed -dD -E -P "$1" 2>/dev/null | grep -cv '^[[:space:]]*$'; }
yaml_lines() { grep -cv '^[[:space:]]*\(#.*\)\{0,1\}$' "$1"; }
timed() { # LABEL COMMAND...: wall and user+system seconds of COMMAND
        local TIMEFORMAT='%R %U %S'
        { time "${@:2}" >/dev/null 2>&1; } 2>"$work/time"
        read -r wall user sys <"$work/time"
        printf '  %-44s %6.1f s wall, %5.1f s CPU\n' "$1" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')"
}

echo "== examples/memcached ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ))"
echo "lines of C (code [raw]):"
for f in main.c failure.c webhooks.c; do
        printf '  %-12s %4d [%d]\n' "$f" "$(c_lines "$here/$f")" "$(wc -l <"$here/$f")"
done
echo "YAML lines (blank lines and comments not counted):"
for f in chart/crds/cache.example.com_memcacheds.yaml chart/Chart.yaml chart/values.yaml config/sample.yaml; do
        printf '  %-44s %4d  by hand\n' "$f" "$(yaml_lines "$here/$f")"
done
printf '  %-44s %4d  printed by --print-rbac\n' rbac-values.yaml "$(yaml_lines "$here/rbac-values.yaml")"
echo "binary:"
strip -o "$work/stripped" "$prog"
printf '  %-44s %d bytes stripped (%s)\n' "$(basename "$prog")" "$(stat -c %s "$work/stripped")" \
        "$(grep -m1 '^CMAKE_BUILD_TYPE:' "$build/CMakeCache.txt" | cut -d= -f2)"
echo "build:"
# The example's generated types, objects and program, not its build rules.
rm -rf "$build/examples/memcached/koc-types" "$prog"
find "$build/examples/memcached/CMakeFiles" -name '*.o' -delete
timed "the example alone (types generated, C compiled)" cmake --build "$build" -j2 --target koc-example-memcached
touch "$here/main.c"
timed "after touching main.c" cmake --build "$build" -j2 --target koc-example-memcached
if [ $clean = 1 ]; then
        timed "configure (a new tree)" cmake -S "$src" -B "$work/tree" -DCMAKE_BUILD_TYPE=RelWithDebInfo
        timed "koc, koc-gen-types, libkoc-types, the example" cmake --build "$work/tree" -j2 --target koc-example-memcached
fi

echo "memory idle on kube-apiserver (one Memcached reconciled, probes and metrics off):"
"$src/tests/k8s/env.sh" start "$work/env" >/dev/null
kubectl=$("$src/tests/tools/k8s-tools.sh" kubectl)
export KUBECONFIG=$work/env/admin.kubeconfig
"$kubectl" apply -f "$here/chart/crds/cache.example.com_memcacheds.yaml" >/dev/null
"$kubectl" wait --for condition=established --timeout=30s crd/memcacheds.cache.example.com >/dev/null
"$kubectl" apply -f "$here/config/sample.yaml" >/dev/null
for le in false true; do
        "$prog" --kubeconfig="$KUBECONFIG" --leader-elect=$le --leader-elect-resource-namespace=default \
                --health-probe-bind-address=0 --metrics-bind-address=0 >"$work/op.log" 2>&1 &
        pid=$!
        t0=$SECONDS
        until "$kubectl" get deployment memcached-sample >/dev/null 2>&1 &&
                [ -n "$("$kubectl" get memcached memcached-sample -o jsonpath='{.status.conditions}')" ]; do
                [ $((SECONDS - t0)) -lt 30 ] || { tail -n 20 "$work/op.log" >&2; echo "measure: not reconciled within 30 s" >&2; exit 1; }
                sleep 0.2
        done
        sleep 5
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
        anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status")
        printf '  leader election %-5s  VmRSS %5.1f MB, RssAnon %4.1f MB\n' "$le" \
                "$(awk -v k="$rss" 'BEGIN { print k * 1024 / 1e6 }')" "$(awk -v k="$anon" 'BEGIN { print k * 1024 / 1e6 }')"
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        pid=
done
