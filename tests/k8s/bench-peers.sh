#!/usr/bin/env bash
# koc electors beside client-go electors on one real kube-apiserver, in one
# run: 3 replicas each (koc-example-leader and tests/peers/client-go-elector),
# the same durations, one Lease per side.  Prints one table with the ratio
# koc/client-go for every row.  A benchmark, not a test: nothing fails on speed.
#
#   bench-peers.sh KOC_EXAMPLE_LEADER [ROUNDS]   (starts its own control plane)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
koc_bin=${1:?usage: bench-peers.sh koc-example-leader [rounds]}
rounds=${2:-5}
if [ -z "${KOC_K8S_ENV:-}" ]; then
        bin=$("$here/build.sh" | tail -n 1)
        KOC_K8S_BIN=$bin KOC_K8S_USERS="koc-1 koc-2 koc-3 cg-1 cg-2 cg-3" KOC_K8S_AUDIT=1 \
                exec "$here/env.sh" run "$0" "$@"
fi
cg_bin=$KOC_K8S_BIN/client-go-elector
env_dir=$KOC_K8S_ENV
# shellcheck disable=SC1091
. "$env_dir/env"
work=$(mktemp -d "${TMPDIR:-/tmp}/koc-bench-peers.XXXXXX")
declare -A pid port
cleanup() {
        # Quietly: bash reports every job it reaps after a SIGKILL.
        { for p in "${pid[@]}"; do kill -KILL "$p" || true; done; wait; } 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
LEASE=2s RENEW=1500ms RETRY=250ms
now_us() { echo $(( $(date +%s%N) / 1000 )); }

# shellcheck source=../tools/ports.sh
. "$here/../tools/ports.sh"
start() { # ID (koc-N or cg-N)
        local id=$1 p kind=${1%-*}; p=$(free_port)
        local args=(--kubeconfig="$env_dir/$id.kubeconfig" --identity="$id"
                --leader-elect-resource-name="bench-$kind" --leader-elect-resource-namespace=default
                --leader-elect-lease-duration=$LEASE --leader-elect-renew-deadline=$RENEW
                --leader-elect-retry-period=$RETRY --health-probe-bind-address=127.0.0.1:$p
                --metrics-bind-address=0)
        if [ "$kind" = koc ]; then
                KOC_LOG_LEVEL=info "$koc_bin" "${args[@]}" --leader-elect-gate-readiness=true >>"$work/$id.log" 2>&1 &
        else
                "$cg_bin" "${args[@]}" >>"$work/$id.log" 2>&1 &
        fi
        pid[$id]=$!; port[$id]=$p
}
ready() { curl -sf --max-time 1 "http://127.0.0.1:${port[$1]}/readyz" >/dev/null 2>&1; }
leader_of() { # kind -> id of the replica whose /readyz is ok (waits up to 30 s)
        local t0=$SECONDS id
        while [ $((SECONDS - t0)) -lt 30 ]; do
                for id in "$1-1" "$1-2" "$1-3"; do ready "$id" && { echo "$id"; return 0; }; done
                sleep 0.02
        done
        echo "bench-peers: no $1 leader within 30 s" >&2; exit 1
}
# The first leading stamp after T in the logs of the kind's other replicas.
leading_after() { # kind T
        local t0=$SECONDS s
        while [ $((SECONDS - t0)) -lt 30 ]; do
                s=$(cat "$work/$1"-*.log | grep -E 'became leader|event=started-leading' |
                        sed -n 's/.*unix_us=\([0-9]*\).*/\1/p' | awk -v t="$2" '$1 > t' | sort -n | head -n 1)
                [ -n "$s" ] && { echo "$s"; return 0; }
                sleep 0.02
        done
        echo "bench-peers: no $1 successor within 30 s" >&2; exit 1
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2); else print "nan"}'; }

for id in koc-1 koc-2 koc-3 cg-1 cg-2 cg-3; do start "$id"; done
leader_of koc >/dev/null; leader_of cg >/dev/null

# Requests per minute: the audit log names the user of every Lease request.
window=${KOC_BENCH_WINDOW:-30}
sleep 3
offset=$(wc -l <"$env_dir/audit.log")
sleep "$window"
tail -n +$((offset + 1)) "$env_dir/audit.log" | jq -r 'select(.stage == "ResponseComplete") | .user.username' |
        sort | uniq -c >"$work/requests"
rpm() { awk -v u="$1" -v w="$window" '$2 == u { n = $1 } END { printf "%.0f", (n + 0) * 60 / w }' "$work/requests"; }
koc_leader=$(leader_of koc); cg_leader=$(leader_of cg)
koc_lead_rpm=$(rpm "$koc_leader"); cg_lead_rpm=$(rpm "$cg_leader")
koc_follow=(); cg_follow=()
for i in 1 2 3; do
        [ "koc-$i" = "$koc_leader" ] || koc_follow+=("$(rpm koc-$i)")
        [ "cg-$i" = "$cg_leader" ] || cg_follow+=("$(rpm cg-$i)")
done

# Memory per replica, while all six run.
mem() { # kind field -> mean KiB
        local id s=0
        for id in "$1-1" "$1-2" "$1-3"; do
                s=$(( s + $(awk -v f="$2:" '$1 == f { print $2 }' "/proc/${pid[$id]}/status") ))
        done
        echo $(( s / 3 ))
}
koc_anon=$(mem koc RssAnon); cg_anon=$(mem cg RssAnon)
koc_rss=$(mem koc VmRSS); cg_rss=$(mem cg VmRSS)

# Cooperative hand-over: SIGTERM to the leader -> a successor leads.
handover() { # kind -> ms, one round
        local l t s; l=$(leader_of "$1"); t=$(now_us)
        kill -TERM "${pid[$l]}"; wait "${pid[$l]}" 2>/dev/null || true
        s=$(leading_after "$1" "$t")
        start "$l"
        awk -v d=$((s - t)) 'BEGIN { printf "%.1f\n", d / 1000 }'
}
# Crash failover: SIGKILL of the leader -> a successor leads (includes the
# wait for the Lease to expire).
failover() {
        local l t s; l=$(leader_of "$1"); t=$(now_us)
        { kill -KILL "${pid[$l]}"; wait "${pid[$l]}"; } 2>/dev/null || true
        s=$(leading_after "$1" "$t")
        start "$l"
        awk -v d=$((s - t)) 'BEGIN { printf "%.1f\n", d / 1000 }'
}
for kind in koc cg; do
        : >"$work/$kind.handover"; : >"$work/$kind.failover"
        for _ in $(seq 1 "$rounds"); do handover $kind >>"$work/$kind.handover"; sleep 1; done
        for _ in $(seq 1 "$rounds"); do failover $kind >>"$work/$kind.failover"; sleep 1; done
done

row() { # name koc cg unit
        awk -v n="$1" -v k="$2" -v c="$3" -v u="$4" 'BEGIN {
                r = (c + 0 == 0) ? (k + 0 == 0 ? "1.00" : "inf") : sprintf("%.2f", k / c);
                printf "  %-44s %12s %12s %10s  %s\n", n, k, c, r, u }'
}
echo "== koc vs client-go electors: 3 replicas each, lease $LEASE, renew deadline $RENEW, retry $RETRY"
echo "   kube-apiserver $KOC_K8S_VERSION on 127.0.0.1, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), $rounds rounds"
printf "  %-44s %12s %12s %10s\n" "" koc client-go koc/cg
row "cooperative hand-over, median" "$(median <"$work/koc.handover")" "$(median <"$work/cg.handover")" ms
row "crash failover (SIGKILL -> leading), median" "$(median <"$work/koc.failover")" "$(median <"$work/cg.failover")" ms
row "Lease requests/min, leader" "$koc_lead_rpm" "$cg_lead_rpm" "req/min"
row "Lease requests/min, each follower (mean)" \
        "$(printf '%s\n' "${koc_follow[@]}" | awk '{s+=$1} END {printf "%.0f", s/NR}')" \
        "$(printf '%s\n' "${cg_follow[@]}" | awk '{s+=$1} END {printf "%.0f", s/NR}')" "req/min"
row "private memory per replica (RssAnon)" "$koc_anon" "$cg_anon" KiB
row "resident memory per replica (VmRSS)" "$koc_rss" "$cg_rss" KiB
echo "  followers: koc $(printf '%s ' "${koc_follow[@]}")req/min; client-go $(printf '%s ' "${cg_follow[@]}")req/min (audit log, ${window} s window)"
