#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The node fixture itself (tests/k8s/node.sh): up gives a Ready node whose
# servers all run in the new network namespace, with no route out of it; a
# pod runs; down leaves no process, cgroup, mount, network namespace or
# changed sysctl behind, and a second up/down in the same place works.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
node=$here/node.sh
kubectl=$("$here/../tools/k8s-tools.sh" kubectl)
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "not ok - $*"; }
dir=$(mktemp -u "${TMPDIR:-/tmp}/koc-node.XXXXXX")
trap '"$node" down "$dir" >/dev/null 2>&1 || true' EXIT
sysctls() { sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops | tr '\n' ' '; }
before=$(sysctls)

for round in 1 2; do
        "$node" up "$dir" >/dev/null || { bad "round $round: node.sh up"; break; }
        ns=$(cat "$dir/netns")
        id=${ns#koc-node-}
        pids=$(cat "$dir"/*.pid)
        mine=$(readlink /proc/self/ns/net)
        outside=0
        for p in $pids; do
                [ "$p" = "$(cat "$dir/holder.pid")" ] && continue
                [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$mine" ] && outside=$((outside + 1))
        done
        # setsid's children: the server is the only process of each session.
        [ "$outside" -eq 0 ] && ok "round $round: every server runs in namespace $ns" ||
                bad "round $round: $outside server(s) in the machine's network namespace"
        routes=$(ip -n "$ns" route show default; ip -n "$ns" -6 route show default)
        [ -z "$routes" ] && ok "round $round: no default route in $ns" || bad "round $round: default route in $ns: $routes"
        "$node" in "$dir" "$kubectl" run probe --image=koc.invalid/pause:1 --restart=Never >/dev/null
        if "$node" in "$dir" "$kubectl" wait --for=condition=Ready pod/probe --timeout=60s >/dev/null; then
                ok "round $round: a pod runs (sandbox image imported, CNI bridge)"
        else
                bad "round $round: the pod did not become Ready"
        fi
        "$node" down "$dir" || bad "round $round: node.sh down reported a problem"
        left=""
        ip netns list | grep -qw "$ns" && left+=" netns $ns"
        ls -d /sys/fs/cgroup/*/koc-node-"$id" /sys/fs/cgroup/koc-node-"$id" 2>/dev/null | grep -q . && left+=" cgroups"
        for p in $pids; do kill -0 "$p" 2>/dev/null && left+=" pid $p"; done
        grep -q "$dir" /proc/mounts && left+=" mounts"
        [ -e "$dir" ] && left+=" $dir"
        [ "$(sysctls)" = "$before" ] || left+=" sysctls ($(sysctls)instead of $before)"
        [ -z "$left" ] && ok "round $round: down left nothing behind" || bad "round $round: down left:$left"
done
# An error names its cause.
mkdir -p "$dir"
out=$("$node" up "$dir" 2>&1) && bad "up on an existing directory succeeded" ||
        { grep -q "exists already" <<<"$out" && ok "up on an existing directory: $out" || bad "up on an existing directory: $out"; }
rmdir "$dir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
