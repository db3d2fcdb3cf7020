#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The chaos run: N replicas of koc-example-configmap-mirror for a bounded time
# under a seeded, printed schedule of faults, with a stream of changes to the
# source ConfigMaps all along; then the faults stop, the end state is checked
# object by object, and chaos-check reads every log (each replica's validity
# windows, fenced writes and reconciles, the server's writes, /readyz, the
# faults) and prints the invariants and a timeline picture (SVG).
#
#   tests/chaos/run.sh [--seed N] [--duration SECONDS] [--replicas 3..5]
#                      [--server koc|k8s] [--out DIR] [--bin BUILD_DIR]
#
# Faults, one at a time, in a seeded order that covers every kind before one
# repeats:
#   API (koc-apiserver's fault rules, switched through /admin/faults):
#     api-5xx       503 on a fraction of all requests
#     api-429       429 with Retry-After: 1 on a fraction of all requests
#     api-latency   every Lease request delayed, up to twice the renew deadline
#     api-watch     every watch closed shortly after it starts
#     api-hang      every request held until the rule is cleared
#   processes: sigstop-leader (longer than the lease), sigkill-leader and
#     sigterm-leader (each restarted after a pause)
#   network (each replica talks to the server through its own chaos-proxy):
#     partition-leader (black hole), drop-leader (connections reset),
#     delay-leader, partition-follower; on kube-apiserver, whose faults cannot
#     be switched, all-blackhole and all-delay stand in for api-hang and
#     api-latency.
#
# --server k8s uses $KOC_K8S_ENV when set (a tests/k8s/env.sh directory, e.g.
# ctest's fixture), else starts its own control plane with an audit log of
# the Lease and ConfigMap writes.  Nothing is left running: every process is
# ended by the exit trap.  Exits 0 only when chaos-check finds no violated
# invariant and every object reached its end state.
set -euo pipefail
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

seed=1 duration=60 replicas=3 server=koc out= bin=$root/build
while [[ $# -gt 0 ]]; do
        case $1 in
        --seed) seed=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --replicas) replicas=$2; shift 2 ;;
        --server) server=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        -h | --help) sed -n '4,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "chaos: unknown argument $1 (--help)" >&2; exit 2 ;;
        esac
done
[[ $seed =~ ^[0-9]+$ && $duration =~ ^[0-9]+$ && $replicas =~ ^[0-9]+$ ]] ||
        { echo "chaos: --seed, --duration and --replicas take numbers" >&2; exit 2; }
((replicas >= 2 && replicas <= 9)) || { echo "chaos: --replicas must be 2..9" >&2; exit 2; }
((duration >= 20 && duration <= 86400)) || { echo "chaos: --duration must be 20..86400 s" >&2; exit 2; }
[[ $server == koc || $server == k8s ]] || { echo "chaos: --server koc or k8s" >&2; exit 2; }

mirror=$bin/examples/configmap-mirror/koc-example-configmap-mirror
apiserver=$bin/apiserver/koc-apiserver
proxy=$bin/tests/chaos-proxy
check=$bin/tests/chaos-check
for b in "$mirror" "$proxy" "$check"; do
        [[ -x $b ]] || { echo "chaos: $b is missing (cmake --build $bin)" >&2; exit 1; }
done
[[ $server == k8s || -x $apiserver ]] || { echo "chaos: $apiserver is missing" >&2; exit 1; }
command -v jq >/dev/null || { echo "chaos: jq is needed (scripts/install-deps.sh)" >&2; exit 1; }
# shellcheck source=../tools/ports.sh
. "$root/tests/tools/ports.sh"

out=${out:-$root/build/chaos/$server-seed$seed-$(date -u +%Y%m%dT%H%M%SZ)}
# A report directory is reused only if an earlier run made it (the logs are appended to).
if [[ -d $out && -n $(ls -A "$out") && ! -e $out/.koc-chaos ]]; then
        echo "chaos: $out exists and was not made by a chaos run; name another --out" >&2
        exit 2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
find "$out" -mindepth 1 -delete
touch "$out/.koc-chaos"
work=$out/work
mkdir -p "$work"

# Timing of the election (as the demo): lease 2 s, renew deadline 1.5 s, retry 250 ms.
lease_ms=2000 renew_ms=1500 retry_ms=250
n_sources=$((duration >= 300 ? 30 : 12))

# --- clocks: every event is stamped with CLOCK_BOOTTIME, as the replicas stamp theirs -----
offset=$("$check" --clock-offset)
bt() { local w=${EPOCHREALTIME/./}; echo $((w - offset)); }
t_start=$(bt)
event() { echo "$(bt) $*" >>"$out/events.log"; }
say() { printf '[chaos %6.1fs] %s\n' "$(( ($(bt) - t_start) / 100000 ))e-1" "$*"; }

# --- cleanup: nothing is left running ------------------------------------------------------
declare -A pid=() proxy_pid=() hport=() pport=()
bg_pids=() api_pid= k8s_dir= stream_pid=
cleanup() {
        set +e
        for p in "${pid[@]}"; do kill -CONT "$p"; kill -KILL "$p"; done 2>/dev/null
        for p in "${bg_pids[@]}" $stream_pid "${proxy_pid[@]}" $api_pid; do kill -KILL "$p"; done 2>/dev/null
        for p in "${pid[@]}" "${bg_pids[@]}" $stream_pid "${proxy_pid[@]}" $api_pid; do
                wait "$p"
        done 2>/dev/null
        [[ -n $k8s_dir ]] && "$root/tests/k8s/env.sh" stop "$k8s_dir"
        rm -f "$work"/*.ctl
        if [[ -n ${watchdog_pid:-} ]]; then kill -KILL "$watchdog_pid"; wait "$watchdog_pid"; fi 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# If this script is killed outright (SIGKILL: no trap runs, e.g. a test
# timeout), a watchdog ends the programs it started (their pids are in
# $work/pids) and a control plane it started.
track() { echo "$1" >>"$work/pids"; }
(
        trap '' INT TERM
        while kill -0 $$ 2>/dev/null; do sleep 1; done
        # Only processes whose command line names this run's directory: a pid
        # may have been reused meanwhile.  (The loops in subshells end by
        # themselves once the script is gone, and are bounded in time.)
        while read -r p; do
                tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF "$work/" && kill -KILL "$p"
        done <"$work/pids" 2>/dev/null
        [[ -d $work/k8s ]] && "$root/tests/k8s/env.sh" stop "$work/k8s" >/dev/null 2>&1
) </dev/null >/dev/null 2>&1 &
watchdog_pid=$!

# --- the API server -----------------------------------------------------------------------
server_log=
if [[ $server == koc ]]; then
        api_port=$(free_port)
        token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
        "$apiserver" --listen "127.0.0.1:$api_port" --kubeconfig-out "$work/admin.kubeconfig" \
                --ca-out "$work/ca.crt" --token "$token" --log-writes "$out/server-writes.jsonl" \
                --log-level warn >"$out/apiserver.log" 2>&1 &
        api_pid=$!
        track "$api_pid"
        for _ in $(seq 1 100); do [[ -s $work/admin.kubeconfig ]] && break; sleep 0.1; done
        [[ -s $work/admin.kubeconfig ]] || { echo "chaos: koc-apiserver did not start" >&2; exit 1; }
        url=https://127.0.0.1:$api_port ca=$work/ca.crt
        server_log=(--server-writes "$out/server-writes.jsonl")
        say "koc-apiserver at $url"
else
        env_dir=${KOC_K8S_ENV:-}
        if [[ -z $env_dir ]]; then
                k8s_dir=$work/k8s
                KOC_K8S_AUDIT=writes "$root/tests/k8s/env.sh" start "$k8s_dir" >/dev/null
                env_dir=$k8s_dir
        fi
        # shellcheck disable=SC1091
        . "$env_dir/env"
        url=$KOC_K8S_URL token=$KOC_K8S_ADMIN_TOKEN ca=$KOC_K8S_CA
        api_port=${url##*:}
        cp "$env_dir/admin.kubeconfig" "$work/admin.kubeconfig"
        # An audit log of ConfigMap writes (KOC_K8S_AUDIT=writes); the
        # fixture's log always exists but holds only its RBAC test's requests.
        if [[ -f $env_dir/audit.log ]] && grep -q 'resources: \[configmaps\]' "$env_dir/audit-policy.yaml" 2>/dev/null; then
                audit_from=$(wc -l <"$env_dir/audit.log")
                server_log=(--server-audit "$out/audit.log")
        else
                server_log=()
        fi
        say "kube-apiserver $KOC_K8S_VERSION at $url${server_log:+ (audit log)}"
fi
api_out=$work/api.out
api() { # METHOD PATH [BODY [CONTENT-TYPE]] -> "CODE" on stdout, the body in $api_out
        local args=(-s -o "$api_out" -w '%{http_code}' --max-time 3 --cacert "$ca"
                -H "Authorization: Bearer $token" -X "$1")
        [[ $# -ge 3 ]] && args+=(-H "Content-Type: ${4:-application/json}" --data-binary "$3")
        curl "${args[@]}" "$url$2" || true
}
ns=chaos-$seed-$RANDOM
for n in "$ns" "$ns-a" "$ns-b"; do
        [[ $(api POST /api/v1/namespaces "{\"metadata\":{\"name\":\"$n\"}}") == 201 ]] ||
                { echo "chaos: cannot create namespace $n" >&2; exit 1; }
done

# --- the schedule (seeded; printed before anything happens) -------------------------------
RANDOM=$seed
if [[ $server == koc ]]; then
        kinds=(api-5xx api-429 api-latency api-watch api-hang sigstop-leader sigkill-leader
                sigterm-leader partition-leader drop-leader delay-leader partition-follower)
else
        kinds=(all-blackhole all-delay sigstop-leader sigkill-leader sigterm-leader
                partition-leader drop-leader delay-leader partition-follower)
fi
# lo hi -> $R; no command substitution: bash reseeds RANDOM in subshells.
rnd() { R=$(($1 + RANDOM % ($2 - $1 + 1))); }
: >"$out/schedule.txt"
t=4000 deck=()
while :; do
        if [[ ${#deck[@]} -eq 0 ]]; then
                deck=("${kinds[@]}")
                for ((i = ${#deck[@]} - 1; i > 0; i--)); do
                        j=$((RANDOM % (i + 1))); tmp=${deck[i]}; deck[i]=${deck[j]}; deck[j]=$tmp
                done
        fi
        kind=${deck[0]}; deck=("${deck[@]:1}")
        case $kind in
        api-5xx) rnd 2000 6000; len=$R param=$((30 + RANDOM % 71)) ;;     # percent of requests
        api-429) rnd 2000 5000; len=$R param=$((50 + RANDOM % 51)) ;;
        api-latency | all-delay) rnd 3000 6000; len=$R; rnd 300 $((2 * renew_ms)); param=$R ;; # ms
        api-watch) rnd 4000 8000; len=$R; rnd 200 1000; param=$R ;;         # ms until a watch closes
        api-hang | all-blackhole) rnd 1000 4000; len=$R param=0 ;;
        sigstop-leader) rnd $((lease_ms + 500)) $((lease_ms + 3000)); len=$R param=0 ;;
        sigkill-leader | sigterm-leader) rnd 1000 3000; len=$R param=0 ;; # pause before restart
        partition-leader | partition-follower) rnd 2000 5000; len=$R param=0 ;;
        drop-leader) rnd 1000 3000; len=$R param=0 ;;
        delay-leader) rnd 3000 6000; len=$R; rnd 300 2500; param=$R ;;
        esac
        ((t + len + 1000 <= duration * 1000)) || break
        echo "$t $len $kind $param" >>"$out/schedule.txt"
        rnd 2000 5000
        t=$((t + len + R))
done
say "seed $seed, $replicas replicas, ${duration} s on $server, lease ${lease_ms} ms / renew ${renew_ms} ms / retry ${retry_ms} ms; schedule (start ms, length ms, fault, parameter):"
sed 's/^/    /' "$out/schedule.txt"

# --- proxies and replicas -------------------------------------------------------------------
names=()
for i in $(seq 1 "$replicas"); do
        r=chaos-$i names+=("$r")
        pport[$r]=$(free_port)
        "$proxy" --listen "127.0.0.1:${pport[$r]}" --target "127.0.0.1:$api_port" \
                --control "$work/$r.ctl" --max-seconds $((duration + 600)) 2>>"$out/$r.proxy.log" &
        proxy_pid[$r]=$!
        track "${proxy_pid[$r]}"
        sed "s#^\( *server: *\).*#\1https://127.0.0.1:${pport[$r]}#" "$work/admin.kubeconfig" \
                >"$work/$r.kubeconfig"
done
start_replica() {
        local r=$1
        hport[$r]=$(free_port)
        KOC_LOG_LEVEL=debug "$mirror" --kubeconfig="$work/$r.kubeconfig" --identity="$r" \
                --leader-elect-resource-namespace="$ns" --leader-elect-lease-duration=${lease_ms}ms \
                --leader-elect-renew-deadline=${renew_ms}ms --leader-elect-retry-period=${retry_ms}ms \
                --leader-elect-gate-readiness=true --shutdown-drain-budget=5s \
                --health-probe-bind-address="127.0.0.1:${hport[$r]}" --metrics-bind-address=0 \
                --target-namespaces="$ns-a,$ns-b" >>"$out/$r.log" 2>&1 &
        pid[$r]=$!
        track "${pid[$r]}"
        event "start $r pid=${pid[$r]}"
}
proxy_cmd() { # replica command
        timeout 2 bash -c 'echo "$1" >"$2"' _ "$2" "$work/$1.ctl" || say "proxy of $1 did not take \"$2\""
}
for r in "${names[@]}"; do start_replica "$r"; done

# /readyz of every replica twice a second (one sampler each, so a frozen one delays no other).
for r in "${names[@]}"; do
        (
                end=$((SECONDS + duration + 200))
                while ((SECONDS < end)) && kill -0 $$ 2>/dev/null; do
                        code=$(curl -s -o /dev/null -m 0.4 -w '%{http_code}' \
                                "http://127.0.0.1:${hport[$r]}/readyz" 2>/dev/null || true)
                        echo "$(bt) $r ${code:-000}"
                        sleep 0.5
                done
        ) >>"$out/readyz.log" 2>/dev/null &
        bg_pids+=($!)
        track "$!"
done

lease_path=/apis/coordination.k8s.io/v1/namespaces/$ns/leases/koc-example-configmap-mirror
holder() { [[ $(api GET "$lease_path") == 200 ]] && jq -r '.spec.holderIdentity // ""' "$work/api.out" || true; }
leader=
for _ in $(seq 1 100); do leader=$(holder); [[ -n $leader ]] && break; sleep 0.2; done
[[ -n $leader ]] || { echo "chaos: no leader within 20 s" >&2; exit 1; }
say "$leader leads"

# --- the stream of changes (its own client, straight to the server) ------------------------------
src_body() { # name value
        printf '{"metadata":{"name":"%s","labels":{"koc.example/mirror":"true"},"annotations":{"koc.example/mirror-to":"%s-a,%s-b"}},"data":{"v":"%s"}}' \
                "$1" "$ns" "$ns" "$2"
}
stream() {
        RANDOM=$((seed + 7)) api_out=$work/stream.out
        local -A present=()
        local n=0 name code op end=$(( $(bt) + duration * 1000000 ))
        for i in $(seq 1 $((n_sources / 2))); do
                name=src-$i; code=$(api POST "/api/v1/namespaces/$ns/configmaps" "$(src_body "$name" 0)")
                [[ $code == 201 ]] && present[$name]=1
                echo "$(bt) create $name $code"
        done
        while (($(bt) < end)) && kill -0 $$ 2>/dev/null; do
                n=$((n + 1)); name=src-$((1 + RANDOM % n_sources))
                if [[ -z ${present[$name]:-} ]]; then
                        op=create code=$(api POST "/api/v1/namespaces/$ns/configmaps" "$(src_body "$name" "$n")")
                        [[ $code == 201 || $code == 409 ]] && present[$name]=1
                elif ((RANDOM % 10 < 7)); then
                        op=update code=$(api PATCH "/api/v1/namespaces/$ns/configmaps/$name" \
                                "{\"data\":{\"v\":\"$n\"}}" application/merge-patch+json)
                        [[ $code == 404 ]] && unset "present[$name]"
                else
                        op=delete code=$(api DELETE "/api/v1/namespaces/$ns/configmaps/$name")
                        [[ $code == 200 || $code == 404 ]] && unset "present[$name]"
                fi
                echo "$(bt) $op $name $code"
                sleep "0.$((2 + RANDOM % 4))"
        done
}
stream >"$out/stream.log" 2>&1 &
stream_pid=$!
track "$stream_pid"

# --- the faults -------------------------------------------------------------------------------
t0=$(bt)
event "faults-begin"
follower_of() { # LEADER N -> the N-th replica other than LEADER (from 0)
        local i=$2 r
        for r in "${names[@]}"; do
                [[ $r == "$1" ]] && continue
                ((i-- == 0)) && { echo "$r"; return; }
        done
}
stop_replica() { # replica signal
        local r=$1 p=${pid[$1]} rc=0
        kill "-$2" "$p" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        { wait "$p"; } 2>/dev/null || rc=$? # braces: no "Killed" notice from bash
        event "exit $r rc=$rc"
        say "$r exited with $rc"
}
while read -r at len kind param; do
        now_ms=$(( ($(bt) - t0) / 1000 ))
        ((at > now_ms)) && sleep "$(( (at - now_ms) / 1000 )).$(printf %03d $(( (at - now_ms) % 1000 )))"
        # A replica that exited by itself is restarted (and the exit recorded).
        for r in "${names[@]}"; do
                if ! kill -0 "${pid[$r]}" 2>/dev/null; then
                        rc=0; wait "${pid[$r]}" 2>/dev/null || rc=$?
                        event "exit $r rc=$rc"; say "$r had exited ($rc): restarting"; start_replica "$r"
                fi
        done
        leader=$(holder); [[ -n $leader && -n ${pid[$leader]:-} ]] || leader=${names[$((RANDOM % replicas))]}
        target=$leader
        pick=$((RANDOM % (replicas - 1)))
        [[ $kind == partition-follower ]] && target=$(follower_of "$leader" "$pick")
        [[ $kind == api-* || $kind == all-* ]] && target=all
        say "fault $kind on $target for $len ms${param:+ (parameter $param)}"
        event "fault-begin $kind $target $param"
        secs=$(( len / 1000 )).$(printf %03d $((len % 1000)))
        case $kind in
        api-5xx) api POST /admin/faults "{\"error_rate\":$(awk -v p="$param" 'BEGIN{print p/100}'),\"error_code\":503}" >/dev/null
                sleep "$secs"; api DELETE /admin/faults >/dev/null ;;
        api-429) api POST /admin/faults "{\"error_rate\":$(awk -v p="$param" 'BEGIN{print p/100}'),\"error_code\":429,\"retry_after\":1}" >/dev/null
                sleep "$secs"; api DELETE /admin/faults >/dev/null ;;
        api-latency) api POST /admin/faults "{\"resource\":\"leases\",\"latency_ms\":$param}" >/dev/null
                sleep "$secs"; api DELETE /admin/faults >/dev/null ;;
        api-watch) api POST /admin/faults "{\"verb\":\"watch\",\"watch_close_after_ms\":$param}" >/dev/null
                sleep "$secs"; api DELETE /admin/faults >/dev/null ;;
        api-hang) api POST /admin/faults '{"hang":true}' >/dev/null
                sleep "$secs"; api DELETE /admin/faults >/dev/null ;;
        all-blackhole) for r in "${names[@]}"; do proxy_cmd "$r" blackhole; done
                sleep "$secs"; for r in "${names[@]}"; do proxy_cmd "$r" pass; done ;;
        all-delay) for r in "${names[@]}"; do proxy_cmd "$r" "delay $param"; done
                sleep "$secs"; for r in "${names[@]}"; do proxy_cmd "$r" pass; done ;;
        sigstop-leader) kill -STOP "${pid[$target]}"; sleep "$secs"; kill -CONT "${pid[$target]}" ;;
        sigkill-leader) stop_replica "$target" KILL; sleep "$secs"; start_replica "$target" ;;
        sigterm-leader) stop_replica "$target" TERM; sleep "$secs"; start_replica "$target" ;;
        partition-leader | partition-follower) proxy_cmd "$target" blackhole; sleep "$secs"; proxy_cmd "$target" pass ;;
        drop-leader) proxy_cmd "$target" drop; sleep "$secs"; proxy_cmd "$target" pass ;;
        delay-leader) proxy_cmd "$target" "delay $param"; sleep "$secs"; proxy_cmd "$target" pass ;;
        esac
        event "fault-end $kind $target"
done <"$out/schedule.txt"
now_ms=$(( ($(bt) - t0) / 1000 ))
((now_ms < duration * 1000)) && sleep "$(( (duration * 1000 - now_ms) / 1000 ))"
event "faults-end"
say "faults over; waiting for the stream to stop and every object to reach its end state"
wait "$stream_pid" || true
stream_pid=
for r in "${names[@]}"; do
        if ! kill -0 "${pid[$r]}" 2>/dev/null; then
                rc=0; wait "${pid[$r]}" 2>/dev/null || rc=$?
                event "exit $r rc=$rc"; say "$r had exited ($rc): restarting"; start_replica "$r"
        fi
done

# --- the end state, object by object -------------------------------------------------------------
sel_src=labelSelector=koc.example%2Fmirror%3Dtrue sel_copy=labelSelector=koc.example%2Fmirror-copy%3Dtrue
end_state() { # -> $work/end.txt; true when every object is as it must be
        [[ $(api GET "/api/v1/namespaces/$ns/configmaps?$sel_src") == 200 ]] || return 1
        cp "$work/api.out" "$work/sources.json"
        for c in a b; do
                [[ $(api GET "/api/v1/namespaces/$ns-$c/configmaps?$sel_copy") == 200 ]] || return 1
                cp "$work/api.out" "$work/copies-$c.json"
        done
        jq -r --slurpfile a "$work/copies-a.json" --slurpfile b "$work/copies-b.json" '
          def copies($l): [$l[0].items[] | {key: .metadata.name, value: .data}] | from_entries;
          (copies($a)) as $ca | (copies($b)) as $cb |
          [.items[] | select(.metadata.deletionTimestamp == null)] as $live |
          ([$live[] | {key: .metadata.name, value: .data}] | from_entries) as $want |
          ([.items[] | select(.metadata.deletionTimestamp != null) | "still terminating: \(.metadata.name)"]
           + [$live[] | select(.metadata.annotations["koc.example/mirror-status"] != "2/2 in sync")
                      | "status of \(.metadata.name): \(.metadata.annotations["koc.example/mirror-status"] // "none")"]
           + [$live[] | select((.metadata.finalizers // []) | index("koc.example/mirror") | not) | "no finalizer: \(.metadata.name)"]
           + [$want | to_entries[] | select($ca[.key] != .value) | "copy in a of \(.key) differs"]
           + [$want | to_entries[] | select($cb[.key] != .value) | "copy in b of \(.key) differs"]
           + [$ca | keys[] | select($want[.] == null) | "orphan copy in a: \(.)"]
           + [$cb | keys[] | select($want[.] == null) | "orphan copy in b: \(.)"]) as $bad |
          "sources=\($live | length) copies=\(($ca | length) + ($cb | length)) wrong=\($bad | length)", $bad[]
        ' "$work/sources.json" >"$work/end.txt"
        head -1 "$work/end.txt" | grep -q ' wrong=0$'
}
settle_end=$((SECONDS + 90)) converged=
while ((SECONDS < settle_end)); do
        if end_state; then converged=1; break; fi
        sleep 1
done
cp "$work/end.txt" "$out/endstate.txt" 2>/dev/null || echo "sources=? copies=? wrong=unknown" >"$out/endstate.txt"
event "settled ${converged:-no}"
say "end state: $(head -1 "$out/endstate.txt")${converged:+ (converged)}"

# --- stop the replicas (SIGTERM: drain, release, exit 0) ---------------------------------------------
for r in "${names[@]}"; do stop_replica "$r" TERM; done
unset pid; declare -A pid=()
for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
for r in "${names[@]}"; do proxy_cmd "$r" quit; done
for p in "${bg_pids[@]}" "${proxy_pid[@]}"; do wait "$p" 2>/dev/null || true; done
bg_pids=() proxy_pid=()
if [[ $server == k8s && ${#server_log[@]} -gt 0 ]]; then
        tail -n +"$((audit_from + 1))" "$env_dir/audit.log" >"$out/audit.log"
fi

# --- the checker --------------------------------------------------------------------------------
args=(--lease-duration-ms "$lease_ms" --renew-deadline-ms "$renew_ms" --retry-period-ms "$retry_ms"
        --events "$out/events.log" --schedule "$out/schedule.txt" --readyz "$out/readyz.log"
        --endstate "$out/endstate.txt" --svg "$out/timeline.svg"
        --title "seed $seed, $replicas replicas, $duration s, $server" "${server_log[@]}")
for r in "${names[@]}"; do args+=(--replica "$r=$out/$r.log"); done
rc=0
"$check" "${args[@]}" | tee "$out/report.txt" || rc=$?
echo "chaos: report in $out (report.txt, timeline.svg)"
exit $rc
