#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Memcached example's admission webhooks called by the real kube-apiserver
# (tests/k8s/env.sh): a MutatingWebhookConfiguration and a
# ValidatingWebhookConfiguration with a `url:` client config on loopback and
# the caBundle of a CA made here (the program serves a certificate it signed,
# from --webhook-cert-dir).  The CRD's own default for spec.containerPort is
# taken out, so that only the webhook can set it, and a version v1 (spec.size
# called spec.replicas) is added, converted by the program's /convert
# (strategy Webhook, v1alpha1 still served and stored).
#
#   webhook-e2e.sh PROGRAM CHART_DIR
#
# Checks: defaulting visible on the created object; a name over 40
# characters and a size change of more than 3 refused with the message
# kubectl shows; an object written as v1 read as v1alpha1 and the other way
# round, the validator seeing v1 writes converted; with the program gone, failurePolicy Fail refuses and
# Ignore lets through.  Needs jq, openssl, python3; kubectl from
# tests/tools/k8s-tools.sh.
set -euo pipefail
prog=${1:?usage: webhook-e2e.sh PROGRAM CHART_DIR}
chart=$(cd "${2:?usage: webhook-e2e.sh PROGRAM CHART_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
        local p
        for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        "$src/tests/k8s/env.sh" stop "$work/env" >/dev/null 2>&1 || true
        rm -rf "$work"
}
trap cleanup EXIT
fail() {
        echo "webhook-e2e: FAIL: $*" >&2
        [ -f "$work/op.log" ] && { echo "--- operator" >&2; tail -n 30 "$work/op.log" >&2; }
        exit 1
}
say() { echo "webhook-e2e: $*"; }
slow=1
[ -n "${KOC_E2E_VALGRIND:-}" ] && slow=5
wait_for() { # SECONDS DESCRIPTION COMMAND...
        local t=$(($1 * slow)) what=$2 t0=$SECONDS; shift 2
        until "$@"; do [ $((SECONDS - t0)) -lt "$t" ] || fail "$what within $t s"; sleep 0.3; done
}

"$src/tests/k8s/env.sh" start "$work/env" >/dev/null
kubectl=$("$src/tests/tools/k8s-tools.sh" kubectl)
export KUBECONFIG=$work/env/admin.kubeconfig
k() { "$kubectl" "$@"; }

# The CRD without its default for containerPort (v1 added once the
# program listens).
sed '/^ *default: 11211$/d' "$chart/crds/cache.example.com_memcacheds.yaml" >"$work/crd.yaml"
grep -q 'default: 11211' "$work/crd.yaml" && fail "the CRD's default is still there"
k apply -f "$work/crd.yaml" >/dev/null
served() { k get memcacheds >/dev/null 2>&1; }
wait_for 30 "the CRD is served" served
v1a=memcacheds.v1alpha1.cache.example.com

# A CA and the serving certificate it signs, for 127.0.0.1.
mkdir -p "$work/certs"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=webhook-test-ca \
        -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
        -keyout "$work/certs/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$work/ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
        -days 2 -extfile "$work/ext" -out "$work/certs/tls.crt" 2>/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$prog" --kubeconfig="$KUBECONFIG" --leader-elect=false --health-probe-bind-address=127.0.0.1:0 \
        --metrics-bind-address=0 --webhook-bind-address="127.0.0.1:$port" \
        --webhook-cert-dir="$work/certs" >"$work/op.log" 2>&1 &
op=$!
pids+=("$op")
listening() { curl -s -o /dev/null --cacert "$work/ca.crt" "https://127.0.0.1:$port/"; }
wait_for 20 "the webhook server listens on $port with the CA's certificate" listening

cab=$(base64 -w0 "$work/ca.crt")
config() { # KIND PATH-PREFIX FAILURE-POLICY
        cat <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: $1
metadata:
  name: memcached-webhook-test
webhooks:
- name: $2.memcached.cache.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: $3
  timeoutSeconds: 5
  clientConfig:
    url: https://127.0.0.1:$port/$2-cache-example-com-v1alpha1-memcached
    caBundle: $cab
  rules:
  - apiGroups: [cache.example.com]
    apiVersions: [v1alpha1]
    operations: [CREATE, UPDATE]
    resources: [memcacheds]
YAML
}
apply_configs() { # FAILURE-POLICY
        config MutatingWebhookConfiguration mutate "$1" | k apply -f - >/dev/null
        config ValidatingWebhookConfiguration validate "$1" | k apply -f - >/dev/null
}
apply_configs Fail

# v1 beside v1alpha1, converted by the program.
python3 - "$work/crd.yaml" "$port" "$cab" >"$work/crd-v1.json" <<'PY'
import json, sys, copy, yaml
crd = yaml.safe_load(open(sys.argv[1]))
alpha = crd["spec"]["versions"][0]
v1 = copy.deepcopy(alpha)
v1["name"], v1["storage"] = "v1", False
props = v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
props["replicas"] = props.pop("size")
req = v1["schema"]["openAPIV3Schema"]["properties"]["spec"].get("required")
if req:
    v1["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"] = ["replicas" if r == "size" else r for r in req]
crd["spec"]["versions"].append(v1)
crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
    "clientConfig": {"url": "https://127.0.0.1:%s/convert" % sys.argv[2], "caBundle": sys.argv[3]}}}
print(json.dumps(crd))
PY
k apply -f "$work/crd-v1.json" >/dev/null || fail "the CRD with v1"
v1_served() { k get memcacheds.v1.cache.example.com >/dev/null 2>&1; }
wait_for 30 "v1 is served" v1_served

mc() { # NAME SIZE
        printf '{"apiVersion":"cache.example.com/v1alpha1","kind":"Memcached","metadata":{"name":"%s","namespace":"default"},"spec":{"size":%s}}' "$1" "$2"
}
# The API server picks up webhook configurations asynchronously.
defaulted_dry() { [ "$(mc probe 1 | k create --dry-run=server -o json -f - 2>/dev/null | jq -r '.spec.containerPort // ""')" = 11211 ]; }
wait_for 30 "the defaulter is called (dry run)" defaulted_dry

say "defaulting"
mc mc-a 1 | k create -f - >/dev/null || fail "create mc-a"
[ "$(k get $v1a mc-a -o jsonpath='{.spec.containerPort}')" = 11211 ] || fail "spec.containerPort not defaulted"

say "refusals"
long=memcached-with-a-name-longer-than-forty-chars
if mc "$long" 1 | k create -f - >"$work/out" 2>&1; then fail "a name of ${#long} characters was accepted"; fi
grep -q 'metadata.name: must be at most 40 characters' "$work/out" || fail "kubectl did not show the refusal: $(cat "$work/out")"
if k patch $v1a mc-a --type=merge -p '{"spec":{"size":5}}' >"$work/out" 2>&1; then fail "size 1 -> 5 accepted"; fi
grep -q 'spec.size: may change by at most 3 at once (from 1 to 5)' "$work/out" || fail "kubectl did not show the refusal: $(cat "$work/out")"
k patch $v1a mc-a --type=merge -p '{"spec":{"size":4}}' >/dev/null || fail "size 1 -> 4 refused"

say "conversion"
[ "$(k get memcacheds.v1.cache.example.com mc-a -o jsonpath='{.apiVersion} {.spec.replicas} {.spec.size}')" = "cache.example.com/v1 4 " ] ||
        fail "mc-a read as v1: $(k get memcacheds.v1.cache.example.com mc-a -o json | jq -c '{apiVersion, spec}')"
printf '{"apiVersion":"cache.example.com/v1","kind":"Memcached","metadata":{"name":"mc-v1","namespace":"default"},"spec":{"replicas":1}}' |
        k create -f - >"$work/out" 2>&1 || fail "create as v1: $(cat "$work/out")"
[ "$(k get $v1a mc-v1 -o jsonpath='{.apiVersion} {.spec.size} {.spec.replicas} {.spec.containerPort}')" = "cache.example.com/v1alpha1 1  11211" ] ||
        fail "mc-v1 read as v1alpha1: $(k get $v1a mc-v1 -o json | jq -c '{apiVersion, spec}')"
if k patch memcacheds.v1.cache.example.com mc-v1 --type=merge -p '{"spec":{"replicas":5}}' >"$work/out" 2>&1; then
        fail "v1 replicas 1 -> 5 accepted"
fi
grep -q 'spec.size: may change by at most 3' "$work/out" || fail "v1 refusal: $(cat "$work/out")"

say "webhook down"
kill -TERM "$op"
wait "$op" || true
pids=()
if mc mc-b 1 | k create -f - >"$work/out" 2>&1; then fail "created with the webhook down and failurePolicy Fail"; fi
grep -qi 'failed calling webhook' "$work/out" || fail "unexpected refusal: $(cat "$work/out")"
apply_configs Ignore
created_anyway() { mc mc-b 1 | k create -f - >/dev/null 2>&1; }
wait_for 30 "failurePolicy Ignore lets mc-b through" created_anyway
[ -z "$(k get $v1a mc-b -o jsonpath='{.spec.containerPort}')" ] || fail "mc-b defaulted with the webhook down"
say "ok"
