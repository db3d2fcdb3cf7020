#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The leader election demo, end to end, in under two minutes:
#   1. installs missing Debian packages (scripts/install-deps.sh) and builds
#      koc-apiserver and koc-example-leader into build-demo/;
#   2. starts koc-apiserver (an in-memory Kubernetes API server on loopback)
#      and three replicas of koc-example-leader (lease 2s, renew deadline
#      1.5s, retry period 250ms; readiness gated on leadership);
#   3. shows who leads (each replica's /readyz, and the logs);
#   4. sends SIGTERM to the leader: it finishes its work, releases the Lease,
#      and a standby takes over; measures release -> successor leading;
#   5. sends SIGKILL to the new leader: the last standby takes over when the
#      Lease expires; measures kill -> successor leading, and last renewal ->
#      successor leading;
#   6. prints a summary, stops everything;
#   7. part two, scripts/demo-controller.sh: two replicas of the ConfigMap
#      mirror operator on the controller runtime, a SIGKILL of the leader in
#      the middle of a burst of changes, and the end state checked object by
#      object; exits 0 (non-zero on any failure).
#
# Usage: [sudo] scripts/demo.sh
# Environment: KOC_DEMO_BIN_DIR=<cmake build dir> uses binaries already built
# there (no install, no build); KOC_DEMO_KEEP=1 keeps the work directory;
# KOC_K8S_ENV=<dir of tests/k8s/env.sh> runs it on that real kube-apiserver.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

lease_name=koc-demo
lease_ns=default
lease_args=(--leader-elect-lease-duration=2s --leader-elect-renew-deadline=1500ms
            --leader-elect-retry-period=250ms)

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
say() { printf '%s[demo %5.1fs]%s %s\n' "$bold" "$(elapsed)" "$plain" "$*"; }
elapsed() { awk -v a="$(date +%s%N)" -v b="$t0" 'BEGIN { printf "%.1f", (a - b) / 1e9 }'; }
now_us() { date +%s%6N; }
t0=$(date +%s%N)

fail() {
        echo "demo: FAILED: $*" >&2
        for f in "$work"/*.log; do
                [[ -f $f ]] || continue
                echo "--- last lines of $(basename "$f")" >&2
                tail -n 15 "$f" >&2
        done
        exit 1
}

# --- build --------------------------------------------------------------------
if [[ -n ${KOC_DEMO_BIN_DIR:-} ]]; then
        bin=$KOC_DEMO_BIN_DIR
else
        ./scripts/install-deps.sh
        say "building koc-apiserver and koc-example-leader in build-demo/"
        cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
        cmake --build build-demo -j"$(nproc)" --target koc-apiserver koc-example-leader \
                koc-example-configmap-mirror >/dev/null
        bin=$root/build-demo
fi
apiserver=$bin/apiserver/koc-apiserver
example=$bin/examples/leader/koc-example-leader
[[ -x $apiserver ]] || { echo "demo: $apiserver not found" >&2; exit 1; }
[[ -x $example ]] || { echo "demo: $example not found" >&2; exit 1; }
command -v curl >/dev/null || { echo "demo: curl is needed" >&2; exit 1; }

# The demo itself (not the build) is bounded: every wait below has its own
# limit, and all of them together stop at this deadline.
start_s=$SECONDS
deadline_s=$((SECONDS + 110))

# --- processes and cleanup -------------------------------------------------------
work=$(mktemp -d /tmp/koc-demo.XXXXXX)
declare -A pid=()      # replica name -> pid
declare -A port=()     # replica name -> health port
api_pid=

cleanup() {
        local p
        for p in "${pid[@]}" $api_pid; do
                kill -TERM "$p" 2>/dev/null || true
        done
        for p in "${pid[@]}" $api_pid; do
                for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$p" 2>/dev/null || true
                wait "$p" 2>/dev/null || true
        done
        if [[ -n ${KOC_DEMO_KEEP:-} ]]; then
                echo "demo: logs kept in $work"
        else
                rm -rf "$work"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check_deadline() {
        if ((SECONDS > deadline_s)); then fail "took too long ($1)"; fi
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 50 ms.
wait_for() {
        local what=$1 limit=$2 end
        shift 2
        end=$(($(date +%s%N) + limit * 1000000000))
        until "$@"; do
                (($(date +%s%N) < end)) || fail "timed out waiting for $what"
                check_deadline "$what"
                sleep 0.05
        done
}

readyz() { curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:${port[$1]}/readyz" || true; }
alive() { kill -0 "${pid[$1]}" 2>/dev/null; }
# The unix_us=... stamp of the last log line of replica $1 that matches $2.
stamp() {
        { grep -a "component=example msg=\"$2" "$work/$1.log" || true; } | tail -n 1 |
                sed -n 's/.*unix_us=\([0-9]*\).*/\1/p'
}
ms() { awk -v d="$1" 'BEGIN { printf "%.1f", d / 1000 }'; }

# --- the API server ---------------------------------------------------------------
if [[ -n ${KOC_K8S_ENV:-} ]]; then
        # A real kube-apiserver started by tests/k8s/env.sh (the k8s test suite).
        # shellcheck disable=SC1091
        . "$KOC_K8S_ENV/env"
        cp "$KOC_K8S_ENV/admin.kubeconfig" "$work/kubeconfig"
        server=$KOC_K8S_URL token=$KOC_K8S_ADMIN_TOKEN curl_ca=(--cacert "$KOC_K8S_CA")
        curl -s -o /dev/null -X DELETE "${curl_ca[@]}" -H "Authorization: Bearer $token" \
                "$server/apis/coordination.k8s.io/v1/namespaces/$lease_ns/leases/$lease_name" || true
        say "API server: kube-apiserver $KOC_K8S_VERSION at $server"
else
        say "starting koc-apiserver on 127.0.0.1 (random port)"
        "$apiserver" --listen 127.0.0.1:0 --kubeconfig-out "$work/kubeconfig" >"$work/apiserver.log" 2>&1 &
        api_pid=$!
        kubeconfig_ready() { [[ -s $work/kubeconfig ]] && grep -q 'server:' "$work/kubeconfig"; }
        wait_for "koc-apiserver's kubeconfig" 15 kubeconfig_ready
        server=$(sed -n 's/^ *server: *//p' "$work/kubeconfig" | head -n 1)
        say "API server at $server"

        # GET the Lease with the kubeconfig's token and CA (best effort, for renewTime).
        token=$(sed -n 's/^ *token: *//p' "$work/kubeconfig" | head -n 1 | tr -d '"')
        ca_data=$(sed -n 's/^ *certificate-authority-data: *//p' "$work/kubeconfig" | head -n 1)
        curl_ca=(-k)
        if [[ -n $ca_data ]] && echo "$ca_data" | base64 -d >"$work/ca.pem" 2>/dev/null; then
                curl_ca=(--cacert "$work/ca.pem")
        fi
fi
get_lease() {
        curl -s -m 2 "${curl_ca[@]}" -H "Authorization: Bearer $token" \
                "$server/apis/coordination.k8s.io/v1/namespaces/$lease_ns/leases/$lease_name" || true
}
lease_field() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" | head -n 1; }

# --- three replicas ----------------------------------------------------------------------
start_replica() {
        local name=$1
        KOC_LOG_LEVEL=info KOC_LOG_FORMAT=logfmt "$example" --kubeconfig="$work/kubeconfig" --identity="$name" \
                --leader-elect-resource-name=$lease_name --leader-elect-resource-namespace=$lease_ns \
                "${lease_args[@]}" --health-probe-bind-address=127.0.0.1:0 --metrics-bind-address=0 \
                --shutdown-drain-budget=5s --tick-interval=500ms >"$work/$name.log" 2>&1 &
        pid[$name]=$!
        port_known() { grep -aq 'health_port=[0-9]' "$work/$name.log" 2>/dev/null; }
        wait_for "$name to start" 15 port_known
        port[$name]=$(grep -a -m 1 -o 'health_port=[0-9]*' "$work/$name.log" | cut -d= -f2)
        say "started $name (pid ${pid[$name]}, probes on 127.0.0.1:${port[$name]})"
}
replicas=(replica-1 replica-2 replica-3)
for r in "${replicas[@]}"; do start_replica "$r"; done

# The leader is the one replica whose /readyz answers 200.
leader=
find_leader() {
        local r n=0 found=
        for r in "$@"; do
                if [[ $(readyz "$r") == 200 ]]; then
                        n=$((n + 1))
                        found=$r
                fi
        done
        [[ $n -eq 1 ]] && leader=$found
}
wait_for "a single leader" 15 find_leader "${replicas[@]}"
say "$leader leads; the others stand by:"
for r in "${replicas[@]}"; do
        printf '         %-10s /readyz %s\n' "$r" "$(readyz "$r")"
done
ticked() { [[ $(grep -ac 'doing leader-only work' "$work/$leader.log") -ge 3 ]]; }
wait_for "$leader to do leader-only work" 10 ticked
say "$leader is doing leader-only work: $(grep -a 'doing leader-only work' "$work/$leader.log" | tail -n 1 | sed 's/.*msg=//')"
first=$leader

# --- cooperative handoff ------------------------------------------------------------------
say "SIGTERM -> $first (graceful: drain, release the Lease, exit 0)"
kill -TERM "${pid[$first]}"
exited() { ! alive "$1"; }
wait_for "$first to exit" 15 exited "$first"
rc=0
wait "${pid[$first]}" || rc=$?
unset "pid[$first]"
[[ $rc -eq 0 ]] || fail "$first exited with $rc after SIGTERM (expected 0)"
released_us=$(stamp "$first" 'stepped down')
[[ -n $released_us ]] || fail "$first did not log the release"

rest=()
for r in "${replicas[@]}"; do [[ $r != "$first" ]] && rest+=("$r"); done
leader=
wait_for "a successor" 10 find_leader "${rest[@]}"
second=$leader
leading_us=$(stamp "$second" 'became leader')
[[ -n $leading_us ]] || fail "$second did not log becoming leader"
handoff_us=$((leading_us - released_us))
say "$first released the Lease and exited 0; $second leads $(ms $handoff_us) ms after $first stepped down"
lease_json=$(get_lease | tr -d '\n')
if [[ -n $lease_json ]]; then
        say "the Lease: holderIdentity=$(printf '%s' "$lease_json" | lease_field holderIdentity)" \
                "leaseTransitions=$(printf '%s' "$lease_json" | sed -n 's/.*"leaseTransitions": *\([0-9]*\).*/\1/p')"
fi

# --- crash failover --------------------------------------------------------------------------
ticked2() { [[ $(grep -ac 'doing leader-only work' "$work/$second.log") -ge 2 ]]; }
wait_for "$second to do leader-only work" 10 ticked2
third=
for r in "${rest[@]}"; do [[ $r != "$second" ]] && third=$r; done
say "SIGKILL -> $second (crash: no release; $third waits for the Lease to expire)"
kill_us=$(now_us)
{ kill -KILL "${pid[$second]}"; wait "${pid[$second]}"; } 2>/dev/null || true
unset "pid[$second]"
lease_json=$(get_lease)
renew_time=$(printf '%s' "$lease_json" | tr -d '\n' | lease_field renewTime)
holder=$(printf '%s' "$lease_json" | tr -d '\n' | lease_field holderIdentity)
renew_us=
if [[ -n $renew_time && $holder == "$second" ]]; then
        renew_us=$(date -u -d "$renew_time" +%s%6N 2>/dev/null || true)
        say "the Lease still names $holder; last renewal at $renew_time"
fi
leader=
wait_for "$third to take over" 10 find_leader "$third"
failover_leading_us=$(stamp "$third" 'became leader')
[[ -n $failover_leading_us ]] || fail "$third did not log becoming leader"
crash_us=$((failover_leading_us - kill_us))
say "$third leads $(ms $crash_us) ms after the SIGKILL"

# --- clean exit ------------------------------------------------------------------------------
say "SIGTERM -> $third"
kill -TERM "${pid[$third]}"
wait_for "$third to exit" 15 exited "$third"
rc=0
wait "${pid[$third]}" || rc=$?
unset "pid[$third]"
[[ $rc -eq 0 ]] || fail "$third exited with $rc after SIGTERM (expected 0)"

echo
echo "== Summary (lease 2s, renew deadline 1.5s, retry period 250ms; 3 replicas)"
printf '  %-28s %s\n' "first leader:" "$first (SIGTERM: drained, released, exit 0)"
printf '  %-28s %s\n' "after the handoff:" "$second (SIGKILL)"
printf '  %-28s %s\n' "after the crash:" "$third (SIGTERM, exit 0)"
printf '  %-28s %s ms  (leader steps down and releases -> successor leading)\n' "cooperative handoff:" \
        "$(ms $handoff_us)"
printf '  %-28s %s ms  (SIGKILL -> successor leading)\n' "crash failover:" "$(ms $crash_us)"
if [[ -n $renew_us ]]; then
        printf '  %-28s %s ms  (last renewal -> successor leading; lease 2000 ms)\n' "" \
                "$(ms $((failover_leading_us - renew_us)))"
fi
printf '  %-28s %ss\n' "demo took:" "$((SECONDS - start_s))"
echo "demo: OK"

# --- part two: the controller runtime ------------------------------------------------------
echo
say "part two: a small operator on the controller runtime (scripts/demo-controller.sh)"
KOC_DEMO_BIN_DIR=$bin "$root/scripts/demo-controller.sh"
