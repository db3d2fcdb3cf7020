#!/usr/bin/env bash
# Runs koc's benchmarks and prints their figures (benchmarks, not tests:
# nothing here passes or fails on speed).  Builds an optimised tree in
# build-bench/ first and installs missing Debian packages.
#
#   ./scripts/bench.sh leader      handoff and crash-failover latency, API load, RSS
#   ./scripts/bench.sh probes      wrk on /readyz while a lease renews on the same loop
#   ./scripts/bench.sh apiserver   koc-apiserver lease updates/s and watch fan-out
#   ./scripts/bench.sh client      API client requests/s, sync facade, watch events/s
#   ./scripts/bench.sh metrics     metric updates and rendering
#   ./scripts/bench.sh kubeconfig  kubeconfig loading and token reads
#   ./scripts/bench.sh peers       koc and client-go electors side by side on a real kube-apiserver
#   ./scripts/bench.sh controller  the controller runtime with 10,000, 50,000 and 100,000 objects,
#                                  koc-apiserver and kube-apiserver, beside controller-runtime
#                                  (KOC_BENCH_SIZES, KOC_BENCH_WRITE_SIZES, KOC_BENCH_SERVERS)
#   ./scripts/bench.sh all         all of the above, in that order
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

which=${1:-all}
case $which in
leader | probes | apiserver | client | metrics | kubeconfig | peers | controller | all) ;;
*)
        sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DKOC_WERROR=ON >/dev/null
run() {
        if [ "$1" = controller ]; then
                cmake --build build-bench -j"$(nproc)" --target bench-controller koc-apiserver >/dev/null
                tests/bench/bench-controller.sh build-bench/tests/bench-controller \
                        build-bench/apiserver/koc-apiserver
                echo
                return
        fi
        if [ "$1" = peers ]; then
                cmake --build build-bench -j"$(nproc)" --target koc-example-leader >/dev/null
                tests/k8s/bench-peers.sh build-bench/examples/leader/koc-example-leader
                echo
                return
        fi
        echo "== bench-$1 ($(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
        local target=bench-$1
        [ "$1" = probes ] && target=probes-server
        cmake --build build-bench -j"$(nproc)" --target "$target" >/dev/null
        ./build-bench/tests/"$target"
        echo
}
if [ "$which" = all ]; then
        for b in leader probes apiserver client metrics kubeconfig peers controller; do run "$b"; done
else
        run "$which"
fi
