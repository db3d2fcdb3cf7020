#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# charts/koc-example on a real node (tests/k8s/node.sh): pods started,
# probed and rolled by kubelet and the Deployment controller, the image from
# scripts/image.sh.  One case per run, each on a node of its own:
#
#   tests/k8s/node-chart.sh IMAGE_DIR install    helm install --wait, 2 replicas: both Ready, one leads
#   tests/k8s/node-chart.sh IMAGE_DIR gated      gateReadiness: exactly the leader is Ready
#   tests/k8s/node-chart.sh IMAGE_DIR upgrade    helm upgrade to a new tag: leaderless gaps, no overlap, exit 0
#   tests/k8s/node-chart.sh IMAGE_DIR failover   kubectl delete pod of the leader: the other replica leads
#   tests/k8s/node-chart.sh IMAGE_DIR crash      SIGKILL of the leader's container: the lease runs out, then the other leads
#   tests/k8s/node-chart.sh IMAGE_DIR drain      kubectl drain: the budget keeps one replica; gated, no budget
#   tests/k8s/node-chart.sh IMAGE_DIR helm-test  helm test (its pod needs no DNS)
#   tests/k8s/node-chart.sh IMAGE_DIR memcached  the Memcached example's chart: real memcached pods
#
# IMAGE_DIR holds koc-example-leader.tar, koc-test-curl.tar, and for the
# Memcached case koc-example-memcached.tar and memcached.tar (scripts/image.sh).
# Every wait is bounded; on failure the pods, events and kubelet's last lines
# are printed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
images=$(cd "${1:?usage: node-chart.sh IMAGE_DIR CASE}" && pwd)
case_=${2:?usage: node-chart.sh IMAGE_DIR CASE}
node=$here/node.sh
kubectl=$("$root/tests/tools/k8s-tools.sh" kubectl)
helm=$("$root/tests/tools/k8s-tools.sh" helm)
release=ex
fullname=ex-koc-example
sel=app.kubernetes.io/instance=$release
tag=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' "$root/charts/koc-example/Chart.yaml")
lease_s=15

fail() {
        echo "not ok - $*"
        echo "# pods, events and kubelet's last lines:"
        k get pods -o wide 2>&1 | sed 's/^/#   /' || true
        k get events --sort-by=.lastTimestamp 2>&1 | tail -n 20 | sed 's/^/#   /' || true
        tail -n 20 "$node_dir/kubelet.log" 2>/dev/null | sed 's/^/#   /' || true
        local f p
        for f in "$work"/logs/*; do
                [ -f "$f" ] || continue
                echo "# last lines of pod $(basename "$f"):"
                tail -n 8 "$f" | sed 's/^/#   /'
        done
        # Pods whose logs were not followed: their last lines from kubelet.
        for p in $(k get pods --no-headers -o custom-columns=N:.metadata.name 2>/dev/null); do
                [ -f "$work/logs/$p" ] && continue
                echo "# last lines of pod $p:"
                k logs --tail=8 "pod/$p" 2>&1 | sed 's/^/#   /' || true
        done
        echo "0 passed, 1 failed"
        exit 1
}
ok() { passed=$((passed + 1)); echo "ok - $*"; }
passed=0
k() { "$node" in "$node_dir" "$kubectl" "$@"; }
h() { "$node" in "$node_dir" "$helm" "$@"; }
now_us() { echo $(($(date +%s%N) / 1000)); }

node_dir=$(mktemp -u "${TMPDIR:-/tmp}/koc-node.XXXXXX")
bg_pids=()
cleanup() {
        local p
        for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
        # KOC_NODE_LOGS=DIR keeps the pods' logs and the node's.
        if [ -n "${KOC_NODE_LOGS:-}" ]; then
                mkdir -p "$KOC_NODE_LOGS"
                cp -r "$work/logs" "$KOC_NODE_LOGS/" 2>/dev/null || true
                cp "$node_dir"/*.log "$KOC_NODE_LOGS/" 2>/dev/null || true
        fi
        "$node" down "$node_dir" || echo "# node.sh down reported a problem (above)"
        rm -rf "$work"
}
work=$(mktemp -d)
trap cleanup EXIT
trap 'exit 130' INT TERM
t_up=$SECONDS
"$node" up "$node_dir" >/dev/null
echo "# node up in $((SECONDS - t_up)) s"
"$node" import "$node_dir" "$images/koc-example-leader.tar"

install() { # extra helm flags...
        h install "$release" "$root/charts/koc-example" --wait --timeout 120s \
                --set tests.image.repository=koc-test-curl --set "tests.image.tag=$tag" "$@" >"$work/helm.out" 2>&1 ||
                { cat "$work/helm.out"; fail "helm install $*"; }
}

# ready_pods: the names of the Ready pods of the release, one a line.
ready_pods() {
        k get pods -l "$sel" -o go-template='{{range .items}}{{if not .metadata.deletionTimestamp}}{{$n := .metadata.name}}{{range .status.conditions}}{{if and (eq .type "Ready") (eq .status "True")}}{{$n}}{{"\n"}}{{end}}{{end}}{{end}}{{end}}'
}
holder() { k get lease "$fullname" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true; }

# wait_until SECONDS DESCRIPTION COMMAND...: bounded poll.
wait_until() {
        local secs=$1 what=$2 t0=$SECONDS; shift 2
        until "$@"; do
                [ $((SECONDS - t0)) -lt "$secs" ] || fail "$what (not within $secs s)"
                sleep 0.5
        done
}
count_is() { [ "$("$2" | wc -l)" -eq "$1" ]; } # N FUNCTION: FUNCTION prints N lines
leader_known() { local l; l=$(holder); [ -n "$l" ] && k get pod "$l" >/dev/null 2>&1; }

# follow_one POD: streams its log from the start once its container runs.
follow_one() {
        local i
        for i in $(seq 1 120); do
                k logs -f "pod/$1" >"$work/logs/$1" 2>&1 && return 0
                grep -q 'waiting to start\|ContainerCreating\|PodInitializing' "$work/logs/$1" || return 0
                sleep 0.25
        done
}

# follow_logs: streams the logs of every pod of the release, those created
# later included, into $work/logs/POD until stopped.
follow_logs() {
        mkdir -p "$work/logs"
        (
                declare -A seen=()
                while read -r name; do
                        name=${name#pod/}
                        [ -n "${seen[$name]:-}" ] && continue
                        seen[$name]=1
                        follow_one "$name" &
                done < <(k get pods -l "$sel" -w -o name --request-timeout=0 2>/dev/null)
        ) &
        bg_pids+=($!)
}

# events: "unix_ms pod became|stopped" from the followed logs, in time order:
# the elector's own lines (component=leader): "became leader", and
# "released lease" (a step-down) or "lost lease".
events() {
        local f t
        for f in "$work"/logs/*; do
                sed -n -e 's/^time=\([^ ]*\) .*component=leader msg="became leader .*/\1 became/p' \
                        -e 's/^time=\([^ ]*\) .*component=leader msg="\(released\|lost\) lease.*/\1 stopped/p' "$f" |
                        while read -r t ev; do echo "$(date -d "$t" +%s%3N) $(basename "$f") $ev"; done
        done | sort -n
}

# check_handovers: no two leaders at once; prints every gap (from the old
# leader's first line saying it stopped, to the new one's "became leader");
# sets max_gap_ms and handovers.
check_handovers() {
        local cur="" last_stop="" last_pod="" t pod ev gaps=0
        max_gap_ms=0
        while read -r t pod ev; do
                if [ "$ev" = became ]; then
                        [ -z "$cur" ] || fail "overlap: $pod became leader at $t while $cur still led"
                        cur=$pod
                        if [ -n "$last_stop" ]; then
                                local gap=$((t - last_stop))
                                echo "# leaderless gap: $gap ms (-> $pod)"
                                [ "$gap" -gt "$max_gap_ms" ] && max_gap_ms=$gap
                                gaps=$((gaps + 1))
                        fi
                elif [ "$pod" = "$cur" ]; then
                        cur=""; last_stop=$t
                elif [ "$pod" != "$last_pod" ]; then
                        # "released lease" follows "lost lease ... reason=released" of the same pod.
                        fail "$pod stopped leading at $t but the leader was ${cur:-nobody}"
                fi
                last_pod=$pod
        done < <(events)
        handovers=$gaps
}

case $case_ in
install)
        install
        wait_until 60 "both replicas Ready" count_is 2 ready_pods
        ok "helm install --wait: 2 replicas Ready by kubelet's probes"
        wait_until 30 "a Lease holder that is a pod" leader_known
        l=$(holder)
        ready_pods | grep -qx "$l" || fail "the leader $l is not one of the Ready pods"
        ok "one replica leads: Lease holder $l is a pod of the release"
        vol=$(k get pod "$l" -o jsonpath='{.spec.volumes[*].projected.sources[*].serviceAccountToken.path}')
        [ "$vol" = token ] || fail "the pod's token is not a projected one (got '$vol')"
        ok "the ServiceAccount token is projected"
        ;;
gated)
        install --set leaderElection.gateReadiness=true --wait=legacy
        wait_until 60 "a Lease holder that is a pod" leader_known
        l=$(holder)
        t0=$SECONDS
        until [ "$(ready_pods | tr '\n' ' ')" = "$l " ]; do
                [ $((SECONDS - t0)) -lt 60 ] || fail "Ready pods: '$(ready_pods | tr '\n' ' ')', expected only the leader $l"
                sleep 0.5
        done
        # And it stays so: the standby is never Ready while the leader holds the Lease.
        for _ in $(seq 1 10); do
                r=$(ready_pods | tr '\n' ' ')
                [ "$r" = "$l " ] || fail "Ready pods: '$r', expected only the leader $l"
                sleep 0.5
        done
        [ "$(k get pods -l "$sel" --no-headers | wc -l)" -eq 2 ] || fail "not 2 pods"
        ok "gateReadiness: exactly the leader $l is Ready of 2 running pods"
        ;;
upgrade)
        install
        wait_until 60 "both replicas Ready" count_is 2 ready_pods
        wait_until 30 "a leader" leader_known
        old_pods=$(k get pods -l "$sel" -o name | sed 's|pod/||' | sort)
        old_leader=$(holder)
        follow_logs
        sleep 2
        new_tag=$tag-next
        "$node" in "$node_dir" ctr --address "$node_dir/containerd.sock" -n k8s.io images tag \
                "docker.io/library/koc-example-leader:$tag" "docker.io/library/koc-example-leader:$new_tag" >/dev/null
        t0=$SECONDS
        h upgrade "$release" "$root/charts/koc-example" --reuse-values --set "image.tag=$new_tag" \
                --wait --timeout 180s >"$work/helm.out" 2>&1 || { cat "$work/helm.out"; fail "helm upgrade"; }
        echo "# helm upgrade --wait took $((SECONDS - t0)) s"
        # The old pods are gone and their logs complete.
        wait_until 60 "the old pods gone" sh -c "! '$node' in '$node_dir' '$kubectl' get pods -l '$sel' -o name | grep -qF -e '$(echo "$old_pods" | head -n1)' -e '$(echo "$old_pods" | tail -n1)'"
        wait_until 30 "a new leader" leader_known
        new_leader=$(holder)
        grep -qx "$new_leader" <<<"$old_pods" && fail "the leader $new_leader is an old pod after the rollout"
        sleep 1
        for p in $old_pods; do
                [ -f "$work/logs/$p" ] || fail "no log of $p"
                grep -q 'msg="exiting code=0"' "$work/logs/$p" ||
                        { tail -n 5 "$work/logs/$p"; fail "old pod $p did not exit 0 on kubelet's SIGTERM"; }
        done
        ok "every old pod exited 0 on kubelet's SIGTERM"
        grep -q 'component=leader msg="released lease' "$work/logs/$old_leader" ||
                fail "the old leader $old_leader did not release the Lease on SIGTERM"
        check_handovers
        [ "$handovers" -ge 1 ] || fail "no handover seen in the pods' logs"
        ok "no overlap: never two leaders in $handovers handover(s); new leader $new_leader"
        echo "# rollout: longest leaderless gap $max_gap_ms ms over $handovers handover(s)"
        [ "$max_gap_ms" -le $((lease_s * 1000)) ] || fail "a leaderless gap of $max_gap_ms ms exceeds the lease ($lease_s s)"
        ok "the leaderless gap stays below the lease duration"
        ;;
failover)
        install
        wait_until 60 "both replicas Ready" count_is 2 ready_pods
        wait_until 30 "a leader" leader_known
        old_leader=$(holder)
        follow_logs
        sleep 2
        t_del=$(now_us)
        k delete pod "$old_leader" --wait=false >/dev/null
        wait_until 60 "a successor" sh -c "l=\$('$node' in '$node_dir' '$kubectl' get lease $fullname -o jsonpath='{.spec.holderIdentity}'); [ -n \"\$l\" ] && [ \"\$l\" != '$old_leader' ]"
        successor=$(holder)
        wait_until 30 "the successor's log line" grep -q 'msg="became leader' "$work/logs/$successor"
        became=$(sed -n 's/.*msg="became leader .*unix_us=\([0-9]*\).*/\1/p' "$work/logs/$successor" | tail -n1)
        took=$((became - t_del))
        echo "# kubectl delete pod $old_leader -> $successor leads after $((took / 1000)) ms"
        [ "$took" -le $((lease_s * 1000000 + 100000)) ] || fail "the successor led after $took us, more than the lease + 100 ms"
        ok "successor $successor leads within lease + 100 ms of the deletion"
        wait_until 60 "the old leader's exit" grep -q 'msg="exiting' "$work/logs/$old_leader"
        grep -q 'msg="exiting code=0"' "$work/logs/$old_leader" || fail "the old leader did not exit 0"
        check_handovers
        ok "no overlap; the deleted leader exited 0"
        ;;
crash)
        # SIGKILL of the leader's container: no release.  kubelet restarts it
        # in place, under the same identity (the pod name), so either the
        # restarted process takes its own Lease back or, if the lease ran out
        # first, the standby leads; never before the lease ran out from the
        # last renewal, never two at once.
        install
        wait_until 60 "both replicas Ready" count_is 2 ready_pods
        wait_until 30 "a leader" leader_known
        old_leader=$(holder)
        standby=$(ready_pods | grep -vx "$old_leader")
        follow_logs
        sleep 2
        cid=$(k get pod "$old_leader" -o jsonpath='{.status.containerStatuses[0].containerID}')
        cid=${cid#containerd://}
        [ -n "$cid" ] || fail "no container ID for $old_leader"
        t_kill=$(now_us)
        "$node" in "$node_dir" ctr --address "$node_dir/containerd.sock" -n k8s.io tasks kill --signal SIGKILL "$cid" ||
                fail "ctr tasks kill of $old_leader's container"
        renewed=$(k get lease "$fullname" -o jsonpath='{.spec.renewTime}')
        restarted() { [ "$(k get pod "$old_leader" -o jsonpath='{.status.containerStatuses[0].restartCount}')" -ge 1 ]; }
        # The restarted container's log (the followed one ended with the kill).
        relog() { k logs "pod/$old_leader" >"$work/relog" 2>/dev/null; }
        led_again() {
                grep -q 'msg="became leader' "$work/logs/$standby" 2>/dev/null && return 0
                restarted && relog && grep -q 'msg="became leader' "$work/relog"
        }
        wait_until 60 "a leader after the kill" led_again
        if grep -q 'msg="became leader' "$work/logs/$standby"; then
                who=$standby
                became=$(sed -n 's/.*msg="became leader .*unix_us=\([0-9]*\).*/\1/p' "$work/logs/$standby" | tail -n1)
                renewed_us=$(($(date -d "$renewed" +%s%N) / 1000))
                [ $((became - renewed_us)) -ge $((lease_s * 1000000)) ] ||
                        fail "$standby led $((became - renewed_us)) us after the last renewal, before the lease ($lease_s s) ran out"
        else
                who="$old_leader (restarted, its own Lease)"
                became=$(sed -n 's/.*msg="became leader .*unix_us=\([0-9]*\).*/\1/p' "$work/relog" | tail -n1)
                relog
                grep -q 'msg="became leader' "$work/logs/$standby" && fail "$standby led too"
        fi
        echo "# SIGKILL of $old_leader's container -> $who leads after $(((became - t_kill) / 1000)) ms"
        [ $((became - t_kill)) -le $((lease_s * 1000000 + 100000)) ] ||
                fail "$who led $((became - t_kill)) us after the kill, more than the lease + 100 ms"
        ok "after a SIGKILL, $who leads within lease + 100 ms, never two at once"
        wait_until 60 "both replicas Ready again" count_is 2 ready_pods
        restarted || fail "kubelet did not restart $old_leader's container"
        ok "kubelet restarted the killed container; both replicas Ready"
        ;;
drain)
        # Ungated readiness, 2 replicas: the chart's budget (minAvailable 1)
        # lets kubectl drain evict one replica of the only node and keeps the other.
        install
        wait_until 60 "both replicas Ready" count_is 2 ready_pods
        wait_until 30 "a leader" leader_known
        allowed() { [ "$(k get pdb "$fullname" -o jsonpath='{.status.disruptionsAllowed}' 2>/dev/null)" = "$1" ]; }
        wait_until 30 "the budget allowing one disruption" allowed 1
        node_name=$(k get nodes -o jsonpath='{.items[0].metadata.name}')
        follow_logs
        sleep 2
        t0=$SECONDS
        if k drain "$node_name" --ignore-daemonsets --delete-emptydir-data --timeout=10s >"$work/drain.out" 2>&1; then
                cat "$work/drain.out"
                fail "kubectl drain completed although the budget keeps one of 2 replicas on the only node"
        fi
        grep -q "disruption budget" "$work/drain.out" || { cat "$work/drain.out"; fail "kubectl drain's refusal does not name the budget"; }
        wait_until 30 "one Ready replica left" count_is 1 ready_pods
        left=$(ready_pods)
        echo "# kubectl drain: one replica evicted, $left kept by the budget (gave up after $((SECONDS - t0)) s)"
        ok "kubectl drain evicts one replica and the budget keeps the other"
        leader_is() { [ "$(holder)" = "$1" ]; }
        wait_until 30 "the kept replica leading" leader_is "$left"
        ok "the kept replica $left leads"
        k uncordon "$node_name" >/dev/null
        wait_until 90 "both replicas Ready after uncordon" count_is 2 ready_pods
        check_handovers
        ok "uncordoned: 2 replicas Ready again, never two leaders ($handovers handover(s))"
        # Gated readiness: no budget (only the leader would count as healthy,
        # so minAvailable 1 would block every drain), and a drain completes.
        h upgrade "$release" "$root/charts/koc-example" --reuse-values --set leaderElection.gateReadiness=true \
                >"$work/helm.out" 2>&1 || { cat "$work/helm.out"; fail "helm upgrade to gated readiness"; }
        no_budget() { ! k get pdb "$fullname" >/dev/null 2>&1; }
        wait_until 30 "the budget removed" no_budget
        k drain "$node_name" --ignore-daemonsets --delete-emptydir-data --timeout=90s >"$work/drain.out" 2>&1 ||
                { cat "$work/drain.out"; fail "kubectl drain with gated readiness (no budget)"; }
        ok "gated readiness renders no budget, and kubectl drain completes ($((SECONDS - t0)) s since the first drain)"
        k uncordon "$node_name" >/dev/null
        wait_until 90 "a leader after the drain" leader_known
        ok "uncordoned: a replica leads again"
        ;;
helm-test)
        "$node" import "$node_dir" "$images/koc-test-curl.tar"
        install
        wait_until 60 "both replicas Ready" count_is 2 ready_pods
        h test "$release" --timeout 120s >"$work/helm.out" 2>&1 || { cat "$work/helm.out"; fail "helm test"; }
        grep -q 'Phase: *Succeeded' "$work/helm.out" || { cat "$work/helm.out"; fail "helm test: no Succeeded phase"; }
        ok "helm test: the test pod reached /readyz through the Service"
        ;;
memcached)
        "$node" import "$node_dir" "$images/koc-example-memcached.tar"
        "$node" import "$node_dir" "$images/memcached.tar"
        # The chart depends on ../../../charts/koc-example: copy both, keeping the layout.
        mkdir -p "$work/src/examples/memcached" "$work/src/charts"
        cp -r "$root/examples/memcached/chart" "$work/src/examples/memcached/"
        cp -r "$root/charts/koc-example" "$work/src/charts/"
        h dependency build "$work/src/examples/memcached/chart" >"$work/helm.out" 2>&1 ||
                { cat "$work/helm.out"; fail "helm dependency build"; }
        # The operator's RBAC rules are the ones it prints (rbac-values.yaml), as README says.
        cp "$root/examples/memcached/rbac-values.yaml" "$work/src/examples/memcached/"
        h install mc "$work/src/examples/memcached/chart" --wait --timeout 120s \
                -f "$work/src/examples/memcached/rbac-values.yaml" \
                --set "koc-example.extraArgs[0]=--image=memcached:$tag" --set koc-example.tests.enabled=false \
                >"$work/helm.out" 2>&1 || { cat "$work/helm.out"; fail "helm install of the Memcached chart"; }
        ok "the Memcached chart installed: CRD and operator"
        # The memcached pods: those running the memcached image (the operator's run koc-example-memcached).
        mc_pods() {
                k get pods --no-headers -o custom-columns='N:.metadata.name,IP:.status.podIP,I:.spec.containers[0].image,P:.status.phase,D:.metadata.deletionTimestamp' |
                        awk '$3 ~ /^memcached:/ && $4 == "Running" && $5 == "<none>" { print $1, $2 }'
        }
        printf 'apiVersion: cache.example.com/v1alpha1\nkind: Memcached\nmetadata:\n  name: memcached-sample\nspec:\n  size: 2\n  containerPort: 11211\n' \
                >"$work/mc.yaml"
        k apply -f "$work/mc.yaml" >/dev/null
        wait_until 120 "2 running memcached pods" count_is 2 mc_pods
        answered=0
        while read -r pod ip; do
                if "$node" in "$node_dir" timeout 5 bash -c "exec 3<>/dev/tcp/$ip/11211; printf 'stats\r\nquit\r\n' >&3; cat <&3" |
                        grep -q '^STAT pid '; then
                        answered=$((answered + 1))
                fi
        done < <(mc_pods)
        [ "$answered" -eq 2 ] || fail "$answered of 2 memcached pods answered stats on 11211"
        ok "a Memcached of size 2: 2 memcached pods answer stats"
        k patch memcached memcached-sample --type merge -p '{"spec":{"size":3}}' >/dev/null
        wait_until 120 "3 running memcached pods" count_is 3 mc_pods
        ok "scaled to 3"
        k delete memcached memcached-sample --wait=true --timeout=60s >/dev/null || fail "the Memcached was not deleted"
        wait_until 120 "the memcached pods gone" count_is 0 mc_pods
        ok "the Memcached deleted: its Deployment and pods are garbage-collected"
        ;;
*) echo "node-chart: unknown case $case_" >&2; exit 2 ;;
esac
echo "$passed passed, 0 failed"
