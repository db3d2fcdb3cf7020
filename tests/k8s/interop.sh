#!/usr/bin/env bash
# koc and client-go on one Lease, on the real kube-apiserver (KOC_K8S_ENV):
#
#   1. a koc leader and a client-go follower: SIGTERM the leader, client-go leads;
#   2. the reverse: a client-go leader releases on SIGTERM, koc leads;
#   3. SIGKILL of a koc leader: client-go takes over, not before the Lease expired;
#   4. SIGKILL of a client-go leader: koc takes over, not before the Lease expired;
#   5. the Lease records each writes have the same fields, accepted by the other;
#   6. in every scenario, no moment with two leaders (each process's own log).
#
#   interop.sh KOC_EXAMPLE_LEADER     (KOC_K8S_ENV and KOC_K8S_BIN set by ctest)
set -euo pipefail
koc_bin=${1:?usage: interop.sh path/to/koc-example-leader}
env_dir=${KOC_K8S_ENV:?KOC_K8S_ENV is not set (run through ctest -L k8s or tests/k8s/env.sh run)}
cg_bin=${KOC_K8S_BIN:?KOC_K8S_BIN is not set}/client-go-elector
[ -x "$cg_bin" ] || { echo "interop: $cg_bin missing; build it with tests/k8s/build.sh" >&2; exit 1; }
# shellcheck disable=SC1091
. "$env_dir/env"
kc=$env_dir/admin.kubeconfig
work=$(mktemp -d "${TMPDIR:-/tmp}/koc-interop.XXXXXX")
pids=()
cleanup() {
        # Quietly: bash reports every job it reaps after a SIGKILL.
        { for p in "${pids[@]}"; do kill -KILL "$p" || true; done; wait; } 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT

LEASE=2s RENEW=1500ms RETRY=250ms lease_us=2000000
fail() { echo "interop: FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }
# shellcheck source=../tools/ports.sh
. "$(dirname "$0")/../tools/ports.sh"
port() { free_port; }

# start KIND(koc|cg) ID LEASE_NAME -> sets $started_pid, probe port in $work/ID.port
start() {
        local kind=$1 id=$2 lease=$3 p; p=$(port)
        local args=(--kubeconfig="$kc" --identity="$id" --leader-elect-resource-name="$lease"
                --leader-elect-resource-namespace=default --leader-elect-lease-duration=$LEASE
                --leader-elect-renew-deadline=$RENEW --leader-elect-retry-period=$RETRY
                --health-probe-bind-address=127.0.0.1:$p --metrics-bind-address=0)
        if [ "$kind" = koc ]; then
                KOC_LOG_LEVEL=info "$koc_bin" "${args[@]}" --leader-elect-gate-readiness=true \
                        >"$work/$id.log" 2>&1 &
        else
                "$cg_bin" "${args[@]}" >"$work/$id.log" 2>&1 &
        fi
        started_pid=$!
        pids+=("$started_pid")
        echo "$p" >"$work/$id.port"
        echo "$started_pid" >"$work/$id.pid"
}
ready() { curl -sf --max-time 1 "http://127.0.0.1:$(cat "$work/$1.port")/readyz" >/dev/null 2>&1; }
wait_leading() { # ID SECONDS
        local t0=$SECONDS
        until ready "$1"; do
                [ $((SECONDS - t0)) -lt "$2" ] || fail "$1 did not lead within $2 s"
                kill -0 "$(cat "$work/$1.pid")" 2>/dev/null || fail "$1 exited"
                sleep 0.05
        done
}
wait_exit() { # ID: waits for it and fails unless it exited 0
        local pid rc=0; pid=$(cat "$work/$1.pid")
        wait "$pid" || rc=$?
        [ "$rc" = 0 ] || fail "$1 exited with $rc after SIGTERM (expected 0)"
}
# First unix_us stamp of a line of ID's log matching a pattern.
stamp() { grep -E "$2" "$work/$1.log" | sed -n 's/.*unix_us=\([0-9]*\).*/\1/p' | head -n 1; }
koc_start_pat='became leader'
koc_stop_pat='stepped down|stopped leading'
cg_start_pat='event=started-leading'
cg_stop_pat='event=signal|event=stopped-leading'
lease_json() { curl -sf --cacert "$KOC_K8S_CA" -H "Authorization: Bearer $KOC_K8S_ADMIN_TOKEN" \
        "$KOC_K8S_URL/apis/coordination.k8s.io/v1/namespaces/default/leases/$1"; }
spec() { lease_json "$1" | jq -c "$2"; }
# The renewTime of the Lease as written by a leader that has just been killed
# (its last renewal), in unix microseconds of this machine's clock.
last_renewal_us() {
        local t; t=$(lease_json "$1" | jq -r .spec.renewTime)
        date -d "$t" +%s%6N
}

# No two leaders at once: the first leader's acting ends (its stop stamp, or
# the moment it was killed) before the second one's starts.
no_overlap() { # FIRST_END_US SECOND_START_US what
        [ -n "$1" ] && [ -n "$2" ] || fail "$3: missing timestamps ($1, $2)"
        [ "$1" -lt "$2" ] || fail "$3: two leaders at once: the first acted until $1, the second from $2"
        echo "interop:   no overlap: the first stopped $(( ($2 - $1) / 1000 )) ms before the second led"
}

check_record() { # LEASE HOLDER TRANSITIONS_MIN
        local s; s=$(lease_json "$1" | jq -c .spec)
        [ "$(jq -r .holderIdentity <<<"$s")" = "$2" ] || fail "$1: holder is not $2: $s"
        [ "$(jq -r .leaseDurationSeconds <<<"$s")" = 2 ] || fail "$1: leaseDurationSeconds: $s"
        jq -e '.renewTime and .acquireTime' <<<"$s" >/dev/null || fail "$1: no renewTime/acquireTime: $s"
        [ "$(jq -r '.leaseTransitions // 0' <<<"$s")" -ge "$3" ] || fail "$1: leaseTransitions < $3: $s"
        jq -r 'keys | join(",")' <<<"$s"
}

echo "interop: kube-apiserver $KOC_K8S_VERSION at $KOC_K8S_URL"

# --- 1. koc leads, client-go follows, SIGTERM to koc ------------------------------------------
echo "interop: 1. koc leader, client-go follower, SIGTERM to the leader"
start koc koc1 interop-1; wait_leading koc1 20
start cg cg1 interop-1; sleep 1
ready cg1 && fail "client-go follower reports ready while koc leads"
koc_keys=$(check_record interop-1 koc1 0)
t_term=$(now_us); kill -TERM "$(cat "$work/koc1.pid")"
wait_leading cg1 5
wait_exit koc1
grep -q 'released' "$work/koc1.log" || fail "koc1 did not release the Lease"
t_cg=$(stamp cg1 "$cg_start_pat")
echo "interop:   hand-over koc -> client-go: $(( (t_cg - t_term) / 1000 )) ms after SIGTERM"
no_overlap "$(stamp koc1 "$koc_stop_pat")" "$t_cg" "koc -> client-go"
cg_keys=$(check_record interop-1 cg1 1)
[ "$koc_keys" = "$cg_keys" ] || fail "Lease fields differ: koc wrote $koc_keys, client-go wrote $cg_keys"
echo "interop:   both write the Lease fields $koc_keys"

# --- 2. client-go leads, koc follows, SIGTERM to client-go ------------------------------------
echo "interop: 2. client-go leader, koc follower, SIGTERM to the leader"
start koc koc2 interop-1; sleep 1
ready koc2 && fail "koc follower reports ready while client-go leads"
t_term=$(now_us); kill -TERM "$(cat "$work/cg1.pid")"
wait_leading koc2 5
wait_exit cg1
t_koc=$(stamp koc2 "$koc_start_pat")
echo "interop:   hand-over client-go -> koc: $(( (t_koc - t_term) / 1000 )) ms after SIGTERM"
no_overlap "$(stamp cg1 "$cg_stop_pat")" "$t_koc" "client-go -> koc"
check_record interop-1 koc2 2 >/dev/null

# --- 3. SIGKILL of the koc leader: client-go takes over at expiry ----------------------------
echo "interop: 3. SIGKILL of a koc leader, client-go follower"
start cg cg3 interop-1; sleep 1
ready cg3 && fail "client-go follower reports ready while koc leads"
t_kill=$(now_us); kill -KILL "$(cat "$work/koc2.pid")"; { wait "$(cat "$work/koc2.pid")"; } 2>/dev/null || true
t_renew=$(last_renewal_us interop-1)
wait_leading cg3 10
t_cg=$(stamp cg3 "$cg_start_pat")
d=$(( t_cg - t_kill ))
echo "interop:   crash failover koc -> client-go: $(( d / 1000 )) ms after SIGKILL, $(( (t_cg - t_renew) / 1000 )) ms after the last renewal (lease 2 s)"
# Not before the Lease expired, as client-go sees expiry: it notices a change
# of the record by comparing its JSON, in which renewTime has whole seconds
# (metav1.Time), so renewals within one wall-clock second look alike and its
# clock starts at the first of them: lease_duration after the start of the
# second of the last renewal (less a little for the clocks' rounding).  With a
# retry period under a second this shortens the lease by up to a second as a
# client-go follower sees it (docs/design.md, "Interoperating with client-go").
t_renew_sec=$(( t_renew / 1000000 * 1000000 ))
[ $(( t_cg - t_renew_sec )) -ge $(( lease_us - 50000 )) ] ||
        fail "client-go took over before the Lease expired (the last renewal's second began $(( (t_cg - t_renew_sec) / 1000 )) ms before)"
no_overlap "$t_kill" "$t_cg" "koc (killed) -> client-go"
check_record interop-1 cg3 3 >/dev/null

# --- 4. SIGKILL of the client-go leader: koc takes over at expiry ----------------------------
echo "interop: 4. SIGKILL of a client-go leader, koc follower"
start koc koc4 interop-1; sleep 1
ready koc4 && fail "koc follower reports ready while client-go leads"
t_kill=$(now_us); kill -KILL "$(cat "$work/cg3.pid")"; { wait "$(cat "$work/cg3.pid")"; } 2>/dev/null || true
t_renew=$(last_renewal_us interop-1)
wait_leading koc4 10
t_koc=$(stamp koc4 "$koc_start_pat")
d=$(( t_koc - t_kill ))
echo "interop:   crash failover client-go -> koc: $(( d / 1000 )) ms after SIGKILL, $(( (t_koc - t_renew) / 1000 )) ms after the last renewal (lease 2 s)"
[ $(( t_koc - t_renew )) -ge $(( lease_us - 50000 )) ] || fail "koc took over before the Lease expired"
no_overlap "$t_kill" "$t_koc" "client-go (killed) -> koc"
check_record interop-1 koc4 4 >/dev/null
kill -TERM "$(cat "$work/koc4.pid")"
wait_exit koc4
[ "$(spec interop-1 '.spec.holderIdentity // ""')" = '""' ] || fail "the release record has a holder"
echo "interop: OK"
