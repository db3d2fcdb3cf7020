#!/usr/bin/env bash
# ./scripts/bench.sh controller: the controller runtime with N ConfigMaps, on
# koc-apiserver and on a real kube-apiserver, koc beside controller-runtime
# (tests/peers/controller-runtime-bench) on the real server in the same run.
# A benchmark, not a test: it prints figures and fails only when something
# did not happen at all.
#
#   bench-controller.sh BENCH_CONTROLLER KOC_APISERVER
#   KOC_BENCH_SIZES="10000 50000 100000" (the object counts), KOC_BENCH_WRITE_SIZES="10000"
#   (the counts that also get write runs, with 1 and with 4 workers), KOC_BENCH_TOUCHES=200,
#   KOC_BENCH_SERVERS="koc k8s" (koc-apiserver, kube-apiserver)
#
# For each server and N: create N objects (~100 B of data each), then per
# implementation and mode (noop, write = one merge patch per object):
#   full sync      start -> cache synced;   reconciled: start -> all N reconciled
#   reconciles/s   N / (last reconcile - first reconcile)
#   event -> reconcile latency p50/p99 of 200 single changes (noop)
#   failover       SIGKILL of the leader -> the standby's first reconcile, and
#                  the standby's becoming leader -> its first reconcile (noop)
#   memory         private memory (RssAnon) per cached object: (RssAnon with N
#                  objects - RssAnon with none) / N, beside the objects' mean
#                  JSON size without managedFields; also the peak (VmHWM) during
#   floors         one paginated list and one streaming list of the N objects by
#                  koc's client (parsed, not stored), and a bare watch's receive
#                  latency of the same changes, measured beside the replica
# koc and controller-runtime run one after the other for each N (alternating),
# the floors between them; the load average is printed at the start and end.
set -euo pipefail
bench=${1:?usage: bench-controller.sh bench-controller koc-apiserver}
koc_apiserver=${2:?usage: bench-controller.sh bench-controller koc-apiserver}
here=$(cd "$(dirname "$0")" && pwd)
sizes=${KOC_BENCH_SIZES:-10000 50000 100000}
servers=${KOC_BENCH_SERVERS:-koc k8s}
# The write runs send one request per object, one at a time (one worker):
# only for these sizes, to keep the run within minutes.
write_sizes=${KOC_BENCH_WRITE_SIZES:-10000}
touches=${KOC_BENCH_TOUCHES:-200}
k8s_bin=$("$here/../k8s/build.sh" | tail -n 1)
cr=$k8s_bin/controller-runtime-bench
[ -x "$cr" ] || { echo "bench-controller: $cr missing (tests/k8s/build.sh)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/koc-bench-controller.XXXXXX")
pids=()
koc_pid= k8s_dir=
cleanup() {
        { for p in "${pids[@]}" $koc_pid; do kill -KILL "$p" || true; done; wait; } 2>/dev/null || true
        # KOC_BENCH_LOGS=DIR keeps the replicas' logs there.
        [ -n "${KOC_BENCH_LOGS:-}" ] && mkdir -p "$KOC_BENCH_LOGS" && cp "$work"/*.log "$KOC_BENCH_LOGS"/ 2>/dev/null
        [ -n "$k8s_dir" ] && "$here/../k8s/env.sh" stop "$k8s_dir"
        rm -rf "$work"
}
trap cleanup EXIT
now_us() { echo $(( $(date +%s%N) / 1000 )); }
die() { echo "bench-controller: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 5 "$f" >&2; }; done; exit 1; }

# stamp LOG EVENT -> unix_us of the first line with event=EVENT
stamp() { grep -m1 "event=$2\b" "$1" 2>/dev/null | sed -n 's/^unix_us=\([0-9]*\).*/\1/p'; }
wait_event() { # LOG EVENT SECONDS
        local t0=$SECONDS
        until [ -n "$(stamp "$1" "$2")" ]; do
                [ $((SECONDS - t0)) -lt "$3" ] || die "no event=$2 in $1 within $3 s"
                sleep 0.05
        done
}
rss_anon() { awk '$1 == "RssAnon:" { print $2 }' "/proc/$1/status"; }
# requests VERB -> the server's count of VERB requests on configmaps (kube-apiserver's
# apiserver_request_total; koc-apiserver's the same), or 0
requests() {
        curl -sf "${curl_auth[@]}" "$url/metrics" 2>/dev/null |
                awk -v v="$1" 'index($0, "apiserver_request_total{") == 1 && index($0, "verb=\"" v "\"") &&
                        index($0, "resource=\"configmaps\"") { n += $NF } END { printf "%d", n }'
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# replica IMPL LOG NS LEASE EXPECT MODE [IDENTITY] -> pid in $rpid
# (MODE write4: the write mode with 4 workers)
replica() {
        local impl=$1 log=$2 ns=$3 lease=$4 expect=$5 mode=$6 id=${7:-a} workers=1
        [ "$mode" = write4 ] && { mode=write; workers=4; }
        if [ "$impl" = koc ]; then
                KOC_LOG_LEVEL=warn "$bench" replica --kubeconfig "$kc" --namespace "$ns" --lease "$lease" \
                        --expect "$expect" --mode "$mode" --identity "$id" --workers $workers >"$log" 2>&1 &
        else
                "$cr" --kubeconfig "$kc" --namespace "$ns" --lease "$lease" --expect "$expect" \
                        --mode "$mode" --identity "$id" --workers $workers >"$log" 2>&1 &
        fi
        rpid=$!; pids+=("$rpid")
}
stop() { { kill -KILL "$1"; wait "$1"; } 2>/dev/null || true; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
pct() { # FILE P -> value at percentile P (microseconds in, ms out)
        sort -n "$1" | awk -v p="$2" '{ a[NR] = $1 } END { if (!NR) { print "-"; exit }
                i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.2f", a[i] / 1000 }'
}

declare -A R   # results: R[server,N,impl,metric]
baseline() { # IMPL -> RssAnon KiB of a synced replica with no objects
        local log=$work/base-$1.log ns=bench-empty
        "$bench" create --kubeconfig "$kc" --namespace $ns --objects 0 >/dev/null
        replica "$1" "$log" $ns "base-$1-$RANDOM" 0 noop
        wait_event "$log" synced 120; sleep 1
        echo "$(rss_anon "$rpid") $(awk '$1 == "VmHWM:" { print $2 }' "/proc/$rpid/status")"; stop "$rpid"
}

run_server() { # koc|k8s
        local server=$1 impls=koc
        [ "$server" = k8s ] && impls="koc cr"
        local -A base basehwm
        for impl in $impls; do
                read -r base[$impl] basehwm[$impl] < <(baseline "$impl")
        done
        for n in $sizes; do
                local ns=bench-$n-$RANDOM
                echo "bench-controller: $server: $("$bench" create --kubeconfig "$kc" --namespace "$ns" --objects "$n")" >&2
                R[$server,$n,json]=$(curl -sf "${curl_auth[@]}" "$url/api/v1/namespaces/$ns/configmaps?limit=1000" |
                        jq '[.items[] | del(.metadata.managedFields) | tojson | length] | add / length | floor')
                # The floors: one paginated list, one streaming list.
                for f in pages stream; do
                        R[$server,$n,floor-$f]=$("$bench" floor --kubeconfig "$kc" --namespace "$ns" --mode $f |
                                sed -n 's/.* ms=\([0-9.]*\).*/\1/p')
                done
                for impl in $impls; do
                        local modes=noop
                        [[ " $write_sizes " == *" $n "* ]] && modes="noop write write4"
                        for mode in $modes; do
                                local log=$work/$server-$n-$impl-$mode.log lease=l-$impl-$mode-$RANDOM
                                local lists0; lists0=$(requests LIST)
                                replica "$impl" "$log" "$ns" "$lease" "$n" "$mode"
                                local a=$rpid
                                wait_event "$log" reconciled-all 600
                                R[$server,$n,$impl,$mode,lists]=$(( $(requests LIST) - lists0 ))
                                local t0 t_sync t_first t_all
                                t0=$(stamp "$log" started); t_sync=$(stamp "$log" synced)
                                t_first=$(stamp "$log" first-reconcile); t_all=$(stamp "$log" reconciled-all)
                                R[$server,$n,$impl,$mode,sync]=$(ms "$t0" "$t_sync")
                                R[$server,$n,$impl,$mode,patch]=$(ms "$t_first" "$t_all")
                                R[$server,$n,$impl,$mode,all]=$(ms "$t0" "$t_all")
                                R[$server,$n,$impl,$mode,rate]=$(awk -v n="$n" -v a="$t_first" -v b="$t_all" \
                                        'BEGIN { d = (b - a) / 1e6; printf "%.0f", (d > 0) ? n / d : n }')
                                if [ "$mode" = noop ]; then
                                        local rss; rss=$(rss_anon "$a")
                                        R[$server,$n,$impl,mem]=$(awk -v r="$rss" -v b="${base[$impl]}" -v n="$n" \
                                                'BEGIN { printf "%.0f", (r - b) * 1024 / n }')
                                        local hwm; hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$a/status")
                                        R[$server,$n,$impl,hwm]=$(awk -v r="$hwm" -v b="${basehwm[$impl]}" -v n="$n" \
                                                'BEGIN { printf "%.0f", (r - b) * 1024 / n }')
                                        # A bare watch beside the replica: the floor of event -> reconcile.
                                        local wlog=$work/$server-$n-$impl-watch.log
                                        "$bench" floor --kubeconfig "$kc" --namespace "$ns" --mode watch \
                                                --count "$touches" >"$wlog" 2>&1 &
                                        local wpid=$!; pids+=("$wpid")
                                        wait_event "$wlog" watching 60; sleep 0.5
                                        local tt; tt=$(now_us)
                                        "$bench" touch --kubeconfig "$kc" --namespace "$ns" --objects "$n" \
                                                --count "$touches" >/dev/null
                                        sleep 1; stop "$wpid"
                                        sed -n 's/^unix_us=\([0-9]*\) event=latency us=\([0-9]*\).*/\1 \2/p' "$wlog" |
                                                awk -v t="$tt" '($1 - $2) >= t { print $2 }' >"$work/wlat"
                                        R[$server,$n,$impl,w50]=$(pct "$work/wlat" 50)
                                        R[$server,$n,$impl,w99]=$(pct "$work/wlat" 99)
                                        # Only this run's changes (sent after tt), not stamps an
                                        # earlier run left on the objects.
                                        grep 'event=latency' "$log" |
                                                sed -n 's/^unix_us=\([0-9]*\) event=latency us=\([0-9]*\).*/\1 \2/p' |
                                                awk -v t="$tt" '($1 - $2) >= t { print $2 }' >"$work/lat"
                                        R[$server,$n,$impl,p50]=$(pct "$work/lat" 50)
                                        R[$server,$n,$impl,p99]=$(pct "$work/lat" 99)
                                        R[$server,$n,$impl,nlat]=$(wc -l <"$work/lat")
                                        # A warm standby, then SIGKILL of the leader.
                                        local slog=$work/$server-$n-$impl-standby.log
                                        replica "$impl" "$slog" "$ns" "$lease" "$n" noop b
                                        local s=$rpid
                                        # koc's standby keeps a warm cache; controller-runtime's
                                        # has none before it is elected (it says synced only
                                        # then), so it is ready once started.
                                        if [ "$impl" = koc ]; then
                                                wait_event "$slog" synced 600
                                        else
                                                wait_event "$slog" started 60
                                        fi
                                        sleep 1
                                        local tk; tk=$(now_us); stop "$a"
                                        wait_event "$slog" first-reconcile 60
                                        R[$server,$n,$impl,failover]=$(ms "$tk" "$(stamp "$slog" first-reconcile)")
                                        R[$server,$n,$impl,first]=$(ms "$(stamp "$slog" leading)" "$(stamp "$slog" first-reconcile)")
                                        stop "$s"
                                else
                                        stop "$a"
                                fi
                        done
                done
        done
}

row() { # label unit value-koc [value-cr]
        if [ $# -ge 4 ]; then
                awk -v l="$1" -v u="$2" -v k="$3" -v c="$4" 'BEGIN {
                        r = (k ~ /^[0-9.]+$/ && c ~ /^[0-9.]+$/ && c + 0 > 0) ? sprintf("%.2f", k / c) : "-";
                        printf "  %-46s %12s %12s %8s  %s\n", l, k, c, r, u }'
        else
                printf "  %-46s %12s  %s\n" "$1" "$3" "$2"
        fi
}
report() { # server
        local server=$1 name="koc-apiserver"
        [ "$server" = k8s ] && name="kube-apiserver $k8s_version"
        for n in $sizes; do
                local cr_col=-
                echo "== $name, $n ConfigMaps (JSON ${R[$server,$n,json]} B each without managedFields)"
                printf "  %-46s %12s %12s %8s\n" "" koc c-runtime koc/cr
                for m in noop write write4; do
                        [ -n "${R[$server,$n,koc,$m,all]:-}" ] || continue
                        local label=$m; [ $m = write4 ] && label="write, 4 workers"
                        [ $m = write ] && label="write, 1 worker"
                        # controller-runtime says synced once elected (its
                        # informer starts with its controller).
                        row "cache synced, from start ($label)" ms "${R[$server,$n,koc,$m,sync]}" "${R[$server,$n,cr,$m,sync]:-}"
                        row "all $n reconciled, from start ($label)" ms "${R[$server,$n,koc,$m,all]}" "${R[$server,$n,cr,$m,all]:-}"
                        [ $m = noop ] || row "patches: 1st -> last reconcile ($label)" ms "${R[$server,$n,koc,$m,patch]}" "${R[$server,$n,cr,$m,patch]:-}"
                        row "reconciles per second ($label)" "/s" "${R[$server,$n,koc,$m,rate]}" "${R[$server,$n,cr,$m,rate]:-}"
                        # (the server counts a WATCH when it ends: LISTs only)
                        row "LIST requests on configmaps ($label)" "" "${R[$server,$n,koc,$m,lists]}" "${R[$server,$n,cr,$m,lists]:--}"
                done
                row "floor: one paginated list (koc client)" ms "${R[$server,$n,floor-pages]}" "${R[$server,$n,koc,noop,sync]}"
                row "floor: one streaming list (koc client)" ms "${R[$server,$n,floor-stream]}" "${R[$server,$n,koc,noop,sync]}"
                echo "  (floor rows: floor, koc's sync, floor/koc)"
                row "event -> reconcile p50 (${R[$server,$n,koc,nlat]} changes)" ms "${R[$server,$n,koc,p50]}" "${R[$server,$n,cr,p50]:-}"
                row "event -> reconcile p99" ms "${R[$server,$n,koc,p99]}" "${R[$server,$n,cr,p99]:-}"
                row "bare watch receive p50 / p99 (beside koc)" ms "${R[$server,$n,koc,w50]} / ${R[$server,$n,koc,w99]}"
                [ "$server" = k8s ] && row "bare watch receive p50 / p99 (beside c-r)" ms "${R[$server,$n,cr,w50]:-} / ${R[$server,$n,cr,w99]:-}"
                row "failover: SIGKILL -> successor's 1st reconcile" ms "${R[$server,$n,koc,failover]}" "${R[$server,$n,cr,failover]:-}"
                row "successor leading -> its 1st reconcile" ms "${R[$server,$n,koc,first]}" "${R[$server,$n,cr,first]:-}"
                row "private memory per cached object" B "${R[$server,$n,koc,mem]}" "${R[$server,$n,cr,mem]:-}"
                row "peak resident memory per object (VmHWM - base)" B "${R[$server,$n,koc,hwm]}" "${R[$server,$n,cr,hwm]:-}"
                awk -v k="${R[$server,$n,koc,mem]}" -v h="${R[$server,$n,koc,hwm]}" -v j="${R[$server,$n,json]}" 'BEGIN {
                        printf "  %-46s %12.2f %12.2f\n", "koc memory / JSON size (after, peak)", k / j, h / j }'
        done
}

load0=$(loadavg)
echo "bench-controller: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), sizes: $sizes, load average $load0" >&2
# --- koc-apiserver ---
if [[ " $servers " == *" koc "* ]]; then
"$koc_apiserver" --listen 127.0.0.1:0 --kubeconfig-out "$work/koc.kc" --ca-out "$work/koc-ca.crt" \
        --log-level error --history 200000 >"$work/koc-apiserver.log" 2>&1 &
koc_pid=$!
for _ in $(seq 1 500); do [ -s "$work/koc.kc" ] && break; sleep 0.01; done
kc=$work/koc.kc url=$(sed -n 's/^ *server: //p' "$kc")
curl_auth=(--cacert "$work/koc-ca.crt" -H "Authorization: Bearer $(sed -n 's/^ *token: //p' "$kc")")
run_server koc
stop "$koc_pid"; koc_pid=
fi
# --- kube-apiserver ---
if [[ " $servers " == *" k8s "* ]]; then
k8s_dir=$work/k8s
"$here/../k8s/env.sh" start "$k8s_dir" >&2
# shellcheck disable=SC1091
. "$k8s_dir/env"
kc=$k8s_dir/admin.kubeconfig url=$KOC_K8S_URL k8s_version=$KOC_K8S_VERSION
curl_auth=(--cacert "$KOC_K8S_CA" -H "Authorization: Bearer $KOC_K8S_ADMIN_TOKEN")
run_server k8s
fi
echo
echo "bench-controller: load average at the start $load0, at the end $(loadavg) ($(nproc) cores)"
for s in $servers; do report "$s"; done
