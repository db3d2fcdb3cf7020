#!/usr/bin/env bash
# End-to-end test of the __KIND__ API (__GROUP__/__VERSION__), written by
# `koc-new api`: the CRD from the chart's crds/ is installed; one replica of
# __NAME__ leads; the sample (config/samples/) gets a Deployment of its name
# with spec.size replicas, controlled by it, and the condition Available
# True; a new size reaches the Deployment, a hand-edited replica count and a
# deleted Deployment are corrected; the program exits 0 on SIGTERM.  On
# kube-apiserver a size beyond the schema's maximum is refused.  Needs curl,
# jq and ss (iproute2); python3 with PyYAML on a server that does not take
# YAML.
#
#   koc-envtest run tests/e2e-__SINGULAR__.sh PROGRAM PROJECT_DIR
#           on the control plane koc-envtest started: what ctest runs
#   tests/e2e-__SINGULAR__.sh PROGRAM PROJECT_DIR KOC_APISERVER
#           on a koc-apiserver of its own
set -euo pipefail
usage="usage: e2e-__SINGULAR__.sh PROGRAM PROJECT_DIR [KOC_APISERVER]"
prog=${1:?$usage}
project=${2:?$usage}
crd=$project/charts/__NAME__/crds/__GROUP_____PLURAL__.yaml
sample=$project/config/samples/__GROUP_____VERSION_____SINGULAR__.yaml
work=$(mktemp -d)
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
fail() {
        echo "e2e: FAIL: $*" >&2
        for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
        echo "--- __KIND__" >&2; cr_get | jq -c '{spec, status}' >&2 || true
        echo "--- Deployment" >&2; dep_get | jq -c '{metadata: {ownerReferences: .metadata.ownerReferences}, spec: {replicas: .spec.replicas}}' >&2 || true
        exit 1
}
# KOC_E2E_WAIT_SCALE=N multiplies every bound (under valgrind, on a loaded
# machine); the checks stay the same.
scale=${KOC_E2E_WAIT_SCALE:-1}
[[ $scale =~ ^[1-9][0-9]?$ ]] || { echo "e2e: KOC_E2E_WAIT_SCALE=$scale: not 1..99" >&2; exit 2; }
wait_for() { # SECONDS DESCRIPTION COMMAND...
        local t=$(($1 * scale)) what=$2 t0=$SECONDS; shift 2
        until "$@"; do [ $((SECONDS - t0)) -lt "$t" ] || fail "$what within $t s"; sleep 0.1; done
}

server_kind=koc-apiserver
if [ -n "${KOC_ENVTEST_DIR:-}" ]; then
        # shellcheck disable=SC1091
        . "$KOC_ENVTEST_DIR/env"
        server=$KOC_K8S_URL token=$KOC_K8S_ADMIN_TOKEN
        server_kind=${KOC_ENVTEST_SERVER:-kube-apiserver}
        cp "$KOC_K8S_CA" "$work/ca.crt"
        cp "$KOC_ENVTEST_DIR/admin.kubeconfig" "$work/kubeconfig"
else
        apiserver=${3:?$usage (or through koc-envtest run)}
        token=e2e-token
        "$apiserver" --listen 127.0.0.1:0 --token "$token" --kubeconfig-out "$work/kubeconfig" >"$work/apiserver.log" 2>&1 &
        pids+=($!)
        wait_for 15 "koc-apiserver wrote its kubeconfig" grep -qs 'server:' "$work/kubeconfig"
        server=$(sed -n 's/^ *server: *//p' "$work/kubeconfig" | head -n1)
        sed -n 's/^ *certificate-authority-data: *//p' "$work/kubeconfig" | head -n1 | base64 -d >"$work/ca.crt"
fi
echo "e2e: on $server_kind at $server"
chmod 600 "$work/kubeconfig"
api() { # METHOD PATH [BODY [CONTENT-TYPE]]: the answer's body
        curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" -X "$1" \
                ${3:+-H "Content-Type: ${4:-application/json}" --data-binary "$3"} "$server$2"
}
# create PATH FILE: POST of a YAML file, as YAML, or as JSON where the
# server does not take YAML (415).
create() {
        local out
        out=$(api POST "$1" "@$2" application/yaml)
        if [ "$(jq -r '.code // 0' <<<"$out")" = 415 ]; then
                python3 -c 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' \
                        "$2" >"$work/body.json" || fail "converting $2 to JSON needs python3 with PyYAML"
                out=$(api POST "$1" "@$work/body.json")
        fi
        [ "$(jq -r .kind <<<"$out")" != Status ] || fail "POST $1 of $2: $(jq -c . <<<"$out")"
}

ns=default
if [ __NAMESPACED__ = true ]; then
        crs=/apis/__GROUP__/__VERSION__/namespaces/$ns/__PLURAL__
else
        crs=/apis/__GROUP__/__VERSION__/__PLURAL__
fi
name=$(sed -n 's/^  name: *//p' "$sample" | head -n1)
size=$(sed -n 's/^  size: *//p' "$sample" | head -n1)
[ -n "$name" ] && [ -n "$size" ] || fail "$sample: no metadata.name or spec.size"
deps=/apis/apps/v1/namespaces/$ns/deployments
cr_get() { api GET "$crs/$name"; }
dep_get() { api GET "$deps/$name"; }

create /apis/apiextensions.k8s.io/v1/customresourcedefinitions "$crd"
served() { [ "$(api GET "$crs" | jq -r .kind)" = __KIND__List ]; }
wait_for 30 "the CRD __PLURAL__.__GROUP__ is served" served
echo "e2e: CRD __PLURAL__.__GROUP__ installed from the chart's crds/"

free_ports() { # two consecutive free TCP ports below the ephemeral range: the first
        local p lo span
        lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
        span=$(( lo > 21000 ? lo - 20002 : 30000 ))
        for _ in $(seq 1 100); do
                p=$(( 20000 + RANDOM % span ))
                [ -z "$(ss -Htan "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null)" ] && { echo "$p"; return 0; }
        done
        fail "no two free TCP ports found"
}
p=
for _ in 1 2 3 4 5; do
        p=$(free_ports)
        "$prog" --kubeconfig="$work/kubeconfig" --identity=a --leader-elect-resource-namespace=$ns \
                --leader-elect-lease-duration=2s --leader-elect-renew-deadline=1500ms \
                --leader-elect-retry-period=250ms --health-probe-bind-address=127.0.0.1:$p \
                --metrics-bind-address=127.0.0.1:$((p + 1)) >"$work/a.log" 2>&1 &
        pid=$!
        t0=$SECONDS
        while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - t0)) -lt $((10 * scale)) ] &&
                ! ss -Htlnp "( sport = :$((p + 1)) )" 2>/dev/null | grep -q "pid=$pid,"; do
                sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then pids+=("$pid"); break; fi
        wait "$pid" || true
        grep -q 'Address already in use' "$work/a.log" || fail "the operator exited at start"
        pid=
done
[ -n "$pid" ] || fail "no free ports in 5 tries"
leads() { curl -sf "http://127.0.0.1:$((p + 1))/metrics" 2>/dev/null | grep -q '^leader_election_master_status{.*} 1'; }
wait_for 20 "the operator leads" leads
echo "e2e: the operator leads"

create "$crs" "$sample"
replicas_are() { # N: the Deployment has N replicas and the __KIND__ controls it
        dep_get | jq -e --arg n "$1" --arg name "$name" \
                '(.spec.replicas | tostring) == $n and ([.metadata.ownerReferences[]? |
                  select(.controller == true and .kind == "__KIND__" and .name == $name)] | length) == 1' >/dev/null
}
available() {
        cr_get | jq -e '.status.conditions[]? | select(.type == "Available" and .status == "True")' >/dev/null
}
wait_for 20 "Deployment $name with $size replicas, controlled by the __KIND__" replicas_are "$size"
wait_for 20 "the condition Available True" available
echo "e2e: the sample's Deployment runs $size replicas; Available is True"

api PATCH "$crs/$name" '{"spec":{"size":4}}' application/merge-patch+json >/dev/null
wait_for 20 "the Deployment followed size 4" replicas_are 4
[ "$(api PATCH "$deps/$name" '{"spec":{"replicas":1}}' application/merge-patch+json | jq -r .spec.replicas)" = 1 ] ||
        fail "the Deployment could not be edited by hand"
wait_for 20 "the hand-edited replica count was corrected" replicas_are 4
uid=$(dep_get | jq -r .metadata.uid)
[ "$(api DELETE "$deps/$name" | jq -r '.status // ""')" != Failure ] || fail "the Deployment could not be deleted"
recreated() { [ "$(dep_get | jq -r .metadata.uid)" != "$uid" ] && replicas_are 4; }
wait_for 20 "the deleted Deployment was created again" recreated
echo "e2e: a new size, a hand-edited replica count and a deleted Deployment are reconciled"

if [ "$server_kind" = kube-apiserver ]; then
        [ "$(api PATCH "$crs/$name" '{"spec":{"size":9}}' application/merge-patch+json | jq -r .code)" = 422 ] ||
                fail "size 9 was not refused by the CRD's schema (maximum 5)"
        echo "e2e: size 9 refused by the schema"
fi

rc=0
kill -TERM "$pid"; wait "$pid" || rc=$?
[ "$rc" = 0 ] || fail "the operator exited with $rc after SIGTERM"
echo "e2e: OK"
