#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end test of koc-example-memcached, on the real kube-apiserver (with
# kube-controller-manager: the Deployment, ReplicaSet and garbage collector
# controllers run; there is no kubelet or scheduler, so pods never become
# ready) or on koc-apiserver.
#
#   e2e.sh PROGRAM k8s CHART_DIR           a control plane of its own (tests/k8s/env.sh)
#   e2e.sh PROGRAM koc CHART_DIR APISERVER  koc-apiserver
#
# On kube-apiserver the example's chart is installed with helm (its CRD from
# crds/, the shared chart's ServiceAccount and the RBAC rules the program
# printed, ../rbac-values.yaml) and the replicas run
# outside the cluster as that ServiceAccount (a TokenRequest token), so the
# chart's rules are shown to be enough; on koc-apiserver the CRD is created
# from the chart's crds/ and the replicas run as the admin.
#
# Two replicas; the leader is killed (SIGKILL, by its PID) half-way and the
# other one finishes the job.  Needs curl, jq, python3 with PyYAML; helm and
# kubectl come from tests/tools/k8s-tools.sh.
set -euo pipefail
prog=${1:?usage: e2e.sh PROGRAM k8s|koc CHART_DIR [KOC_APISERVER]}
mode=${2:?usage: e2e.sh PROGRAM k8s|koc CHART_DIR [KOC_APISERVER]}
chart=$(cd "${3:?usage: e2e.sh PROGRAM k8s|koc CHART_DIR [KOC_APISERVER]}" && pwd)
crd=$chart/crds/cache.example.com_memcacheds.yaml
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
        local p
        for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        [ "$mode" != k8s ] || "$src/tests/k8s/env.sh" stop "$work/env" || true
        [ -n "${KOC_E2E_KEEP:-}" ] && cp -r "$work" "$KOC_E2E_KEEP" 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
fail() {
        echo "memcached-e2e: FAIL: $*" >&2
        grep -h 'status=403' "$work"/[ab].log >&2 2>/dev/null || true
        for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
        [ ! -f "$work/env/kube-controller-manager.log" ] ||
                { echo "--- kube-controller-manager" >&2; grep -i 'garbage\|error' "$work/env/kube-controller-manager.log" | tail -n 30 >&2; }
        echo "--- Memcached" >&2; mc_get | jq -c '{metadata: {finalizers: .metadata.finalizers}, spec, status}' >&2 || true
        echo "--- Deployment" >&2; dep_get | jq -c '{spec: {replicas: .spec.replicas}, status}' >&2 || true
        exit 1
}
say() { echo "memcached-e2e[$mode]: $*"; }
# COMMAND runs again on every poll (a function when it reads the server).
# KOC_E2E_VALGRIND=/path/to/valgrind runs the replicas under memcheck (the
# survivor's exit status says its errors and leaks) and widens every bound
# 5 times.
runner=() slow=1
if [ -n "${KOC_E2E_VALGRIND:-}" ]; then
        runner=("$KOC_E2E_VALGRIND" --quiet --error-exitcode=99 --leak-check=full
                --errors-for-leak-kinds=definite,indirect)
        slow=5
fi
wait_for() { # SECONDS DESCRIPTION COMMAND...
        local t=$(($1 * slow)) what=$2 t0=$SECONDS; shift 2
        until "$@"; do [ $((SECONDS - t0)) -lt "$t" ] || fail "$what within $t s"; sleep 0.2; done
}

if [ "$mode" = k8s ]; then
        KOC_K8S_CONTROLLER_MANAGER=1 "$src/tests/k8s/env.sh" start "$work/env" >/dev/null
        # shellcheck disable=SC1091
        . "$work/env/env"
        server=$KOC_K8S_URL token=$KOC_K8S_ADMIN_TOKEN ca=$KOC_K8S_CA
        pids+=("$(cat "$work/env/kube-controller-manager.pid")")
else
        apiserver=${4:?usage: e2e.sh PROGRAM koc CRD KOC_APISERVER}
        token=e2e-token kubeconfig=$work/kubeconfig
        "$apiserver" --listen 127.0.0.1:0 --token "$token" --kubeconfig-out "$kubeconfig" \
                >"$work/apiserver.log" 2>&1 &
        pids+=($!)
        wait_for 15 "koc-apiserver wrote its kubeconfig" grep -qs 'server:' "$kubeconfig"
        server=$(sed -n 's/^ *server: *//p' "$kubeconfig" | head -n1)
        sed -n 's/^ *certificate-authority-data: *//p' "$kubeconfig" | head -n1 | base64 -d >"$work/ca.crt"
        ca=$work/ca.crt
fi
api() { # METHOD PATH [BODY [CONTENT-TYPE]]
        curl -s --max-time 10 --cacert "$ca" -H "Authorization: Bearer $token" -X "$1" \
                ${3:+-H "Content-Type: ${4:-application/json}" --data "$3"} "$server$2"
}
mcs=/apis/cache.example.com/v1alpha1/namespaces/default/memcacheds
deps=/apis/apps/v1/namespaces/default/deployments
mc_get() { api GET "$mcs/memcached-sample"; }
dep_get() { api GET "$deps/memcached-sample"; }
available() { mc_get | jq -r '.status.conditions[]? | select(.type == "Available") | "\(.status) \(.reason) \(.message)"'; }
available_is() { [ "$(available)" = "$1" ]; }
replicas_is() { [ "$(dep_get | jq -r '.spec.replicas // ""')" = "$1" ]; }
holder() { api GET "/apis/coordination.k8s.io/v1/namespaces/$lease_ns/leases/$lease" | jq -r '.spec.holderIdentity // ""'; }
holder_is_one_of() { local h; h=$(holder); [ "$h" = a ] || [ "$h" = b ]; }
holder_is() { [ "$(holder)" = "$1" ]; }
gone() { [ "$(api GET "$1" | jq -r '.code // 200')" = 404 ]; }

served() { [ "$(api GET "$mcs" | jq -r .kind)" = MemcachedList ]; }
lease_ns=default lease=koc-example-memcached
if [ "$mode" = k8s ]; then
        # The chart: its CRD, and the operator's ServiceAccount with the rules
        # of its values (a ClusterRole) and the Lease's Role.
        kubectl=$("$src/tests/tools/k8s-tools.sh" kubectl)
        helm=$("$src/tests/tools/k8s-tools.sh" helm)
        export KUBECONFIG=$work/env/admin.kubeconfig
        export HELM_CACHE_HOME=$work/helm HELM_CONFIG_HOME=$work/helm HELM_DATA_HOME=$work/helm
        cp -r "$chart" "$work/chart"
        rm -rf "$work/chart/charts" "$work/chart/Chart.lock"
        sed -i "s|file://\.\./\.\./\.\./charts/koc-example|file://$src/charts/koc-example|" "$work/chart/Chart.yaml"
        "$helm" dependency build "$work/chart" >"$work/helm.out" 2>&1 || fail "helm dependency build: $(cat "$work/helm.out")"
        lease_ns=memcached-system lease=demo-koc-example
        "$kubectl" create namespace "$lease_ns" >/dev/null
        "$helm" install demo "$work/chart" --namespace "$lease_ns" -f "$chart/../rbac-values.yaml" >"$work/helm.out" 2>&1 ||
                fail "helm install: $(cat "$work/helm.out")"
        wait_for 30 "the CRD is served" served
        sa_token=$("$kubectl" create token demo-koc-example -n "$lease_ns" --duration=1h)
        kubeconfig=$work/sa.kubeconfig
        cat >"$kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: k8s
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: sa
  user:
    token: $sa_token
contexts:
- name: sa
  context: {cluster: k8s, user: sa, namespace: $lease_ns}
current-context: sa
KC
        chmod 600 "$kubeconfig"
        say "chart installed (CRD, ServiceAccount, ClusterRole); the replicas run as system:serviceaccount:$lease_ns:demo-koc-example"
else
        python3 -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' "$crd" >"$work/crd.json"
        code=$(api POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions "@$work/crd.json" | jq -r '.code // 201')
        [ "$code" = 201 ] || fail "the CRD was refused ($code)"
        wait_for 30 "the CRD is served" served
        say "CRD memcacheds.cache.example.com created from the chart's crds/"
fi

start() { # ID
        "${runner[@]}" "$prog" --kubeconfig="$kubeconfig" --identity="$1" --leader-elect-resource-namespace="$lease_ns" \
                --leader-elect-resource-name="$lease" \
                --leader-elect-lease-duration=3s --leader-elect-renew-deadline=2s \
                --leader-elect-retry-period=250ms --health-probe-bind-address=0 \
                --metrics-bind-address=0 >"$work/$1.log" 2>&1 &
        pids+=($!)
        echo $! >"$work/$1.pid"
}
start a
start b
wait_for 30 "a replica leads" holder_is_one_of
leader=$(holder)
say "$leader leads"

# Create: finalizer, owned Deployment of spec.size replicas, condition.
api POST "$mcs" '{"apiVersion":"cache.example.com/v1alpha1","kind":"Memcached","metadata":{"name":"memcached-sample"},"spec":{"size":1,"containerPort":11211}}' >/dev/null
wait_for 20 "the Deployment was created with 1 replica" replicas_is 1
uid=$(mc_get | jq -r .metadata.uid)
dep_get | jq -e --arg uid "$uid" '.metadata.ownerReferences | map(select(.controller and .uid == $uid and .kind == "Memcached")) | length == 1' >/dev/null ||
        fail "the Deployment has no controller ownerReference to the Memcached"
dep_get | jq -e '.spec.template.spec.containers[0] | .image == "memcached:1.6.26-alpine" and .ports[0].containerPort == 11211' >/dev/null ||
        fail "the Deployment's container is not memcached:1.6.26-alpine on port 11211"
mc_get | jq -e '.metadata.finalizers | index("cache.example.com/finalizer")' >/dev/null || fail "no finalizer on the Memcached"
say "created: Deployment memcached-sample (1 replica, memcached:1.6.26-alpine:11211, controlled by the Memcached), finalizer set"

# Available follows the Deployment's own status.
if [ "$mode" = k8s ]; then
        # The Deployment controller made a ReplicaSet and its pod; no node runs it.
        wait_for 30 "Available False naming 0 of 1 replicas, 1 present" \
                available_is "False ReplicasUnavailable Deployment memcached-sample has 0 of 1 replicas available (1 present)"
        say "Available False: $(available | cut -d' ' -f3-) (no kubelet: no pod becomes ready)"
else
        # No Deployment controller: the test reports the status one would.
        gen=$(dep_get | jq -r .metadata.generation)
        api PUT "$deps/memcached-sample/status" "$(dep_get | jq -c --argjson g "$gen" '.status = {observedGeneration: $g, replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1}')" >/dev/null
        wait_for 20 "Available True naming 1 of 1 replicas" \
                available_is "True ReplicasAvailable Deployment memcached-sample has 1 of 1 replicas available (1 present)"
        say "Available True: $(available | cut -d' ' -f3-) (status written by the test)"
fi

# Scale.
api PATCH "$mcs/memcached-sample" '{"spec":{"size":3}}' application/merge-patch+json >/dev/null
wait_for 20 "the Deployment was scaled to 3" replicas_is 3
if [ "$mode" = k8s ]; then
        wait_for 30 "Available naming 3 replicas" \
                available_is "False ReplicasUnavailable Deployment memcached-sample has 0 of 3 replicas available (3 present)"
else
        wait_for 20 "Available naming 3 replicas (rollout not observed)" \
                available_is "False ReplicasUnavailable Deployment memcached-sample has 1 of 3 replicas available (1 present, rollout not yet observed)"
fi
say "scaled to 3: $(available | cut -d' ' -f2-)"

# A hand-edited replica count is set back through the owned-Deployment watch.
api PATCH "$deps/memcached-sample" '{"spec":{"replicas":5}}' application/merge-patch+json >/dev/null
wait_for 20 "the hand-edited replica count was set back to 3" replicas_is 3
say "hand-edited replicas 5 set back to 3"

# Leader failover: SIGKILL of the leader; the other one takes over and serves the next change.
old=$leader
[ "$old" = a ] && other=b || other=a
kill -KILL "$(cat "$work/$old.pid")"
{ wait "$(cat "$work/$old.pid")"; } 2>/dev/null || true
wait_for 30 "$other took the Lease over" holder_is "$other"
api PATCH "$mcs/memcached-sample" '{"spec":{"size":2}}' application/merge-patch+json >/dev/null
wait_for 20 "the new leader scaled the Deployment to 2" replicas_is 2
api PATCH "$deps/memcached-sample" '{"spec":{"replicas":4}}' application/merge-patch+json >/dev/null
wait_for 20 "the new leader set a hand-edited count back to 2" replicas_is 2
say "leader $old killed; $other took over, scaled to 2 and set a hand edit back"

# Schema: spec.size 9 is refused by the API server's validation (both
# servers validate custom resources against the CRD's schema); the
# operator's own check of the generated _validate is what the 70-character
# name below reaches.
code=$(api PATCH "$mcs/memcached-sample" '{"spec":{"size":9}}' application/merge-patch+json | jq -r '.code // 200')
[ "$code" = 422 ] || fail "spec.size 9 was not refused by the schema (answer $code)"
replicas_is 2 || fail "the Deployment changed for an invalid spec"
say "spec.size 9 refused by the CRD's schema (422)"

# Hostile input: a Deployment of that name made by someone else is left
# alone; a name too long for the Deployment's label is refused up front.
api POST "$deps" '{"metadata":{"name":"taken"},"spec":{"replicas":4,"selector":{"matchLabels":{"app":"taken"}},"template":{"metadata":{"labels":{"app":"taken"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}' >/dev/null
taken_rv=$(api GET "$deps/taken" | jq -r .metadata.resourceVersion)
api POST "$mcs" '{"apiVersion":"cache.example.com/v1alpha1","kind":"Memcached","metadata":{"name":"taken"},"spec":{"size":1}}' >/dev/null
taken_refused() { [ "$(api GET "$mcs/taken" | jq -r '.status.conditions[]? | select(.type == "Available") | .reason')" = DeploymentNotOwned ]; }
wait_for 20 "Available False DeploymentNotOwned on Memcached taken" taken_refused
[ "$(api GET "$deps/taken" | jq -r '"\(.spec.replicas) \(.metadata.ownerReferences // [] | length)"')" = "4 0" ] ||
        fail "the Deployment taken, made by someone else, was changed"
if [ "$mode" = koc ]; then
        [ "$(api GET "$deps/taken" | jq -r .metadata.resourceVersion)" = "$taken_rv" ] || fail "the Deployment taken was written"
fi
long=$(printf 'm%.0s' $(seq 1 70))
api POST "$mcs" "{\"apiVersion\":\"cache.example.com/v1alpha1\",\"kind\":\"Memcached\",\"metadata\":{\"name\":\"$long\"},\"spec\":{\"size\":1}}" >/dev/null
long_refused() { [ "$(api GET "$mcs/$long" | jq -r '.status.conditions[]? | select(.type == "Available") | .reason')" = InvalidSpec ]; }
wait_for 20 "Available False InvalidSpec for a 70-character name" long_refused
gone "$deps/$long" || fail "a Deployment was made for a name too long for its label"
api DELETE "$mcs/taken" >/dev/null
api DELETE "$mcs/$long" >/dev/null
wait_for 20 "the Memcached taken went" gone "$mcs/taken"
wait_for 20 "the Memcached with the long name went" gone "$mcs/$long"
[ "$(api GET "$deps/taken" | jq -r .spec.replicas)" = 4 ] || fail "the Deployment taken went with the Memcached of its name"
say "a Deployment made by someone else is left alone (DeploymentNotOwned); a 70-character name is refused (InvalidSpec)"

# Delete: Warning Event "Deleting", finalizer removed, Deployment collected.
api DELETE "$mcs/memcached-sample" >/dev/null
wait_for 20 "the Memcached went (finalizer removed)" gone "$mcs/memcached-sample"
deleting_event() { # events.k8s.io/v1, as the operator records them
        api GET /apis/events.k8s.io/v1/namespaces/default/events | jq -e --arg uid "$uid" \
                '.items | map(select(.type == "Warning" and .reason == "Deleting" and .regarding.uid == $uid)) | length >= 1' >/dev/null
}
wait_for 10 "a Warning Event Deleting about the Memcached" deleting_event
say "deleted: Warning Event Deleting recorded, finalizer removed"
# The garbage collector (kube-controller-manager's, or koc-apiserver's own)
# deletes the owned Deployment.  kube-controller-manager learns of a new
# CRD at its next discovery sync (every 30 s), so this may take a while
# after the CRD was created.
t0=$SECONDS
wait_for 90 "the garbage collector deleted the Deployment" gone "$deps/memcached-sample"
say "the garbage collector deleted the owned Deployment ($((SECONDS - t0)) s)"

# The survivor ends cleanly on SIGTERM.
pid=$(cat "$work/$other.pid")
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "$other exited with $rc after SIGTERM"
if grep -h 'status=403\|Forbidden' "$work"/a.log "$work"/b.log; then
        fail "a request of the operator was refused (above)"
fi
say "OK"
