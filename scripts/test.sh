#!/usr/bin/env bash
# Builds koc and runs the whole test suite: first an AddressSanitizer +
# UndefinedBehaviorSanitizer build with the unit and integration tests, then a
# ThreadSanitizer build with the threaded tests (label tsan), then the
# libFuzzer harnesses built with clang, each replaying its past crashes and
# fuzzing for a bounded time under ASan + UBSan (label fuzz), then the regular
# build with every test (unit, integration, valgrind, the real kubectl and helm
# checks, the install check, and the integration suites again on a real
# kube-apiserver built from the Go modules, label k8s), and last the tests on
# a real one-node cluster (label node) where the machine allows them.  Each stage ends with
# the time it took; the regular run ends with ctest's summary.  Installs missing
# Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

jobs=$(nproc)
export KOC_TEST_LOG_LEVEL=${KOC_TEST_LOG_LEVEL:-warn}

# Each stage says how long it took (bash's SECONDS counts from the reset).
stage_start() {
        echo "== $1"
        stage=$1
        SECONDS=0
}
stage_end() {
        echo "== $stage: $((SECONDS / 60)) min $((SECONDS % 60)) s"
}

# The real control plane (etcd, kube-apiserver, the Go peers), built once into
# ~/.cache/koc and reused: the k8s suites run the integration tests again on it.
k8s=ON
if command -v go >/dev/null 2>&1; then
        stage_start "Real control plane: tests/k8s/build.sh (a cold build takes ~15 minutes, then cached)"
        tests/k8s/build.sh
        stage_end
elif [ "${CI:-}" = true ]; then
        echo "test: CI=true but no Go toolchain (go) is on PATH: the real kube-apiserver suites cannot run" >&2
        exit 1
else
        k8s=OFF
        echo "test: no Go toolchain (go): the suites on the real kube-apiserver (ctest -L k8s) are SKIPPED."
        echo "test: with Go 1.26 on PATH, ./scripts/test.sh runs them (or: tests/k8s/build.sh && ctest --test-dir build -L k8s)."
fi

# The node tests (label node): a real one-node cluster (tests/k8s/node.sh)
# with the example images built without a container engine, the chart
# installed, probed by kubelet and rolled.  They need root with CAP_SYS_ADMIN
# and CAP_NET_ADMIN (a network namespace, mounts, cgroups), a cgroup
# hierarchy, and the real control plane above.
node=OFF
node_missing=
if [ "$k8s" = OFF ]; then
        node_missing="the real control plane (Go)"
elif [ "$(id -u)" -ne 0 ]; then
        node_missing="root"
else
        cap=$(awk '/^CapEff/ { print $2 }' /proc/self/status)
        (((0x$cap >> 21) & 1)) && (((0x$cap >> 12) & 1)) || node_missing="CAP_SYS_ADMIN and CAP_NET_ADMIN"
        [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] ||
                node_missing="a cgroup hierarchy with the memory controller"
fi
if [ -z "$node_missing" ]; then
        node=ON
elif [ "${CI:-}" = true ]; then
        echo "test: CI=true but this machine lacks $node_missing: the node tests (ctest -L node) cannot run" >&2
        exit 1
else
        echo "test: this machine lacks $node_missing: the node tests (ctest -L node) are SKIPPED."
        echo "test: as root on a machine with them: tests/k8s/build.sh && ctest --test-dir build -L node."
fi

stage_start "ASan+UBSan build and tests"
cmake -S . -B build-asan -DKOC_SANITIZE=address -DKOC_WERROR=ON -DKOC_K8S_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan -L 'unit|integration' -j"$jobs" --output-on-failure
stage_end

stage_start "ThreadSanitizer build and the threaded tests"
# Only what the tsan tests need: the tree under TSan is slow to build and run.
cmake -S . -B build-tsan -DKOC_SANITIZE=thread -DKOC_WERROR=ON -DKOC_K8S_TESTS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-tsan -j"$jobs" --target koc koc-apiserver \
        $(ctest --test-dir build-tsan -L tsan -N | sed -n 's/^ *Test *#[0-9]*: //p')
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        ctest --test-dir build-tsan -L tsan -j"$jobs" --output-on-failure
stage_end

stage_start "libFuzzer harnesses (clang, ASan+UBSan): regressions, then ${KOC_FUZZ_SECONDS:-15} s per target"
# Nothing is built by CMake here: the fuzz-build test compiles the harnesses
# with clang (tests/fuzz/run.sh) into build-fuzz/fuzz.
cmake -S . -B build-fuzz -DKOC_FUZZ=ON -DKOC_FUZZ_SECONDS="${KOC_FUZZ_SECONDS:-15}" \
        -DKOC_K8S_TESTS=OFF >/dev/null
ctest --test-dir build-fuzz -L fuzz -j"$jobs" --output-on-failure
stage_end

stage_start "Regular build and the whole suite"
cmake -S . -B build -DKOC_WERROR=ON -DKOC_K8S_TESTS=$k8s -DKOC_NODE_TESTS=$node >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build -j"$jobs" -LE '^node$' --output-on-failure
stage_end

if [ "$node" = ON ]; then
        # Alone, one node at a time: pods, kubelet and containerd on two cores.
        stage_start "A real node: the images, the chart installed, probed and rolled (label node)"
        ctest --test-dir build -L '^node$' --output-on-failure
        stage_end
fi
