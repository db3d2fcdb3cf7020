#!/usr/bin/env bash
# End-to-end test of __NAME__: two replicas, one leads; a ConfigMap
# labelled __NAME__/mirror=true gets its copy <name>-mirror, a change of the
# source reaches the copy, a deleted copy is restored; the leader hands over
# on SIGTERM and the successor's finalizer deletes the copy with the source;
# a <name>-mirror the operator did not make is never written; both replicas
# exit 0.  Needs curl, jq and ss (iproute2).
#
#   koc-envtest run tests/e2e.sh PROGRAM    on the control plane koc-envtest started
#                                           (kube-apiserver, or koc-apiserver where
#                                           Go is missing): what ctest runs
#   tests/e2e.sh PROGRAM KOC_APISERVER      on a koc-apiserver of its own
set -euo pipefail
prog=${1:?usage: e2e.sh PROGRAM [KOC_APISERVER]}
work=$(mktemp -d)
pids=()
cleanup() {
        for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "e2e: FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done; exit 1; }
# COMMAND runs again on every poll; its arguments are expanded once, by the
# call, so a condition that reads the server is a function (copy_is, gone).
wait_for() { # SECONDS DESCRIPTION COMMAND...
        local t=$1 what=$2 t0=$SECONDS; shift 2
        until "$@"; do [ $((SECONDS - t0)) -lt "$t" ] || fail "$what within $t s"; sleep 0.1; done
}

if [ -n "${KOC_ENVTEST_DIR:-}" ]; then
        # shellcheck disable=SC1091
        . "$KOC_ENVTEST_DIR/env"
        server=$KOC_K8S_URL token=$KOC_K8S_ADMIN_TOKEN
        cp "$KOC_K8S_CA" "$work/ca.crt"
        cp "$KOC_ENVTEST_DIR/admin.kubeconfig" "$work/kubeconfig"
        echo "e2e: on ${KOC_ENVTEST_SERVER:-the koc-envtest control plane} at $server"
else
        apiserver=${2:?usage: e2e.sh PROGRAM KOC_APISERVER (or through koc-envtest run)}
        token=e2e-token
        "$apiserver" --listen 127.0.0.1:0 --token "$token" --kubeconfig-out "$work/kubeconfig" >"$work/apiserver.log" 2>&1 &
        pids+=($!)
        wait_for 15 "koc-apiserver wrote its kubeconfig" grep -qs 'server:' "$work/kubeconfig"
        server=$(sed -n 's/^ *server: *//p' "$work/kubeconfig" | head -n1)
        sed -n 's/^ *certificate-authority-data: *//p' "$work/kubeconfig" | head -n1 | base64 -d >"$work/ca.crt"
fi
chmod 600 "$work/kubeconfig"
api() { # METHOD PATH [BODY [CONTENT-TYPE]]
        curl -s --cacert "$work/ca.crt" -H "Authorization: Bearer $token" -X "$1" \
                ${3:+-H "Content-Type: ${4:-application/json}" --data "$3"} "$server$2"
}
cm=/api/v1/namespaces/default/configmaps

# Two consecutive TCP ports on 127.0.0.1 (probes, metrics) that no socket
# uses now, below the ephemeral range where outgoing connections take
# theirs: the first.
free_ports() {
        local p lo span
        lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
        span=$(( lo > 21000 ? lo - 20002 : 30000 ))
        for _ in $(seq 1 100); do
                p=$(( 20000 + RANDOM % span ))
                [ -z "$(ss -Htan "( sport = :$p or sport = :$((p + 1)) )" 2>/dev/null)" ] && { echo "$p"; return 0; }
        done
        fail "no two free TCP ports found"
}
start() { # ID: until it listens; a port taken since free_ports is tried again
        local p pid t0
        for _ in 1 2 3 4 5; do
                p=$(free_ports)
                "$prog" --kubeconfig="$work/kubeconfig" --identity="$1" --leader-elect-resource-namespace=default \
                        --leader-elect-lease-duration=2s --leader-elect-renew-deadline=1500ms \
                        --leader-elect-retry-period=250ms --health-probe-bind-address=127.0.0.1:$p \
                        --metrics-bind-address=127.0.0.1:$((p + 1)) >"$work/$1.log" 2>&1 &
                pid=$!; echo "$pid" >"$work/$1.pid"; echo $((p + 1)) >"$work/$1.metrics"
                t0=$SECONDS
                # Until this process listens on the metrics port (not someone
                # else), or is gone.
                while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - t0)) -lt 10 ] &&
                        ! ss -Htlnp "( sport = :$((p + 1)) )" 2>/dev/null | grep -q "pid=$pid,"; do
                        sleep 0.05
                done
                if kill -0 "$pid" 2>/dev/null; then pids+=("$pid"); return 0; fi
                wait "$pid" || true
                grep -q 'Address already in use' "$work/$1.log" || fail "$1 exited at start"
        done
        fail "$1: no free ports in 5 tries"
}
leads() { curl -sf "http://127.0.0.1:$(cat "$work/$1.metrics")/metrics" 2>/dev/null | grep -q '^leader_election_master_status{.*} 1'; }
holder() { api GET /apis/coordination.k8s.io/v1/namespaces/default/leases/__NAME__ | jq -r '.spec.holderIdentity // ""'; }
stop() { # ID: SIGTERM, exit 0
        local pid rc=0; pid=$(cat "$work/$1.pid")
        kill -TERM "$pid"; wait "$pid" || rc=$?
        [ "$rc" = 0 ] || fail "$1 exited with $rc after SIGTERM"
}
copy_data() { api GET "$cm/settings-mirror" | jq -c '.data // empty'; }
copy_is() { test "$(copy_data)" = "$1"; }
gone() { test "$(api GET "$cm/$1" | jq -r .kind)" = Status; }

start a
wait_for 20 "a leads" leads a
start b
sleep 1
leads b && fail "b leads while a does"
[ "$(holder)" = a ] || fail "the Lease names $(holder), not a"
echo "e2e: a leads, b stands by"

api POST "$cm" '{"metadata":{"name":"settings","labels":{"__NAME__/mirror":"true"}},"data":{"k":"v"}}' >/dev/null
wait_for 10 "the copy settings-mirror appeared" copy_is '{"k":"v"}'
api GET "$cm/settings" | jq -e '.metadata.finalizers | index("__NAME__/mirror")' >/dev/null || fail "no finalizer on the source"
echo "e2e: settings mirrored to settings-mirror; the source carries the finalizer"
api PATCH "$cm/settings" '{"data":{"k":"w"}}' application/merge-patch+json >/dev/null
wait_for 10 "the copy followed the change" copy_is '{"k":"w"}'
api DELETE "$cm/settings-mirror" >/dev/null
wait_for 10 "the deleted copy was restored" copy_is '{"k":"w"}'
echo "e2e: a change reaches the copy; a deleted copy is restored"

stop a
wait_for 10 "b took over" leads b
echo "e2e: a released the Lease on SIGTERM (exit 0), b leads"
api DELETE "$cm/settings" >/dev/null
wait_for 10 "the source went" gone settings
[ "$(api GET "$cm/settings-mirror" | jq -r .code)" = 404 ] || fail "the copy outlived its source"
echo "e2e: b's finalizer deleted the copy before the source went"

# A ConfigMap named like a copy that the operator did not make (no label, no
# annotation naming the source) is never written: not updated to the source's
# data, not deleted with the source.
api POST "$cm" '{"metadata":{"name":"other-mirror"},"data":{"k":"precious"}}' >/dev/null
before=$(api GET "$cm/other-mirror" | jq -r .metadata.resourceVersion)
api POST "$cm" '{"metadata":{"name":"other","labels":{"__NAME__/mirror":"true"}},"data":{"k":"taken"}}' >/dev/null
handled() { # b said it refused other-mirror, or wrote it
        grep -q 'ConfigMap other-mirror exists and was not made by this operator' "$work/b.log" ||
                [ "$(api GET "$cm/other-mirror" | jq -r .metadata.resourceVersion)" != "$before" ]
}
wait_for 10 "b refused other-mirror" handled
[ "$(api GET "$cm/other-mirror" | jq -r .data.k)" = precious ] || fail "other-mirror was overwritten"
api DELETE "$cm/other" >/dev/null
wait_for 10 "the source other went" gone other
after=$(api GET "$cm/other-mirror" | jq -r '"\(.metadata.resourceVersion) \(.data.k)"')
[ "$after" = "$before precious" ] || fail "other-mirror was written: $after, was $before precious"
echo "e2e: a ConfigMap named like a copy but not made by the operator is left untouched"
stop b
echo "e2e: OK"
