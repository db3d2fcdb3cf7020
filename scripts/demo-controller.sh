#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The controller demo: two replicas of koc-example-configmap-mirror (a small
# operator on koc's controller runtime) against koc-apiserver:
#   1. 200 source ConfigMaps labelled for mirroring into team-a and team-b;
#      the leader copies them (400 copies) and marks each source "2/2 in sync";
#   2. a burst: every source changes; half-way through, SIGKILL of the leader;
#      the standby, whose cache is warm, takes over when the Lease expires and
#      finishes the burst;
#   3. 50 sources are deleted: the finalizer removes their copies first;
#   4. the end state is checked object by object: every copy has its source's
#      data, every deleted source and its copies are gone, nothing else.
# Exits non-zero when anything is not exactly as described.
#
# Usage: scripts/demo-controller.sh   (scripts/demo.sh runs it as its second part)
# Environment: KOC_DEMO_BIN_DIR=<cmake build dir> uses binaries built there;
# KOC_K8S_ENV=<dir of tests/k8s/env.sh> runs it on that real kube-apiserver;
# KOC_DEMO_KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
sources=${KOC_DEMO_SOURCES:-200}
deleted=$((sources / 4))

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
t0=$(date +%s%N)
elapsed() { awk -v a="$(date +%s%N)" -v b="$t0" 'BEGIN { printf "%.1f", (a - b) / 1e9 }'; }
say() { printf '%s[controller demo %5.1fs]%s %s\n' "$bold" "$(elapsed)" "$plain" "$*"; }
now_us() { date +%s%6N; }
fail() {
        echo "demo-controller: FAILED: $*" >&2
        for f in "$work"/*.log; do [[ -f $f ]] && { echo "--- $(basename "$f")" >&2; tail -n 12 "$f" >&2; }; done
        exit 1
}

if [[ -n ${KOC_DEMO_BIN_DIR:-} ]]; then
        bin=$KOC_DEMO_BIN_DIR
else
        ./scripts/install-deps.sh
        say "building koc-apiserver and koc-example-configmap-mirror in build-demo/"
        cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
        cmake --build build-demo -j"$(nproc)" --target koc-apiserver koc-example-configmap-mirror >/dev/null
        bin=$root/build-demo
fi
mirror=$bin/examples/configmap-mirror/koc-example-configmap-mirror
[[ -x $mirror ]] || { echo "demo-controller: $mirror not found" >&2; exit 1; }
command -v jq >/dev/null || { echo "demo-controller: jq is needed (scripts/install-deps.sh)" >&2; exit 1; }

work=$(mktemp -d /tmp/koc-demo-controller.XXXXXX)
declare -A pid=() port=()
api_pid=
cleanup() {
        { for p in "${pid[@]}" $api_pid; do kill -KILL "$p" || true; done; wait; } 2>/dev/null || true
        if [[ -n ${KOC_DEMO_KEEP:-} ]]; then echo "demo-controller: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
deadline=$((SECONDS + 150))
wait_for() { # what seconds command...
        local what=$1 end=$((SECONDS + $2)); shift 2
        until "$@"; do
                ((SECONDS < end && SECONDS < deadline)) || fail "timed out waiting for $what"
                sleep 0.1
        done
}

# --- the API server -------------------------------------------------------------------
if [[ -n ${KOC_K8S_ENV:-} ]]; then
        # shellcheck disable=SC1091
        . "$KOC_K8S_ENV/env"
        cp "$KOC_K8S_ENV/admin.kubeconfig" "$work/kubeconfig"
        server=$KOC_K8S_URL token=$KOC_K8S_ADMIN_TOKEN ca=$KOC_K8S_CA
        say "API server: kube-apiserver $KOC_K8S_VERSION at $server"
else
        "$bin/apiserver/koc-apiserver" --listen 127.0.0.1:0 --kubeconfig-out "$work/kubeconfig" \
                --ca-out "$work/ca.crt" --log-level warn >"$work/apiserver.log" 2>&1 &
        api_pid=$!
        kc_ready() { [[ -s $work/kubeconfig ]]; }
        wait_for "koc-apiserver" 15 kc_ready
        server=$(sed -n 's/^ *server: *//p' "$work/kubeconfig") ca=$work/ca.crt
        token=$(sed -n 's/^ *token: *//p' "$work/kubeconfig" | tr -d '"')
        say "API server: koc-apiserver at $server"
fi
api() { # METHOD PATH [BODY [CONTENT-TYPE]] -> body on stdout, fails on 5xx/transport errors
        local args=(-s -S --max-time 10 --cacert "$ca" -H "Authorization: Bearer $token" -X "$1")
        [[ $# -ge 3 ]] && args+=(-H "Content-Type: ${4:-application/json}" --data-binary "$3")
        curl "${args[@]}" "$server$2"
}
ns=demo-$RANDOM
CM=/api/v1/namespaces
for n in "$ns" "$ns-a" "$ns-b"; do
        api POST /api/v1/namespaces "{\"metadata\":{\"name\":\"$n\"}}" >/dev/null
done
say "namespaces: $ns (sources), $ns-a and $ns-b (copies)"

# --- two replicas ---------------------------------------------------------------------------
# shellcheck source=../tests/tools/ports.sh
. "$root/tests/tools/ports.sh"
start_replica() {
        local name=$1 p; p=$(free_port)
        KOC_LOG_LEVEL=info "$mirror" --kubeconfig="$work/kubeconfig" --identity="$name" \
                --leader-elect-resource-namespace="$ns" --leader-elect-lease-duration=2s \
                --leader-elect-renew-deadline=1500ms --leader-elect-retry-period=250ms \
                --health-probe-bind-address=127.0.0.1:$p --metrics-bind-address=0 \
                --target-namespaces="$ns-a,$ns-b" >"$work/$name.log" 2>&1 &
        pid[$name]=$! port[$name]=$p
}
readyz() { curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:${port[$1]}/readyz" || true; }
start_replica mirror-1
start_replica mirror-2
leader=
find_leader() {
        local r
        for r in "$@"; do [[ $(readyz "$r") == 200 ]] && { leader=$r; return 0; }; done
        return 1
}
wait_for "a leader" 20 find_leader mirror-1 mirror-2
first=$leader standby=mirror-1
[[ $first == mirror-1 ]] && standby=mirror-2
say "$leader leads, $standby stands by with a warm cache"

# --- 1. sources and their copies -------------------------------------------------------------------
src() { # name value -> a labelled source ConfigMap
        printf '{"metadata":{"name":"%s","labels":{"koc.example/mirror":"true"},"annotations":{"koc.example/mirror-to":"%s,%s"}},"data":{"v":"%s"}}' \
                "$1" "$ns-a" "$ns-b" "$2"
}
# Many requests on one connection: a curl config with one block per request.
# Reads "METHOD PATH BODY CONTENT-TYPE" lines; fails unless every answer is 2xx.
api_many() {
        local cfg=$work/many.cfg method path body ct sep=
        : >"$cfg"
        while read -r method path body ct; do
                # "next" starts a new transfer that keeps none of the options before it.
                [[ -n $sep ]] && echo next >>"$cfg"
                sep=1
                printf 'url = "%s%s"\nrequest = "%s"\ncacert = "%s"\nheader = "Authorization: Bearer %s"\n' \
                        "$server" "$path" "$method" "$ca" "$token" >>"$cfg"
                printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nsilent\n' >>"$cfg"
                if [[ $body != - ]]; then
                        printf 'header = "Content-Type: %s"\ndata = "%s"\n' "$ct" "${body//\"/\\\"}" >>"$cfg"
                fi
        done
        curl -K "$cfg" >"$work/many.codes"
        ! grep -qv '^2' "$work/many.codes" || fail "$(grep -cv '^2' "$work/many.codes") of the requests failed"
}
# Names src-0001 ... (one width, whatever the count).
for i in $(seq -f %04g 1 "$sources"); do
        echo "POST $CM/$ns/configmaps $(src "src-$i" 0) application/json"
done | api_many
say "created $sources sources"
count_copies() { # namespace value -> how many copies carry that value
        api GET "$CM/$1/configmaps?labelSelector=koc.example%2Fmirror-copy%3Dtrue" |
                jq --arg v "$2" '[.items[] | select(.data.v == $v)] | length'
}
in_sync() {
        local n; n=$(api GET "$CM/$ns/configmaps?labelSelector=koc.example%2Fmirror%3Dtrue" |
                jq '[.items[] | select(.metadata.annotations["koc.example/mirror-status"] == "2/2 in sync")] | length')
        [[ $n -eq $sources && $(count_copies "$ns-a" 0) -eq $sources && $(count_copies "$ns-b" 0) -eq $sources ]]
}
wait_for "all copies" 60 in_sync
say "$((2 * sources)) copies made; every source says \"2/2 in sync\""

# --- 2. a burst, and SIGKILL of the leader half-way ------------------------------------------------
say "burst: every source changes to v=1; SIGKILL -> $first after half of them"
half=$((sources / 2))
patch() { for n in $(seq -f %04g "$1" "$2"); do
        echo "PATCH $CM/$ns/configmaps/src-$n {\"data\":{\"v\":\"1\"}} application/merge-patch+json"
done | api_many; }
patch 1 "$half"
kill_us=$(now_us)
{ kill -KILL "${pid[$first]}"; wait "${pid[$first]}"; } 2>/dev/null || true
unset "pid[$first]"
patch $((half + 1)) "$sources"
wait_for "$standby to take over" 15 find_leader "$standby"
took_us=$(grep -a -m1 'became leader' "$work/$standby.log" | sed -n 's/^time=\([^ ]*\).*/\1/p')
synced_line=$(grep -a -m1 'cache synced' "$work/$standby.log" | sed -n 's/^time=\([^ ]*\).*/\1/p')
leading_at=$(date -d "$took_us" +%s%6N)
say "$standby leads $(( (leading_at - kill_us) / 1000 )) ms after the SIGKILL (lease 2 s); its cache had synced at $synced_line, before it led"
[[ $(date -d "$synced_line" +%s%6N) -lt $leading_at ]] || fail "the standby's cache was not warm before it led"
burst_done() { [[ $(count_copies "$ns-a" 1) -eq $sources && $(count_copies "$ns-b" 1) -eq $sources ]]; }
wait_for "the burst to reach every copy" 60 burst_done
say "all $((2 * sources)) copies carry v=1"

# --- 3. deletions through the finalizer ----------------------------------------------------------------
for n in $(seq -f %04g 1 "$deleted"); do echo "DELETE $CM/$ns/configmaps/src-$n - -"; done | api_many
gone() {
        local left; left=$(api GET "$CM/$ns/configmaps?labelSelector=koc.example%2Fmirror%3Dtrue" | jq '.items | length')
        [[ $left -eq $((sources - deleted)) && $(count_copies "$ns-a" 1) -eq $((sources - deleted)) &&
                $(count_copies "$ns-b" 1) -eq $((sources - deleted)) ]]
}
wait_for "the deleted sources' copies to go" 60 gone
say "deleted $deleted sources: their finalizer removed their $((2 * deleted)) copies first"

# --- 4. the end state, object by object -----------------------------------------------------------------
api GET "$CM/$ns/configmaps?labelSelector=koc.example%2Fmirror%3Dtrue" >"$work/sources.json"
for c in a b; do api GET "$CM/$ns-$c/configmaps?labelSelector=koc.example%2Fmirror-copy%3Dtrue" >"$work/copies-$c.json"; done
want=$(jq -c '[.items[] | {n: .metadata.name, d: .data}] | sort_by(.n)' "$work/sources.json")
for c in a b; do
        got=$(jq -c '[.items[] | {n: .metadata.name, d: .data}] | sort_by(.n)' "$work/copies-$c.json")
        [[ $got == "$want" ]] || fail "the copies in $ns-$c differ from their sources"
done
stale=$(jq '[.items[] | select(.metadata.annotations["koc.example/mirror-status"] != "2/2 in sync")] | length' "$work/sources.json")
[[ $stale -eq 0 ]] || fail "$stale sources do not say 2/2 in sync"
fins=$(jq '[.items[] | select((.metadata.finalizers // []) | index("koc.example/mirror") | not)] | length' "$work/sources.json")
[[ $fins -eq 0 ]] || fail "$fins sources lack the finalizer"

kill -TERM "${pid[$standby]}"
rc=0; wait "${pid[$standby]}" || rc=$?; unset "pid[$standby]"
[[ $rc -eq 0 ]] || fail "$standby exited with $rc after SIGTERM"
echo
echo "== Controller summary ($sources sources, 2 target namespaces, 2 replicas)"
printf '  %-28s %s\n' "first leader:" "$first (SIGKILL mid-burst)" "successor:" "$standby (warm cache, SIGTERM, exit 0)"
printf '  %-28s %s ms\n' "SIGKILL -> successor leads:" "$(( (leading_at - kill_us) / 1000 ))"
printf '  %-28s %s\n' "end state:" "$((sources - deleted)) sources, $((2 * (sources - deleted))) copies, all exactly right"
echo "demo-controller: OK"
