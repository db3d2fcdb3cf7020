#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The RBAC rules an operator prints (--print-rbac) are all it needs, on the
# real kube-apiserver's RBAC authoriser (KOC_K8S_ENV, ctest -L k8s):
#
#   1. koc-example-configmap-mirror --print-rbac (no cluster needed) equals
#      the rules committed with the example; `helm install` of the chart
#      with those values into namespace koc-rbac-derived;
#   2. two replicas run as the chart's ServiceAccount (a TokenRequest token),
#      bound to exactly the printed rules and the chart's Lease Role: one
#      leads, a source ConfigMap is mirrored into the allowed namespace, a
#      refused target is a Warning Event (events.k8s.io) whose series grows
#      on the next reconcile, deleting the source removes the copy through the
#      finalizer, and the leader hands over on SIGTERM;
#   3. the audit log (the fixture audits every request of namespace
#      koc-rbac-derived's service accounts: tests/k8s/env.sh) holds the
#      operator's requests, and none was refused (no 401 or 403): nothing it
#      did lies outside the printed rules.
#
#   rbac-derived.sh KOC_EXAMPLE_CONFIGMAP_MIRROR CHART_DIR COMMITTED_VALUES
set -euo pipefail
koc_bin=${1:?usage: rbac-derived.sh koc-example-configmap-mirror chart-dir committed-values}
chart=$(cd "${2:?usage: rbac-derived.sh koc-example-configmap-mirror chart-dir committed-values}" && pwd)
committed=${3:?usage: rbac-derived.sh koc-example-configmap-mirror chart-dir committed-values}
env_dir=${KOC_K8S_ENV:?KOC_K8S_ENV is not set (run through ctest -L k8s or tests/k8s/env.sh run)}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091
. "$env_dir/env"
kubectl=$("$here/../tools/k8s-tools.sh" kubectl)
helm=$("$here/../tools/k8s-tools.sh" helm)
work=$(mktemp -d "${TMPDIR:-/tmp}/koc-rbac-derived.XXXXXX")
export KUBECONFIG=$env_dir/admin.kubeconfig
export HELM_CACHE_HOME=$work/helm HELM_CONFIG_HOME=$work/helm HELM_DATA_HOME=$work/helm
ns=koc-rbac-derived   # the fixture audits this namespace's service accounts
target=koc-rbac-derived-b
rel=mirror
sa=$rel-koc-example lease=$rel-koc-example
pids=()

passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() {
        echo "not ok - $*" >&2
        for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
        exit 1
}
# A namespace's removal needs kube-controller-manager's namespace controller,
# which this control plane may not run: once its content is gone, finalize it
# through the API (what the controller would do).
remove_ns() {
        "$kubectl" delete namespace "$1" --wait=false --ignore-not-found >/dev/null 2>&1 || return 0
        "$kubectl" get namespace "$1" -o json 2>/dev/null | jq '.spec.finalizers = []' |
                "$kubectl" replace --raw "/api/v1/namespaces/$1/finalize" -f - >/dev/null 2>&1 || true
}
clean_ns() {
        "$kubectl" delete configmap -n "$1" -l koc.example/mirror=true --ignore-not-found >/dev/null 2>&1 || true
        for c in $("$kubectl" get configmap -n "$1" -o name 2>/dev/null); do
                "$kubectl" patch -n "$1" "$c" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        done
}
cleanup() {
        { for p in "${pids[@]}"; do kill -KILL "$p" || true; done; wait; } 2>/dev/null || true
        "$helm" uninstall "$rel" -n "$ns" >/dev/null 2>&1 || true
        clean_ns "$ns"; clean_ns "$target"
        "$kubectl" delete lease --all -n "$ns" --ignore-not-found >/dev/null 2>&1 || true
        remove_ns "$ns"; remove_ns "$target"
        rm -rf "$work"
}
trap cleanup EXIT
# What an earlier, failed run may have left.
cleanup_first() {
        "$helm" uninstall "$rel" -n "$ns" >/dev/null 2>&1 || true
        clean_ns "$ns"; clean_ns "$target"; remove_ns "$ns"; remove_ns "$target"
        for _ in $(seq 1 100); do
                "$kubectl" get namespace "$ns" "$target" >/dev/null 2>&1 || return 0
                sleep 0.1
        done
}
cleanup_first

# --- 1. the printed rules, installed by the chart --------------------------------
env -u KUBERNETES_SERVICE_HOST KUBECONFIG=/nonexistent HOME=/nonexistent "$koc_bin" --print-rbac \
        >"$work/rbac-values.yaml" 2>"$work/print.log" || fail "--print-rbac failed"
diff -u "$committed" "$work/rbac-values.yaml" >&2 || fail "--print-rbac differs from $committed"
ok "--print-rbac without a cluster prints the committed rules"
"$kubectl" create namespace "$ns" >/dev/null
"$kubectl" create namespace "$target" >/dev/null
"$helm" install "$rel" "$chart" -n "$ns" -f "$work/rbac-values.yaml" \
        --set image.repository=registry.invalid/koc-example-configmap-mirror >"$work/install.log" 2>&1 ||
        fail "helm install with the printed values"
rules=$("$kubectl" get clusterrole "$rel-koc-example-operator" -o json | jq -c '[.rules[] | {apiGroups, resources, verbs}]')
want=$("$helm" template "$rel" "$chart" -n "$ns" -f "$work/rbac-values.yaml" --show-only templates/rbac-operator.yaml |
        "$kubectl" create --dry-run=client -o json -f - |
        jq -c '(if .kind == "List" then .items[] else . end) | select(.kind == "ClusterRole") |
                [.rules[] | {apiGroups, resources, verbs}]')
grep -q '"resources":\["events"\]' <<<"$want" || fail "the printed rules have no events: $want"
[ "$rules" = "$want" ] || fail "the ClusterRole on the server is not the printed rules: $rules (want $want)"
ok "ClusterRole $rel-koc-example-operator on the server holds exactly the printed rules"

# --- 2. the operator as the ServiceAccount -----------------------------------------
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
chmod 600 "$work/sa.kubeconfig"
user="system:serviceaccount:$ns:$sa"
audit_from=$(wc -l <"$env_dir/audit.log" 2>/dev/null || echo 0)

# shellcheck source=../tools/ports.sh
. "$here/../tools/ports.sh"
start() { # ID
        local p; p=$(free_port)
        KOC_LOG_LEVEL=info "$koc_bin" --kubeconfig="$work/sa.kubeconfig" --identity="$1" \
                --leader-elect-resource-name="$lease" --leader-elect-resource-namespace="$ns" \
                --leader-elect-lease-duration=2s --leader-elect-renew-deadline=1500ms \
                --leader-elect-retry-period=250ms --health-probe-bind-address=127.0.0.1:$p \
                --metrics-bind-address=0 --target-namespaces="$target" >"$work/$1.log" 2>&1 &
        pids+=($!); echo $! >"$work/$1.pid"; echo $p >"$work/$1.port"
}
ready() { curl -sf --max-time 1 "http://127.0.0.1:$(cat "$work/$1.port")/readyz" >/dev/null 2>&1; }
wait_for() { # SECONDS DESCRIPTION COMMAND...
        local t=$1 what=$2 t0=$SECONDS; shift 2
        until "$@"; do
                [ $((SECONDS - t0)) -lt "$t" ] || fail "$what within $t s"
                sleep 0.1
        done
}
stop() { # ID: SIGTERM, expect exit 0
        local pid rc=0; pid=$(cat "$work/$1.pid")
        kill -TERM "$pid"; wait "$pid" || rc=$?
        [ "$rc" = 0 ] || fail "$1 exited with $rc after SIGTERM"
}
start a
wait_for 30 "replica a leads" ready a
start b
ok "replica a leads as $user"

"$kubectl" create configmap src -n "$ns" --from-literal=k=v1 >/dev/null
"$kubectl" label configmap src -n "$ns" koc.example/mirror=true >/dev/null
"$kubectl" annotate configmap src -n "$ns" "koc.example/mirror-to=$target,not-allowed" >/dev/null
copy_is() { [ "$("$kubectl" get configmap src -n "$target" -o jsonpath='{.data.k}' 2>/dev/null)" = "$1" ]; }
wait_for 30 "the copy in $target" copy_is v1
ok "source mirrored into $target"
event_count() { # the refusal Event's series count (1 without a series), or nothing
        "$kubectl" get events.events.k8s.io -n "$ns" -o json 2>/dev/null |
                jq -r '[.items[] | select(.regarding.name == "src" and .reason == "MirrorTargetNotAllowed")] |
                        if length == 1 then (.[0].series.count // 1) else empty end'
}
has_event() { [ -n "$(event_count)" ]; }
wait_for 30 "a MirrorTargetNotAllowed Event (events.k8s.io)" has_event
ev=$("$kubectl" get events.events.k8s.io -n "$ns" -o json | jq -c '[.items[] | select(.regarding.name == "src")][0] |
        {reportingController, action, type, instance: (.reportingInstance | startswith("configmap-mirror-"))}')
[ "$ev" = '{"reportingController":"configmap-mirror","action":"MirrorTargetNotAllowed","type":"Warning","instance":true}' ] ||
        fail "the Event: $ev"
"$kubectl" patch configmap src -n "$ns" --type=merge -p '{"data":{"k":"v2"}}' >/dev/null
wait_for 30 "the copy follows the source" copy_is v2
grown() { [ "$(event_count)" -ge 2 ] 2>/dev/null; }
wait_for 30 "the Event's series to grow on the next reconcile" grown
ok "Warning Event through events.k8s.io/v1 (controller, instance, action), its series patched: count $(event_count)"

"$kubectl" delete configmap src -n "$ns" --wait=false >/dev/null
gone() { ! "$kubectl" get configmap src -n "$ns" >/dev/null 2>&1 && ! "$kubectl" get configmap src -n "$target" >/dev/null 2>&1; }
wait_for 30 "the source and its copy gone (finalizer)" gone
ok "deleting the source removed the copy through the finalizer"

stop a
wait_for 10 "replica b takes over" ready b
stop b
ok "a released the Lease on SIGTERM, b took over, both exited 0"
grep -q 'HTTP 40[13]\|status=40[13]' "$work"/a.log "$work"/b.log && fail "a request was refused (see the logs)"

# --- 3. the audit log ----------------------------------------------------------------
tail -n +"$((audit_from + 1))" "$env_dir/audit.log" |
        jq -c --arg u "$user" 'select(.stage == "ResponseComplete" and .user.username == $u) |
                {verb, group: (.objectRef.apiGroup // ""), resource: (.objectRef.resource + (if .objectRef.subresource then "/" + .objectRef.subresource else "" end)),
                 code: .responseStatus.code}' >"$work/requests.jsonl"
n=$(wc -l <"$work/requests.jsonl")
[ "$n" -ge 10 ] || fail "only $n audited requests of $user"
refused=$(jq -c 'select(.code == 401 or .code == 403)' "$work/requests.jsonl")
[ -z "$refused" ] || fail "requests refused: $refused"
for need in '"verb":"create","group":"events.k8s.io","resource":"events"' '"verb":"patch","group":"events.k8s.io","resource":"events"' \
        '"verb":"watch","group":"","resource":"configmaps"' '"verb":"create","group":"","resource":"configmaps"' \
        '"verb":"update","group":"coordination.k8s.io","resource":"leases"'; do
        grep -qF "$need" "$work/requests.jsonl" || fail "no audited request with $need"
done
summary=$(jq -r '"\(.verb) \(if .group == "" then "" else .group + "/" end)\(.resource)"' "$work/requests.jsonl" | sort | uniq -c | awk '{printf "%s %s %s; ", $2, $3, $1}')
ok "audit log: $n requests of $user, none refused: $summary"
echo "rbac-derived: OK ($passed checks)"
