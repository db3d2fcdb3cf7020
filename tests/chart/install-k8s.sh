#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The chart on the real kube-apiserver (KOC_K8S_ENV, ctest -L k8s):
#
#   1. `helm install` into a fresh namespace; every object helm rendered
#      exists on the server, with the rendered RBAC rules, strategy and grace
#      period;
#   2. `kubectl auth can-i --as=system:serviceaccount:NS:SA`: yes for exactly
#      the verbs the elector and the operator's rules need, no for others
#      (delete or patch the Lease, another Lease, secrets, other namespaces);
#   3. the operator (koc-example-leader) runs outside the cluster as that
#      ServiceAccount, with a token from the TokenRequest API and the flags
#      the Deployment renders: two replicas, one leads, the leader hands over
#      on SIGTERM, both exit 0, no request is refused; the leader's memory
#      (VmRSS, RssAnon) is measured and must fit the chart's request;
#   4. a second release with rbac.allNamespaces renders a ClusterRole that
#      works in every namespace;
#   5. `helm uninstall` and the namespaces' removal leave nothing behind.
#
# No kubelet runs, so the Deployment's pods never start (nor does the helm
# test pod); the replicas of step 3 stand in for them.
#
#   install-k8s.sh KOC_EXAMPLE_LEADER CHART_DIR
set -euo pipefail
koc_bin=${1:?usage: install-k8s.sh koc-example-leader chart-dir}
chart=$(cd "${2:?usage: install-k8s.sh koc-example-leader chart-dir}" && pwd)
env_dir=${KOC_K8S_ENV:?KOC_K8S_ENV is not set (run through ctest -L k8s or tests/k8s/env.sh run)}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
. "$env_dir/env"
kubectl=$("$here/../tools/k8s-tools.sh" kubectl)
helm=$("$here/../tools/k8s-tools.sh" helm)
work=$(mktemp -d "${TMPDIR:-/tmp}/koc-chart-install.XXXXXX")
export KUBECONFIG=$env_dir/admin.kubeconfig
export HELM_CACHE_HOME=$work/helm HELM_CONFIG_HOME=$work/helm HELM_DATA_HOME=$work/helm
ns=koc-chart-$$-$RANDOM
ns2=$ns-all
rel=ship
rel2=ship-all
pids=()

passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() {
        echo "not ok - $*" >&2
        for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
        exit 1
}

# A namespace's removal needs kube-controller-manager's namespace controller,
# which this control plane does not run: once its content is gone, finalize
# it through the API (what the controller would do).
remove_ns() {
        "$kubectl" delete namespace "$1" --wait=false --ignore-not-found >/dev/null 2>&1 || return 0
        "$kubectl" get namespace "$1" -o json 2>/dev/null | jq '.spec.finalizers = []' |
                "$kubectl" replace --raw "/api/v1/namespaces/$1/finalize" -f - >/dev/null 2>&1 || true
}
cleanup() {
        { for p in "${pids[@]}"; do kill -KILL "$p" || true; done; wait; } 2>/dev/null || true
        "$helm" uninstall "$rel" -n "$ns" >/dev/null 2>&1 || true
        "$helm" uninstall "$rel2" -n "$ns2" >/dev/null 2>&1 || true
        "$kubectl" delete clusterrolebinding "$rel-$ns-metrics-reader" --ignore-not-found >/dev/null 2>&1 || true
        "$kubectl" delete lease --all -n "$ns" --ignore-not-found >/dev/null 2>&1 || true
        remove_ns "$ns"; remove_ns "$ns2"
        rm -rf "$work"
}
trap cleanup EXIT

# --- 1. install ---------------------------------------------------------------
"$kubectl" create namespace "$ns" >/dev/null
values=(-f "$chart/ci/recommended-rbac-values.yaml" --set image.repository=registry.invalid/koc-example-leader)
"$helm" template "$rel" "$chart" -n "$ns" "${values[@]}" >"$work/rendered.yaml"
"$helm" install "$rel" "$chart" -n "$ns" "${values[@]}" >"$work/install.txt" 2>&1 ||
        { cat "$work/install.txt"; fail "helm install"; }
ok "helm install $rel into namespace $ns"
grep -q "get lease" "$work/install.txt" && ok "NOTES.txt says how to see the leader" || fail "no NOTES in helm install's output"

# Every rendered object (hooks aside: the test pod is created by helm test).
"$helm" get manifest "$rel" -n "$ns" >"$work/manifest.yaml"
objects=$(awk '/^---/ { k = ""; next } /^kind: / { k = $2 } /^  name: / && k != "" { print k "/" $2; k = "" }' "$work/manifest.yaml")
n=0
for o in $objects; do
        "$kubectl" get -n "$ns" "$o" >/dev/null 2>&1 || fail "$o was rendered but does not exist"
        n=$((n + 1))
done
[ "$n" -ge 9 ] || fail "only $n objects in the release: $objects"
for want in ServiceAccount/ Role/$rel-koc-example-leader-election RoleBinding/$rel-koc-example-leader-election \
        Role/$rel-koc-example-operator RoleBinding/$rel-koc-example-operator Deployment/ PodDisruptionBudget/ \
        Service/$rel-koc-example Service/$rel-koc-example-metrics; do
        [[ " $(echo $objects) " == *" $want"* ]] || fail "the release has no $want"
done
ok "all $n rendered objects exist on the server: $(echo $objects)"
# Secure metrics (the default) needs its cluster-scoped roles, and no other.
"$kubectl" get clusterrole,clusterrolebinding -l app.kubernetes.io/instance=$rel -o name |
        grep -Ev -- "/$rel-koc-example-metrics-(auth|reader)$" | grep -q . &&
        fail "a namespaced release created cluster-wide RBAC"
for want in clusterrole/$rel-koc-example-metrics-reader clusterrole/$rel-koc-example-metrics-auth \
        clusterrolebinding/$rel-koc-example-metrics-auth; do
        "$kubectl" get "$want" >/dev/null 2>&1 || fail "no $want (secure metrics)"
done
ok "no ClusterRole or ClusterRoleBinding for a namespaced operator, besides secure metrics' reader and review roles"

dep=$("$kubectl" get deployment -n "$ns" $rel-koc-example -o json)
[ "$(jq -c .spec.strategy <<<"$dep")" = '{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0},"type":"RollingUpdate"}' ] ||
        fail "strategy on the server: $(jq -c .spec.strategy <<<"$dep")"
[ "$(jq .spec.replicas <<<"$dep")" = 2 ] || fail "replicas on the server"
[ "$(jq .spec.template.spec.terminationGracePeriodSeconds <<<"$dep")" = 30 ] || fail "grace period on the server"
[ "$(jq .spec.template.spec.automountServiceAccountToken <<<"$dep")" = true ] || fail "pod token"
[ "$(jq -r '.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem' <<<"$dep")" = true ] || fail "read-only root"
[ "$("$kubectl" get sa -n "$ns" $rel-koc-example -o jsonpath='{.automountServiceAccountToken}')" = false ] ||
        fail "ServiceAccount mounts its token"
ok "Deployment as rendered: 2 replicas, maxSurge 1 / maxUnavailable 0, grace 30 s, token on the pod only, read-only root"
rules=$("$kubectl" get role -n "$ns" $rel-koc-example-leader-election -o json | jq -c '.rules | map({verbs, resourceNames})')
[ "$rules" = "[{\"verbs\":[\"create\"],\"resourceNames\":null},{\"verbs\":[\"get\",\"update\",\"watch\"],\"resourceNames\":[\"$rel-koc-example\"]}]" ] ||
        fail "Lease Role on the server: $rules"
ok "Lease Role on the server: create; get, update, watch on $rel-koc-example"

# --- 2. can-i as the ServiceAccount ---------------------------------------------
sa=$rel-koc-example lease=$rel-koc-example
as=(--as "system:serviceaccount:$ns:$sa")
can() { "$kubectl" auth can-i "${as[@]}" "$@" 2>/dev/null || true; }
expect_can() { # yes|no ARGS...
        local want=$1; shift
        [ "$(can "$@")" = "$want" ] || fail "can-i $* as $sa: expected $want"
}
for v in get update watch; do expect_can yes "$v" "leases.coordination.k8s.io/$lease" -n "$ns"; done
expect_can yes create leases.coordination.k8s.io -n "$ns"
ok "can-i yes: get, update, watch the Lease; create leases"
for v in delete patch list; do expect_can no "$v" "leases.coordination.k8s.io/$lease" -n "$ns"; done
expect_can no get leases.coordination.k8s.io/another-lease -n "$ns"
expect_can no list leases.coordination.k8s.io -n "$ns"
expect_can no get secrets -n "$ns"
expect_can no create leases.coordination.k8s.io -n default
ok "can-i no: delete, patch or list the Lease, another Lease, list all leases, secrets, leases elsewhere"
for v in get list watch update; do expect_can yes "$v" configmaps -n "$ns"; done
expect_can yes create events -n "$ns"
expect_can no get configmaps -n default
expect_can no get pods -n "$ns"
ok "operator rules: configmaps and events in $ns only"
expect_can yes create tokenreviews.authentication.k8s.io
expect_can yes create subjectaccessreviews.authorization.k8s.io
expect_can no get /metrics
ok "secure metrics: the operator may create TokenReviews and SubjectAccessReviews"
# Whoever reads /metrics is bound to the chart's metrics-reader (here the
# ServiceAccount itself, as an administrator binds Prometheus').
"$kubectl" create clusterrolebinding "$rel-$ns-metrics-reader" --clusterrole=$rel-koc-example-metrics-reader \
        --serviceaccount="$ns:$sa" >/dev/null
t0=$SECONDS
until [ "$(can get /metrics)" = yes ]; do
        [ $((SECONDS - t0)) -lt 20 ] || fail "metrics-reader binding not effective"
        sleep 0.2
done
ok "metrics-reader bound: the ServiceAccount may get /metrics"

# --- 3. the operator as the ServiceAccount ---------------------------------------
token=$("$kubectl" create token "$sa" -n "$ns" --duration=1h)
cat >"$work/sa.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: k8s
  cluster:
    server: $KOC_K8S_URL
    certificate-authority: $KOC_K8S_CA
users:
- name: sa
  user:
    token: $token
contexts:
- name: sa
  context: {cluster: k8s, user: sa, namespace: $ns}
current-context: sa
KC
chmod 600 "$work/sa.kubeconfig" # holds a token: owner-only, or koc warns
who=$("$kubectl" --kubeconfig "$work/sa.kubeconfig" auth whoami -o jsonpath='{.status.userInfo.username}')
[ "$who" = "system:serviceaccount:$ns:$sa" ] || fail "the TokenRequest token is $who"
ok "TokenRequest token authenticates as $who"

# The Deployment's own arguments, with the downward API filled in, the probe
# and metrics listeners on loopback and lease timings short enough for a test.
mapfile -t chart_args < <(jq -r '.spec.template.spec.containers[0].args[]' <<<"$dep")
# Two consecutive free TCP ports on 127.0.0.1 (probes, metrics): the first.
free_ports() {
        local p
        for _ in $(seq 1 100); do
                p=$(( 30000 + RANDOM % 20000 ))
                [ -z "$(ss -Htln "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null)" ] && { echo "$p"; return 0; }
        done
        fail "no two free TCP ports found"
}
start() { # ID
        local p a args=()
        p=$(free_ports)
        for a in "${chart_args[@]}"; do
                case $a in
                --leader-elect-lease-duration=*) a=--leader-elect-lease-duration=2s ;;
                --leader-elect-renew-deadline=*) a=--leader-elect-renew-deadline=1500ms ;;
                --leader-elect-retry-period=*) a=--leader-elect-retry-period=250ms ;;
                --health-probe-bind-address=*) a=--health-probe-bind-address=127.0.0.1:$p ;;
                --metrics-bind-address=*) a=--metrics-bind-address=127.0.0.1:$((p + 1)) ;;
                esac
                a=${a//\$(POD_NAMESPACE)/$ns}; a=${a//\$(POD_NAME)/$1}
                args+=("$a")
        done
        echo "${args[*]}" >"$work/$1.args"
        KOC_LOG_LEVEL=info "$koc_bin" --kubeconfig="$work/sa.kubeconfig" "${args[@]}" >"$work/$1.log" 2>&1 &
        pids+=($!); echo $! >"$work/$1.pid"; echo $p >"$work/$1.port"
}
# The test's own GETs of the Lease are counted, to tell them from the elector's.
holder() { echo >>"$work/own-gets"; "$kubectl" get lease -n "$ns" "$lease" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true; }
# kube-apiserver's Lease requests so far, by verb ("GET 12" lines).  No other
# test runs against the server meanwhile (RESOURCE_LOCK k8s-apiserver).
lease_requests() {
        "$kubectl" get --raw /metrics | awk '/^apiserver_request_total\{/ && /group="coordination.k8s.io"/ && /resource="leases"/ {
                match($0, /verb="[A-Z]+"/); n[substr($0, RSTART + 6, RLENGTH - 7)] += $NF }
                END { for (v in n) print v, n[v] }' | sort
}
count_begin() { lease_requests >"$work/requests-before"; : >"$work/own-gets"; }
# check_verbs WHO: the verbs sent since count_begin, from the server's request
# counters, must be exactly the verbs of the Lease Role (kubectl's names:
# GET get, POST create, PUT update, WATCH watch, LIST list, PATCH patch,
# DELETE delete).
check_verbs() {
        local own used granted
        own=$(wc -l <"$work/own-gets")
        sleep 1   # a watch is counted when it ends
        lease_requests >"$work/requests-after"
        join -a 2 -e 0 -o 1.2,2.1,2.2 "$work/requests-before" "$work/requests-after" |
                awk -v own="$own" '{ d = $3 - $1; if ($2 == "GET") d -= own; if (d > 0) print $2, d }' >"$work/delta"
        echo "# Lease requests of $1: $(tr '\n' ',' <"$work/delta" | sed 's/,$//; s/,/, /g')"
        used=$(cut -d' ' -f1 "$work/delta" | sed -e 's/^GET$/get/' -e 's/^POST$/create/' -e 's/^PUT$/update/' \
                -e 's/^WATCH$/watch/' -e 's/^LIST$/list/' -e 's/^PATCH$/patch/' -e 's/^DELETE$/delete/' | sort | tr '\n' ' ')
        granted=$("$kubectl" get role -n "$ns" $rel-koc-example-leader-election -o json | jq -r '[.rules[].verbs[]] | sort | join(" ")')
        [ "$used" = "$granted " ] || fail "$1 sent Lease requests with the verbs [$used], the Role grants [$granted]"
        ok "$1 used exactly the Role's Lease verbs: $granted"
}
# /metrics over HTTPS (self-signed) with a token the cluster authorises, as
# the chart's default renders it; plain HTTP when the values turn metrics off
# (start() still gives the replicas a metrics address).
leading() {
        local scheme=http
        grep -q -- '--metrics-secure=true' "$work/$1.args" && scheme=https
        curl -sfk --max-time 1 -H "Authorization: Bearer $token" \
        "$scheme://127.0.0.1:$(( $(cat "$work/$1.port") + 1 ))/metrics" 2>/dev/null |
        grep -q '^leader_election_master_status{.*} 1'; }
wait_leading() { # ID SECONDS
        local t0=$SECONDS
        until leading "$1" && [ "$(holder)" = "$1" ]; do
                [ $((SECONDS - t0)) -lt "$2" ] || fail "$1 did not lead within $2 s (holder: $(holder))"
                kill -0 "$(cat "$work/$1.pid")" 2>/dev/null || fail "$1 exited"
                sleep 0.05
        done
}
stop() { # ID: SIGTERM, expect exit 0
        local pid rc=0; pid=$(cat "$work/$1.pid")
        kill -TERM "$pid"; wait "$pid" || rc=$?
        [ "$rc" = 0 ] || fail "$1 exited with $rc after SIGTERM"
}

count_begin
start a
wait_leading a 20
start b
sleep 1.5
leading b && fail "b leads while a holds the Lease"
curl -sf --max-time 1 "http://127.0.0.1:$(cat "$work/b.port")/readyz" >/dev/null || fail "the standby is not Ready (readiness is not gated)"
ok "a leads, b stands by and is Ready (flags from the Deployment: $(cat "$work/a.args" | cut -c1-80)...)"

pid_a=$(cat "$work/a.pid")
rss=$(awk '/^VmRSS:/ { print $2 }' /proc/"$pid_a"/status) anon=$(awk '/^RssAnon:/ { print $2 }' /proc/"$pid_a"/status)
req=$(jq -r '.spec.template.spec.containers[0].resources.requests.memory' <<<"$dep")
req_kib=$(( ${req%Mi} * 1024 ))
echo "# leader a: VmRSS $rss kB ($(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }') MiB), RssAnon $anon kB ($(awk -v k="$anon" 'BEGIN { printf "%.1f", k / 1024 }') MiB); chart request $req"
[ "$rss" -lt "$req_kib" ] || fail "the leader's VmRSS ($rss kB) exceeds the chart's memory request ($req)"
ok "the leader's resident memory fits the chart's request ($req)"

stop a
ok "a exited 0 after SIGTERM"
wait_leading b 5
ok "b took over after a's release"
grep -q 'forbidden; polling' "$work/b.log" && fail "b could not watch the Lease with the chart's RBAC"
stop b
ok "b exited 0 after SIGTERM"
check_verbs "the replicas"
[ -z "$(holder)" ] || fail "the Lease is still held by $(holder) after both exited"
if refused=$(grep -h 'HTTP 40[13]' "$work/a.log" "$work/b.log"); then
        fail "a request was refused with the chart's RBAC: $(head -n 3 <<<"$refused")"
fi
ok "the Lease is released; no request was refused (no HTTP 401/403)"

# --- helm upgrade to gated readiness and the minimal Lease set ------------------------
# Those values turn metrics off, and with them the metrics-reader role.
"$kubectl" delete clusterrolebinding "$rel-$ns-metrics-reader" >/dev/null
"$helm" upgrade "$rel" "$chart" -n "$ns" "${values[@]}" -f "$chart/ci/gated-readiness-values.yaml" \
        --set leaderElection.rbac=minimal >"$work/upgrade.txt" 2>&1 || { cat "$work/upgrade.txt"; fail "helm upgrade"; }
dep=$("$kubectl" get deployment -n "$ns" $rel-koc-example -o json)
[ "$(jq -c .spec.strategy.rollingUpdate <<<"$dep")" = '{"maxSurge":1,"maxUnavailable":"100%"}' ] ||
        fail "gated strategy on the server: $(jq -c .spec.strategy <<<"$dep")"
[ "$(jq .spec.template.spec.terminationGracePeriodSeconds <<<"$dep")" = 65 ] || fail "gated grace period on the server"
"$kubectl" get pdb -n "$ns" -o name | grep -q . && fail "the PodDisruptionBudget survived the upgrade to gated readiness"
expect_can no watch "leases.coordination.k8s.io/$lease" -n "$ns"
ok "helm upgrade: maxUnavailable 100%, grace 65 s, no PDB, no watch on the server"
mapfile -t chart_args < <(jq -r '.spec.template.spec.containers[0].args[]' <<<"$dep")
"$kubectl" delete lease "$lease" -n "$ns" >/dev/null   # so that the first replica creates it again
count_begin
start c
wait_leading c 20
start d
sleep 1.5
curl -sf --max-time 1 "http://127.0.0.1:$(cat "$work/c.port")/readyz" >/dev/null || fail "the gated leader is not Ready"
curl -sf --max-time 1 "http://127.0.0.1:$(cat "$work/d.port")/readyz" >/dev/null && fail "a gated standby is Ready"
grep -q 'forbidden; polling' "$work/d.log" || fail "d did not fall back to polling without watch"
stop c
wait_leading d 5
stop d
ok "gated, minimal: only the leader is Ready, the standby polls, takes over after the release, both exit 0"
check_verbs "the gated replicas (minimal set)"
grep -q 'HTTP 401' "$work/c.log" "$work/d.log" && fail "a request was not authenticated"

# --- 4. all namespaces: a ClusterRole ---------------------------------------------
"$kubectl" create namespace "$ns2" >/dev/null
"$helm" install "$rel2" "$chart" -n "$ns2" -f "$chart/ci/all-namespaces-values.yaml" >"$work/install2.txt" 2>&1 ||
        { cat "$work/install2.txt"; fail "helm install (all namespaces)"; }
"$kubectl" get clusterrole $rel2-koc-example-operator >/dev/null 2>&1 || fail "no ClusterRole for all namespaces"
"$kubectl" get clusterrolebinding $rel2-koc-example-operator >/dev/null 2>&1 || fail "no ClusterRoleBinding"
as=(--as "system:serviceaccount:$ns2:$rel2-koc-example")
expect_can yes watch configmaps -n default
expect_can yes update configmaps -n kube-system
expect_can no delete configmaps -n default
expect_can no create leases.coordination.k8s.io -n default
expect_can yes create leases.coordination.k8s.io -n "$ns2"
ok "all namespaces: configmaps in every namespace through a ClusterRole, the Lease only in $ns2"

# --- 5. uninstall ----------------------------------------------------------------
"$helm" uninstall "$rel" -n "$ns" >/dev/null
"$helm" uninstall "$rel2" -n "$ns2" >/dev/null
left=$("$kubectl" get all,sa,role,rolebinding,pdb,cm,secret -n "$ns" -l app.kubernetes.io/instance=$rel -o name 2>/dev/null)
[ -z "$left" ] || fail "left behind in $ns: $left"
left=$("$kubectl" get clusterrole,clusterrolebinding -o name | grep -e "$rel2-koc-example" -e "$rel-koc-example" || true)
[ -z "$left" ] || fail "left behind cluster-wide: $left"
"$kubectl" get secret -n "$ns" -o name | grep -q 'sh.helm.release' && fail "helm's release record is left"
ok "helm uninstall removed every object of both releases"
"$kubectl" delete lease "$lease" -n "$ns" >/dev/null
remove_ns "$ns"; remove_ns "$ns2"
for x in "$ns" "$ns2"; do
        t0=$SECONDS
        while "$kubectl" get namespace "$x" >/dev/null 2>&1; do
                [ $((SECONDS - t0)) -lt 20 ] || fail "namespace $x is still there"
                sleep 0.2
        done
done
ok "namespaces $ns and $ns2 removed"
echo "install-k8s: $passed passed"
