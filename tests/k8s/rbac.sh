#!/usr/bin/env bash
# Leader election as an unprivileged user, on the real RBAC authoriser
# (KOC_K8S_ENV): koc-user is bound (RoleBinding) to exactly the Role the chart
# renders, first the `minimal` set (get, create, update), then `recommended`
# (plus watch).  With each set two replicas elect one leader and hand
# over on SIGTERM.  Then with one verb removed the elector must say which
# request was refused and why, and must not lead.
#
#   rbac.sh KOC_EXAMPLE_LEADER CHART_DIR
set -euo pipefail
koc_bin=${1:?usage: rbac.sh koc-example-leader chart-dir}
chart=${2:?usage: rbac.sh koc-example-leader chart-dir}
env_dir=${KOC_K8S_ENV:?KOC_K8S_ENV is not set (run through ctest -L k8s)}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
. "$env_dir/env"
kubectl=$("$here/../tools/k8s-tools.sh" kubectl)
helm=$("$here/../tools/k8s-tools.sh" helm)
admin=(--kubeconfig "$env_dir/admin.kubeconfig")
work=$(mktemp -d "${TMPDIR:-/tmp}/koc-rbac.XXXXXX")
pids=()
cleanup() {
        # Quietly: bash reports every job it reaps after a SIGKILL.
        { for p in "${pids[@]}"; do kill -KILL "$p" || true; done; wait; } 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "rbac: FAIL: $*" >&2; for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done; exit 1; }

release=rbac lease=rbac-koc-example role=rbac-koc-example-leader-election
# shellcheck source=../tools/ports.sh
. "$here/../tools/ports.sh"
start() { # ID -> probe port in $work/ID.port
        local p; p=$(free_port)
        KOC_LOG_LEVEL=info "$koc_bin" --kubeconfig="$env_dir/user.kubeconfig" --identity="$1" \
                --leader-elect-resource-name=$lease --leader-elect-resource-namespace=default \
                --leader-elect-lease-duration=2s --leader-elect-renew-deadline=1500ms \
                --leader-elect-retry-period=250ms --health-probe-bind-address=127.0.0.1:$p \
                --metrics-bind-address=0 >"$work/$1.log" 2>&1 &
        pids+=($!); echo $! >"$work/$1.pid"; echo $p >"$work/$1.port"
}
ready() { curl -sf --max-time 1 "http://127.0.0.1:$(cat "$work/$1.port")/readyz" >/dev/null 2>&1; }
wait_leading() {
        local t0=$SECONDS
        until ready "$1"; do
                [ $((SECONDS - t0)) -lt "$2" ] || fail "$1 did not lead within $2 s"
                sleep 0.05
        done
}
stop() { # ID: SIGTERM, expect exit 0
        local pid rc=0; pid=$(cat "$work/$1.pid")
        kill -TERM "$pid"; wait "$pid" || rc=$?
        [ "$rc" = 0 ] || fail "$1 exited with $rc after SIGTERM"
}

apply_role() { # minimal|recommended
        "$helm" template "$release" "$chart" --namespace default \
                --set leaderElection.rbac="$1" --show-only templates/role.yaml >"$work/role.yaml"
        "$kubectl" "${admin[@]}" apply -f "$work/role.yaml" >/dev/null
        "$kubectl" "${admin[@]}" get role $role -o jsonpath='{.rules}'; echo
}
can() { "$kubectl" "${admin[@]}" auth can-i "$1" leases.coordination.k8s.io/$lease -n default --as koc-user || true; }

# What an earlier, failed run may have left.
"$kubectl" "${admin[@]}" delete rolebinding rbac-koc-user -n default --ignore-not-found >/dev/null
"$kubectl" "${admin[@]}" delete role $role -n default --ignore-not-found >/dev/null
"$kubectl" "${admin[@]}" create rolebinding rbac-koc-user --role=$role --user=koc-user -n default >/dev/null
"$kubectl" "${admin[@]}" delete lease $lease -n default --ignore-not-found >/dev/null

for set in minimal recommended; do
        echo "rbac: the chart's '$set' Role: $(apply_role $set)"
        [ "$(can update)" = yes ] || fail "koc-user cannot update the Lease with the '$set' Role"
        [ "$(can delete)" = no ] || fail "koc-user may delete the Lease with the '$set' Role"
        start $set-a; wait_leading $set-a 20
        start $set-b; sleep 1
        ready $set-b && fail "$set-b is ready while $set-a leads"
        if [ $set = minimal ]; then
                grep -q 'forbidden; polling' "$work/$set-b.log" || fail "$set-b did not fall back to polling"
        else
                grep -q 'forbidden; polling' "$work/$set-b.log" && fail "$set-b polls although watch is allowed"
        fi
        stop $set-a
        wait_leading $set-b 5
        echo "rbac:   '$set': $set-a led, released on SIGTERM, $set-b took over"
        stop $set-b
        grep -q 'HTTP 40[13]' "$work/$set-a.log" "$work/$set-b.log" && fail "a request was refused with the '$set' Role"
done

# One verb less: the elector names the refused request, and never leads.
for verb in get update create; do
        apply_role minimal >/dev/null
        "$kubectl" "${admin[@]}" get role $role -o json |
                jq --arg v "$verb" 'del(.metadata.resourceVersion) |
                        .rules |= (map(.verbs -= [$v]) | map(select(.verbs | length > 0)))' \
                        >"$work/role-no-$verb.json"
        "$kubectl" "${admin[@]}" replace -f "$work/role-no-$verb.json" >/dev/null
        [ "$(can "$verb")" = no ] || fail "koc-user may still $verb leases"
        # create is only needed while the Lease does not exist.
        [ $verb = create ] && "$kubectl" "${admin[@]}" delete lease $lease -n default >/dev/null
        start no-$verb
        t0=$SECONDS
        until grep -qs 'HTTP 403' "$work/no-$verb.log"; do
                [ $((SECONDS - t0)) -lt 15 ] || fail "no-$verb: no message about the refused request within 15 s"
                ready no-$verb && fail "no-$verb leads without '$verb'"
                sleep 0.1
        done
        sleep 1
        ready no-$verb && fail "no-$verb leads without '$verb'"
        grep -q 'lease' "$work/no-$verb.log" || fail "no-$verb: the message does not name the Lease"
        echo "rbac:   without '$verb': $(grep -m1 'HTTP 403' "$work/no-$verb.log" | sed 's/.*msg=//' | cut -c1-160)"
        stop no-$verb
done
"$kubectl" "${admin[@]}" delete rolebinding rbac-koc-user -n default >/dev/null
"$kubectl" "${admin[@]}" delete role $role -n default >/dev/null
echo "rbac: OK"
