#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# A real one-node cluster for tests, in a network namespace of its own:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
# (with runc and the bridge CNI plugin) and kubelet, so pods really run,
# are probed by kubelet and are rolled by their Deployments.
#
#   tests/k8s/node.sh up DIR          start; DIR must not exist; returns when the node is Ready
#   tests/k8s/node.sh down DIR        stop everything, restore the sysctls kubelet changed, remove DIR
#   tests/k8s/node.sh in DIR CMD...   run CMD inside the node's namespaces (KUBECONFIG set)
#   tests/k8s/node.sh run CMD...      up in a temporary DIR, run CMD with KOC_NODE=DIR, down
#   tests/k8s/node.sh import DIR TAR  import an image archive into the node's containerd
#
# Isolation: every server runs in a new network namespace (loopback and a veth
# pair inside it, no route anywhere else, so nothing a pod sends leaves it) and
# a private mount namespace whose tmpfs over /run/netns and /run/containerd
# holds what containerd makes there; kubelet's pods live under the cgroup
# /koc-node-<id>.  `down` ends every process in those namespaces and cgroups
# (all started here), removes the cgroups and the netns, restores the sysctls.
#
# The kubernetes Service's ClusterIP (10.0.0.1) is an address of the
# namespace's loopback and kube-apiserver listens on port 443 of every address
# there, so pods reach it through their in-cluster configuration even before
# kube-proxy (iptables mode, rules inside the namespace only) has synced; the
# other Services go through kube-proxy.  There is no DNS server.  No image is ever pulled: the sandbox image is the static
# tests/k8s/node/pause.c, and tests import theirs with `import`.
#
# Needs: root with CAP_SYS_ADMIN and CAP_NET_ADMIN, cgroup v1 or v2 mounted,
# containerd, runc, containernetworking-plugins, iproute2, gcc (static libc),
# jq, openssl (scripts/install-deps.sh), and the binaries of tests/k8s/build.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=node/oci.sh
. "$here/node/oci.sh"

die() { echo "k8s-node: $*" >&2; exit 1; }
log_tail() { tail -n "${2:-20}" "$1" 2>/dev/null | sed 's/^/    /'; }

node_ip=10.200.0.1
cluster_ip=10.0.0.1
pod_cidr=10.88.0.0/16
node_name=koc-node
sandbox_image=koc.invalid/pause:1
sysctls=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

# The id of DIR: names the netns and the cgroup, so two DIRs never collide.
node_id() { printf '%s' "$1" | sha256sum | cut -c1-10; }

# Runs a command in the holder's network and mount namespaces.
in_ns() { nsenter -t "$(cat "$dir/holder.pid")" -n -m --wd="$PWD" -- "$@"; }

check_machine() {
        [ "$(id -u)" -eq 0 ] || die "must run as root (it creates a network namespace, cgroups and mounts)"
        local cap
        cap=$(awk '/^CapEff/ { print $2 }' /proc/self/status)
        (((0x$cap >> 21) & 1)) || die "CAP_SYS_ADMIN is missing (mounts, namespaces)"
        (((0x$cap >> 12) & 1)) || die "CAP_NET_ADMIN is missing (network namespace, veth)"
        local bin; bin=$("$here/build.sh" --print)
        for prog in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
                [ -x "$bin/$prog" ] || die "$bin/$prog is missing; build it with: tests/k8s/build.sh"
        done
        for c in containerd containerd-shim-runc-v2 runc ctr ip iptables nsenter unshare gcc jq openssl curl; do
                command -v "$c" >/dev/null ||
                        die "$c is missing; install it with scripts/install-deps.sh (containerd, runc, iproute2, ...)"
        done
        kubectl=$("$here/../tools/k8s-tools.sh" kubectl) || die "no kubectl (tests/tools/k8s-tools.sh)"
        [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] ||
                die "the CNI plugins are missing in /usr/lib/cni (apt-get install containernetworking-plugins)"
        [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
                die "no cgroup hierarchy with the memory controller under /sys/fs/cgroup"
}

cgroup_dirs() { # every cgroup directory of the node, one per hierarchy
        local id=$1 c
        if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
                echo "/sys/fs/cgroup/koc-node-$id"
                return
        fi
        for c in /sys/fs/cgroup/*/; do
                [ -f "$c/cgroup.procs" ] || continue
                echo "${c%/}/koc-node-$id"
        done
}

kubeconfig() { # file user token server
        cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: koc-node
  cluster:
    server: $4
    certificate-authority: $dir/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@koc-node
  context:
    cluster: koc-node
    user: $2
    namespace: default
current-context: $2@koc-node
KC
        chmod 600 "$1"
}

start() { # name command... : in the namespaces, its own session, log and pid file
        local name=$1; shift
        nsenter -t "$(cat "$dir/holder.pid")" -n -m -- setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
        echo $! >"$dir/$name.pid"
}

wait_for() { # name seconds command... : until the command succeeds, or the process died
        local name=$1 secs=$2 t0=$SECONDS; shift 2
        while ! "$@" >/dev/null 2>&1; do
                if [ -f "$dir/$name.pid" ] && ! kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null; then
                        echo "k8s-node: $name exited during start-up; last lines of $dir/$name.log:" >&2
                        log_tail "$dir/$name.log" >&2
                        return 1
                fi
                if [ $((SECONDS - t0)) -ge "$secs" ]; then
                        echo "k8s-node: $name not ready within $secs s; last lines of $dir/$name.log:" >&2
                        log_tail "$dir/$name.log" 30 >&2
                        return 1
                fi
                sleep 0.3
        done
}

make_certs() {
        (
                cd "$dir"
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                        -keyout ca.key -out ca.crt -days 2 -subj /CN=koc-node-ca 2>/dev/null
                local name san
                for name in kube-apiserver kubelet; do
                        case $name in
                        kube-apiserver) san="IP:$cluster_ip,IP:$node_ip,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" ;;
                        kubelet) san="IP:$node_ip,DNS:$node_name" ;;
                        esac
                        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                                -keyout "$name.key" -out "$name.csr" -subj "/CN=$name" 2>/dev/null
                        printf 'subjectAltName=%s\n' "$san" >"$name.ext"
                        openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
                                -out "$name.crt" -days 2 -extfile "$name.ext" 2>/dev/null
                done
                # kube-apiserver's client certificate towards kubelet (logs, exec).
                openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                        -keyout apiserver-kubelet.key -out apiserver-kubelet.csr \
                        -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
                printf 'extendedKeyUsage=clientAuth\n' >client.ext
                openssl x509 -req -in apiserver-kubelet.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
                        -out apiserver-kubelet.crt -days 2 -extfile client.ext 2>/dev/null
                openssl genrsa -out sa.key 2048 2>/dev/null
                openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        )
}

write_configs() {
        local id=$1
        mkdir -p "$dir/cni/net.d" "$dir/containerd" "$dir/kubelet" "$dir/pod-logs"
        cat >"$dir/cni/net.d/10-koc.conflist" <<CNI
{
  "cniVersion": "0.4.0",
  "name": "koc-node",
  "plugins": [
    {
      "type": "bridge", "bridge": "kocbr0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$dir/cni/ipam",
                "ranges": [[{ "subnet": "$pod_cidr" }]], "routes": [{ "dst": "0.0.0.0/0" }] }
    }
  ]
}
CNI
        # restrict_oom_score_adj: without CAP_SYS_RESOURCE runc cannot lower
        # a process's oom_score_adj and every sandbox fails to start.
        cat >"$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "/run/containerd/koc-node"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox_image"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
        local cgroup_driver=cgroupfs
        # failCgroupV1: kubelet refuses cgroup v1 hosts by default since 1.35.
        cat >"$dir/kubelet/config.yaml" <<KCFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: $cgroup_driver
cgroupRoot: /koc-node-$id
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$dir/containerd.sock
podLogsDir: $dir/pod-logs
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $dir/kubelet.crt
tlsPrivateKeyFile: $dir/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $dir/ca.crt}
authorization:
  mode: AlwaysAllow
resolvConf: $dir/resolv.conf
clusterDomain: cluster.local
registerNode: true
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 2s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 24h
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
localStorageCapacityIsolation: false
protectKernelDefaults: false
serializeImagePulls: false
shutdownGracePeriod: 0s
KCFG
        # No DNS server in the node: pods resolve nothing.
        : >"$dir/resolv.conf"
}

build_pause() {
        local stage="$dir/pause-rootfs"
        mkdir -p "$stage"
        gcc -static -O2 -o "$stage/pause" "$here/node/pause.c" ||
                die "cannot build the static sandbox program (libc6-dev's libc.a is needed)"
        tar -C "$stage" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$dir/pause-layer.tar" pause
        oci_archive "$dir/pause.tar" "$sandbox_image" "$dir/pause-layer.tar" 65535:65535 '["/pause"]' '[]'
        rm -rf "$stage" "$dir/pause-layer.tar"
}

cmd_import() {
        dir=${1:?usage: node.sh import DIR IMAGE.tar}
        local tar=${2:?usage: node.sh import DIR IMAGE.tar}
        [ -f "$tar" ] || die "$tar: no such image archive"
        tar=$(realpath "$tar"); dir=$(cd "$dir" && pwd)
        in_ns ctr --address "$dir/containerd.sock" -n k8s.io images import --no-unpack=false "$tar" >/dev/null ||
                die "ctr could not import $tar"
}

cmd_up() {
        dir=${1:?usage: node.sh up DIR}
        [ ! -e "$dir" ] || die "$dir exists already (stop it first: tests/k8s/node.sh down $dir)"
        check_machine
        local bin id ns
        bin=$("$here/build.sh" --print)
        mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
        id=$(node_id "$dir"); ns=koc-node-$id
        echo "$ns" >"$dir/netns"
        # Any failure from here on (a die, a failed wait) tears down what was started.
        up_done=
        trap '[ -n "$up_done" ] || { echo "k8s-node: start-up failed; tearing down" >&2; cmd_down "$dir" >&2 || true; }' EXIT
        if ip netns list | grep -qw "$ns"; then die "network namespace $ns exists already (a node left running? tests/k8s/node.sh down $dir)"; fi

        local s
        for s in "${sysctls[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$dir/sysctl.saved"

        ip netns add "$ns" || die "cannot create network namespace $ns"
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$cluster_ip/32" dev lo
        ip -n "$ns" link add kocnode0 type veth peer name kocnode1 ||
                die "cannot create a veth pair in $ns"
        ip -n "$ns" addr add "$node_ip/24" dev kocnode0
        ip -n "$ns" link set kocnode0 up
        ip -n "$ns" link set kocnode1 up
        ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1

        # The holder: keeps the private mount namespace alive; its tmpfs
        # mounts take what containerd and CNI put in /run.
        nsenter --net="/run/netns/$ns" unshare --mount --propagation private -- sh -c '
                mount -t tmpfs -o mode=0755 koc-node /run/netns &&
                mkdir -p /run/containerd && mount -t tmpfs -o mode=0711 koc-node /run/containerd &&
                echo ready && exec sleep 2147483647' >"$dir/holder.log" 2>&1 </dev/null &
        echo $! >"$dir/holder.pid"
        wait_for holder 10 grep -q ready "$dir/holder.log"

        local c
        while read -r c; do mkdir -p "$c"; done < <(cgroup_dirs "$id")

        make_certs
        local admin_token node_token
        admin_token=$(openssl rand -hex 16); node_token=$(openssl rand -hex 16)
        printf '%s,koc-admin,koc-admin,"system:masters"\n%s,system:node:%s,system:node:%s,"system:nodes,system:masters"\n' \
                "$admin_token" "$node_token" "$node_name" "$node_name" >"$dir/tokens.csv"
        kubeconfig "$dir/admin.kubeconfig" koc-admin "$admin_token" "https://127.0.0.1:443"
        kubeconfig "$dir/kubelet.kubeconfig" "system:node:$node_name" "$node_token" "https://$node_ip:443"
        write_configs "$id"

        start etcd "$bin/etcd" --name koc-node --data-dir "$dir/etcd" --unsafe-no-fsync \
                --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
                --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
                --initial-cluster koc-node=http://127.0.0.1:2380 --listen-metrics-urls "" --log-level warn
        wait_for etcd 30 in_ns curl -sf --max-time 2 http://127.0.0.1:2379/health

        start kube-apiserver "$bin/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
                --bind-address 0.0.0.0 --advertise-address "$node_ip" --secure-port 443 \
                --cert-dir "$dir/certs" --tls-cert-file "$dir/kube-apiserver.crt" \
                --tls-private-key-file "$dir/kube-apiserver.key" --client-ca-file "$dir/ca.crt" \
                --token-auth-file "$dir/tokens.csv" --authorization-mode Node,RBAC \
                --service-account-issuer https://kubernetes.default.svc.cluster.local \
                --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
                --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true --profiling=false \
                --kubelet-client-certificate "$dir/apiserver-kubelet.crt" \
                --kubelet-client-key "$dir/apiserver-kubelet.key" \
                --kubelet-preferred-address-types InternalIP
        wait_for kube-apiserver 90 in_ns curl -sf --max-time 2 --cacert "$dir/ca.crt" \
                -H "Authorization: Bearer $admin_token" https://127.0.0.1:443/readyz

        start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$dir/admin.kubeconfig" \
                --service-account-private-key-file "$dir/sa.key" --root-ca-file "$dir/ca.crt" \
                --use-service-account-credentials=false --leader-elect=false \
                --bind-address 127.0.0.1 --secure-port 10257 --controllers '*,-node-ipam-controller'
        start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$dir/admin.kubeconfig" \
                --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259

        # kube-proxy: Services' ClusterIPs as iptables rules of the namespace.
        # br_netfilter cannot be loaded here, so bridged pod-to-Service
        # traffic is masqueraded (--masquerade-all); conntrack limits and
        # timeouts (machine-wide sysctls) are left as they are.
        start kube-proxy "$bin/kube-proxy" --kubeconfig "$dir/admin.kubeconfig" \
                --proxy-mode iptables --masquerade-all --cluster-cidr "$pod_cidr" \
                --hostname-override "$node_name" --conntrack-max-per-core 0 \
                --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
                --nodeport-addresses primary --iptables-localhost-nodeports=false \
                --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256
        start containerd containerd --config "$dir/containerd/config.toml"
        wait_for containerd 30 in_ns ctr --address "$dir/containerd.sock" version
        build_pause
        cmd_import "$dir" "$dir/pause.tar"

        start kubelet "$bin/kubelet" --config "$dir/kubelet/config.yaml" \
                --kubeconfig "$dir/kubelet.kubeconfig" --root-dir "$dir/kubelet" \
                --hostname-override "$node_name" --node-ip "$node_ip" --v=1
        local kc=(in_ns env KUBECONFIG="$dir/admin.kubeconfig" "$kubectl")
        wait_for kubelet 120 "${kc[@]}" wait --for=condition=Ready "node/$node_name" --timeout=2s
        wait_for kube-controller-manager 60 "${kc[@]}" get serviceaccount default -n default
        wait_for kube-controller-manager 60 "${kc[@]}" get configmap kube-root-ca.crt -n default
        wait_for kube-proxy 60 in_ns curl -sf --max-time 2 http://127.0.0.1:10256/healthz
        up_done=1
        trap - EXIT
        echo "k8s-node: node $node_name Ready (namespace $ns, state in $dir)"
}

# Every PID in the node's cgroups, in its mount namespace, or a descendant of one.
node_pids() {
        local id=$1 holder=$2 c mnt p
        while read -r c; do
                [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null
        done < <(cgroup_dirs "$id")
        if [ -n "$holder" ] && mnt=$(readlink "/proc/$holder/ns/mnt" 2>/dev/null); then
                for p in /proc/[0-9]*; do
                        [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$mnt" ] && echo "${p#/proc/}"
                done
        fi
}

stop_pidfile() { # name: TERM its session, wait up to 10 s, KILL
        local f=$dir/$1.pid pid
        [ -f "$f" ] || return 0
        pid=$(cat "$f")
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
}

cmd_down() {
        dir=${1:?usage: node.sh down DIR}
        [ -d "$dir" ] || return 0
        dir=$(cd "$dir" && pwd)
        local id ns holder="" p m rc=0
        id=$(node_id "$dir"); ns=koc-node-$id
        [ -f "$dir/holder.pid" ] && holder=$(cat "$dir/holder.pid")
        # kubelet first, so it restarts nothing; then the pods and shims.
        stop_pidfile kubelet
        for p in kube-proxy kube-scheduler kube-controller-manager; do stop_pidfile "$p"; done
        for _ in 1 2 3; do
                mapfile -t pids < <(node_pids "$id" "$holder" | sort -u | grep -vx "${holder:-0}" || true)
                [ ${#pids[@]} -gt 0 ] || break
                kill -KILL "${pids[@]}" 2>/dev/null || true
                sleep 0.3
        done
        for p in containerd kube-apiserver etcd; do stop_pidfile "$p"; done
        if [ -n "$holder" ]; then
                kill -KILL "$holder" 2>/dev/null || true
                for _ in $(seq 1 50); do kill -0 "$holder" 2>/dev/null || break; sleep 0.1; done
                rm -f "$dir/holder.pid"
        fi
        # Cgroups, deepest first.
        local c
        while read -r c; do
                [ -d "$c" ] || continue
                for _ in 1 2 3 4 5; do
                        find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
                        [ -d "$c" ] || break
                        sleep 0.2
                done
                [ -d "$c" ] && { echo "k8s-node: cgroup $c is still there (processes: $(find "$c" -name cgroup.procs -exec cat {} + | tr '\n' ' '))" >&2; rc=1; }
        done < <(cgroup_dirs "$id")
        if ip netns list | grep -qw "$ns"; then ip netns del "$ns" || rc=1; fi
        if [ -f "$dir/sysctl.saved" ]; then
                while IFS= read -r p; do sysctl -qw "$p" || rc=1; done <"$dir/sysctl.saved"
        fi
        # Nothing mounted under DIR outside the private namespace; check anyway.
        while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v d="$dir" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
        rm -rf "$dir" || rc=1
        return $rc
}

cmd_in() {
        dir=${1:?usage: node.sh in DIR CMD...}; shift
        [ -f "$dir/holder.pid" ] || die "no node in $dir (tests/k8s/node.sh up $dir)"
        dir=$(cd "$dir" && pwd)
        in_ns env KUBECONFIG="$dir/admin.kubeconfig" KOC_NODE="$dir" "$@"
}

cmd_run() {
        local rc=0
        run_dir=$(mktemp -u "${TMPDIR:-/tmp}/koc-node.XXXXXX")
        cmd_up "$run_dir"
        trap 'cmd_down "$run_dir"' EXIT
        trap 'exit 130' INT TERM
        KOC_NODE=$run_dir "$@" || rc=$?
        return $rc
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) shift; cmd_down "$@" ;;
in) shift; cmd_in "$@" ;;
import) shift; cmd_import "$@" ;;
run) shift; cmd_run "$@" ;;
*) die "usage: node.sh up DIR | down DIR | in DIR CMD... | import DIR IMAGE.tar | run CMD..." ;;
esac
