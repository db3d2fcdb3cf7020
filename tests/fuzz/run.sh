#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds koc's libFuzzer harnesses with clang (outside the CMake build) and
# runs each for a bounded time.
#
#   tests/fuzz/run.sh [--build-only | --no-build] [SECONDS] [TARGET...]
#
# SECONDS: per target (default 60).  TARGET: linebuf status time kubeconfig
# leader-fsm apiserver list watch-store selector transform exec-credential
# in-cluster response helpers path probes gen-types schema serving-pem jsonpatch
# authz webhook (default: all).
# --build-only builds every harness and runs nothing; --no-build runs what an
# earlier --build-only left in $KOC_FUZZ_DIR (ctest's fuzz fixture does the
# two in that order, tests/fuzz.cmake).
#
# Each target first replays tests/fuzz/regressions/<target>/ (every input that
# once crashed it, run once each: any failure fails the target), then fuzzes
# from the seed corpus tests/fuzz/corpus/<target>/.  Build output and the
# growing corpora go to $KOC_FUZZ_DIR (default /tmp/koc-fuzz); crashes are
# written to $KOC_FUZZ_DIR/artifacts/<target>/ and make the script exit
# non-zero.
set -euo pipefail

mode=all
case ${1:-} in
--build-only) mode=build; shift ;;
--no-build) mode=run; shift ;;
esac
SECONDS_PER=${1:-60}
shift || true
ALL=(linebuf status time kubeconfig leader-fsm apiserver list watch-store selector transform)
ALL+=(exec-credential in-cluster response helpers path probes gen-types schema serving-pem jsonpatch)
ALL+=(authz webhook)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
[ $mode != build ] || TARGETS=("${ALL[@]}")

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=${KOC_FUZZ_DIR:-/tmp/koc-fuzz}
CC=${CC_FUZZ:-clang}
JOBS=${KOC_FUZZ_JOBS:-$(nproc)}
mkdir -p "$OUT/obj"

PKGS="libcurl libcjson openssl libsystemd yaml-0.1 libmicrohttpd"
CFLAGS="-g -O1 -std=gnu11 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -DKOC_BUILDING \
        -I$SRC/include -I$SRC -I$HERE \
        -fno-omit-frame-pointer -fno-sanitize-recover=undefined $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"
# The informer harnesses replace the API client with informer-fuzz.c's
# stand-in, and collapse the reflector's backoff timers.
INFORMER_WRAP="-Wl,--wrap=koc_client_ref -Wl,--wrap=koc_client_unref \
        -Wl,--wrap=koc_client_get_event -Wl,--wrap=koc_client_request_sized \
        -Wl,--wrap=koc_request_cancel -Wl,--wrap=koc_client_watch_sized \
        -Wl,--wrap=koc_watch_stop -Wl,--wrap=sd_event_add_time_relative"

# The core, cache and controller modules, instrumented, built into an archive, so
# that each harness links only the objects it needs.  $JOBS compiles at once.
build_archive() {
        rm -f "$OUT/obj/"*.o "$OUT/libkoc-fuzz.a"
        local pids=() c o
        for c in "$SRC"/core/*.c "$SRC"/framework/cache/*.c "$SRC"/framework/controller/*.c; do
                o="$OUT/obj/$(basename "$(dirname "$c")")-$(basename "${c%.c}").o"
                $CC $CFLAGS -fsanitize=fuzzer-no-link,address,undefined -c "$c" -o "$o" &
                pids+=($!)
                if [ ${#pids[@]} -ge "$JOBS" ]; then
                        wait "${pids[0]}"
                        pids=("${pids[@]:1}")
                fi
        done
        for p in "${pids[@]}"; do wait "$p"; done
        ar rcs "$OUT/libkoc-fuzz.a" "$OUT/obj/"*.o
}

build() { # name extra-sources... -- extra-flags...
        local name=$1
        shift
        local srcs=() flags=()
        while [ $# -gt 0 ] && [ "$1" != "--" ]; do srcs+=("$1"); shift; done
        [ $# -gt 0 ] && shift
        flags=("$@")
        $CC $CFLAGS -fsanitize=fuzzer,address,undefined "$HERE/fuzz-$name.c" "${srcs[@]}" \
                "$OUT/libkoc-fuzz.a" "${flags[@]}" $LIBS -o "$OUT/fuzz-$name"
}

# koc-gen-types itself (not instrumented), then the types the gen-types
# harness parses, as koc_generate_types() makes them in the CMake build.
build_gen_types() {
        local g=$OUT/gen list=$SRC/third_party/k8s-openapi/types.list args=()
        mkdir -p "$g"
        cmake -DIN="$SRC/tools/koc-gen-types/runtime.inc" -DOUT="$g/runtime.c" \
                -P "$SRC/tools/koc-gen-types/embed.cmake"
        $CC -O1 -std=gnu11 -D_GNU_SOURCE "$SRC"/tools/koc-gen-types/{main,model,emit,util}.c "$SRC"/core/pattern.c "$g/runtime.c" -I"$SRC" \
                $(pkg-config --cflags --libs libcjson yaml-0.1) -lm -o "$g/koc-gen-types"
        "$g/koc-gen-types" --crd "$SRC/tests/gen/widgets-crd.yaml" --header "$g/widgets-crd-types.h" \
                --source "$g/widgets-crd-types.c"
        while read -r what name; do
                case $what in root) args+=(--root "$name") ;; opaque) args+=(--opaque "$name") ;; esac
        done <"$list"
        "$g/koc-gen-types" --openapi "$(ls -d "$SRC"/third_party/k8s-openapi/v*/ | tail -1)schemas.json" \
                "${args[@]}" --prefix koc_ --string-enums --header "$g/k8s.h" --source "$g/k8s.c"
}

build_target() {
        local t=$1
        local apiserver=("$SRC/apiserver/select.c" "$SRC/apiserver/patch.c" "$SRC/apiserver/util.c")
        case $t in
        gen-types) # types generated from tests/gen/widgets-crd.yaml and the built-in schemas
                build_gen_types
                build "$t" "$OUT/gen/widgets-crd-types.c" "$OUT/gen/k8s.c" -- -I"$OUT/gen" ;;
        leader-fsm) build "$t" "$SRC/leader/fsm.c" "$SRC/leader/lease-record.c" ;;
        kubeconfig) build "$t" -- -Wl,--wrap=koc__exec_credential_run ;;
        apiserver | selector) build "$t" "${apiserver[@]}" ;;
        schema)
                build "$t" "$SRC/apiserver/schema.c" "$SRC/apiserver/util.c" ;;
        list | watch-store) build "$t" "$HERE/informer-fuzz.c" -- $INFORMER_WRAP ;;
        linebuf | status | time | transform | jsonpatch) build "$t" ;;
        exec-credential | in-cluster | response | path) build "$t" ;;
        helpers) # the reconcile helpers live beside the controller, which needs the rest
                build "$t" "$SRC"/framework/manager/*.c "$SRC"/leader/*.c "$SRC"/probes/*.c \
                        "$SRC"/shutdown/*.c "$SRC"/serving/*.c -- $(pkg-config --libs gnutls) ;;
        probes)
                build "$t" "$SRC/probes/probes.c" ;; # the MHD glue comes with core
        serving-pem)
                build "$t" "$SRC/serving/tls.c" -- $(pkg-config --libs gnutls) ;;
        authz) # the filter's answers need the server it filters for
                build "$t" "$SRC"/serving/*.c -- $(pkg-config --libs gnutls) ;;
        webhook) # the webhook server lives in the manager, which needs the rest
                build "$t" "$SRC"/framework/manager/*.c "$SRC"/leader/*.c "$SRC"/probes/*.c \
                        "$SRC"/shutdown/*.c "$SRC"/serving/*.c -- $(pkg-config --libs gnutls) ;;
        *) echo "unknown target: $t" >&2; exit 2 ;;
        esac
}

if [ $mode != run ]; then
        echo "=== building the harnesses with $CC into $OUT"
        build_archive
        pids=()
        for t in "${TARGETS[@]}"; do
                build_target "$t" &
                pids+=($!)
                if [ ${#pids[@]} -ge "$JOBS" ]; then
                        wait "${pids[0]}"
                        pids=("${pids[@]:1}")
                fi
        done
        for p in "${pids[@]}"; do wait "$p"; done
fi
[ $mode != build ] || exit 0

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export KOC_LOG_LEVEL=error
status=0
for t in "${TARGETS[@]}"; do
        if [ ! -x "$OUT/fuzz-$t" ]; then
                echo "fuzz-$t: not built (run tests/fuzz/run.sh --build-only first)" >&2
                status=1
                continue
        fi
        regressions=()
        if [ -d "$HERE/regressions/$t" ]; then
                mapfile -t regressions < <(find "$HERE/regressions/$t" -type f | sort)
        fi
        if [ ${#regressions[@]} -gt 0 ]; then
                echo "=== fuzz-$t: ${#regressions[@]} regression inputs"
                if ! "$OUT/fuzz-$t" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
                        "${regressions[@]}" >"$OUT/$t-regressions.log" 2>&1; then
                        echo "fuzz-$t FAILED on a regression input (see $OUT/$t-regressions.log)"
                        grep -E 'Running: |ERROR|SUMMARY' "$OUT/$t-regressions.log" | tail -5 || true
                        status=1
                        continue
                fi
        fi
        maxlen=4096
        mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
        seeds=() dict=()
        [ -d "$HERE/corpus/$t" ] && seeds=("$HERE/corpus/$t")
        [ -f "$HERE/$t.dict" ] && dict=(-dict="$HERE/$t.dict")
        echo "=== fuzz-$t: ${SECONDS_PER}s"
        if ! "$OUT/fuzz-$t" -max_total_time="$SECONDS_PER" -max_len=$maxlen -timeout=10 \
                -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1 "${dict[@]}" \
                -artifact_prefix="$OUT/artifacts/$t/" "$OUT/corpus/$t" "${seeds[@]}" \
                >"$OUT/$t.log" 2>&1; then
                echo "fuzz-$t FAILED (see $OUT/$t.log, $OUT/artifacts/$t/)"
                status=1
        fi
        grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$OUT/$t.log" || true
        grep -E 'ERROR|SUMMARY|Test unit written' "$OUT/$t.log" | head -5 || true
done
exit $status
