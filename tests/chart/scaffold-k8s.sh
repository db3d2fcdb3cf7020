#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# A koc-new project from the installed koc to the real kube-apiserver
# (KOC_K8S_ENV, ctest -L k8s): koc is installed into a temporary prefix, the
# project is scaffolded outside the tree and built against it, its chart is
# installed with helm into a fresh namespace, and two replicas of its
# operator run outside the cluster as the chart's ServiceAccount (a
# TokenRequest token) with the Deployment's flags.  With exactly the chart's
# RBAC: one leads, its controller mirrors a labelled ConfigMap, the leader
# hands over on SIGTERM, the successor's finalizer deletes the copy with the
# source, both exit 0, no request is refused.  `helm uninstall` and the
# namespace's removal leave nothing behind.
#
#   scaffold-k8s.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(cd "${1:?usage: scaffold-k8s.sh BUILD_DIR SOURCE_DIR}" && pwd)
src=$(cd "${2:?usage: scaffold-k8s.sh BUILD_DIR SOURCE_DIR}" && pwd)
env_dir=${KOC_K8S_ENV:?KOC_K8S_ENV is not set (run through ctest -L k8s or tests/k8s/env.sh run)}
# shellcheck disable=SC1091
. "$env_dir/env"
kubectl=$("$src/tests/tools/k8s-tools.sh" kubectl)
helm=$("$src/tests/tools/k8s-tools.sh" helm)
work=$(mktemp -d "${TMPDIR:-/tmp}/koc-scaffold-k8s.XXXXXX")
export KUBECONFIG=$env_dir/admin.kubeconfig
export HELM_CACHE_HOME=$work/helm HELM_CONFIG_HOME=$work/helm HELM_DATA_HOME=$work/helm
name=ship-op
ns=koc-scaffold-$$-$RANDOM
pids=()

passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
fail() {
        echo "not ok - $*" >&2
        for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
        exit 1
}
# No namespace controller runs here: finalize the (emptied) namespace through the API.
remove_ns() {
        "$kubectl" delete namespace "$1" --wait=false --ignore-not-found >/dev/null 2>&1 || return 0
        "$kubectl" get namespace "$1" -o json 2>/dev/null | jq '.spec.finalizers = []' |
                "$kubectl" replace --raw "/api/v1/namespaces/$1/finalize" -f - >/dev/null 2>&1 || true
}
cleanup() {
        { for p in "${pids[@]}"; do kill -KILL "$p" || true; done; wait; } 2>/dev/null || true
        "$helm" uninstall "$name" -n "$ns" >/dev/null 2>&1 || true
        # The replicas are gone: no one would remove the finalizers.
        for o in $("$kubectl" get configmap -n "$ns" -o name 2>/dev/null); do
                "$kubectl" patch -n "$ns" "$o" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        done
        "$kubectl" delete configmap,lease --all -n "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
        remove_ns "$ns"
        rm -rf "$work"
}
trap cleanup EXIT

# --- the project, from the installed koc -------------------------------------------
cmake --install "$build" --prefix "$work/prefix" >/dev/null
"$work/prefix/bin/koc-new" "$name" "$work/$name" >/dev/null
cmake -S "$work/$name" -B "$work/$name/build" -DCMAKE_PREFIX_PATH="$work/prefix" -DBUILD_TESTING=OFF >/dev/null
cmake --build "$work/$name/build" >"$work/build.txt" 2>&1 || { cat "$work/build.txt"; fail "the project does not build"; }
bin=$work/$name/build/$name
ok "koc-new $name, built against the installed koc"

# --- its chart ---------------------------------------------------------------------
"$kubectl" create namespace "$ns" >/dev/null
"$helm" install "$name" "$work/$name/charts/$name" -n "$ns" >"$work/install.txt" 2>&1 ||
        { cat "$work/install.txt"; fail "helm install"; }
ok "helm install $name (its own chart) into $ns"
sa=$name
as=(--as "system:serviceaccount:$ns:$sa")
can() { "$kubectl" auth can-i "${as[@]}" "$@" 2>/dev/null || true; }
expect_can() { local want=$1; shift; [ "$(can "$@")" = "$want" ] || fail "can-i $* as $sa: expected $want"; }
for v in get list watch create update patch delete; do expect_can yes "$v" configmaps -n "$ns"; done
expect_can no get configmaps -n default
expect_can no get secrets -n "$ns"
expect_can no delete "leases.coordination.k8s.io/$name" -n "$ns"
ok "can-i: the controller's ConfigMap verbs in $ns; nothing in default, no secrets, no Lease delete"

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
mapfile -t chart_args < <("$kubectl" get deployment -n "$ns" "$name" -o json | jq -r '.spec.template.spec.containers[0].args[]')
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
                # Plain metrics on loopback for leads(); secure metrics on the
                # real server are install-k8s.sh's part.
                --metrics-secure=*) a=--metrics-secure=false ;;
                esac
                a=${a//\$(POD_NAMESPACE)/$ns}; a=${a//\$(POD_NAME)/$1}
                args+=("$a")
        done
        KOC_LOG_LEVEL=info POD_NAMESPACE=$ns "$bin" --kubeconfig="$work/sa.kubeconfig" "${args[@]}" >"$work/$1.log" 2>&1 &
        pids+=($!); echo $! >"$work/$1.pid"; echo $((p + 1)) >"$work/$1.metrics"
}
leads() { curl -sf --max-time 1 "http://127.0.0.1:$(cat "$work/$1.metrics")/metrics" 2>/dev/null |
        grep -q '^leader_election_master_status{.*} 1'; }
wait_for() { # SECONDS DESCRIPTION COMMAND...
        local t=$1 what=$2 t0=$SECONDS; shift 2
        until "$@"; do [ $((SECONDS - t0)) -lt "$t" ] || fail "$what within $t s"; sleep 0.1; done
}
stop() { local pid rc=0; pid=$(cat "$work/$1.pid"); kill -TERM "$pid"; wait "$pid" || rc=$?
        [ "$rc" = 0 ] || fail "$1 exited with $rc after SIGTERM"; }
copy_data() { "$kubectl" get configmap -n "$ns" settings-mirror -o jsonpath='{.data.k}' 2>/dev/null || true; }
gone() { ! "$kubectl" get configmap -n "$ns" "$1" >/dev/null 2>&1; }
# A condition that reads the server is a function: wait_for's arguments are
# expanded once, by the call, not on every poll.
copy_is() { test "$(copy_data)" = "$1"; }

start a
wait_for 20 "a leads" leads a
start b
sleep 1
leads b && fail "b leads while a does"
ok "a leads, b stands by (as $sa, with the Deployment's flags)"
"$kubectl" create configmap settings -n "$ns" --from-literal=k=v >/dev/null
"$kubectl" label configmap settings -n "$ns" "$name/mirror=true" >/dev/null
wait_for 15 "the copy settings-mirror appeared" copy_is v
"$kubectl" get configmap settings -n "$ns" -o jsonpath='{.metadata.finalizers}' | grep -q "$name/mirror" ||
        fail "no finalizer on the source"
ok "the controller mirrored settings to settings-mirror and put its finalizer on the source"
# The chart's memory request (sized for koc-example-leader) must hold the
# leading controller too: informers, cache and workers.
pid_a=$(cat "$work/a.pid")
rss=$(awk '/^VmRSS:/ { print $2 }' /proc/"$pid_a"/status) anon=$(awk '/^RssAnon:/ { print $2 }' /proc/"$pid_a"/status)
req=$("$kubectl" get deployment -n "$ns" "$name" -o jsonpath='{.spec.template.spec.containers[0].resources.requests.memory}')
echo "# leading $name: VmRSS $rss kB, RssAnon $anon kB; chart request $req"
[ "$rss" -lt $(( ${req%Mi} * 1024 )) ] || fail "the leader's VmRSS ($rss kB) exceeds the chart's memory request ($req)"
ok "the leading controller's resident memory fits the chart's request ($req)"
stop a
wait_for 10 "b took over" leads b
"$kubectl" patch configmap settings -n "$ns" --type=merge -p '{"data":{"k":"w"}}' >/dev/null
wait_for 10 "b's controller followed the change" copy_is w
ok "a exited 0 on SIGTERM; b leads and reconciles"
"$kubectl" delete configmap settings -n "$ns" --wait=false >/dev/null
wait_for 15 "the source went" gone settings
gone settings-mirror || fail "the copy outlived its source"
ok "b's finalizer deleted the copy before the source went"
stop b
if refused=$(grep -h 'HTTP 40[13]\|forbidden' "$work/a.log" "$work/b.log"); then
        fail "a request was refused with the chart's RBAC: $(head -n 3 <<<"$refused")"
fi
ok "b exited 0; no request was refused with the chart's RBAC"

"$helm" uninstall "$name" -n "$ns" >/dev/null
"$kubectl" delete lease "$name" -n "$ns" >/dev/null
left=$("$kubectl" get all,sa,role,rolebinding,pdb,cm,secret,lease -n "$ns" -o name 2>/dev/null)
[ -z "$left" ] || fail "left behind in $ns: $left"
remove_ns "$ns"
t0=$SECONDS
while "$kubectl" get namespace "$ns" >/dev/null 2>&1; do
        [ $((SECONDS - t0)) -lt 20 ] || fail "namespace $ns is still there"; sleep 0.2
done
ok "helm uninstall left nothing; namespace $ns removed"
echo "scaffold-k8s: $passed passed"
