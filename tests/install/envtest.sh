#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# koc-envtest from an installed tree: start, run and stop on kube-apiserver
# (from the binaries cached in ~/.cache/koc; never built here: without them
# that part is skipped, said) and on koc-apiserver; the fallback to
# koc-apiserver where Go is missing, said once; the errors; a project that
# uses include(KocEnvtest) and koc_add_envtest(); and that every teardown
# leaves no process behind.
#
#   tests/install/envtest.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=${1:?usage: envtest.sh BUILD_DIR SOURCE_DIR}
src=${2:?usage: envtest.sh BUILD_DIR SOURCE_DIR}
work=$(mktemp -d)
trap 'for d in "$work"/plane*; do [ -d "$d" ] && "$prefix/bin/koc-envtest" stop "$d" >/dev/null 2>&1; done; rm -rf "$work"' EXIT
prefix=$work/prefix
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { echo "not ok - $*"; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
et=$prefix/bin/koc-envtest
for f in bin/koc-envtest bin/koc-apiserver share/koc/envtest/k8s/env.sh share/koc/envtest/k8s/build.sh \
         share/koc/envtest/k8s/go.mod share/koc/envtest/k8s/go.sum share/koc/envtest/k8s/cmd/etcd/main.go \
         share/koc/envtest/tools/ports.sh; do
        [ -e "$prefix/$f" ] || fail "$f is not installed"
done
[ -n "$(find "$prefix" -name KocEnvtest.cmake)" ] || fail "KocEnvtest.cmake is not installed"
ok "koc-envtest, its data and KocEnvtest.cmake are installed"

bin=$("$et" bin)
[ "$bin" = "${KOC_CACHE:-$HOME/.cache/koc}/k8s-$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$src/tests/k8s/go.mod")/bin" ] ||
        fail "koc-envtest bin names $bin, not the tests' cache"
ok "the binaries' cache is the one the tests use: $bin"

# pids DIR: the PIDs the control plane in DIR recorded.
pids() { cat "$1"/*.pid 2>/dev/null | tr '\n' ' '; }
# none_alive PID...: every one is gone.
none_alive() { local p; for p in "$@"; do ! kill -0 "$p" 2>/dev/null || return 1; done; }

# start DIR / stop DIR on a server; asserts it answers and that stop ends it.
start_stop() { # SERVER
        local d=$work/plane-$1 ps url tok ca
        KOC_ENVTEST_SERVER=$1 "$et" start "$d" >"$work/start.out" 2>&1 || { cat "$work/start.out"; fail "start on $1"; }
        grep -q "^KOC_ENVTEST_SERVER=$1\$" "$d/env" || fail "$d/env does not say KOC_ENVTEST_SERVER=$1"
        url=$(sed -n 's/^KOC_K8S_URL=//p' "$d/env"); tok=$(sed -n 's/^KOC_K8S_ADMIN_TOKEN=//p' "$d/env")
        ca=$(sed -n 's/^KOC_K8S_CA=//p' "$d/env")
        curl -sf --cacert "$ca" -H "Authorization: Bearer $tok" "$url/api/v1/namespaces/default" | grep -q '"name": *"default"' ||
                fail "$1 does not answer at $url"
        grep -q "server: $url" "$d/admin.kubeconfig" || fail "admin.kubeconfig does not name $url"
        ps=$(pids "$d")
        [ -n "$ps" ] || fail "no PID recorded in $d"
        KOC_ENVTEST_SERVER=$1 "$et" start "$d" >"$work/again.out" 2>&1 && fail "a second start on $d succeeded"
        grep -q "exists already" "$work/again.out" || fail "a second start does not say why: $(cat "$work/again.out")"
        "$et" stop "$d"
        # shellcheck disable=SC2086
        none_alive $ps || fail "stop left a process of $1 running ($ps)"
        [ ! -e "$d" ] || fail "stop left $d"
        ok "$1: start answers with admin.kubeconfig, a second start is refused, stop ends PIDs $ps and removes the directory"
}

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
        start_stop kube-apiserver
        # run: KUBECONFIG for the command, its status, nothing left behind.
        rc=0
        KOC_ENVTEST_SERVER=kube-apiserver KOC_ENVTEST_CONTROLLER_MANAGER=1 "$et" run bash -c '
                echo "$KOC_ENVTEST_DIR" >"$0/dir"; cat "$KOC_ENVTEST_DIR"/*.pid >"$0/pids"
                [ "$KUBECONFIG" = "$KOC_ENVTEST_DIR/admin.kubeconfig" ] || exit 9
                [ "$KOC_ENVTEST_SERVER" = kube-apiserver ] || exit 10
                exit 7' "$work" >"$work/run.out" 2>&1 || rc=$?
        [ "$rc" = 7 ] || { cat "$work/run.out"; fail "run gave $rc, not the command's 7"; }
        [ "$(wc -l <"$work/pids")" = 3 ] || fail "run with KOC_ENVTEST_CONTROLLER_MANAGER=1 did not start 3 processes"
        # shellcheck disable=SC2046
        none_alive $(cat "$work/pids") || fail "run left a process running"
        [ ! -e "$(cat "$work/dir")" ] || fail "run left its directory"
        ok "run on kube-apiserver (with kube-controller-manager): KUBECONFIG set, exit status 7 passed on, nothing left behind"
else
        echo "skip - kube-apiserver: no binaries in $bin (tests/k8s/build.sh builds them; not built here)"
fi
start_stop koc-apiserver

# Where Go is missing and nothing is cached: koc-apiserver, said once.
nogo=$work/nogo-bin
mkdir -p "$nogo"
for t in bash sh env cat sed grep awk mkdir rm cp mktemp head tail tr od setsid kill sleep seq chmod dirname basename wc find curl; do
        p=$(command -v "$t") && ln -sf "$p" "$nogo/$t"
done
rc=0
PATH=$nogo KOC_CACHE=$work/empty-cache "$et" run bash -c 'echo "$KOC_ENVTEST_SERVER" >"$0/server"; cat "$KOC_ENVTEST_DIR"/*.pid >"$0/pids"' "$work" \
        >"$work/fallback.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { cat "$work/fallback.out"; fail "run without Go failed ($rc)"; }
[ "$(cat "$work/server")" = koc-apiserver ] || fail "without Go, run used $(cat "$work/server")"
[ "$(grep -c 'no Go toolchain.*using koc-apiserver' "$work/fallback.out")" = 1 ] ||
        { cat "$work/fallback.out"; fail "the fallback to koc-apiserver was not said exactly once"; }
# shellcheck disable=SC2046
none_alive $(cat "$work/pids") || fail "the fallback run left koc-apiserver running"
ok "without Go and without cached binaries: koc-apiserver, said once; nothing left behind"

# Errors name the cause.
rc=0; PATH=$nogo KOC_CACHE=$work/empty-cache KOC_ENVTEST_SERVER=kube-apiserver "$et" start "$work/plane-x" >"$work/err.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q 'no Go toolchain (go) on PATH' "$work/err.out" || fail "kube-apiserver without Go: $(cat "$work/err.out")"
[ ! -e "$work/plane-x" ] || fail "a failed start left its directory"
rc=0; KOC_ENVTEST_SERVER=bogus "$et" start "$work/plane-y" >"$work/err.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q "KOC_ENVTEST_SERVER must be auto, kube-apiserver or koc-apiserver, not 'bogus'" "$work/err.out" ||
        fail "a bad KOC_ENVTEST_SERVER: $(cat "$work/err.out")"
rc=0; "$et" frobnicate >"$work/err.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q 'usage: koc-envtest start DIR' "$work/err.out" || fail "an unknown command: $(cat "$work/err.out")"
ok "errors: kube-apiserver without Go names Go, a bad KOC_ENVTEST_SERVER and an unknown command are refused"

# A project's CMake: include(KocEnvtest) and koc_add_envtest().
mkdir -p "$work/proj"
cat >"$work/proj/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(envtest-user LANGUAGES C)
find_package(koc REQUIRED)
include(CTest)
include(KocEnvtest)
koc_add_envtest(NAME on-a-control-plane TIMEOUT 120
                COMMAND bash -c "curl -sf --cacert \"$(sed -n 's/^KOC_K8S_CA=//p' $KOC_ENVTEST_DIR/env)\" -H \"Authorization: Bearer $(sed -n 's/^KOC_K8S_ADMIN_TOKEN=//p' $KOC_ENVTEST_DIR/env)\" \"$(sed -n 's/^KOC_K8S_URL=//p' $KOC_ENVTEST_DIR/env)/version\" && echo \"on $KOC_ENVTEST_SERVER\"")
EOF
cmake -S "$work/proj" -B "$work/proj-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
server=koc-apiserver
[ -x "$bin/kube-apiserver" ] && server=kube-apiserver
KOC_ENVTEST_SERVER=$server ctest --test-dir "$work/proj-build" -V >"$work/ctest.out" 2>&1 ||
        { cat "$work/ctest.out"; fail "koc_add_envtest's test failed"; }
grep -q "on $server" "$work/ctest.out" || { cat "$work/ctest.out"; fail "koc_add_envtest's test did not run on $server"; }
ok "a project with include(KocEnvtest) runs koc_add_envtest()'s test on $server"
echo "envtest: $passed passed"
