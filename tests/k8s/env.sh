#!/usr/bin/env bash
# A real control plane for tests, started the way envtest starts one: etcd and
# kube-apiserver on 127.0.0.1 (no kubelet, no scheduler), RBAC authorisation,
# service-account keys made with openssl, a token file with an admin
# (system:masters) and an unprivileged user, one kubeconfig per user.
#
#   tests/k8s/env.sh start DIR     start; DIR must not exist; returns when /readyz is ok
#   tests/k8s/env.sh stop DIR      stop every process and remove DIR
#   tests/k8s/env.sh run CMD...    start in a temporary DIR, run CMD with KOC_K8S_ENV=DIR, stop
#
# DIR then holds:
#   admin.kubeconfig  user.kubeconfig   (users koc-admin and koc-user)
#   env               shell variables: KOC_K8S_URL, KOC_K8S_ADMIN_TOKEN, KOC_K8S_USER_TOKEN,
#                     KOC_K8S_CA, KOC_K8S_VERSION
#   ca.crt, *.log     the CA of the serving certificate, the servers' logs
# Ports are picked free (never fixed).  KOC_K8S_CONTROLLER_MANAGER=1 also starts
# kube-controller-manager (garbage collection, namespace deletion, tokens, the
# Deployment and ReplicaSet controllers: no kubelet, so pods never run).
# KOC_K8S_USERS="a b c" adds users a, b, c (group system:masters, so one
# replica each can be told apart) with kubeconfigs a.kubeconfig ...;
# DIR/audit.log always holds the requests of namespace koc-rbac-derived's
# service accounts; KOC_K8S_AUDIT=1 adds every Lease request;
# KOC_K8S_AUDIT=writes also logs every ConfigMap write (create, update, patch,
# delete), as the chaos run (tests/chaos/run.sh) needs.
# KOC_K8S_FEATURE_GATES (e.g. WatchList=false) is passed to kube-apiserver's
# --feature-gates.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

die() { echo "k8s-env: $*" >&2; exit 1; }

bin_dir() { "$here/build.sh" --print; }

# free_port: a TCP port on 127.0.0.1 that nothing uses now.
# shellcheck source=../tools/ports.sh
. "$here/../tools/ports.sh"

kubeconfig() { # file user token
        cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: koc-k8s
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority: $dir/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@koc-k8s
  context:
    cluster: koc-k8s
    user: $2
    namespace: default
current-context: $2@koc-k8s
KC
        chmod 600 "$1" # it holds a token: koc warns about a kubeconfig others may read
}

# Last lines of a log, indented, for error messages.
log_tail() { tail -n "${2:-15}" "$1" 2>/dev/null | sed 's/^/    /'; }

# Waits for a process to stay up and answer; names the cause when it does not.
wait_ready() { # name pid log url token seconds pattern
        local name=$1 pid=$2 log=$3 url=$4 token=$5 secs=$6 pattern=$7 t0=$SECONDS
        while :; do
                if ! kill -0 "$pid" 2>/dev/null; then
                        if grep -qi 'address already in use' "$log"; then
                                echo "k8s-env: $name: a port is already in use:" >&2
                        else
                                echo "k8s-env: $name exited during start-up; last lines of $log:" >&2
                        fi
                        log_tail "$log" >&2
                        return 1
                fi
                if curl -sf --max-time 2 ${token:+-H "Authorization: Bearer $token"} \
                        --cacert "$dir/ca.crt" "$url" 2>/dev/null | grep -q "$pattern"; then
                        return 0
                fi
                if [ $((SECONDS - t0)) -ge "$secs" ]; then
                        echo "k8s-env: $name not ready at $url within ${secs} s; last lines of $log:" >&2
                        log_tail "$log" 25 >&2
                        return 1
                fi
                sleep 0.2
        done
}

start_once() {
        local bin=$1
        etcd_port=$(free_port); peer_port=$(free_port); apiserver_port=$(free_port)
        mkdir -p "$dir/etcd"
        # Each server in its own session, so stop can end it and its children.
        setsid "$bin/etcd" --name koc-test --data-dir "$dir/etcd" --unsafe-no-fsync \
                --listen-client-urls "http://127.0.0.1:$etcd_port" \
                --advertise-client-urls "http://127.0.0.1:$etcd_port" \
                --listen-peer-urls "http://127.0.0.1:$peer_port" \
                --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
                --initial-cluster "koc-test=http://127.0.0.1:$peer_port" \
                --listen-metrics-urls "" --log-level warn \
                >"$dir/etcd.log" 2>&1 </dev/null &
        echo $! >"$dir/etcd.pid"
        wait_ready etcd "$(cat "$dir/etcd.pid")" "$dir/etcd.log" \
                "http://127.0.0.1:$etcd_port/health" "" 30 '"health":"true"' 2>"$dir/start.err" || return 1
        setsid "$bin/kube-apiserver" \
                --etcd-servers "http://127.0.0.1:$etcd_port" \
                --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
                --secure-port "$apiserver_port" --cert-dir "$dir/certs" \
                --tls-cert-file "$dir/serving.crt" --tls-private-key-file "$dir/serving.key" \
                --client-ca-file "$dir/ca.crt" \
                --token-auth-file "$dir/tokens.csv" \
                --authorization-mode RBAC \
                --service-account-issuer https://kubernetes.default.svc.cluster.local \
                --service-account-key-file "$dir/sa.pub" \
                --service-account-signing-key-file "$dir/sa.key" \
                --service-cluster-ip-range 10.0.0.0/24 \
                --allow-privileged=true --profiling=false "${audit_args[@]}" \
                ${KOC_K8S_FEATURE_GATES:+--feature-gates "$KOC_K8S_FEATURE_GATES"} \
                >"$dir/kube-apiserver.log" 2>&1 </dev/null &
        echo $! >"$dir/kube-apiserver.pid"
        wait_ready kube-apiserver "$(cat "$dir/kube-apiserver.pid")" "$dir/kube-apiserver.log" \
                "https://127.0.0.1:$apiserver_port/readyz" "$admin_token" 60 '^ok' 2>>"$dir/start.err"
}

stop_pids() {
        local d=$1 f pid
        for f in "$d"/kube-controller-manager.pid "$d"/kube-apiserver.pid "$d"/etcd.pid; do
                [ -f "$f" ] || continue
                pid=$(cat "$f")
                kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
                rm -f "$f"
        done
}

cmd_start() {
        dir=${1:?usage: env.sh start DIR}
        [ ! -e "$dir" ] || die "$dir exists already (stop it first: tests/k8s/env.sh stop $dir)"
        local bin; bin=$(bin_dir)
        for prog in etcd kube-apiserver; do
                [ -x "$bin/$prog" ] || die "$bin/$prog is missing; build it with: tests/k8s/build.sh"
        done
        mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
        trap 'stop_pids "$dir"; rm -rf "$dir"' ERR
        command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
        (
                cd "$dir"
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                        -keyout ca.key -out ca.crt -days 2 -subj /CN=koc-test-ca 2>/dev/null
                openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                        -keyout serving.key -out serving.csr -subj /CN=kube-apiserver 2>/dev/null
                printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes.default.svc\n' >san.ext
                openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                        -out serving.crt -days 2 -extfile san.ext 2>/dev/null
                openssl genrsa -out sa.key 2048 2>/dev/null
                openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        )
        admin_token=$(openssl rand -hex 16); user_token=$(openssl rand -hex 16)
        printf '%s,koc-admin,koc-admin,"system:masters"\n%s,koc-user,koc-user\n' \
                "$admin_token" "$user_token" >"$dir/tokens.csv"
        local u extra=()
        for u in ${KOC_K8S_USERS:-}; do
                extra+=("$u=$(openssl rand -hex 16)")
                printf '%s,%s,%s,"system:masters"\n' "${extra[-1]#*=}" "$u" "$u" >>"$dir/tokens.csv"
        done
        # Every request of the service accounts of namespace koc-rbac-derived
        # is always audited (tests/k8s/rbac-derived.sh checks that the
        # printed RBAC rules cover all of them); the rest only on request.
        {
                printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n'
                printf -- '- level: Metadata\n  userGroups: ["system:serviceaccounts:koc-rbac-derived"]\n'
                if [ "${KOC_K8S_AUDIT:-0}" = 1 ] || [ "${KOC_K8S_AUDIT:-0}" = writes ]; then
                        printf -- '- level: Metadata\n  resources:\n  - group: coordination.k8s.io\n    resources: [leases]\n'
                fi
                if [ "${KOC_K8S_AUDIT:-0}" = writes ]; then
                        printf -- '- level: Metadata\n  verbs: [create, update, patch, delete]\n'
                        printf -- '  resources:\n  - group: ""\n    resources: [configmaps]\n'
                fi
                printf -- '- level: None\n'
        } >"$dir/audit-policy.yaml"
        audit_args=(--audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log"
                --audit-log-format json --audit-log-mode blocking)
        local ok=
        for attempt in 1 2 3; do
                if start_once "$bin"; then ok=1; break; fi
                stop_pids "$dir"; rm -rf "$dir/etcd" "$dir/certs"
                if ! grep -q 'already in use' "$dir/start.err" "$dir"/*.log 2>/dev/null; then break; fi
                echo "k8s-env: a port was taken meanwhile; trying other ports ($attempt/3)" >&2
        done
        if [ -z "$ok" ]; then
                cat "$dir/start.err" >&2 || true
                stop_pids "$dir"; rm -rf "$dir"; trap - ERR
                die "the control plane did not start (binaries in $bin)"
        fi
        kubeconfig "$dir/admin.kubeconfig" koc-admin "$admin_token"
        kubeconfig "$dir/user.kubeconfig" koc-user "$user_token"
        for u in "${extra[@]}"; do kubeconfig "$dir/${u%%=*}.kubeconfig" "${u%%=*}" "${u#*=}"; done
        local version
        version=$(curl -sf --cacert "$dir/ca.crt" -H "Authorization: Bearer $admin_token" \
                "https://127.0.0.1:$apiserver_port/version" | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
        cat >"$dir/env" <<ENV
KOC_K8S_URL=https://127.0.0.1:$apiserver_port
KOC_K8S_ADMIN_TOKEN=$admin_token
KOC_K8S_USER_TOKEN=$user_token
KOC_K8S_CA=$dir/ca.crt
KOC_K8S_VERSION=$version
ENV
        if [ "${KOC_K8S_CONTROLLER_MANAGER:-0}" = 1 ]; then
                [ -x "$bin/kube-controller-manager" ] ||
                        die "$bin/kube-controller-manager is missing; build it with: tests/k8s/build.sh"
                setsid "$bin/kube-controller-manager" --kubeconfig "$dir/admin.kubeconfig" \
                        --service-account-private-key-file "$dir/sa.key" --root-ca-file "$dir/ca.crt" \
                        --use-service-account-credentials=false --leader-elect=false \
                        --controllers 'garbage-collector-controller,namespace-controller,deployment-controller,replicaset-controller,serviceaccount-controller,serviceaccount-token-controller' \
                        --bind-address 127.0.0.1 --secure-port 0 \
                        >"$dir/kube-controller-manager.log" 2>&1 </dev/null &
                echo $! >"$dir/kube-controller-manager.pid"
        fi
        trap - ERR
        echo "k8s-env: kube-apiserver $version ready at https://127.0.0.1:$apiserver_port (env in $dir)"
}

cmd_stop() {
        local d=${1:?usage: env.sh stop DIR}
        [ -d "$d" ] || return 0
        stop_pids "$d"
        rm -rf "$d"
}

cmd_run() {
        local rc=0
        run_dir=$(mktemp -u "${TMPDIR:-/tmp}/koc-k8s.XXXXXX")
        cmd_start "$run_dir"
        trap 'cmd_stop "$run_dir"' EXIT
        trap 'exit 130' INT TERM
        KOC_K8S_ENV=$run_dir "$@" || rc=$?
        return $rc
}

case "${1:-}" in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
run) shift; cmd_run "$@" ;;
*) die "usage: env.sh start DIR | stop DIR | run CMD..." ;;
esac
